// Power of two choices (ip_vs_twos.c): two weighted random draws over the servers with weight > 0
// that are not overloaded; the second wins only when w2 * oh1 > w1 * oh2 (32-bit int arithmetic).
// The weights are summed in 64 bits (the kernel's int wraps near 2^31): a draw is r % (sum + 1), r
// of 32 bits while sum + 1 fits in 32 bits, else of 64 (the high halves are extra draws).
// The kernel draws with prandom, so "the kernel's choice" means the choice for the same two
// draws: the dataplane leaves its draws in twos_draws and the model replays them.
import { overhead, stateless, type ModelDest, type ModelPacket, type Scheduler } from './types.js';

function choose(dests: readonly ModelDest[], pkt: ModelPacket): number | undefined {
  const eligible = dests.filter((d) => !d.overloaded && d.weight > 0);
  if (!eligible.length) return undefined;
  if (!pkt.draws) throw new Error('twos: the model needs the dataplane\'s draws');
  const total = BigInt(eligible.reduce((t, d) => t + d.weight, 0) + 1);
  const [lo1, lo2, hi1 = 0, hi2 = 0] = pkt.draws;
  const draw = (lo: number, hi: number) => Number((total > 0xffffffffn ? (BigInt(hi) << 32n) | BigInt(lo) : BigInt(lo)) % total);
  let r1 = draw(lo1, hi1);
  let r2 = draw(lo2, hi2);
  let c1 = eligible[eligible.length - 1]!;
  let c2: ModelDest | undefined;
  let w1 = -1;
  let w2 = -1;
  for (const d of eligible) {
    r1 -= d.weight;
    r2 -= d.weight;
    if (r1 <= 0 && w1 === -1) {
      c1 = d;
      w1 = d.weight;
    }
    if (r2 <= 0 && w2 === -1) {
      c2 = d;
      w2 = d.weight;
    }
    if (w1 !== -1 && w2 !== -1) break;
  }
  if (c2 && Math.imul(w2, overhead(c1)) > Math.imul(w1, overhead(c2))) return c2.index;
  return c1.index;
}

export const twos: Scheduler = { name: 'twos', enumName: 'XVS_SCHED_TWOS', model: () => stateless(choose) };
