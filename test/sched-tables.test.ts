// The control plane's tables and hashes against the kernel's: hsiphash against the kernel's own
// test vector (lib/test_siphash.c), the sh/dh/mh bucket layouts and the wrr table walk against the
// step-by-step WrrModel, including scans that find every server overloaded.
import { describe, expect, it } from 'vitest';
import { dhBuckets } from '../lib/sched/dh.js';
import { hash32, hsiphashU32 } from '../lib/sched/hash.js';
import { MH_TAB_SIZE, mhBuckets } from '../lib/sched/mh.js';
import { shBuckets } from '../lib/sched/sh.js';
import { WrrModel, wrr } from '../lib/sched/wrr.js';
import { RESUME_HEAD, type ModelDest, type SchedDest, type SchedModel } from '../lib/sched/types.js';
import { prng } from './helpers/differential.js';

const dest = (index: number, weight: number, lastWeight = weight): SchedDest => ({
  index, weight, lastWeight, addr: 0x0a010000 + index, port: 80,
});

describe('hashes', () => {
  it('hsiphash of 4 bytes is the kernel\'s (64-bit test vector for bytes 00 01 02 03)', () => {
    expect(hsiphashU32(0x03020100, [0x0706050403020100n, 0x0f0e0d0c0b0a0908n])).toBe(0x88d38328);
  });

  it('hash_32 keeps the top bits of the golden-ratio product', () => {
    expect(hash32(1, 8)).toBe(0x61);
    expect(hash32(0xffffffff, 32)).toBe((0x100000000 - 0x61c88647) >>> 0);
  });
});

describe('dh, sh and mh tables', () => {
  it('dh fills its 256 buckets round-robin, weights ignored', () => {
    const b = dhBuckets([dest(1, 5), dest(2, 0), dest(3, 1)]);
    expect(b.slice(0, 6)).toEqual([1, 2, 3, 1, 2, 3]);
  });

  it('sh gives each server `weight` consecutive buckets, one for weight 0', () => {
    const b = shBuckets([dest(1, 2), dest(2, 0), dest(3, 3)]);
    expect(b.slice(0, 8)).toEqual([1, 1, 2, 3, 3, 3, 1, 1]);
  });

  it('mh fills every entry, in proportion to last_weight, and ignores a weight set to 0', () => {
    const b = mhBuckets([dest(1, 1), dest(2, 2), dest(3, 1)]);
    const share = (i: number) => b.filter((x) => x === i).length;
    expect(b).toHaveLength(MH_TAB_SIZE);
    expect(share(1) + share(2) + share(3)).toBe(MH_TAB_SIZE);
    expect(share(2)).toBeGreaterThan(1.9 * share(1));
    expect(mhBuckets([dest(1, 1), dest(2, 0, 2), dest(3, 1)])).toEqual(b);
  });

  it('mh moves little when a server goes (Maglev\'s minimal disruption)', () => {
    const five = [1, 2, 3, 4, 5].map((i) => dest(i, 1));
    const before = mhBuckets(five);
    const after = mhBuckets(five.filter((d) => d.index !== 3));
    const moved = before.filter((x, i) => x !== 3 && after[i] !== x).length;
    expect(moved / MH_TAB_SIZE).toBeLessThan(0.1);
  });
});

describe('wrr table', () => {
  // Walks the table as the dataplane does (bpf/sched_table.h) and compares with WrrModel.
  it('makes the kernel\'s choices, also when every server is overloaded', () => {
    const rand = prng(7);
    for (let round = 0; round < 200; round++) {
      const dests = Array.from({ length: 1 + Math.floor(rand() * 4) }, (_, i) => dest(i + 1, Math.floor(rand() * 4)));
      const view = (over: Set<number>): ModelDest[] => dests.map((d) => ({ ...d, active: 0, inactive: 0, overloaded: over.has(d.index) }));
      const model: SchedModel = new WrrModel();
      model.changed(view(new Set()), { kind: 'init' }, 0);
      const table = wrr.table!(dests, { last: undefined, cw: 0 }, { kind: 'init' });
      let cursor = table.start;
      let atHead = table.position.last === undefined;
      for (let step = 0; step < 30; step++) {
        const over = new Set(dests.filter(() => rand() < 0.4).map((d) => d.index));
        const want = model.schedule(view(over), { saddr: 0, daddr: 0, sport: 0, dport: 0, flags: 0, now: 0 });
        let got: number | undefined;
        const len = table.slots.length;
        for (let i = 0; i < len; i++) {
          const s = table.slots[(cursor + i) % len]!;
          if (!over.has(s)) {
            got = s;
            cursor += i + 1;
            atHead = false;
            break;
          }
        }
        if (got === undefined && len) {
          if (atHead || table.resume[(cursor + len - 1) % len] === RESUME_HEAD) {
            cursor = 0;
            atHead = true;
          }
        }
        expect(got, `round ${round} step ${step}`).toBe(want);
      }
    }
  });
});
