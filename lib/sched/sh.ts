// Source hashing (ip_vs_sh.c): 256 buckets where each server in list order fills `weight`
// consecutive buckets (one when its weight is 0); a connection goes to the bucket of hash_32 of
// its source address (+ source port with sh-port). A quiesced or overloaded server takes nothing;
// with sh-fallback probe k looks at bucket (k + 2h) % 256, h the first bucket, until an empty one.
import { bucketDest } from './dh.js';
import { hash32 } from './hash.js';
import { bucketTable, NO_DEST, type ModelDest, type ModelPacket, type SchedDest, type Scheduler } from './types.js';

const BITS = 8;
const SIZE = 1 << BITS;
export const SCHED_F_FALLBACK = 1;
export const SCHED_F_PORT = 2;

export function shBuckets(dests: readonly { index: number; weight: number }[]): number[] {
  const slots: number[] = [];
  let at = 0;
  let count = 0;
  for (let i = 0; i < SIZE; i++) {
    if (!dests.length) {
      slots.push(NO_DEST);
      continue;
    }
    const d = dests[at % dests.length]!;
    slots.push(d.index);
    if (++count >= d.weight) {
      at++;
      count = 0;
    }
  }
  return slots;
}

/** Probes buckets the way sh/mh fallback does: first(h), then probe(k) until an empty bucket. */
export function probeBuckets(
  dests: readonly ModelDest[],
  buckets: readonly number[],
  first: number,
  fallback: boolean,
  probe: (k: number) => number,
): number | undefined {
  const b = buckets[first]!;
  if (b === NO_DEST) return undefined;
  const d = bucketDest(dests, b);
  if (d || !fallback) return d?.index;
  for (let k = 0; k < buckets.length; k++) {
    const pb = buckets[probe(k)]!;
    if (pb === NO_DEST) return undefined;
    const pd = bucketDest(dests, pb);
    if (pd) return pd.index;
  }
  return undefined;
}

export const sh: Scheduler = {
  name: 'sh',
  enumName: 'XVS_SCHED_SH',
  flagNames: ['sh-fallback', 'sh-port'],
  table: (dests: readonly SchedDest[]) => bucketTable(shBuckets(dests)),
  model() {
    let buckets: number[] = [];
    return {
      changed(dests) {
        buckets = shBuckets(dests);
      },
      schedule(dests: readonly ModelDest[], pkt: ModelPacket) {
        const port = pkt.flags & SCHED_F_PORT ? pkt.sport : 0;
        const h = hash32((port + pkt.saddr) >>> 0, BITS);
        return probeBuckets(dests, buckets, h, (pkt.flags & SCHED_F_FALLBACK) !== 0, (k) => (((k + h) % SIZE) + h) % SIZE);
      },
    };
  },
};
