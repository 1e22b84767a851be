// Round-robin (ip_vs_rr.c): a cursor goes round the list, newest first, taking the next server
// with weight > 0 that is not overloaded. The cursor stays on the last chosen server across
// changes; when that server is deleted it moves to its predecessor. A scan that finds nothing
// leaves the cursor where it was.
import {
  RESUME_STAY, type ModelDest, type ModelPacket, type SchedChange, type SchedDest, type SchedModel,
  type SchedPosition, type SchedTable, type Scheduler,
} from './types.js';

function table(dests: readonly SchedDest[], pos: SchedPosition, change: SchedChange): SchedTable {
  const eligible = dests.filter((d) => d.weight > 0);
  const slots = eligible.map((d) => d.index);
  // The kernel continues with the first eligible server after its cursor in list order.
  let anchor = 0;
  let last = pos.last;
  if (change.kind === 'init') {
    last = undefined;
  } else if (change.kind === 'delete' && change.index === pos.last) {
    anchor = change.successor === undefined ? 0 : Math.max(0, dests.findIndex((d) => d.index === change.successor));
    last = anchor > 0 ? dests[anchor - 1]!.index : undefined;
  } else if (pos.last !== undefined) {
    anchor = dests.findIndex((d) => d.index === pos.last) + 1;
  }
  const before = dests.slice(0, anchor).filter((d) => d.weight > 0).length;
  return {
    slots,
    cws: slots.map(() => 0),
    resume: slots.map(() => RESUME_STAY),
    start: slots.length ? before % slots.length : 0,
    position: { last, cw: 0 },
  };
}

/** The kernel's rr, step by step. */
export class RrModel implements SchedModel {
  private cursor: number | undefined; // index of the last chosen server; undefined = list head

  changed(next: readonly ModelDest[], change: SchedChange): void {
    if (change.kind === 'init') this.cursor = undefined;
    if (change.kind === 'delete' && change.index === this.cursor) {
      const i = change.successor === undefined ? -1 : next.findIndex((d) => d.index === change.successor);
      this.cursor = i > 0 ? next[i - 1]!.index : undefined;
    }
  }

  schedule(dests: readonly ModelDest[], _pkt?: ModelPacket): number | undefined {
    const n = dests.length;
    const start = this.cursor === undefined ? -1 : dests.findIndex((d) => d.index === this.cursor);
    for (let step = 1; step <= n; step++) {
      const d = dests[(start + step + n) % n]!;
      if (d.weight > 0 && !d.overloaded) {
        this.cursor = d.index;
        return d.index;
      }
    }
    return undefined;
  }
}

export const rr: Scheduler = { name: 'rr', enumName: 'XVS_SCHED_RR', table, model: () => new RrModel() };
