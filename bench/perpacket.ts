// Per-packet cost with BPF_PROG_TEST_RUN: the generator (bench_gen_call) writes flow after flow
// and tail-calls the program under test, so a run of N packets covers many flows, and a program
// that rewrites packets (NAT) always sees a fresh frame. The kernel reports the average time per
// run; the generator's own cost is the "harness" row (generator → empty program), and each row
// also gives its cost over that.
import { Balancer } from '../lib/balancer.js';

type ServiceKey = { protocol: 'tcp'; address: string; port: number };
import { type BpfProgram, XDP_PASS, XDP_REDIRECT } from '../lib/libbpf.js';
import { CLIENT_FLOWS, type FrameSpec, frameTemplate, TCP_ACK, TCP_SYN } from './frames.js';
import { packetLab, PACKET_LAB_GATEWAY_MAC, packetLabReal, type PacketLab, VIP } from './lab.js';
import type { Profile } from './profile.js';
import { describeReasons, median, type Progress } from './progress.js';
import { Driver, EmptyProgram, Forwarder, type TrafficSpec } from './programs.js';

/** The schedulers measured on the new-connection path: add a scheduler's ipvsadm name here. */
export const NEW_CONNECTION_SCHEDULERS = [
  'rr', 'wrr', 'lc', 'wlc', 'sed', 'nq', 'fo', 'ovf', 'twos', 'dh', 'sh', 'mh', 'lblc', 'lblcr',
];

export interface PerPacketRow {
  key: string;
  name: string;
  /** Median of the trials: kernel-reported nanoseconds per packet, generator included. */
  ns: number;
  /** ns minus the harness (generator → empty program): what the program adds to an empty one. */
  overEmptyNs: number;
  trialsNs: number[];
  /** Where xvs counted the packets (its reason counters), or the verdict of other programs. */
  path: string;
}

export interface PerPacketResult {
  repeat: number;
  trials: number;
  flows: number;
  /** The empty program run directly on one frame: the cost of the test loop alone. */
  emptyDirectNs: number;
  /** The generator tail-calling the empty program: subtracted to give overEmptyNs. */
  harnessNs: number;
  /** Connection-table entries one connection takes, counted after opening `flows` of each. */
  entriesPerConnection: { dr: number; nat: number };
  rows: PerPacketRow[];
}

const SERVICE_DR: ServiceKey = { protocol: 'tcp', address: VIP, port: 80 };
const SERVICE_NAT: ServiceKey = { protocol: 'tcp', address: VIP, port: 8080 };
const NOT_A_SERVICE = { address: '10.9.0.1', port: 80 };

/** Frames from the clients' gateway into the balancer's `clients` interface. */
export function clientFrames(lab: PacketLab, server: { address: string; port: number }, flags: number): FrameSpec {
  return { srcMac: PACKET_LAB_GATEWAY_MAC, dstMac: lab.clients.mac, proto: 'tcp', tcpFlags: flags, server };
}

/** A balancer in the packet lab with a DR service (VIP:80) and `reals` real servers (weights 1–4). */
export function labBalancer(lab: PacketLab, opts: { maxConnections: number; scheduler: string; reals: number }): Balancer {
  const lb = Balancer.open({ netns: lab.ns.name, maxConnections: opts.maxConnections });
  try {
    lb.addService(SERVICE_DR, { scheduler: opts.scheduler });
    for (let i = 1; i <= opts.reals; i++) {
      lb.addRealServer(SERVICE_DR, { address: packetLabReal(i).address }, { weight: 1 + (i % 4) });
    }
    return lb;
  } catch (e) {
    lb.close();
    throw e;
  }
}

/** Entries in the balancer's connection table (those whose value passes `keep`, if given),
 * read in batches, which does not touch the LRU's reference bits. */
export function countConnections(lb: Balancer, keep: (value: Buffer) => boolean = () => true): number {
  let n = 0;
  for (const [, value] of lb.dataplane.map('conns').entries()) if (keep(value)) n++;
  return n;
}

export class PacketBench {
  readonly rows: PerPacketRow[] = [];
  harnessNs = NaN;

  constructor(
    readonly lab: PacketLab,
    private readonly profile: { repeat: number; trials: number },
    private readonly progress: Progress,
  ) {}

  /** Runs `traffic` through `target` repeat × trials times; returns the per-trial ns. */
  measure(
    traffic: TrafficSpec,
    target: BpfProgram,
    ingress: 'clients' | 'reals' = 'clients',
    { repeat, trials: count } = this.profile,
  ): { trials: number[]; verdict: number } {
    const driver = new Driver(traffic, target);
    try {
      const trials: number[] = [];
      let verdict = -1;
      for (let t = 0; t < count; t++) {
        const r = driver.run(repeat, this.lab.ns.name, this.lab[ingress].ifindex);
        trials.push(r.ns);
        verdict = r.verdict;
      }
      return { trials, verdict };
    } finally {
      driver.close();
    }
  }

  /** Sends `count` packets, by default each flow once (e.g. the SYNs that open the connections
   * measured afterwards). */
  prime(traffic: TrafficSpec, target: BpfProgram, count = traffic.flows): void {
    const driver = new Driver(traffic, target);
    try {
      driver.run(count, this.lab.ns.name, this.lab.clients.ifindex);
    } finally {
      driver.close();
    }
  }

  record(key: string, name: string, trials: number[], path: string): void {
    const ns = median(trials);
    this.rows.push({ key, name, ns, overEmptyNs: ns - this.harnessNs, trialsNs: trials, path });
    this.progress.step('per-packet', `${name}: ${ns} ns (${path})`);
  }

  /** Measures xvs and checks from its counters that every packet took the path `expect`. */
  measureXvs(key: string, name: string, lb: Balancer, traffic: TrafficSpec, expect: string, ingress: 'clients' | 'reals' = 'clients'): void {
    lb.zero();
    const { trials } = this.measure(traffic, lb.dataplane.program, ingress);
    const { text, shares } = describeReasons(lb.reasons());
    if ((shares[expect] ?? 0) < 0.999) this.progress.warn(`${name}: expected every packet as ${expect}, got ${text}`);
    this.record(key, name, trials, text);
  }
}

function verdictName(v: number): string {
  return v === XDP_PASS ? 'XDP_PASS' : v === XDP_REDIRECT ? 'XDP_REDIRECT' : `verdict ${v}`;
}

export async function runPerPacket(profile: Profile, progress: Progress): Promise<PerPacketResult> {
  const p = profile.perPacket;
  progress.step('per-packet', `namespace with ${Math.max(...p.realCounts)} real servers' neighbours`);
  const lab = await packetLab(Math.max(10, ...p.realCounts));
  const bench = new PacketBench(lab, p, progress);
  const empty = new EmptyProgram();
  try {
    const emptyDirectNs = median(Array.from({ length: p.trials }, () => empty.runDirect(p.repeat)));
    progress.step('per-packet', `empty XDP program, run directly: ${emptyDirectNs} ns`);
    const ack = (server: { address: string; port: number }, flows = p.flows): TrafficSpec => ({
      template: frameTemplate(clientFrames(lab, server, TCP_ACK)), space: CLIENT_FLOWS, flows,
    });

    const harness = bench.measure(ack(SERVICE_DR), empty.program);
    bench.harnessNs = median(harness.trials);
    bench.record('harness', 'generator → empty XDP program (harness)', harness.trials, verdictName(harness.verdict));

    const forwarders = [
      { key: 'forwarder', name: 'minimal forwarder (MAC rewrite + redirect)',
        make: () => Forwarder.macRewrite([{ ifindex: lab.reals.ifindex, dmac: packetLabReal(1).mac, smac: lab.reals.mac }]) },
      { key: 'forwarder-fib', name: 'forwarder with bpf_fib_lookup (+ MAC rewrite + redirect)',
        make: () => Forwarder.fibLookup([packetLabReal(1).address]) },
    ];
    for (const f of forwarders) {
      const fwd = f.make();
      try {
        const r = bench.measure(ack(SERVICE_DR), fwd.program);
        bench.record(f.key, f.name, r.trials, verdictName(r.verdict));
      } finally {
        fwd.close();
      }
    }

    const entriesPerConnection = establishedPaths(bench, ack, p);
    newConnections(bench, p);
    return {
      repeat: p.repeat, trials: p.trials, flows: p.flows, emptyDirectNs, harnessNs: bench.harnessNs,
      entriesPerConnection, rows: bench.rows,
    };
  } finally {
    empty.close();
    await lab.destroy();
  }
}

function establishedPaths(
  bench: PacketBench,
  ack: (server: { address: string; port: number }) => TrafficSpec,
  p: Profile['perPacket'],
): PerPacketResult['entriesPerConnection'] {
  const lab = bench.lab;
  // DR and NAT services side by side; NAT has one real server so that replies know their source.
  const lb = labBalancer(lab, { maxConnections: 4 * p.flows + 1024, scheduler: 'rr', reals: 10 });
  try {
    lb.addService(SERVICE_NAT, { scheduler: 'rr' });
    const natReal = packetLabReal(1).address;
    lb.addRealServer(SERVICE_NAT, { address: natReal, port: 80 }, { method: 'nat' });
    const syn = (svc: ServiceKey): TrafficSpec => ({ ...ack(svc), template: frameTemplate(clientFrames(lab, svc, TCP_SYN)) });
    bench.prime(syn(SERVICE_DR), lb.dataplane.program);
    const dr = countConnections(lb) / p.flows;
    bench.prime(syn(SERVICE_NAT), lb.dataplane.program);
    const nat = countConnections(lb) / p.flows - dr;

    bench.measureXvs('xvs-dr', 'xvs DR, established connection', lb, ack(SERVICE_DR), 'fwd_redirect');
    bench.measureXvs('xvs-nat-in', 'xvs NAT, established, client → real', lb, ack(SERVICE_NAT), 'fwd_redirect');
    const reply: TrafficSpec = {
      ...ack(SERVICE_NAT),
      template: frameTemplate({
        srcMac: packetLabReal(1).mac, dstMac: lab.reals.mac, proto: 'tcp', tcpFlags: TCP_ACK,
        server: { address: natReal, port: 80 }, clientIsDst: true,
      }),
    };
    bench.measureXvs('xvs-nat-out', 'xvs NAT, established, real → client', lb, reply, 'fwd_redirect', 'reals');
    bench.measureXvs('xvs-no-service', 'xvs, traffic for no service', lb, ack(NOT_A_SERVICE), 'pass_no_service');
    return { dr, nat };
  } finally {
    lb.close();
  }
}

function newConnections(bench: PacketBench, p: Profile['perPacket']): void {
  const lab = bench.lab;
  const fresh: TrafficSpec = {
    template: frameTemplate(clientFrames(lab, SERVICE_DR, TCP_SYN)), space: CLIENT_FLOWS, flows: 0,
  };
  for (const scheduler of NEW_CONNECTION_SCHEDULERS) {
    for (const reals of p.realCounts) {
      // Room for every connection the trials open: none is evicted, so no eviction is measured.
      const lb = labBalancer(lab, { maxConnections: p.repeat * p.trials + 1024, scheduler, reals });
      try {
        bench.measureXvs(`xvs-new-${scheduler}-${reals}`, `xvs new connection, ${scheduler}, ${reals} reals`, lb, fresh, 'fwd_redirect');
      } finally {
        lb.close();
      }
    }
  }
}
