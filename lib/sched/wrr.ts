// Weighted round-robin (ip_vs_wrr.c). di = gcd of the weights > 0, mw = max weight - (di - 1);
// passes with cw = mw, mw - di, ... down to 1 each take, in list order, the servers with
// weight >= cw. Any change of the list restarts at the list head with cw kept (rounded to the new
// step) unless it exceeds the new mw. The dataplane walks one period of that sequence. A scan that
// finds nothing stays put when it started in the last pass, else it ends at the list head.
import {
  RESUME_HEAD, RESUME_STAY, type ModelDest, type ModelPacket, type SchedChange, type SchedDest,
  type SchedModel, type SchedPosition, type SchedTable, type Scheduler,
} from './types.js';

/**
 * The longest choice sequence (one period: the sum of weight/gcd) written as a table. Weights near
 * 2^31 without a large common divisor make periods of billions: the dataplane then steps the
 * kernel's cw and list position itself (bpf/sched_wrr.h).
 */
export const WRR_MAX_TABLE = 1 << 16;

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

export function wrrParams(dests: readonly { weight: number }[]): { di: number; mw: number } {
  const g = dests.reduce((acc, d) => (d.weight > 0 ? (acc ? gcd(d.weight, acc) : d.weight) : acc), 0);
  const di = g || 1;
  const max = dests.reduce((m, d) => Math.max(m, d.weight), 0);
  return { di, mw: max - (di - 1) };
}

/** ip_vs_wrr_dest_changed: the cw the kernel continues with after a change. */
export function wrrChangedCw(cw: number, di: number, mw: number): number {
  if (cw > mw || !cw) return mw;
  if (di > 1) return Math.floor(cw / di) * di + 1;
  return cw;
}

function table(dests: readonly SchedDest[], pos: SchedPosition, change: SchedChange): SchedTable {
  const { di, mw } = wrrParams(dests);
  const cw = change.kind === 'init' ? mw : wrrChangedCw(pos.cw, di, mw);
  const period = dests.reduce((n, d) => n + Math.floor(Math.max(d.weight, 0) / di), 0);
  if (period > WRR_MAX_TABLE) return { slots: [], cws: [], resume: [], start: 0, position: { last: undefined, cw }, stepped: { di, mw } };
  const slots: number[] = [];
  const cws: number[] = [];
  const resume: number[] = [];
  let start = 0;
  for (let round = mw; round > 0; round -= di) {
    if (round === cw) start = slots.length;
    for (const d of dests) {
      if (d.weight >= round) {
        slots.push(d.index);
        cws.push(round);
        resume.push(round <= di ? RESUME_STAY : RESUME_HEAD);
      }
    }
  }
  return { slots, cws, resume, start, position: { last: undefined, cw } };
}

/** The cursor of a stepped wrr (bpf/sched_wrr.h) at the list head with this cw. */
export function steppedCursor(cw: number): bigint {
  return BigInt(cw) << 32n;
}

/** Where a stepped wrr stands, from its cursor: cw << 32 | (list position + 1), 0 = the head. */
export function steppedPosition(cursor: bigint, dests: readonly SchedDest[]): SchedPosition {
  const at = Number(cursor & 0xffffffffn);
  return { last: at ? dests[at - 1]?.index : undefined, cw: Number(cursor >> 32n) };
}

/** The kernel's wrr, step by step. */
export class WrrModel implements SchedModel {
  private cl = -1; // position in the list of the current server; -1 = head
  private cw = 0;
  private di = 1;
  private mw = 0;
  private dests: readonly { index: number; weight: number }[] = [];

  changed(next: readonly ModelDest[], change: SchedChange): void {
    this.dests = next.map((d) => ({ index: d.index, weight: d.weight }));
    this.cl = -1;
    ({ di: this.di, mw: this.mw } = wrrParams(next));
    this.cw = change.kind === 'init' ? this.mw : wrrChangedCw(this.cw, this.di, this.mw);
  }

  schedule(current: readonly ModelDest[], _pkt?: ModelPacket): number | undefined {
    if (this.mw === 0) return undefined;
    const overloaded = new Set(current.filter((d) => d.overloaded).map((d) => d.index));
    const n = this.dests.length;
    const last = this.cl;
    let pos = this.cl;
    let lastPass = false;
    let restarted = false;
    let stop: number | undefined;
    for (;;) {
      for (pos = pos + 1; pos < n; pos++) {
        const d = this.dests[pos]!;
        if (!overloaded.has(d.index) && d.weight >= this.cw) {
          this.cl = pos;
          return d.index;
        }
        if (pos === stop) {
          this.cl = pos;
          return undefined;
        }
      }
      pos = -1;
      this.cw -= this.di;
      if (this.cw <= 0) {
        this.cw = this.mw;
        if (lastPass || last === -1) {
          this.cl = pos;
          return undefined;
        }
        restarted = true;
      }
      // Rounds above the highest usable weight choose nothing: the kernel walks them one by one
      // (billions with weights near 2^31); going straight to the first that can choose is the
      // same. With nothing usable, straight to the last pass, where the kernel's scan ends.
      const usable = this.dests.filter((d) => !overloaded.has(d.index) && d.weight > 0);
      const maxUsable = usable.reduce((m, d) => Math.max(m, d.weight), 0);
      const top = maxUsable > 0 ? Math.floor((maxUsable - 1) / this.di) * this.di + 1 : 1;
      if (this.cw > top) this.cw = top;
      lastPass = this.cw <= this.di;
      if (lastPass && restarted && last !== -1) stop = last;
    }
  }
}

export const wrr: Scheduler = { name: 'wrr', enumName: 'XVS_SCHED_WRR', table, model: () => new WrrModel() };
