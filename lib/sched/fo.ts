// Weighted failover (ip_vs_fo.c): the first server in list order with the highest weight that is
// not overloaded; weight 0 never.
import { stateless, type ModelDest, type Scheduler } from './types.js';

function choose(dests: readonly ModelDest[]): number | undefined {
  let best: ModelDest | undefined;
  let hw = 0;
  for (const d of dests) {
    if (!d.overloaded && d.weight > hw) {
      best = d;
      hw = d.weight;
    }
  }
  return best?.index;
}

export const fo: Scheduler = { name: 'fo', enumName: 'XVS_SCHED_FO', model: () => stateless(choose) };
