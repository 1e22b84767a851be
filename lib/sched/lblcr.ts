// Locality-based least-connection with replication (ip_vs_lblcr.c): per destination address a set
// of servers, newest first. The set's weighted least-connection member takes the connection unless
// it is "overloaded" in lblc's sense; then wlc over the service picks one and it joins the set. A
// set of more than one member unchanged for a day drops its most loaded member. xvs's sets hold at
// most LBLCR_SET_MAX members (a full set forgets its oldest); a removed server stays a member that
// is never chosen.
import { expireEntries, LBLC_EXPIRATION, lblcOverloaded, lblcTimer, type LblcTimer, type LocalityModel } from './lblc.js';
import { wlcChoose } from './wlc.js';
import { overhead, productGreater, type ModelDest, type ModelPacket, type SchedChange, type Scheduler } from './types.js';

export const LBLCR_SET_MAX = 16;

interface ServerSet {
  members: number[];
  lastuse: number;
  lastmod: number;
}

function setMin(set: ServerSet, dests: readonly ModelDest[]): ModelDest | undefined {
  let least: ModelDest | undefined;
  let loh = 0;
  for (const m of set.members) {
    const d = dests.find((x) => x.index === m);
    if (!d || d.overloaded) continue;
    const doh = overhead(d);
    if (least ? productGreater(loh, d.weight, doh, least.weight) : d.weight > 0) {
      least = d;
      loh = doh;
    }
  }
  return least;
}

/** The position of the most loaded member (a removed server counts as weight 0). */
function setMax(set: ServerSet, dests: readonly ModelDest[]): number {
  let most = -1;
  let moh = 0;
  let mw = 0;
  set.members.forEach((m, i) => {
    const d = dests.find((x) => x.index === m);
    if (!d || d.weight <= 0) return;
    const doh = overhead(d);
    if (most < 0 || productGreater(doh, mw, moh, d.weight)) {
      most = i;
      moh = doh;
      mw = d.weight;
    }
  });
  return most;
}

function insert(set: ServerSet, index: number, now: number): void {
  if (set.members.includes(index)) return;
  set.members.unshift(index);
  if (set.members.length > LBLCR_SET_MAX) set.members.pop();
  set.lastmod = now;
}

export class LblcrModel implements LocalityModel {
  private readonly sets = new Map<number, ServerSet>();
  private timer: LblcTimer | undefined;

  changed(_dests: readonly ModelDest[], change: SchedChange, now: number): void {
    if (change.kind === 'init') this.timer = lblcTimer(now);
  }

  schedule(dests: readonly ModelDest[], pkt: ModelPacket): number | undefined {
    const set = this.sets.get(pkt.daddr);
    if (!set) {
      const pick = wlcChoose(dests);
      if (pick) this.sets.set(pkt.daddr, { members: [pick.index], lastuse: pkt.now, lastmod: pkt.now });
      return pick?.index;
    }
    set.lastuse = pkt.now;
    const least = setMin(set, dests);
    if (set.members.length > 1 && pkt.now > set.lastmod + LBLC_EXPIRATION) {
      const most = setMax(set, dests);
      if (most >= 0) {
        set.members.splice(most, 1);
        set.lastmod = pkt.now;
      }
    }
    if (least && !lblcOverloaded(least, dests)) return least.index;
    const pick = wlcChoose(dests);
    if (pick) insert(set, pick.index, pkt.now);
    return pick?.index;
  }

  expire(now: number): void {
    expireEntries(this.timer, now, this.sets);
  }
}

export const lblcr: Scheduler = { name: 'lblcr', enumName: 'XVS_SCHED_LBLCR', model: () => new LblcrModel() };
