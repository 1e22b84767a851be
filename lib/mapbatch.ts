// Map writes held back and applied together. Inside Dataplane.batch() every map handle is a
// BufferedMap: writes go to a per-map buffer (the last write of a key wins), reads see them, and
// commit() applies each map's updates with BPF_MAP_UPDATE_BATCH and its deletes with
// BPF_MAP_DELETE_BATCH, in an order that never lets the XDP program reach an entry whose
// dependencies are not written yet. This is what makes `xvsadm -R` of thousands of lines cheap.
import { constants } from 'node:os';
import { BpfError, BpfMap, type MapBatch, type UpdateFlag } from './libbpf.js';

/** Entries per BPF_MAP_*_BATCH call. */
const CHUNK = 8192;

type Pending = Map<string, { key: Buffer; value: Buffer | null }>;

function errno(code: 'EEXIST' | 'ENOENT', message: string): BpfError {
  return new BpfError(message, constants.errno[code], code);
}

/** A map handle whose writes wait for the batch's commit. Per-CPU values are kept raw. */
export class BufferedMap extends BpfMap {
  readonly pending: Pending = new Map();

  constructor(readonly target: BpfMap) {
    super(target.native);
  }

  override lookup(key: Buffer): Buffer | undefined {
    const p = this.pending.get(key.toString('hex'));
    if (p) return p.value ? Buffer.from(p.value) : undefined;
    return super.lookup(key);
  }

  override lookupPerCpu(key: Buffer): Buffer[] | undefined {
    const p = this.pending.get(key.toString('hex'));
    if (p) return p.value ? this.splitPerCpu(Buffer.from(p.value)) : undefined;
    return super.lookupPerCpu(key);
  }

  override update(key: Buffer, value: Buffer, flag: UpdateFlag = 'any'): void {
    this.put(key, Buffer.from(value), flag);
  }

  override updatePerCpu(key: Buffer, values: Buffer[] | Buffer, flag: UpdateFlag = 'any'): void {
    this.put(key, this.joinPerCpu(values), flag);
  }

  override delete(key: Buffer): boolean {
    const existed = this.exists(key);
    this.pending.set(key.toString('hex'), { key: Buffer.from(key), value: null });
    return existed;
  }

  override updateBatch(keys: Buffer[], values: Buffer[], flag: UpdateFlag = 'any'): number {
    keys.forEach((key, i) => this.put(key, Buffer.from(values[i]!), flag));
    return keys.length;
  }

  override deleteBatch(keys: Buffer[]): number {
    for (const key of keys) {
      if (!this.delete(key)) throw errno('ENOENT', `map ${this.name}: no such key in a batched delete`);
    }
    return keys.length;
  }

  override lookupBatch(cursor: Buffer | null = null, count?: number): MapBatch {
    this.expectClean();
    return super.lookupBatch(cursor, count);
  }

  override lookupAndDeleteAll(): [Buffer, Buffer][] {
    this.expectClean();
    return super.lookupAndDeleteAll();
  }

  /** Applies the buffered updates (deletes come later, see WriteBatch.commit). */
  commitUpdates(): void {
    const updates = [...this.pending.values()].filter((p) => p.value !== null);
    for (let i = 0; i < updates.length; i += CHUNK) {
      const chunk = updates.slice(i, i + CHUNK);
      try {
        this.target.updateBatch(chunk.map((p) => p.key), chunk.map((p) => p.value!));
      } catch {
        // Map types without batch operations, or a batch the kernel refused part of: one by one,
        // so the error (if any) names the entry.
        for (const p of chunk) this.writeOne(p.key, p.value!);
      }
    }
  }

  commitDeletes(): void {
    const keys = [...this.pending.values()].filter((p) => p.value === null).map((p) => p.key);
    for (let i = 0; i < keys.length; i += CHUNK) {
      const chunk = keys.slice(i, i + CHUNK);
      try {
        this.target.deleteBatch(chunk);
      } catch {
        // A key written and deleted within the batch never reached the map: delete one by one.
        for (const key of chunk) this.target.delete(key);
      }
    }
  }

  private put(key: Buffer, value: Buffer, flag: UpdateFlag): void {
    if (flag !== 'any') {
      const exists = this.exists(key);
      if (flag === 'noexist' && exists) throw errno('EEXIST', `map ${this.name}: key exists`);
      if (flag === 'exist' && !exists) throw errno('ENOENT', `map ${this.name}: no such key`);
    }
    this.pending.set(key.toString('hex'), { key: Buffer.from(key), value });
  }

  private exists(key: Buffer): boolean {
    const p = this.pending.get(key.toString('hex'));
    if (p) return p.value !== null;
    return this.isPerCpu ? super.lookupPerCpu(key) !== undefined : super.lookup(key) !== undefined;
  }

  private writeOne(key: Buffer, raw: Buffer): void {
    if (this.isPerCpu) this.target.updatePerCpu(key, this.splitPerCpu(raw));
    else this.target.update(key, raw);
  }

  private expectClean(): void {
    if (this.pending.size) throw new Error(`map ${this.name}: cannot walk a map with writes pending in a batch`);
  }
}

/** The buffered handles of one batch. */
export class WriteBatch {
  private readonly views = new Map<string, BufferedMap>();

  /** `order`: maps whose updates must land first (an entry's dependencies before the entry). */
  constructor(private readonly order: readonly string[]) {}

  view(name: string, target: BpfMap): BufferedMap {
    let v = this.views.get(name);
    if (!v) {
      v = new BufferedMap(target);
      this.views.set(name, v);
    }
    return v;
  }

  /** Updates in dependency order, then deletes in the reverse order. */
  commit(): void {
    const rank = (name: string) => {
      const i = this.order.indexOf(name);
      return i < 0 ? this.order.length : i;
    };
    const names = [...this.views.keys()].sort((a, b) => rank(a) - rank(b));
    for (const name of names) this.views.get(name)!.commitUpdates();
    for (const name of [...names].reverse()) this.views.get(name)!.commitDeletes();
  }
}
