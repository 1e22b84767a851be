// The schedulers xvs knows, by their ipvsadm names. Each is bpf/sched_<name>.h (its choice per
// packet) and lib/sched/<name>.ts (its table, if any, and its reference model).
import { dh } from './dh.js';
import { fo } from './fo.js';
import { lblc } from './lblc.js';
import { lblcr } from './lblcr.js';
import { lc } from './lc.js';
import { mh } from './mh.js';
import { nq } from './nq.js';
import { ovf } from './ovf.js';
import { rr } from './rr.js';
import { sed } from './sed.js';
import { sh } from './sh.js';
import { twos } from './twos.js';
import { wlc } from './wlc.js';
import { wrr } from './wrr.js';
import type { Scheduler } from './types.js';

export const SCHEDULERS: Record<string, Scheduler> = Object.fromEntries(
  [rr, wrr, lc, wlc, sed, nq, lblc, lblcr, dh, sh, mh, fo, ovf, twos].map((s) => [s.name, s]),
);

export * from './types.js';
