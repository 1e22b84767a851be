// The kernel's rate estimator (net/netfilter/ipvs/ip_vs_est.c), run by xvsd every 2 seconds over
// the counters of every service and real server:
//
//   avgrate = avgrate * (1 - W) + rate * W,  W = 2^-2
//
// with the averages kept scaled as the kernel keeps them (conns and packets per second by 2^10,
// bytes per second by 2^5; the 2 s interval folded into the shifts) in u64 arithmetic, and read
// back rounded as ip_vs_read_estimator() does. The state lives in the pinned map rate_est, so
// that xvsadm --rate reads what the daemon computed.
import type { BpfMap } from './libbpf.js';
import * as L from './layout.js';

type Stats = L.Stats;

/** What the estimator uses of a loaded dataplane (lib/dataplane.ts, which calls forgetEstimate). */
interface StatsSource {
  map(name: string): BpfMap;
  readStats(map: 'svc_stats' | 'dest_stats', index: number): Stats;
}

export const ESTIMATOR_INTERVAL_MS = 2000;

export interface Rates {
  cps: bigint;
  inpps: bigint;
  outpps: bigint;
  inbps: bigint;
  outbps: bigint;
}

export type Estimate = L.Decoded<typeof L.est.fields>;

export type EstKind = 'service' | 'dest';

const u64 = (n: bigint) => BigInt.asUintN(64, n);
const s64 = (n: bigint) => BigInt.asIntN(64, n);

/** One EWMA step: `rate = (now - last) << shift; avg += ((s64)rate - (s64)avg) >> 2`. */
function ewma(avg: bigint, last: bigint, now: bigint, shift: bigint): bigint {
  const rate = u64(u64(now - last) << shift);
  return u64(avg + ((s64(rate) - s64(avg)) >> 2n));
}

/** An estimate starting from the counters as they are, rates 0 (ip_vs_zero_estimator). */
export function startEstimate(s: Stats): Estimate {
  return {
    lastConns: s.conns, lastInpkts: s.inpkts, lastOutpkts: s.outpkts, lastInbytes: s.inbytes, lastOutbytes: s.outbytes,
    cps: 0n, inpps: 0n, outpps: 0n, inbps: 0n, outbps: 0n,
  };
}

/** What a new (or zeroed) service or real server starts from: counters and rates 0. */
export const ZERO_ESTIMATE: Estimate = startEstimate({ conns: 0n, inpkts: 0n, outpkts: 0n, inbytes: 0n, outbytes: 0n });

/** The estimate after one 2 s tick. */
export function estimate(prev: Estimate, s: Stats): Estimate {
  const last = startEstimate(s);
  return {
    ...last,
    cps: ewma(prev.cps, prev.lastConns, s.conns, 9n),
    inpps: ewma(prev.inpps, prev.lastInpkts, s.inpkts, 9n),
    outpps: ewma(prev.outpps, prev.lastOutpkts, s.outpkts, 9n),
    inbps: ewma(prev.inbps, prev.lastInbytes, s.inbytes, 4n),
    outbps: ewma(prev.outbps, prev.lastOutbytes, s.outbytes, 4n),
  };
}

/** ip_vs_read_estimator: the scaled averages rounded to whole units. */
export function ratesOf(e: Estimate): Rates {
  return {
    cps: u64(e.cps + 0x1ffn) >> 10n,
    inpps: u64(e.inpps + 0x1ffn) >> 10n,
    outpps: u64(e.outpps + 0x1ffn) >> 10n,
    inbps: u64(e.inbps + 0xfn) >> 5n,
    outbps: u64(e.outbps + 0xfn) >> 5n,
  };
}

export const ZERO_RATES: Rates = { cps: 0n, inpps: 0n, outpps: 0n, inbps: 0n, outbps: 0n };

function estKey(kind: EstKind, index: number): Buffer {
  return L.estKey.encode({ kind: kind === 'service' ? 0 : 1, index });
}

/** The rates of a service (by id) or real server (by dests index); zero before the first tick. */
export function readRates(dp: StatsSource, kind: EstKind, index: number): Rates {
  const raw = dp.map('rate_est').lookup(estKey(kind, index));
  return raw ? ratesOf(L.est.decode(raw)) : ZERO_RATES;
}

/** Forgets the estimate (ip_vs_zero_estimator): the next tick starts again from the counters. */
export function forgetEstimate(dp: StatsSource, kind: EstKind, index: number): void {
  dp.map('rate_est').delete(estKey(kind, index));
}

/**
 * One tick over the given services and real servers: read counters, step, write back in one batch;
 * estimates of objects no longer there are dropped. An object without an estimate was created or
 * zeroed since (both zero its counters), so it starts from zero, as the kernel's estimator does.
 * `restart` (a starting xvsd): every estimate starts again from the counters as they are, so that
 * traffic counted while no xvsd ran is not taken for the last 2 seconds'.
 */
export function estimateAll(dp: StatsSource, objects: { kind: EstKind; index: number }[], restart = false): void {
  const map = dp.map('rate_est');
  const keys: Buffer[] = [];
  const values: Buffer[] = [];
  const live = new Set<string>();
  for (const { kind, index } of objects) {
    const key = estKey(kind, index);
    const prev = map.lookup(key);
    const stats = dp.readStats(kind === 'service' ? 'svc_stats' : 'dest_stats', index);
    keys.push(key);
    const next = restart ? startEstimate(stats) : estimate(prev ? L.est.decode(prev) : ZERO_ESTIMATE, stats);
    values.push(L.est.encode(next));
    live.add(key.toString('hex'));
  }
  const gone = [...map.keys()].filter((k) => !live.has(k.toString('hex')));
  for (const key of gone) map.delete(key);
  map.updateBatch(keys, values);
}
