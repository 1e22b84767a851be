// Shortest expected delay (ip_vs_sed.c): as wlc with the overhead active + 1, the connection
// being scheduled included.
import { stateless, type ModelDest, type Scheduler } from './types.js';

function choose(dests: readonly ModelDest[]): number | undefined {
  let least: ModelDest | undefined;
  let loh = 0;
  for (const d of dests) {
    if (d.overloaded) continue;
    const doh = d.active + 1;
    if (least ? loh * d.weight > doh * least.weight : d.weight > 0) {
      least = d;
      loh = doh;
    }
  }
  return least?.index;
}

export const sed: Scheduler = { name: 'sed', enumName: 'XVS_SCHED_SED', model: () => stateless(choose) };
