// Never queue (ip_vs_nq.c): the first server in list order without active connections, else as
// sed; overloaded and weight-0 servers are skipped.
import { productGreater, stateless, type ModelDest, type Scheduler } from './types.js';

function choose(dests: readonly ModelDest[]): number | undefined {
  let least: ModelDest | undefined;
  let loh = 0;
  for (const d of dests) {
    if (d.overloaded || d.weight === 0) continue;
    const doh = d.active + 1;
    if (d.active === 0) return d.index;
    if (!least || productGreater(loh, d.weight, doh, least.weight)) {
      least = d;
      loh = doh;
    }
  }
  return least?.index;
}

export const nq: Scheduler = { name: 'nq', enumName: 'XVS_SCHED_NQ', model: () => stateless(choose) };
