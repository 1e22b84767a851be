// Shortest expected delay (ip_vs_sed.c): as wlc with the overhead active + 1, the connection
// being scheduled included.
import { weightedLeast } from './wlc.js';
import { stateless, type Scheduler } from './types.js';

export const sed: Scheduler = {
  name: 'sed',
  enumName: 'XVS_SCHED_SED',
  model: () => stateless((dests) => weightedLeast(dests, (d) => d.active + 1)?.index),
};
