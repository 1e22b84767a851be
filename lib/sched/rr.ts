// Round-robin (ip_vs_rr.c): a cursor goes round the list, newest first, taking the next server
// with weight > 0 that is not overloaded. The cursor stays on the last chosen server across
// changes; when that server is deleted it moves to its predecessor.
import type { SchedChange, SchedDest, SchedPosition, SchedTable, TableScheduler } from './types.js';

export const rr: TableScheduler = {
  name: 'rr',
  build(dests: readonly SchedDest[], pos: SchedPosition, change: SchedChange): SchedTable {
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
      start: slots.length ? before % slots.length : 0,
      position: { last, cw: 0 },
    };
  },
};

/** The kernel's rr, step by step, for differential tests. */
export class RrModel {
  private cursor: number | undefined; // index of the last chosen server; undefined = list head

  constructor(private dests: SchedDest[] = []) {}

  setDests(next: SchedDest[], change: SchedChange): void {
    if (change.kind === 'delete' && change.index === this.cursor) this.cursor = change.successor === undefined
      ? undefined
      : this.predecessorOf(change.successor, next);
    this.dests = next;
  }

  private predecessorOf(successor: number, list: SchedDest[]): number | undefined {
    const i = list.findIndex((d) => d.index === successor);
    return i > 0 ? list[i - 1]!.index : undefined;
  }

  schedule(overloaded: (index: number) => boolean = () => false): number | undefined {
    const n = this.dests.length;
    const start = this.cursor === undefined ? -1 : this.dests.findIndex((d) => d.index === this.cursor);
    for (let step = 1; step <= n; step++) {
      const d = this.dests[(start + step + n) % n]!;
      if (d.weight > 0 && !overloaded(d.index)) {
        this.cursor = d.index;
        return d.index;
      }
    }
    return undefined;
  }
}
