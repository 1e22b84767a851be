// Weighted least-connection (ip_vs_wlc.c), IPVS's default: the first server in list order with
// weight > 0 that is not overloaded, then any later one with a strictly lower overhead/weight,
// compared as loh * w_d > doh * w_least. lblc and lblcr fall back to it.
import { overhead, productGreater, stateless, type ModelDest, type Scheduler } from './types.js';

export function wlcChoose(dests: readonly ModelDest[]): ModelDest | undefined {
  return weightedLeast(dests, overhead);
}

/** The weighted least-load choice of wlc and sed, by their own overhead. */
export function weightedLeast(dests: readonly ModelDest[], load: (d: ModelDest) => number): ModelDest | undefined {
  let least: ModelDest | undefined;
  let loh = 0;
  for (const d of dests) {
    if (d.overloaded) continue;
    const doh = load(d);
    if (least ? productGreater(loh, d.weight, doh, least.weight) : d.weight > 0) {
      least = d;
      loh = doh;
    }
  }
  return least;
}

export const wlc: Scheduler = {
  name: 'wlc',
  enumName: 'XVS_SCHED_WLC',
  model: () => stateless((dests) => wlcChoose(dests)?.index),
};
