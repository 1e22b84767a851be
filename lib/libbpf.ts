// The libbpf API of xvs: typed handles over the native binding (lib/native.ts), shaped like
// cilium/ebpf and aya. An object is opened, configured, loaded; its maps and programs are handles
// that own their fds; an XDP link detaches when it is closed unless it was pinned.
// Every failure of the kernel or libbpf is a BpfError carrying the errno.
import { constants } from 'node:os';
import { isAbsolute } from 'node:path';
import {
  native,
  type NativeBtfEnumValue,
  type NativeBtfStruct,
  type NativeBtfVar,
  type NativeLink,
  type NativeMap,
  type NativeObject,
  type NativeProgram,
  type NativeRingBuffer,
} from './native.js';

export type BtfStruct = NativeBtfStruct;
export type BtfVar = NativeBtfVar;
export type BtfEnumValue = NativeBtfEnumValue;

export const XDP_ABORTED = 0;
export const XDP_DROP = 1;
export const XDP_PASS = 2;
export const XDP_TX = 3;
export const XDP_REDIRECT = 4;

/** testRun flag: frames go through the real stack (XDP_TX/REDIRECT transmit), no data comes back. */
export const BPF_F_TEST_XDP_LIVE_FRAMES = 2;

export const BPF_MAP_TYPE_HASH = 1;
export const BPF_MAP_TYPE_ARRAY = 2;
export const BPF_MAP_TYPE_PERCPU_HASH = 5;
export const BPF_MAP_TYPE_PERCPU_ARRAY = 6;
export const BPF_MAP_TYPE_LRU_HASH = 9;
export const BPF_MAP_TYPE_LRU_PERCPU_HASH = 10;
export const BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE = 21;
export const BPF_MAP_TYPE_RINGBUF = 27;

const PER_CPU_MAP_TYPES = new Set([
  BPF_MAP_TYPE_PERCPU_HASH,
  BPF_MAP_TYPE_PERCPU_ARRAY,
  BPF_MAP_TYPE_LRU_PERCPU_HASH,
  BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE,
]);

const XDP_FLAGS_SKB_MODE = 2;
const XDP_FLAGS_DRV_MODE = 4;

/** BPF_ANY, BPF_NOEXIST, BPF_EXIST. */
const UPDATE_FLAGS = { any: 0, noexist: 1, exist: 2 } as const;
export type UpdateFlag = keyof typeof UPDATE_FLAGS;

/** A failure of the kernel or libbpf; the message names the call and the object. */
export class BpfError extends Error {
  constructor(
    message: string,
    /** Positive errno, as in errno.h. */
    readonly errno: number,
    /** 'ENOENT', 'EPERM', ... */
    readonly code: string,
  ) {
    super(message);
    this.name = 'BpfError';
  }
}

/** Errors of the binding carry a numeric errno; argument TypeErrors and others pass through. */
function asBpfError(err: unknown): unknown {
  if (err instanceof BpfError || !(err instanceof Error)) return err;
  const { errno, code } = err as Error & { errno?: unknown; code?: unknown };
  if (typeof errno !== 'number') return err;
  return new BpfError(err.message, errno, typeof code === 'string' ? code : `E${errno}`);
}

function guard<T>(call: () => T): T {
  try {
    return call();
  } catch (err) {
    throw asBpfError(err);
  }
}

function errnoError(code: 'ENOENT' | 'EINVAL', message: string): BpfError {
  return new BpfError(message, constants.errno[code], code);
}

/** Codes with which the kernel says a map type has no batch operations. */
const NO_BATCH = new Set(['EINVAL', 'ENOTSUPP', 'EOPNOTSUPP']);

function isNoBatch(err: unknown): boolean {
  return err instanceof BpfError && NO_BATCH.has(err.code);
}

/** A value for setGlobals: integers are written little-endian in the variable's size. */
export type GlobalValue = Buffer | number | bigint | boolean;

function encodeGlobal(variable: BtfVar, value: GlobalValue): Buffer {
  if (Buffer.isBuffer(value)) {
    if (value.length !== variable.size) {
      throw errnoError('EINVAL', `${variable.name} is ${variable.size} bytes, got ${value.length}`);
    }
    return value;
  }
  if (typeof value === 'number' && !Number.isInteger(value)) {
    throw errnoError('EINVAL', `${variable.name} takes an integer, got ${value}`);
  }
  if (![1, 2, 4, 8].includes(variable.size)) {
    throw errnoError('EINVAL', `${variable.name} is ${variable.size} bytes: pass a Buffer`);
  }
  const bits = variable.size * 8;
  const n = BigInt(value);
  if (n < -(1n << BigInt(bits - 1)) || n >= 1n << BigInt(bits)) {
    throw errnoError('EINVAL', `${variable.name} (${bits} bits) cannot hold ${n}`);
  }
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(BigInt.asUintN(64, n));
  return out.subarray(0, variable.size);
}

/** An ELF BPF object: open, configure (sizes, globals, reused pins), load, then take handles. */
export class BpfObject {
  private constructor(private readonly native: NativeObject) {}

  static open(path: string): BpfObject {
    return new BpfObject(guard(() => native().openObject(path)));
  }

  get name(): string {
    return this.native.name;
  }

  mapNames(): string[] {
    return guard(() => this.native.mapNames());
  }

  programNames(): string[] {
    return guard(() => this.native.programNames());
  }

  /** Before load(). */
  setMaxEntries(map: string, maxEntries: number): void {
    guard(() => this.native.setMapMaxEntries(map, maxEntries));
  }

  /**
   * Before load(): sets variables of a global-data section ('.rodata', '.data', '.bss') at their
   * BTF offsets. Variables not named keep the values compiled into the object.
   */
  setGlobals(section: string, values: Record<string, GlobalValue>): void {
    const variables = guard(() => this.native.btfDatasec(section));
    const image = guard(() => this.native.mapInitialValue(section));
    if (!variables || !image) throw errnoError('ENOENT', `object ${this.name} has no section ${section}`);
    for (const [name, value] of Object.entries(values)) {
      const variable = variables.find((v) => v.name === name);
      if (!variable) {
        const known = variables.map((v) => v.name).join(', ');
        throw errnoError('ENOENT', `${section} of ${this.name} has no variable ${name} (it has: ${known})`);
      }
      encodeGlobal(variable, value).copy(image, variable.offset);
    }
    guard(() => this.native.setMapInitialValue(section, image));
  }

  /** Before load(): the map is the one pinned at `path` instead of a new one. */
  reusePinnedMap(map: string, path: string): void {
    guard(() => this.native.reusePinnedMap(map, path));
  }

  /** Creates the maps and loads the programs; a verifier rejection carries the verifier's log. */
  load(): void {
    guard(() => this.native.load());
  }

  /** After load(): a new handle with its own fd, to close independently of the object. */
  map(name: string): BpfMap {
    return new BpfMap(guard(() => this.native.map(name)));
  }

  /** After load(): a new handle with its own fd, to close independently of the object. */
  program(name: string): BpfProgram {
    return new BpfProgram(guard(() => this.native.program(name)));
  }

  /** The layout of a struct or union from the object's BTF, null when it has none by that name. */
  btfStruct(name: string): BtfStruct | null {
    return guard(() => this.native.btfStruct(name));
  }

  /** The enumerators of an enum from the object's BTF, null when it has none by that name. */
  btfEnum(name: string): BtfEnumValue[] | null {
    return guard(() => this.native.btfEnum(name));
  }

  /** Frees the object; handles taken from it stay open until closed themselves. */
  close(): void {
    this.native.close();
  }
}

/** A map handle. Keys and values are raw Buffers of keySize and valueSize bytes. */
export class BpfMap {
  /** @internal Made by BpfObject.map() and BpfMap.openPinned(). */
  constructor(readonly native: NativeMap) {}

  static openPinned(path: string): BpfMap {
    return new BpfMap(guard(() => native().openPinnedMap(path)));
  }

  get name(): string {
    return this.native.name;
  }
  get fd(): number {
    return this.native.fd;
  }
  get type(): number {
    return this.native.type;
  }
  get keySize(): number {
    return this.native.keySize;
  }
  get valueSize(): number {
    return this.native.valueSize;
  }
  get maxEntries(): number {
    return this.native.maxEntries;
  }
  get isPerCpu(): boolean {
    return PER_CPU_MAP_TYPES.has(this.type);
  }

  lookup(key: Buffer): Buffer | undefined {
    this.expectPerCpu(false);
    return guard(() => this.native.lookup(key)) ?? undefined;
  }

  /** One Buffer of valueSize bytes per possible CPU. */
  lookupPerCpu(key: Buffer): Buffer[] | undefined {
    this.expectPerCpu(true);
    const raw = guard(() => this.native.lookup(key));
    return raw ? this.splitPerCpu(raw) : undefined;
  }

  update(key: Buffer, value: Buffer, flag: UpdateFlag = 'any'): void {
    this.expectPerCpu(false);
    guard(() => this.native.update(key, value, UPDATE_FLAGS[flag]));
  }

  /** One value per possible CPU, or one value for all of them. */
  updatePerCpu(key: Buffer, values: Buffer[] | Buffer, flag: UpdateFlag = 'any'): void {
    this.expectPerCpu(true);
    guard(() => this.native.update(key, this.joinPerCpu(values), UPDATE_FLAGS[flag]));
  }

  /** false when there was no such key. */
  delete(key: Buffer): boolean {
    return guard(() => this.native.delete(key));
  }

  *keys(): Generator<Buffer> {
    for (let key = this.nextKey(null); key; key = this.nextKey(key)) yield key;
  }

  /** Every [key, value]; per-CPU maps: see entriesPerCpu(). Batched where the map type allows. */
  *entries(): Generator<[Buffer, Buffer]> {
    this.expectPerCpu(false);
    yield* this.rawEntries();
  }

  *entriesPerCpu(): Generator<[Buffer, Buffer[]]> {
    this.expectPerCpu(true);
    for (const [key, raw] of this.rawEntries()) yield [key, this.splitPerCpu(raw)];
  }

  /**
   * One BPF_MAP_LOOKUP_BATCH: up to `count` entries from `cursor` (null: the start). `next` is the
   * cursor for the following call, null at the end. Per-CPU values are raw: see splitPerCpu().
   */
  lookupBatch(cursor: Buffer | null = null, count = this.batchSize()): MapBatch {
    return this.splitBatch(guard(() => this.native.lookupBatch(cursor, count)));
  }

  /** Returns how many entries were written. Per-CPU values are raw, as lookupBatch() returns them. */
  updateBatch(keys: Buffer[], values: Buffer[], flag: UpdateFlag = 'any'): number {
    if (keys.length !== values.length) {
      throw errnoError('EINVAL', `map ${this.name}: ${keys.length} keys but ${values.length} values`);
    }
    if (keys.length === 0) return 0;
    return guard(() =>
      this.native.updateBatch(Buffer.concat(keys), Buffer.concat(values), keys.length, UPDATE_FLAGS[flag]),
    );
  }

  /** Returns how many entries were deleted; a missing key fails with ENOENT. */
  deleteBatch(keys: Buffer[]): number {
    if (keys.length === 0) return 0;
    return guard(() => this.native.deleteBatch(Buffer.concat(keys), keys.length));
  }

  /** Empties the map and returns what it held, each entry read and deleted in one step. */
  lookupAndDeleteAll(): [Buffer, Buffer][] {
    const out: [Buffer, Buffer][] = [];
    let cursor: Buffer | null = null;
    try {
      do {
        const batch = this.splitBatch(guard(() => this.native.lookupAndDeleteBatch(cursor, this.batchSize())));
        batch.keys.forEach((key, i) => out.push([key, batch.values[i]!]));
        cursor = batch.next;
      } while (cursor);
    } catch (err) {
      if (out.length > 0 || !isNoBatch(err)) throw err;
      for (const entry of this.rawEntries()) {
        if (this.delete(entry[0])) out.push(entry);
      }
    }
    return out;
  }

  /** Cuts a raw per-CPU value (as lookupBatch returns it) into one Buffer per possible CPU. */
  splitPerCpu(raw: Buffer): Buffer[] {
    const stride = perCpuStride(this.valueSize);
    const out: Buffer[] = [];
    for (let offset = 0; offset < raw.length; offset += stride) {
      out.push(raw.subarray(offset, offset + this.valueSize));
    }
    return out;
  }

  pin(path: string): void {
    guard(() => this.native.pin(path));
  }

  close(): void {
    this.native.close();
  }

  private nextKey(key: Buffer | null): Buffer | null {
    return guard(() => this.native.nextKey(key));
  }

  private *rawEntries(): Generator<[Buffer, Buffer]> {
    let batch: MapBatch;
    try {
      batch = this.lookupBatch();
    } catch (err) {
      if (!isNoBatch(err)) throw err;
      for (const key of this.keys()) {
        const value = guard(() => this.native.lookup(key));
        if (value) yield [key, value];
      }
      return;
    }
    for (;;) {
      for (let i = 0; i < batch.keys.length; i++) yield [batch.keys[i]!, batch.values[i]!];
      if (!batch.next) return;
      batch = this.lookupBatch(batch.next);
    }
  }

  /** Hash maps fail a batch smaller than their fullest bucket: ask for plenty. */
  private batchSize(): number {
    return Math.max(1, Math.min(this.maxEntries, 4096));
  }

  private splitBatch(raw: { keys: Buffer; values: Buffer; count: number; next: Buffer | null }): MapBatch {
    const valueBytes = raw.count === 0 ? 0 : raw.values.length / raw.count;
    const keys: Buffer[] = [];
    const values: Buffer[] = [];
    for (let i = 0; i < raw.count; i++) {
      keys.push(raw.keys.subarray(i * this.keySize, (i + 1) * this.keySize));
      values.push(raw.values.subarray(i * valueBytes, (i + 1) * valueBytes));
    }
    return { keys, values, next: raw.next };
  }

  protected joinPerCpu(values: Buffer[] | Buffer): Buffer {
    const cpus = possibleCpus();
    const list = Buffer.isBuffer(values) ? Array<Buffer>(cpus).fill(values) : values;
    if (list.length !== cpus) {
      throw errnoError('EINVAL', `map ${this.name}: ${list.length} per-CPU values for ${cpus} possible CPUs`);
    }
    const stride = perCpuStride(this.valueSize);
    const raw = Buffer.alloc(cpus * stride);
    list.forEach((value, cpu) => {
      if (value.length !== this.valueSize) {
        throw errnoError('EINVAL', `map ${this.name}: value is ${value.length} bytes, expected ${this.valueSize}`);
      }
      value.copy(raw, cpu * stride);
    });
    return raw;
  }

  private expectPerCpu(perCpu: boolean): void {
    if (this.isPerCpu !== perCpu) {
      const use = perCpu ? 'is not per-CPU: use lookup/update/entries' : 'is per-CPU: use the *PerCpu methods';
      throw errnoError('EINVAL', `map ${this.name} ${use}`);
    }
  }
}

export interface MapBatch {
  keys: Buffer[];
  /** Raw values: possibleCpus() × round_up(valueSize, 8) bytes each for per-CPU maps. */
  values: Buffer[];
  /** Cursor for the next lookupBatch(), null when the map has been walked to its end. */
  next: Buffer | null;
}

/** The kernel lays per-CPU values out 8-byte aligned. */
function perCpuStride(valueSize: number): number {
  return Math.ceil(valueSize / 8) * 8;
}

/** Folds one value per CPU into one: sumPerCpu(values, (b) => b.readBigUInt64LE(0), (a, b) => a + b). */
export function sumPerCpu<T>(values: Buffer[], decode: (value: Buffer) => T, add: (a: T, b: T) => T): T {
  return values.map(decode).reduce(add);
}

/** The sum over CPUs of the u64 counter at `offset` of each value. */
export function sumU64PerCpu(values: Buffer[], offset = 0): bigint {
  return sumPerCpu(values, (value) => value.readBigUInt64LE(offset), (a, b) => a + b);
}

export interface TestRunOptions {
  data: Buffer;
  /** Runs the program this many times on the same frame; durationNs is the average. */
  repeat?: number;
  ctx?: Buffer;
  flags?: number;
  /** Frames per batch with BPF_F_TEST_XDP_LIVE_FRAMES. */
  batchSize?: number;
  /** Room for the frame coming back; defaults to data.length + 256. */
  dataSizeOut?: number;
}

export interface TestRunResult {
  retval: number;
  /** The frame after the program (empty with BPF_F_TEST_XDP_LIVE_FRAMES). */
  data: Buffer;
  durationNs: number;
  ctx: Buffer | null;
}

export type XdpMode = 'native' | 'generic';

export interface XdpAttachOptions {
  /** 'native' (the driver's hook, the default) or 'generic' (skb mode, any device). */
  mode?: XdpMode;
  /** The interface's network namespace: a name under /run/netns or an absolute path. */
  netns?: string;
}

export class BpfProgram {
  /** @internal Made by BpfObject.program(). */
  constructor(readonly native: NativeProgram) {}

  get name(): string {
    return this.native.name;
  }
  get fd(): number {
    return this.native.fd;
  }
  get type(): number {
    return this.native.type;
  }

  /** BPF_PROG_TEST_RUN. */
  testRun(options: TestRunOptions): TestRunResult {
    const { duration, ...result } = guard(() => this.native.testRun(options));
    return { ...result, durationNs: duration };
  }

  /** Attaches through a BPF link: closing the link (unless pinned) detaches the program. */
  attachXdp(iface: string | number, options: XdpAttachOptions = {}): XdpLink {
    const { mode = 'native', netns } = options;
    const flags = mode === 'native' ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
    const attach = () => {
      const ifindex = typeof iface === 'number' ? iface : native().ifNameToIndex(iface);
      return this.native.attachXdp(ifindex, flags);
    };
    const where = netns ? `${iface} in netns ${netns}` : `${iface}`;
    try {
      return new XdpLink(netns ? native().withNetns(netnsPath(netns), attach) : attach());
    } catch (err) {
      const e = asBpfError(err);
      if (!(e instanceof BpfError)) throw e;
      throw new BpfError(`attach XDP program ${this.name} to ${where} (${mode}): ${e.message}`, e.errno, e.code);
    }
  }

  /** Closes this handle; an attached program stays loaded as long as its link. */
  close(): void {
    this.native.close();
  }
}

export class XdpLink {
  /** @internal Made by BpfProgram.attachXdp() and XdpLink.openPinned(). */
  constructor(readonly native: NativeLink) {}

  static openPinned(path: string): XdpLink {
    return new XdpLink(guard(() => native().openPinnedLink(path)));
  }

  get fd(): number {
    return this.native.fd;
  }

  /** The interface the program is attached to, 0 once detached. */
  get ifindex(): number {
    return guard(() => this.native.ifindex);
  }

  /** Keeps the attachment alive after this process closes the link. */
  pin(path: string): void {
    guard(() => this.native.pin(path));
  }

  /** Detaches now, also when pinned; the handle stays open until close(). */
  detach(): void {
    guard(() => this.native.detach());
  }

  /** Closes the fd: an unpinned link detaches with its last fd. */
  close(): void {
    this.native.close();
  }
}

/** Reads a BPF ring buffer map; onRecord runs synchronously inside poll(). */
export class RingBuffer {
  private readonly native: NativeRingBuffer;

  constructor(map: BpfMap, onRecord: (record: Buffer) => void) {
    this.native = guard(() => native().ringBuffer(map.native, onRecord));
  }

  /** Waits up to timeoutMs (0: not at all) for records; returns how many were consumed. */
  poll(timeoutMs = 0): number {
    return guard(() => this.native.poll(timeoutMs));
  }

  close(): void {
    this.native.close();
  }
}

/** Removes a pin from bpffs. */
export function unpin(path: string): void {
  guard(() => native().unpin(path));
}

/** /run/netns/NAME for a name as `ip netns` knows it; an absolute path as is. */
export function netnsPath(netns: string): string {
  return isAbsolute(netns) ? netns : `/run/netns/${netns}`;
}

/**
 * Runs fn (synchronously) with this thread in another network namespace and comes back, also when
 * fn throws. Errors of fn pass through untouched.
 */
export function withNetns<T>(netns: string, fn: () => T): T {
  let fnFailed = false;
  try {
    return native().withNetns(netnsPath(netns), () => {
      try {
        return fn();
      } catch (err) {
        fnFailed = true;
        throw err;
      }
    });
  } catch (err) {
    throw fnFailed ? err : asBpfError(err);
  }
}

/** The cookie of the current or the given network namespace: unlike its inode, never reused. */
export function netnsCookie(netns?: string): bigint {
  const read = () => guard(() => native().netnsCookie());
  return netns ? withNetns(netns, read) : read();
}

/** The ifindex of an interface, in the current or the given network namespace. */
export function ifindex(name: string, netns?: string): number {
  const lookup = () => guard(() => native().ifNameToIndex(name));
  return netns ? withNetns(netns, lookup) : lookup();
}

let cpus: number | undefined;

/** The number of possible CPUs: the number of values per-CPU maps hold. */
export function possibleCpus(): number {
  cpus ??= guard(() => native().numPossibleCpus());
  return cpus;
}
