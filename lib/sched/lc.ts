// Least-connection (ip_vs_lc.c): the least overhead (active * 256 + inactive), strictly less so
// the first in list order wins a tie; overloaded and weight-0 servers are skipped.
import { overhead, stateless, type ModelDest, type Scheduler } from './types.js';

function choose(dests: readonly ModelDest[]): number | undefined {
  let least: ModelDest | undefined;
  let loh = 0;
  for (const d of dests) {
    if (d.overloaded || d.weight === 0) continue;
    const doh = overhead(d) >>> 0;
    if (!least || doh < loh) {
      least = d;
      loh = doh;
    }
  }
  return least?.index;
}

export const lc: Scheduler = { name: 'lc', enumName: 'XVS_SCHED_LC', model: () => stateless(choose) };
