// Weighted round-robin (ip_vs_wrr.c). di = gcd of the weights > 0, mw = max weight - (di - 1);
// passes with cw = mw, mw - di, ... down to 1 each take, in list order, the servers with
// weight >= cw. Any change of the list restarts at the list head with cw kept (rounded to the new
// step) unless it exceeds the new mw. The dataplane walks one period of that sequence. A scan that
// finds nothing stays put when it started in the last pass, else it ends at the list head.
import {
  RESUME_HEAD, RESUME_STAY, type ModelDest, type ModelPacket, type SchedChange, type SchedDest,
  type SchedModel, type SchedPosition, type SchedTable, type Scheduler,
} from './types.js';
import { errors } from '../errors.js';

/**
 * The longest choice sequence (one period: the sum of weight/gcd) the dataplane's table holds. Weights
 * near 2^31 without a large common divisor make far longer periods; stepping the kernel's cw in the
 * dataplane for those is not done yet, so they are refused rather than approximated.
 */
export const WRR_MAX_TABLE = 1 << 20;

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
  const period = dests.reduce((n, d) => n + Math.floor(Math.max(d.weight, 0) / di), 0);
  if (period > WRR_MAX_TABLE) {
    throw errors.unsupported(
      `wrr: these weights make a choice sequence of ${period} (the sum of weight/gcd); xvs supports at most ` +
        `${WRR_MAX_TABLE}: use weights with a larger common divisor, or another scheduler`,
    );
  }
  const slots: number[] = [];
  const cws: number[] = [];
  const resume: number[] = [];
  const cw = change.kind === 'init' ? mw : wrrChangedCw(pos.cw, di, mw);
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
      lastPass = this.cw <= this.di;
      if (lastPass && restarted && last !== -1) stop = last;
    }
  }
}

export const wrr: Scheduler = { name: 'wrr', enumName: 'XVS_SCHED_WRR', table, model: () => new WrrModel() };
