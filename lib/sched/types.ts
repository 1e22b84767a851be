// What a scheduler sees of a service's real servers, what the control plane builds for it, and
// the shape of its reference model.

/** A real server as a scheduler sees it. Lists are in IPVS order: newest first. */
export interface SchedDest {
  /** Dataplane index of the real server (dests map). */
  readonly index: number;
  readonly weight: number;
  /** IPVS's last_weight: the last non-zero weight (the weight it was added with, if never). mh. */
  readonly lastWeight: number;
  /** IPv4 address as a host-order u32, and port: what mh hashes. */
  readonly addr: number;
  readonly port: number;
}

/** Where the kernel's rr/wrr stands: the last server it chose and, for wrr, the current weight. */
export interface SchedPosition {
  /** Index of the last chosen server, undefined at the list head. */
  last: number | undefined;
  /** wrr's cw at the last choice (or its initial value). */
  cw: number;
}

/** A scheduler's table: rr/wrr one period of choices, dh/sh/mh buckets (NO_DEST when empty). */
export interface SchedTable {
  /** Dataplane indexes, in the order the kernel would choose them, or by bucket. */
  slots: number[];
  /** wrr's cw for each slot (others: all 0). */
  cws: number[];
  /** rr/wrr: enum xvs_resume of each slot (others: all 0). */
  resume: number[];
  /** The slot the kernel would choose next. */
  start: number;
  /** The kernel's position right after the change, before any new choice. */
  position: SchedPosition;
  /** wrr whose period is too long for a table: the dataplane steps the kernel's cw (bpf/sched_wrr.h). */
  stepped?: { di: number; mw: number };
}

/** An empty bucket of a dh, sh or mh table (XVS_NO_DEST). */
export const NO_DEST = 0xffffffff;

/** enum xvs_resume. */
export const RESUME_STAY = 0;
export const RESUME_HEAD = 1;

/** A change of a service's server list, as the kernel's add_dest/del_dest/upd_dest hooks see it. */
export type SchedChange =
  | { kind: 'init' }
  | { kind: 'add'; index: number }
  | { kind: 'update'; index: number }
  | { kind: 'delete'; index: number; successor: number | undefined };

export interface Scheduler {
  /** The ipvsadm name. */
  readonly name: string;
  /** Its enum xvs_sched member. */
  readonly enumName: string;
  /** Names of its -b flags by bit (IP_VS_SVC_F_SCHED1..3), when it reads them. */
  readonly flagNames?: readonly string[];
  /** Table schedulers: the table for `dests` (the list after `change`), continuing from `pos`. */
  table?(dests: readonly SchedDest[], pos: SchedPosition, change: SchedChange): SchedTable;
  /** A step-by-step model of the kernel's choices, for differential tests. */
  model(): SchedModel;
}

/** What a reference model sees of one real server when a connection is scheduled. */
export interface ModelDest {
  readonly index: number;
  readonly weight: number;
  readonly lastWeight: number;
  readonly addr: number;
  readonly port: number;
  readonly active: number;
  readonly inactive: number;
  /** IP_VS_DEST_F_OVERLOAD. */
  readonly overloaded: boolean;
}

/** What a new connection's first packet brings to a choice (host-order numbers). */
export interface ModelPacket {
  saddr: number;
  daddr: number;
  sport: number;
  dport: number;
  /** -b flags of the service, as bits. */
  flags: number;
  /** The dataplane clock, in seconds. */
  now: number;
  /** twos: the random draws the dataplane made (twos_draws): r1, r2 and their high halves. */
  draws?: [number, number, number?, number?];
}

/** The kernel's scheduler, step by step. */
export interface SchedModel {
  /** The list changed (the kernel's init_service/add_dest/del_dest/upd_dest hooks) at `now` (s). */
  changed(dests: readonly ModelDest[], change: SchedChange, now: number): void;
  /** The choice for a new connection (dests: the current list with its counts), or undefined. */
  schedule(dests: readonly ModelDest[], pkt: ModelPacket): number | undefined;
}

/** The table of a hashing scheduler (dh, sh, mh): its buckets, nothing else. */
export function bucketTable(slots: number[]): SchedTable {
  return { slots, cws: slots.map(() => 0), resume: slots.map(() => 0), start: 0, position: { last: undefined, cw: 0 } };
}

/** A model for schedulers that keep nothing between choices. */
export function stateless(choose: (dests: readonly ModelDest[], pkt: ModelPacket) => number | undefined): SchedModel {
  return { changed() {}, schedule: choose };
}

/**
 * a * b > c * d for 32-bit ints, exact as the kernel's 64-bit products: doubles lose the low bits
 * of products above 2^53 (weights near 2^31 times large overheads).
 */
export function productGreater(a: number, b: number, c: number, d: number): boolean {
  const left = a * b;
  const right = c * d;
  if (Math.abs(left) <= Number.MAX_SAFE_INTEGER && Math.abs(right) <= Number.MAX_SAFE_INTEGER) return left > right;
  return BigInt(a) * BigInt(b) > BigInt(c) * BigInt(d);
}

/** ip_vs_dest_conn_overhead. */
export function overhead(d: ModelDest): number {
  return ((d.active << 8) + d.inactive) | 0;
}
