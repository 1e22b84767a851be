// Recounts, from the connection and template tables, what every real server's counters should
// hold, so that a test can check that the shared counters never drift from the entries.
import type { Balancer } from '../../lib/balancer.js';
import { u32 } from '../../lib/dataplane.js';
import * as L from '../../lib/layout.js';

export interface Recount {
  /** dests index -> counts derived from the entries' `counted` fields. */
  fromEntries: Map<number, { active: number; inactive: number; persist: number }>;
  /** dests index -> the counters the dataplane keeps. */
  counters: Map<number, { active: number; inactive: number; persist: number }>;
}

/** Recounts for every real server in service or in the destination trash (dests with a gen). */
export function recount(lb: Balancer): Recount {
  const dp = lb.dataplane;
  const destIndexes: number[] = [];
  for (const [k, v] of dp.map('dests').entries()) {
    if (L.dest.decode(v).gen) destIndexes.push(k.readUInt32LE(0));
  }
  const counted = (name: string) => dp.enumValue('xvs_counted', name);
  const fromEntries = new Map(destIndexes.map((i) => [i, { active: 0, inactive: 0, persist: 0 }]));
  const add = (dest: number, gen: number, c: number) => {
    const d = L.dest.decode(dp.map('dests').lookup(u32(dest))!);
    const slot = fromEntries.get(dest);
    if (!slot || d.gen !== gen) return;
    if (c === counted('XVS_COUNTED_ACTIVE')) slot.active++;
    if (c === counted('XVS_COUNTED_INACTIVE')) slot.inactive++;
    if (c === counted('XVS_COUNTED_PERSIST')) slot.persist++;
  };
  for (const [, v] of dp.map('conns').entries()) {
    const c = L.conn.decode(v);
    add(c.dest, c.destGen, c.counted);
  }
  for (const [, v] of [...dp.map('templates').entries(), ...dp.map('sip_templates').entries()]) {
    const t = L.template.decode(v);
    add(t.dest, t.destGen, t.counted);
  }
  const counters = new Map(destIndexes.map((i) => {
    const n = L.destConns.decode(dp.map('dest_conns').lookup(u32(i))!);
    return [i, { active: n.active, inactive: n.inactive, persist: n.persist }];
  }));
  return { fromEntries, counters };
}
