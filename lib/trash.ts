// The destination trash (ip_vs_ctl.c: __ip_vs_del_dest, ip_vs_trash_get_dest,
// ip_vs_dest_trash_expire; dataplane side in bpf/xvs_trash.h). A real server deleted with -d, or
// with its service by -D or -C, keeps its dests slot, gen, counts and counters, so that its
// connections and templates live on to their own expiry. Added back to a service with the same
// key, address and port, it is taken out with all of them (its counters restart when its service
// was deleted meanwhile: the kernel zeroes them when a trashed destination joins another service).
// Its slot is freed by the kernel's trash timer: it ticks every DEST_TRASH_PERIOD_NS / 2 from the
// moment the trash stops being empty; the first tick that finds nothing referring to a trashed real
// server notes the time, and the first tick DEST_TRASH_PERIOD_NS after that frees it (so 120 to
// 180 s after its last connection or template ended).
import { addressBytes } from './address.js';
import { destCounts } from './connections.js';
import { type Dataplane, u32 } from './dataplane.js';
import * as L from './layout.js';
import * as store from './store.js';

/** IP_VS_DEST_TRASH_PERIOD. */
export const DEST_TRASH_PERIOD_NS = 120_000_000_000n;
const TICK_NS = DEST_TRASH_PERIOD_NS / 2n;

/** What the trash needs to know of a real server. */
export interface TrashableDest {
  index: number;
  gen: number;
  address: string;
  port: number;
}

export interface Trashed<D extends TrashableDest> {
  dest: D;
  /** The encoded key (xvs_svc_key) of the service it was deleted from. */
  svcKey: Buffer;
  /** That service was deleted since. */
  orphaned: boolean;
  /** The trash timer's tick (dataplane clock, ns) that first found nothing referring to it; 0n before. */
  idleSince: bigint;
}

export class DestTrash<D extends TrashableDest> {
  private readonly entries = new Map<number, Trashed<D>>();
  /** ⟨service key, address, port⟩ → dests index, for take(). */
  private readonly byIdentity = new Map<string, number>();
  /** Service key → the dests indexes trashed from it, for orphan(). */
  private readonly byService = new Map<string, Set<number>>();

  constructor(private readonly dp: Dataplane) {}

  /** Puts a deleted real server into the trash (its dests entry is written unavailable by the caller). */
  put(dest: D, svcKey: Buffer, orphaned: boolean, now: bigint): void {
    if (!this.entries.size) store.writeCtl(this.dp, { trashTimerNs: now + TICK_NS });
    this.write({ dest, svcKey, orphaned, idleSince: 0n });
  }

  /** The real servers trashed from the service with this key lose it (it was deleted). */
  orphan(svcKey: Buffer): void {
    for (const index of this.byService.get(svcKey.toString('hex')) ?? []) {
      const t = this.entries.get(index)!;
      if (!t.orphaned) this.write({ ...t, orphaned: true });
    }
  }

  /** ip_vs_trash_get_dest: takes out the trashed real server of this service, address and port. */
  take(svcKey: Buffer, address: string, port: number): Trashed<D> | undefined {
    const index = this.byIdentity.get(identity(svcKey, address, port));
    const t = index === undefined ? undefined : this.entries.get(index);
    if (t) this.remove(t);
    return t;
  }

  /**
   * Runs the trash timer's ticks that came due by `now` (ip_vs_dest_trash_expire), and returns the
   * real servers they freed, taken out of the trash.
   */
  expire(now: bigint): Trashed<D>[] {
    let next = store.readCtl(this.dp).trashTimerNs;
    if (!next || next > now) return [];
    const freed: Trashed<D>[] = [];
    while (next <= now && this.entries.size) {
      freed.push(...this.tick(next));
      next += TICK_NS;
    }
    store.writeCtl(this.dp, { trashTimerNs: this.entries.size ? next : 0n });
    return freed;
  }

  /** One tick at `at`: idle real servers get their idle time noted, or are freed a period after. */
  private tick(at: bigint): Trashed<D>[] {
    const freed: Trashed<D>[] = [];
    for (const t of [...this.entries.values()]) {
      const c = destCounts(this.dp, t.dest.index);
      if (c.activeConns + c.inactiveConns + c.persistConns > 0) continue;
      if (!t.idleSince) {
        this.write({ ...t, idleSince: at });
      } else if (at >= t.idleSince + DEST_TRASH_PERIOD_NS) {
        this.remove(t);
        freed.push(t);
      }
    }
    return freed;
  }

  get size(): number {
    return this.entries.size;
  }

  dests(): D[] {
    return [...this.entries.values()].map((t) => t.dest);
  }

  /** Replaces the in-memory trash with what the maps hold (the dests given by the caller's decoding). */
  adopt(entries: Trashed<D>[]): void {
    this.entries.clear();
    this.byIdentity.clear();
    this.byService.clear();
    for (const t of entries) this.index(t);
  }

  private index(t: Trashed<D>): void {
    this.entries.set(t.dest.index, t);
    this.byIdentity.set(identity(t.svcKey, t.dest.address, t.dest.port), t.dest.index);
    const svc = t.svcKey.toString('hex');
    const set = this.byService.get(svc) ?? new Set<number>();
    set.add(t.dest.index);
    this.byService.set(svc, set);
  }

  private remove(t: Trashed<D>): void {
    this.entries.delete(t.dest.index);
    this.byIdentity.delete(identity(t.svcKey, t.dest.address, t.dest.port));
    const svc = t.svcKey.toString('hex');
    this.byService.get(svc)?.delete(t.dest.index);
    if (!this.byService.get(svc)?.size) this.byService.delete(svc);
    this.dp.map('dest_trash').delete(u32(t.dest.index));
  }

  private write(t: Trashed<D>): void {
    this.index(t);
    this.dp.map('dest_trash').update(
      u32(t.dest.index),
      L.destTrash.encode({ svc: t.svcKey, idleSince: t.idleSince, orphaned: t.orphaned ? 1 : 0 }),
    );
  }
}

function identity(svcKey: Buffer, address: string, port: number): string {
  return `${svcKey.toString('hex')}|${addressBytes(address).toString('hex')}|${port}`;
}
