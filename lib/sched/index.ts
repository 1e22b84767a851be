// The schedulers xvs knows, by their ipvsadm names.
import { rr } from './rr.js';
import { wrr } from './wrr.js';
import type { TableScheduler } from './types.js';

export const SCHEDULERS: Record<string, TableScheduler> = { rr, wrr };

/** The dataplane enum name of each scheduler (enum xvs_sched). */
export const SCHED_ENUM: Record<string, string> = { rr: 'XVS_SCHED_RR', wrr: 'XVS_SCHED_WRR' };

export type { SchedChange, SchedDest, SchedPosition, SchedTable, TableScheduler } from './types.js';

