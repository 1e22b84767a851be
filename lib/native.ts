// The raw shape of the native addon (native/*.cc): a thin binding over the system libbpf.
// Nothing here knows about xvs; lib/libbpf.ts wraps it in typed, documented classes.
// Every failing call throws an Error whose `errno` is set (positive errno) and whose message names
// the libbpf call and the object; load() failures carry the verifier log in the message.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeBtfMember {
  name: string;
  /** Offset from the start of the struct, in bits. */
  offsetBits: number;
  /** Bitfield width in bits, 0 for a normal member. */
  bitfieldSize: number;
  /** Resolved size of the member's type in bytes (typedefs, modifiers and arrays resolved). */
  size: number;
}

export interface NativeBtfStruct {
  name: string;
  size: number;
  members: NativeBtfMember[];
}

export interface NativeBtfVar {
  name: string;
  offset: number;
  size: number;
}

export interface NativeBtfEnumValue {
  name: string;
  value: number;
}

export interface NativeTestRunOptions {
  data: Buffer;
  /** Size of the output buffer; defaults to data.length + 256. */
  dataSizeOut?: number;
  ctx?: Buffer;
  ctxSizeOut?: number;
  repeat?: number;
  flags?: number;
  /** Live-frames batch size (BPF_F_TEST_XDP_LIVE_FRAMES). */
  batchSize?: number;
}

export interface NativeTestRunResult {
  retval: number;
  /** Average duration of one run, in nanoseconds, as the kernel reports it. */
  duration: number;
  data: Buffer;
  ctx: Buffer | null;
}

export interface NativeBatchResult {
  keys: Buffer;
  values: Buffer;
  count: number;
  /** Opaque token for the next call, null when the map has been walked to its end. */
  next: Buffer | null;
}

export interface NativeMap {
  readonly name: string;
  readonly fd: number;
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly mapFlags: number;
  /** Per-CPU maps return possibleCpus × round_up(valueSize, 8) bytes. */
  lookup(key: Buffer): Buffer | null;
  update(key: Buffer, value: Buffer, flags: number): void;
  /** false when the key did not exist (ENOENT). */
  delete(key: Buffer): boolean;
  /** The key after `key` (the first key for null); null at the end. */
  nextKey(key: Buffer | null): Buffer | null;
  lookupBatch(token: Buffer | null, count: number): NativeBatchResult;
  lookupAndDeleteBatch(token: Buffer | null, count: number): NativeBatchResult;
  /** Returns how many elements were written. */
  updateBatch(keys: Buffer, values: Buffer, count: number, flags: number): number;
  /** Returns how many elements were deleted. */
  deleteBatch(keys: Buffer, count: number): number;
  pin(path: string): void;
  close(): void;
}

export interface NativeLink {
  readonly fd: number;
  /** The interface of an XDP link, asked from the kernel on each read; 0 once detached. */
  readonly ifindex: number;
  pin(path: string): void;
  /** Detaches the program even when the link is pinned (bpf_link_detach). */
  detach(): void;
  /** Closes the fd; an unpinned link detaches when its last fd closes. */
  close(): void;
}

export interface NativeProgram {
  readonly name: string;
  readonly fd: number;
  readonly type: number;
  testRun(opts: NativeTestRunOptions): NativeTestRunResult;
  /** BPF link of type XDP; flags are XDP_FLAGS_* (SKB_MODE 2, DRV_MODE 4). */
  attachXdp(ifindex: number, flags: number): NativeLink;
  /** Closes this handle's fd; links keep an attached program loaded. */
  close(): void;
}

export interface NativeRingBuffer {
  /** Waits up to timeoutMs (0: do not wait) and calls the callback once per record. */
  poll(timeoutMs: number): number;
  close(): void;
}

export interface NativeObject {
  readonly name: string;
  mapNames(): string[];
  programNames(): string[];
  setMapMaxEntries(map: string, maxEntries: number): void;
  /** Copy of a global-data map's initial image (.rodata, .data, .bss), null if it has none. */
  mapInitialValue(map: string): Buffer | null;
  setMapInitialValue(map: string, data: Buffer): void;
  /** Use the map pinned at `path` instead of creating a new one at load (bpf_map__reuse_fd). */
  reusePinnedMap(map: string, path: string): void;
  btfStruct(name: string): NativeBtfStruct | null;
  /** Variables of a BTF DATASEC such as ".rodata", with their offsets. */
  btfDatasec(name: string): NativeBtfVar[] | null;
  /** Enumerators of a BTF enum (also one named through a typedef), null if it has none. */
  btfEnum(name: string): NativeBtfEnumValue[] | null;
  load(): void;
  map(name: string): NativeMap;
  program(name: string): NativeProgram;
  close(): void;
}

export interface NativeAddon {
  openObject(path: string): NativeObject;
  openPinnedMap(path: string): NativeMap;
  openPinnedLink(path: string): NativeLink;
  unpin(path: string): void;
  ringBuffer(map: NativeMap, callback: (record: Buffer) => void): NativeRingBuffer;
  numPossibleCpus(): number;
  ifNameToIndex(name: string): number;
  /**
   * Runs fn with the calling thread switched into the network namespace at nsPath
   * (e.g. /run/netns/NAME), and switches back before returning, also when fn throws.
   * fn must be synchronous: sockets, ifindexes and XDP attachments it makes belong to that namespace.
   */
  withNetns<T>(nsPath: string, fn: () => T): T;
  /** The cookie of the calling thread's network namespace (SO_NETNS_COOKIE): never reused in a boot. */
  netnsCookie(): bigint;
}

/** The package root: the nearest folder above this file that holds package.json. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('xvs: cannot find the package root');
    dir = up;
  }
  return dir;
}

let addon: NativeAddon | undefined;

export function native(): NativeAddon {
  if (!addon) {
    const path = join(packageRoot(), 'build', 'Release', 'xvs_native.node');
    if (!existsSync(path)) {
      throw new Error(`xvs: native addon not built (${path} missing); run "npm run build"`);
    }
    addon = createRequire(import.meta.url)(path) as NativeAddon;
  }
  return addon;
}
