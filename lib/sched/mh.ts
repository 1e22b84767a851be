// Maglev hashing (ip_vs_mh.c): a lookup table of 4093 entries. Each server with last_weight > 0
// gets offset = h1 % 4093 and skip = h2 % 4092 + 1 from hsiphash of its port + address (fixed
// keys), and turns = (last_weight / gcd) >> rshift (at least 1); servers take turns in list order
// filling their next free preferred entry. A connection goes to entry hsiphash(sport? + saddr) %
// 4093; a quiesced or overloaded server takes nothing, and mh-fallback probes entry
// hsiphash(k + h + key) % 4093 from the first entry h until an empty one. last_weight keeps the
// last non-zero weight, so setting a weight to 0 does not reshape the table.
import { probeBuckets, SCHED_F_FALLBACK, SCHED_F_PORT } from './sh.js';
import { hsiphashU32 } from './hash.js';
import { bucketTable, NO_DEST, type ModelDest, type ModelPacket, type SchedDest, type Scheduler } from './types.js';

export const MH_TAB_SIZE = 4093;
const MH_TAB_BITS = 6;
const KEY1 = 2654435761n;
const KEY2 = 2654446892n;

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** ip_vs_mh_hashkey with hash1: the entry of key (+ offset). */
export function mhHash(key: number, offset: number): number {
  return hsiphashU32((offset + key) >>> 0, [KEY1, KEY1]) % MH_TAB_SIZE;
}

const fls = (x: number) => (x ? 32 - Math.clz32(x) : 0);

export function mhBuckets(dests: readonly Pick<SchedDest, 'index' | 'lastWeight' | 'addr' | 'port'>[]): number[] {
  const lookup = Array<number>(MH_TAB_SIZE).fill(NO_DEST);
  const g = dests.reduce((acc, d) => (d.lastWeight > 0 ? (acc ? gcd(d.lastWeight, acc) : d.lastWeight) : acc), 0);
  if (g < 1) return lookup;
  const mw = Math.floor(Math.max(...dests.map((d) => d.lastWeight)) / g);
  const rshift = Math.max(0, fls(mw) - MH_TAB_BITS);
  const setup = dests.map((d) => {
    const key = (d.port + d.addr) >>> 0;
    const offset = hsiphashU32(key, [KEY1, KEY1]) % MH_TAB_SIZE;
    const skip = (hsiphashU32(key, [KEY2, KEY2]) % (MH_TAB_SIZE - 1)) + 1;
    const turns = (Math.floor(d.lastWeight / g) >> rshift) || (d.lastWeight !== 0 ? 1 : 0);
    return { perm: offset, skip, turns };
  });
  const taken = new Uint8Array(MH_TAB_SIZE);
  let n = 0;
  for (;;) {
    let dtCount = 0;
    for (let i = 0; i < dests.length; ) {
      const ds = setup[i]!;
      if (ds.turns < 1) {
        i++;
        continue;
      }
      while (taken[ds.perm]) {
        ds.perm += ds.skip;
        if (ds.perm >= MH_TAB_SIZE) ds.perm -= MH_TAB_SIZE;
      }
      taken[ds.perm] = 1;
      lookup[ds.perm] = dests[i]!.index;
      if (++n === MH_TAB_SIZE) return lookup;
      if (++dtCount >= ds.turns) {
        dtCount = 0;
        i++;
      }
    }
  }
}

export const mh: Scheduler = {
  name: 'mh',
  enumName: 'XVS_SCHED_MH',
  flagNames: ['mh-fallback', 'mh-port'],
  table: (dests: readonly SchedDest[]) => bucketTable(mhBuckets(dests)),
  model() {
    let buckets: number[] = [];
    return {
      changed(dests) {
        buckets = mhBuckets(dests);
      },
      schedule(dests: readonly ModelDest[], pkt: ModelPacket) {
        const key = ((pkt.flags & SCHED_F_PORT ? pkt.sport : 0) + pkt.saddr) >>> 0;
        const h = mhHash(key, 0);
        return probeBuckets(dests, buckets, h, (pkt.flags & SCHED_F_FALLBACK) !== 0, (k) => mhHash(key, (k + h) % MH_TAB_SIZE));
      },
    };
  },
};
