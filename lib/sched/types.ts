// What a table scheduler sees of a service's real servers, and what it produces.

/** A real server as a scheduler sees it. Lists are in IPVS order: newest first. */
export interface SchedDest {
  /** Dataplane index of the real server (dests map). */
  readonly index: number;
  readonly weight: number;
}

/** Where the kernel's scheduler stands: the last server it chose and, for wrr, the current weight. */
export interface SchedPosition {
  /** Index of the last chosen server, undefined before the first choice. */
  last: number | undefined;
  /** wrr's cw at the last choice (or its initial value). */
  cw: number;
}

/** One period of choices and where to start in it. */
export interface SchedTable {
  /** Dataplane indexes, in the order the kernel would choose them. */
  slots: number[];
  /** wrr's cw for each slot (rr: all 0). */
  cws: number[];
  /** The slot the kernel would choose next. */
  start: number;
  /** The kernel's position right after the change, before any new choice. */
  position: SchedPosition;
}

/** A change of a service's server list, as the kernel's add_dest/del_dest/upd_dest hooks see it. */
export type SchedChange =
  | { kind: 'init' }
  | { kind: 'add'; index: number }
  | { kind: 'update'; index: number }
  | { kind: 'delete'; index: number; successor: number | undefined };

export interface TableScheduler {
  readonly name: string;
  /** The table for `dests` (the list after `change`), starting where the kernel continues from `pos`. */
  build(dests: readonly SchedDest[], pos: SchedPosition, change: SchedChange): SchedTable;
}
