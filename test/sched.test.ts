// rr and wrr: the kernel's rule as a step-by-step model (lib/sched), and the real XDP program
// driven through BPF_PROG_TEST_RUN with the same sequence of new connections and changes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RrModel } from '../lib/sched/rr.js';
import { WrrModel, wrr } from '../lib/sched/wrr.js';
import type { ModelDest, SchedChange } from '../lib/sched/types.js';
import { buildFrame, parseFrame } from './helpers/packet.js';
import { NET, packetLab, type PacketLab } from './helpers/lb.js';

type Dest = { index: number; weight: number };
/** What the schedulers and models see of a real server; the rest does not matter to rr and wrr. */
const full = (d: Dest): ModelDest => ({ ...d, lastWeight: d.weight, addr: 0, port: 0, active: 0, inactive: 0, overloaded: false });
const build = (dests: Dest[]) => wrr.table!(dests.map(full), { last: undefined, cw: 0 }, { kind: 'init' });
function wrrModel(dests: Dest[]): { schedule(): number | undefined } {
  const model = new WrrModel();
  model.changed(dests.map(full), { kind: 'init' });
  return { schedule: () => model.schedule(dests.map(full)) };
}

describe('wrr sequence', () => {
  it('weights A4 B3 C2 give A A B A B C A B C (ipvsadm man page)', () => {
    const dests = [4, 3, 2].map((weight, index) => ({ index, weight }));
    const table = build(dests);
    expect(table.slots.map((i) => 'ABC'[i]).join('')).toBe('AABABCABC');
    const model = wrrModel(dests);
    expect(Array.from({ length: 18 }, () => 'ABC'[model.schedule()!]).join('')).toBe('AABABCABC'.repeat(2));
  });

  it('gcd steps: weights 100 and 50 alternate as 2:1', () => {
    const table = build([{ index: 0, weight: 100 }, { index: 1, weight: 50 }]);
    expect(table.slots).toEqual([0, 0, 1]);
  });

  it('never chooses weight 0', () => {
    const model = wrrModel([{ index: 0, weight: 0 }, { index: 1, weight: 2 }]);
    expect(Array.from({ length: 5 }, () => model.schedule())).toEqual([1, 1, 1, 1, 1]);
    expect(wrrModel([{ index: 0, weight: 0 }]).schedule()).toBeUndefined();
  });
});

// A small deterministic PRNG so that a failing sequence can be replayed.
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const REALS = ['10.1.0.11', '10.1.0.12', '10.1.0.13', '10.1.0.21'];
const MAC_TO_REAL = Object.fromEntries(REALS.map((a) => [NET.neighbours[a]!, a]));

describe.each(['rr', 'wrr'])('%s: dataplane and kernel model choose alike', (scheduler) => {
  let lab: PacketLab;
  beforeAll(async () => {
    lab = await packetLab();
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it.each([1, 2, 3, 4, 5])('random sequence of connections and changes, seed %i', (seed) => {
    const rand = prng(seed * 7919);
    const key = { protocol: 'tcp' as const, address: '10.0.0.100', port: 80 };
    lab.lb.addService(key, { scheduler });
    // The model works on stable ids: the position of the address in REALS.
    let list: Dest[] = [];
    const model = scheduler === 'rr' ? new RrModel() : new WrrModel();
    model.changed([], { kind: 'init' });
    const apply = (next: Dest[], change: SchedChange) => {
      list = next;
      model.changed(next.map(full), change);
    };
    let sport = 10000;
    try {
      for (let step = 0; step < 120; step++) {
        const r = rand();
        const present = list.map((d) => d.index);
        const absent = REALS.map((_, i) => i).filter((i) => !present.includes(i));
        if (r < 0.1 && absent.length) {
          const index = absent[Math.floor(rand() * absent.length)]!;
          const weight = Math.floor(rand() * 5);
          lab.lb.addRealServer(key, { address: REALS[index]! }, { weight });
          apply([{ index, weight }, ...list], { kind: 'add', index });
        } else if (r < 0.16 && list.length) {
          const at = Math.floor(rand() * list.length);
          const victim = list[at]!;
          lab.lb.deleteRealServer(key, { address: REALS[victim.index]! });
          apply(list.filter((d) => d !== victim), { kind: 'delete', index: victim.index, successor: list[at + 1]?.index });
        } else if (r < 0.24 && list.length) {
          const target = list[Math.floor(rand() * list.length)]!;
          const weight = Math.floor(rand() * 5);
          lab.lb.editRealServer(key, { address: REALS[target.index]! }, { weight });
          apply(list.map((d) => (d === target ? { ...d, weight } : d)), { kind: 'update', index: target.index });
        } else {
          const expected = model.schedule(list.map(full));
          const frame = buildFrame({ ip: { src: '10.2.0.5', dst: key.address }, tcp: { sport: sport++, dport: 80, flags: 'S' } });
          const { verdict, out } = lab.run(frame);
          const chosen = verdict === 'pass' ? undefined : REALS.indexOf(MAC_TO_REAL[parseFrame(out).dstMac]!);
          expect(chosen, `step ${step}: ${JSON.stringify(list)}`).toBe(expected);
        }
      }
    } finally {
      lab.lb.deleteService(key);
    }
  });
});
