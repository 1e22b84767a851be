// Destination hashing (ip_vs_dh.c): 256 buckets filled round-robin with the servers in list
// order, weights ignored; a connection goes to the bucket of hash_32 of its destination address,
// and nowhere when that server is quiesced (weight 0) or overloaded.
import { hash32 } from './hash.js';
import { bucketTable, NO_DEST, type ModelDest, type ModelPacket, type SchedDest, type Scheduler } from './types.js';

export const DH_TAB_BITS = 8;
const SIZE = 1 << DH_TAB_BITS;

export function dhBuckets(dests: readonly { index: number }[]): number[] {
  return Array.from({ length: SIZE }, (_, i) => (dests.length ? dests[i % dests.length]!.index : NO_DEST));
}

/** The server in a bucket, when it may take a connection (dh, sh and mh alike). */
export function bucketDest(dests: readonly ModelDest[], index: number): ModelDest | undefined {
  const d = dests.find((x) => x.index === index);
  return d && d.weight > 0 && !d.overloaded ? d : undefined;
}

export const dh: Scheduler = {
  name: 'dh',
  enumName: 'XVS_SCHED_DH',
  table: (dests: readonly SchedDest[]) => bucketTable(dhBuckets(dests)),
  model() {
    let buckets: number[] = [];
    return {
      changed(dests) {
        buckets = dhBuckets(dests);
      },
      schedule(dests: readonly ModelDest[], pkt: ModelPacket) {
        return bucketDest(dests, buckets[hash32(pkt.daddr, DH_TAB_BITS)]!)?.index;
      },
    };
  },
};
