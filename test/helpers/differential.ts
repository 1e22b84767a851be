// Differential testing of the dataplane against the reference model: one service configured on
// both, the same packets sent to both (the dataplane through BPF_PROG_TEST_RUN on one CPU, with
// its clock frozen and moved by the harness), and after every step the same verdict, the same real
// server and the same ActiveConn/InActConn/PersistConn of every real server.
import { expect } from 'vitest';
import type { ServiceKey, ServiceOptions } from '../../lib/balancer.js';
import * as L from '../../lib/layout.js';
import { DEFAULT_TIMEOUTS, IpvsModel, type ModelPacket, type ModelReal, type ModelServiceSpec } from './ipvs-model.js';
import type { PacketLab } from './lb.js';
import { buildFrame, parseFrame } from './packet.js';

/** Real servers the harness may add: 10.1.0.31 .. 10.1.0.46 with MACs 02:00:00:00:01:<n>. */
export const REAL_POOL: Record<string, string> = Object.fromEntries(
  Array.from({ length: 16 }, (_, i) => [`10.1.0.${31 + i}`, `02:00:00:00:01:${(31 + i).toString(16).padStart(2, '0')}`]),
);
const REAL_BY_MAC = new Map(Object.entries(REAL_POOL).map(([a, m]) => [m, a]));

/** Short timeouts so that connections expire within simulated minutes. */
export const SHORT_TIMEOUTS: Record<string, number> = {
  NONE: 2, ESTABLISHED: 30, SYN_SENT: 10, SYN_RECV: 8, FIN_WAIT: 12, TIME_WAIT: 9, CLOSE: 4, CLOSE_WAIT: 10,
  LAST_ACK: 6, LISTEN: 10, SYNACK: 10, UDP: 15,
};

const START = 1000;

/** A seeded PRNG (mulberry32), so that a failing sequence can be replayed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface DifferentialSpec extends ModelServiceSpec {
  method?: 'dr' | 'nat';
}

export class Differential {
  readonly model: IpvsModel;
  readonly key: ServiceKey;
  private seconds = START;
  private readonly method: 'dr' | 'nat';
  private steps = 0;

  constructor(private readonly lab: PacketLab, spec: DifferentialSpec, timeouts = SHORT_TIMEOUTS) {
    const lb = lab.lb;
    // The model ends a removed real server's connections at once (expire_nodest_conn).
    lb.setSysctls({ expire_nodest_conn: 1 });
    lb.clear();
    lb.dataplane.setClock(BigInt(START) * 1_000_000_000n);
    lb.expire();
    lb.dataplane.writeTimeouts(Object.fromEntries(Object.entries(timeouts).map(([s, v]) => [s === 'UDP' ? 'XVS_UDP_S_NORMAL' : `XVS_TCP_S_${s}`, v])));
    this.method = spec.method ?? 'dr';
    this.key = spec.fwmark !== undefined
      ? { fwmark: spec.fwmark }
      : { protocol: spec.protocol, address: spec.address!, port: spec.port ?? 0 };
    const opts: ServiceOptions = {
      scheduler: spec.scheduler,
      ...(spec.persistent ? { persistent: spec.persistent } : {}),
      ...(spec.netmask ? { netmask: spec.netmask } : {}),
      ...(spec.onePacket ? { onePacket: true } : {}),
      schedFlags: flagNames(spec.scheduler, spec.flags ?? 0),
    };
    if (spec.fwmark !== undefined && !lb.markRules().some((r) => r.mark === spec.fwmark)) {
      lb.addMarkRule({ destination: '10.0.0.0/24', mark: spec.fwmark });
    }
    lb.addService(this.key, opts);
    this.model = new IpvsModel(spec, START);
    this.model.timeouts = { ...DEFAULT_TIMEOUTS, ...timeouts };
  }

  /** What went wrong, for a failure message: the seed's step. */
  get where(): string {
    return `step ${this.steps} at t=${this.seconds}`;
  }

  freeAddresses(): string[] {
    const used = new Set(this.model.reals.map((r) => r.address));
    return Object.keys(REAL_POOL).filter((a) => !used.has(a));
  }

  addReal(address: string, o: { weight?: number; upper?: number; lower?: number } = {}): void {
    const port = 'fwmark' in this.key ? 0 : this.method === 'nat' ? 8080 : this.key.port;
    this.lab.lb.addRealServer(this.key, { address, port }, {
      method: this.method, weight: o.weight ?? 1, upperThreshold: o.upper ?? 0, lowerThreshold: o.lower ?? 0,
    });
    this.model.addReal({ address, port, method: this.method, ...o });
    this.check();
  }

  editReal(real: ModelReal, e: { weight?: number; upper?: number; lower?: number }): void {
    const upper = e.upper ?? real.upper;
    const lower = e.lower ?? real.lower;
    this.lab.lb.editRealServer(this.key, { address: real.address, port: real.port }, {
      ...(e.weight !== undefined ? { weight: e.weight } : {}), upperThreshold: upper, lowerThreshold: lower,
    });
    this.model.editReal(real, { ...e, upper, lower });
    this.check();
  }

  deleteReal(real: ModelReal): void {
    this.lab.lb.deleteRealServer(this.key, { address: real.address, port: real.port });
    this.model.deleteReal(real);
    this.check();
  }

  /** Moves both clocks on, sweeping every second while anything may expire (as a 1 s sweeper would). */
  advance(seconds: number): void {
    const dp = this.lab.lb.dataplane;
    const target = this.seconds + seconds;
    while (this.seconds < target) {
      this.seconds++;
      const busy = dp.map('conns').keys().next().done === false || dp.map('templates').keys().next().done === false;
      if (busy || this.seconds === target) {
        dp.setClock(BigInt(this.seconds) * 1_000_000_000n);
        const r = this.lab.lb.expire();
        this.swept.conns += r.connsEnded;
        this.swept.templatesEnded += r.templatesEnded;
        this.swept.templatesRearmed += r.templatesRearmed;
        this.swept.locality += r.localityEnded;
      }
    }
    this.model.advanceTo(target);
    this.check();
  }

  /** Sends one packet to both and expects the same verdict and real server. */
  send(p: ModelPacket): string | undefined {
    this.steps++;
    const frame = buildFrame({
      srcMac: '02:00:00:00:02:05',
      ip: { src: p.saddr, dst: p.daddr },
      ...(p.protocol === 'tcp'
        ? { tcp: { sport: p.sport, dport: p.dport, flags: p.flags ?? 'A', seq: 1 } }
        : { udp: { sport: p.sport, dport: p.dport } }),
      payload: 'x',
    });
    const { verdict, out } = this.lab.run(frame);
    const draws = L.twosDraws.decode(this.lab.lb.dataplane.map('twos_draws').lookup(Buffer.alloc(4))!);
    const expected = this.model.packet({ ...p, draws: [draws.r1, draws.r2, draws.r1Hi, draws.r2Hi] });
    const got = verdict === 'redirect' || verdict === 'tx' ? this.realOf(out, p.daddr) : verdict;
    const want = expected.verdict === 'fwd' ? expected.real.address : expected.verdict;
    expect(got, `${this.where}: ${p.protocol} ${p.saddr}:${p.sport} -> ${p.daddr}:${p.dport} ${p.flags ?? ''}`).toBe(want);
    this.check();
    return expected.verdict === 'fwd' ? expected.real.address : undefined;
  }

  /** Every real server's counts agree with the model's. */
  /** What the sweeper did over the run: proof that expiry and re-arming were exercised. */
  readonly swept = { conns: 0n, templatesEnded: 0n, templatesRearmed: 0n, locality: 0 };

  check(): void {
    const [info] = this.lab.lb.list();
    const got = new Map(info!.realServers.map((r) => [r.address, { active: r.activeConns, inactive: r.inactiveConns, persist: r.persistConns }]));
    expect(got, `counts, ${this.where}`).toEqual(this.model.counts());
    expect(info!.realServers.map((r) => r.address), `list order, ${this.where}`).toEqual(this.model.reals.map((r) => r.address));
  }

  private realOf(out: Buffer, daddr: string): string {
    const f = parseFrame(out);
    if (f.ip && f.ip.dst !== daddr) return f.ip.dst;
    return REAL_BY_MAC.get(f.dstMac) ?? `mac ${f.dstMac}`;
  }
}

function flagNames(scheduler: string, bits: number): string[] {
  const names = scheduler === 'sh' ? ['sh-fallback', 'sh-port'] : scheduler === 'mh' ? ['mh-fallback', 'mh-port'] : ['flag-1', 'flag-2'];
  return names.filter((_, i) => bits & (1 << i));
}

export interface TrafficMix {
  steps: number;
  /** Virtual addresses packets go to (a firewall-mark service's rule covers them all). */
  vips: string[];
  /** Destination ports (port-0 and firewall-mark services take any). */
  ports: number[];
  /** Client addresses are 10.2.<1..nets>.<1..hosts>. */
  nets?: number;
  hosts?: number;
  /** Allow weight, threshold and real-server list changes. */
  changes?: boolean;
  /** Largest time step, in seconds. */
  maxAdvance?: number;
}

/**
 * Random traffic and configuration changes, the same for the dataplane and the model: new
 * connections (SYN or a first datagram), data, FIN, RST and reused ports on the connections it
 * opened, time passing, weights, thresholds, real servers added and removed.
 */
export function randomTraffic(d: Differential, rand: () => number, mix: TrafficMix): void {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const open: ModelPacket[] = [];
  const tcp = d.model.protocol === 'tcp';
  const nets = mix.nets ?? 3;
  const hosts = mix.hosts ?? 40;
  for (let step = 0; step < mix.steps; step++) {
    const r = rand();
    const known = open.length ? pick(open) : undefined;
    if (r < 0.38 || !known) {
      const p: ModelPacket = {
        protocol: d.model.protocol,
        saddr: `10.2.${1 + Math.floor(rand() * nets)}.${1 + Math.floor(rand() * hosts)}`,
        sport: 1024 + Math.floor(rand() * 60000),
        daddr: pick(mix.vips),
        dport: pick(mix.ports),
        ...(tcp ? { flags: 'S' } : {}),
      };
      if (d.send(p)) {
        open.push(p);
        if (tcp && rand() < 0.6) d.send({ ...p, flags: 'A' });
      }
    } else if (r < 0.6) {
      d.send({ ...known, ...(tcp ? { flags: pick(['A', 'PA']) } : {}) });
    } else if (r < 0.66 && tcp) {
      d.send({ ...known, flags: 'FA' });
    } else if (r < 0.69 && tcp) {
      d.send({ ...known, flags: 'R' });
    } else if (r < 0.72 && tcp) {
      d.send({ ...known, flags: 'S' });
    } else if (r < 0.82) {
      d.advance(1 + Math.floor(rand() * rand() * (mix.maxAdvance ?? 40)));
    } else if (!mix.changes) {
      continue;
    } else if (r < 0.88 && d.model.reals.length) {
      d.editReal(pick(d.model.reals), { weight: Math.floor(rand() * 5) });
    } else if (r < 0.93 && d.model.reals.length) {
      const upper = rand() < 0.4 ? 0 : 2 + Math.floor(rand() * 9);
      d.editReal(pick(d.model.reals), { upper, lower: upper ? Math.floor(rand() * (upper + 1)) : 0 });
    } else if (r < 0.97 && d.freeAddresses().length) {
      d.addReal(pick(d.freeAddresses()), { weight: Math.floor(rand() * 5) });
    } else if (d.model.reals.length > 1) {
      d.deleteReal(pick(d.model.reals));
    }
  }
}
