// The destination trash (ip_vs_ctl.c: __ip_vs_del_dest, ip_vs_trash_get_dest,
// ip_vs_dest_trash_expire; dataplane side in bpf/xvs_trash.h). A real server deleted with -d, or
// with its service by -D or -C, keeps its dests slot, gen, counts and counters, so that its
// connections and templates live on to their own expiry. Added back to a service with the same
// key, address and port, it is taken out with all of them (its counters restart when its service
// was deleted meanwhile: the kernel zeroes them when a trashed destination joins another service).
// Its slot is freed once nothing has referred to it for DEST_TRASH_PERIOD_NS.
import { addressBytes } from './address.js';
import { destCounts } from './connections.js';
import { type Dataplane, u32 } from './dataplane.js';
import * as L from './layout.js';

/** IP_VS_DEST_TRASH_PERIOD: how long a trashed real server nothing refers to is kept. */
export const DEST_TRASH_PERIOD_NS = 120_000_000_000n;

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
  /** Dataplane clock (ns) since when nothing refers to it; 0n while something does. */
  idleSince: bigint;
}

export class DestTrash<D extends TrashableDest> {
  private readonly entries = new Map<number, Trashed<D>>();

  constructor(private readonly dp: Dataplane) {}

  /** Puts a deleted real server into the trash (its dests entry is written unavailable by the caller). */
  put(dest: D, svcKey: Buffer, orphaned: boolean): void {
    this.write({ dest, svcKey, orphaned, idleSince: 0n });
  }

  /** The real servers trashed from the service with this key lose it (it was deleted). */
  orphan(svcKey: Buffer): void {
    for (const t of this.entries.values()) if (!t.orphaned && t.svcKey.equals(svcKey)) this.write({ ...t, orphaned: true });
  }

  /** ip_vs_trash_get_dest: takes out the trashed real server of this service, address and port. */
  take(svcKey: Buffer, address: string, port: number): Trashed<D> | undefined {
    const a = addressBytes(address);
    for (const t of this.entries.values()) {
      if (t.dest.port === port && t.svcKey.equals(svcKey) && addressBytes(t.dest.address).equals(a)) {
        this.entries.delete(t.dest.index);
        this.dp.map('dest_trash').delete(u32(t.dest.index));
        return t;
      }
    }
    return undefined;
  }

  /**
   * ip_vs_dest_trash_expire: notes which trashed real servers nothing refers to any more (no
   * connection nor template counts on them) and takes out and returns those idle for the period.
   */
  expire(now: bigint): Trashed<D>[] {
    const freed: Trashed<D>[] = [];
    for (const t of [...this.entries.values()]) {
      const c = destCounts(this.dp, t.dest.index);
      const referenced = c.activeConns + c.inactiveConns + c.persistConns > 0;
      if (referenced) {
        if (t.idleSince) this.write({ ...t, idleSince: 0n });
      } else if (!t.idleSince) {
        this.write({ ...t, idleSince: now });
      } else if (now - t.idleSince >= DEST_TRASH_PERIOD_NS) {
        this.entries.delete(t.dest.index);
        this.dp.map('dest_trash').delete(u32(t.dest.index));
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
    for (const t of entries) this.entries.set(t.dest.index, t);
  }

  private write(t: Trashed<D>): void {
    this.entries.set(t.dest.index, t);
    this.dp.map('dest_trash').update(
      u32(t.dest.index),
      L.destTrash.encode({ svc: t.svcKey, idleSince: t.idleSince, orphaned: t.orphaned ? 1 : 0 }),
    );
  }
}

/** The trash as pinned: dests index → its record (lib/store.ts joins it with the dests entries). */
export function readTrash(dp: Dataplane): Map<number, L.Decoded<typeof L.destTrash.fields>> {
  const out = new Map<number, L.Decoded<typeof L.destTrash.fields>>();
  for (const [k, v] of dp.map('dest_trash').entries()) out.set(k.readUInt32LE(0), L.destTrash.decode(v));
  return out;
}
