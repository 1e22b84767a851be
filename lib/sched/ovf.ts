// Overflow (ip_vs_ovf.c): the first server in list order with the highest weight among those with
// weight > 0, not overloaded and with no more active connections than their weight.
import { stateless, type ModelDest, type Scheduler } from './types.js';

function choose(dests: readonly ModelDest[]): number | undefined {
  let best: ModelDest | undefined;
  for (const d of dests) {
    if (d.overloaded || d.active > d.weight || d.weight === 0) continue;
    if (!best || d.weight > best.weight) best = d;
  }
  return best?.index;
}

export const ovf: Scheduler = { name: 'ovf', enumName: 'XVS_SCHED_OVF', model: () => stateless(choose) };
