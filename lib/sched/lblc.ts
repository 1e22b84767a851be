// Locality-based least-connection (ip_vs_lblc.c): per destination address a cached server, kept
// while it is available, has weight > 0 and is not "overloaded" in lblc's sense (more active
// connections than its weight while some server has active * 2 < weight); else wlc picks one and
// the entry is replaced. Entries expire on the kernel's periodic timer (lblcTick).
import { wlcChoose } from './wlc.js';
import type { ModelDest, ModelPacket, SchedChange, SchedModel, Scheduler } from './types.js';

/** Seconds between two runs of the kernel's lblc/lblcr expiry timer. */
export const LBLC_TICK = 60;
/** lblc(r)_expiration: idle entries are dropped by the full check after a day. */
export const LBLC_EXPIRATION = 24 * 60 * 60;
/** Idle entries are dropped early, when a table holds more than LBLC_MAX_SIZE entries. */
export const LBLC_ENTRY_TIMEOUT = 6 * 60;
export const LBLC_MAX_SIZE = 1024 * 16;
const COUNT_FOR_FULL_EXPIRATION = 30;

/** The kernel's per-service expiry timer state: the next tick and its counter. */
export interface LblcTimer {
  next: number;
  counter: number;
}

export function lblcTimer(now: number): LblcTimer {
  return { next: now + LBLC_TICK, counter: 1 };
}

/**
 * One run of ip_vs_lblc(r)_check_expire at `now`: which entries (by lastuse, seconds) to drop.
 * Every 30th run drops those idle for a day; a run that finds more than LBLC_MAX_SIZE entries drops
 * up to a goal of those idle for 6 minutes (in map order, the kernel goes by hash bucket).
 */
export function lblcTick<K>(timer: LblcTimer, now: number, entries: readonly [K, number][]): K[] {
  timer.next += LBLC_TICK;
  if (timer.counter % COUNT_FOR_FULL_EXPIRATION === 0) {
    timer.counter = 1;
    return entries.filter(([, lastuse]) => now >= lastuse + LBLC_EXPIRATION).map(([k]) => k);
  }
  if (entries.length <= LBLC_MAX_SIZE) {
    timer.counter++;
    return [];
  }
  let goal = Math.min(Math.floor(((entries.length - LBLC_MAX_SIZE) * 4) / 3), LBLC_MAX_SIZE / 2);
  const drop: K[] = [];
  for (const [k, lastuse] of entries) {
    if (goal <= 0) break;
    if (now < lastuse + LBLC_ENTRY_TIMEOUT) continue;
    drop.push(k);
    goal--;
  }
  return drop;
}

/** Runs the timer's ticks that came due by `now` over a model's entries (key -> { lastuse }). */
export function expireEntries<K>(timer: LblcTimer | undefined, now: number, entries: Map<K, { lastuse: number }>): void {
  while (timer && timer.next <= now) {
    const at = timer.next;
    for (const k of lblcTick(timer, at, [...entries].map(([key, e]) => [key, e.lastuse] as [K, number]))) entries.delete(k);
  }
}

/** is_overloaded() of lblc and lblcr. */
export function lblcOverloaded(d: ModelDest, dests: readonly ModelDest[]): boolean {
  return d.active > d.weight && dests.some((x) => x.active * 2 < x.weight);
}

export interface LocalityModel extends SchedModel {
  /** Runs the expiry timer up to `now`, as the control plane's sweeps do. */
  expire(now: number): void;
}

export class LblcModel implements LocalityModel {
  private readonly cache = new Map<number, { dest: number; lastuse: number }>();
  private timer: LblcTimer | undefined;

  changed(_dests: readonly ModelDest[], change: SchedChange, now: number): void {
    if (change.kind === 'init') this.timer = lblcTimer(now);
  }

  schedule(dests: readonly ModelDest[], pkt: ModelPacket): number | undefined {
    const en = this.cache.get(pkt.daddr);
    if (en) {
      en.lastuse = pkt.now;
      const d = dests.find((x) => x.index === en.dest);
      if (d && d.weight > 0 && !lblcOverloaded(d, dests)) return d.index;
    }
    const pick = wlcChoose(dests);
    if (!pick) return undefined;
    if (!en || en.dest !== pick.index) this.cache.set(pkt.daddr, { dest: pick.index, lastuse: pkt.now });
    return pick.index;
  }

  expire(now: number): void {
    expireEntries(this.timer, now, this.cache);
  }
}

export const lblc: Scheduler = { name: 'lblc', enumName: 'XVS_SCHED_LBLC', model: () => new LblcModel() };
