// Throughput through namespaces, all contenders in one run on the same topology: the live-frames
// generator transmits many flows to the virtual service from the client namespace, the balancer
// namespace forwards them, and sinks count what reaches the real servers. Everything happens on
// the generator's CPU (veth delivery runs in its softirq), so the numbers are single-core.
//
//   (a) the minimal XDP forwarder (MAC rewrite only): the limit of this path
//   (a′) the same with bpf_fib_lookup choosing port and MACs, as xvs forwards
//   (b) xvs DR, established connections      (b′) xvs DR, every packet a new connection
//   (c) xvs NAT, established connections
//   (d) nftables DNAT through the kernel stack, `numgen random mod N` as kube-proxy balances
//   (e) kernel IPVS (DR) through ipvsadm, where the ip_vs module exists
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Balancer } from '../lib/balancer.js';
import type { Namespace } from '../lib/topology.js';
import { CLIENT_FLOWS, type FrameSpec, frameTemplate, TCP_ACK, TCP_SYN } from './frames.js';
import { type LabReal, type ThroughputLab, throughputLab, VIP } from './lab.js';
import type { Profile } from './profile.js';
import { describeReasons, type Progress } from './progress.js';
import { Forwarder, Sender, Sink, type TrafficSpec } from './programs.js';

export interface ThroughputRow {
  key: string;
  name: string;
  status: 'measured' | 'absent';
  /** Why a contender could not run. */
  note?: string;
  /** Median over trials of frames that reached the real servers, per second, in millions. */
  mpps?: number;
  /** mpps / mpps of (a). */
  ratio?: number;
  trialsMpps?: number[];
  /** The generator's rate in the median trial. */
  sentMpps?: number;
  /** Shares of the frames sent (median trial) that did not reach a real server addressed right. */
  loss?: Loss;
  /** 1000 / mpps − 1000 / (harness ceiling): the balancer stage's nanoseconds per frame. */
  stageNs?: number;
}

/** Where frames were lost, as shares of the frames sent. */
export interface Loss {
  total: number;
  /** The balancer's input ring was full: offered load above what the path can take. */
  inputRing: number;
  /** A real server's ring was full after the balancer forwarded the frame. */
  outputRing: number;
  /** Anything else: passed or dropped by the balancer or the kernel stack, misaddressed. */
  other: number;
}

export interface ThroughputResult {
  seconds: number;
  trials: number;
  flows: number;
  reals: number;
  rows: ThroughputRow[];
}

const PORT = 80;

/** What a contender set up: where frames are counted, and the traffic it needs. */
interface Setup {
  sinks: Sink[];
  /** Flags of the frames that open the flows before the measurement (SYN, or ACK for conntrack). */
  openWith: number;
  /** Flags of the measured frames. */
  measureWith: number;
  /** Every measured packet is a flow never seen before. */
  freshFlows?: boolean;
  /** Added to the row, e.g. the balancer's counters. */
  describe?(): string;
  /** Removes what setup added, sinks included. */
  teardown(): Promise<void>;
}

interface Contender {
  key: string;
  name: string;
  /** A reason when the contender cannot run on this machine. */
  absent?(): string | undefined;
  setup(lab: ThroughputLab): Promise<Setup>;
}

function attachedBalancer(lab: ThroughputLab, method: 'dr' | 'nat'): Balancer {
  const lb = Balancer.open({ netns: lab.lb.name });
  try {
    const svc = { protocol: 'tcp' as const, address: VIP, port: PORT };
    lb.addService(svc, { scheduler: 'rr' });
    for (const r of lab.reals) lb.addRealServer(svc, { address: r.address, port: PORT }, { method });
    lb.attach(lab.lbClientIf.name, { mode: 'native' });
    return lb;
  } catch (e) {
    lb.close();
    throw e;
  }
}

function forwarderSetup(lab: ThroughputLab, fwd: Forwarder): Setup {
  const link = withCleanup(() => fwd.program.attachXdp(lab.lbClientIf.name, { mode: 'native', netns: lab.lb.name }), () => fwd.close());
  const sinks = withCleanup(() => attachSinks(lab, () => VIP), () => {
    link.close();
    fwd.close();
  });
  return {
    sinks,
    openWith: TCP_ACK,
    measureWith: TCP_ACK,
    teardown: async () => {
      closeAll(sinks);
      link.close();
      fwd.close();
    },
  };
}

function xvsSetup(lab: ThroughputLab, method: 'dr' | 'nat', freshFlows = false): Setup {
  const lb = attachedBalancer(lab, method);
  const sinks = withCleanup(() => attachSinks(lab, (r) => (method === 'dr' ? VIP : r.address)), () => lb.close());
  return {
    sinks,
    openWith: TCP_SYN,
    measureWith: freshFlows ? TCP_SYN : TCP_ACK,
    freshFlows,
    describe: () => describeReasons(lb.reasons()).text,
    teardown: async () => {
      closeAll(sinks);
      lb.close();
    },
  };
}

/** Runs make(); if it throws, runs undo() and rethrows. */
function withCleanup<T>(make: () => T, undo: () => void): T {
  try {
    return make();
  } catch (e) {
    undo();
    throw e;
  }
}

function closeAll(sinks: Sink[]): void {
  for (const s of sinks) s.close();
}

export const CONTENDERS: Contender[] = [
  {
    key: 'ceiling',
    name: 'generator → sink on the balancer\'s input (harness ceiling)',
    async setup(lab) {
      const sink = new Sink(lab.lbClientIf.mac, VIP);
      withCleanup(() => sink.attach(lab.lbClientIf.name, lab.lb.name), () => sink.close());
      return { sinks: [sink], openWith: TCP_ACK, measureWith: TCP_ACK, teardown: async () => sink.close() };
    },
  },
  {
    key: 'a',
    name: '(a) minimal XDP forwarder (MAC rewrite)',
    setup: async (lab) =>
      forwarderSetup(lab, Forwarder.macRewrite(lab.reals.map((r) => ({ ifindex: r.lbIf.ifindex, dmac: r.mac, smac: r.lbIf.mac })))),
  },
  {
    key: 'a-fib',
    name: '(a′) XDP forwarder with bpf_fib_lookup',
    setup: async (lab) => forwarderSetup(lab, Forwarder.fibLookup(lab.reals.map((r) => r.address))),
  },
  { key: 'b', name: '(b) xvs DR', setup: async (lab) => xvsSetup(lab, 'dr') },
  { key: 'b-new', name: '(b′) xvs DR, every packet a new connection', setup: async (lab) => xvsSetup(lab, 'dr', true) },
  { key: 'c', name: '(c) xvs NAT', setup: async (lab) => xvsSetup(lab, 'nat') },
  {
    key: 'd',
    name: '(d) nftables DNAT (numgen random), kernel stack',
    absent: () => (commandExists('nft') ? undefined : 'nft (nftables) is not installed'),
    setup: (lab) => {
      const map = lab.reals.map((r, i) => `${i} : ${r.address}`).join(', ');
      const ruleset = [
        'table ip xvsbench {',
        '  chain prerouting {',
        '    type nat hook prerouting priority dstnat; policy accept;',
        `    ip daddr ${VIP} tcp dport ${PORT} dnat to numgen random mod ${lab.reals.length} map { ${map} }`,
        '  }',
        '}',
      ].join('\n');
      return commandSetup(lab, {
        load: async () => {
          execFileSync('ip', ['netns', 'exec', lab.lb.name, 'nft', '-f', '-'], { input: ruleset, stdio: ['pipe', 'ignore', 'pipe'] });
        },
        unload: async () => void (await lab.lb.exec(['nft', 'delete', 'table', 'ip', 'xvsbench'])),
        expectedDaddr: (r) => r.address,
        // conntrack (loose) picks up a flow from any packet; a lone SYN then ACKs would be invalid.
        openWith: TCP_ACK,
      });
    },
  },
  {
    key: 'e',
    name: '(e) kernel IPVS (DR) via ipvsadm',
    absent: ipvsAbsence,
    setup: (lab) => {
      const vip = `${VIP}:${PORT}`;
      return commandSetup(lab, {
        load: async () => {
          await lab.lb.ip(['addr', 'add', `${VIP}/32`, 'dev', 'lo']);
          await lab.lb.exec(['ipvsadm', '-A', '-t', vip, '-s', 'rr']);
          for (const r of lab.reals) await lab.lb.exec(['ipvsadm', '-a', '-t', vip, '-r', `${r.address}:${PORT}`, '-g']);
        },
        unload: async () => {
          await lab.lb.exec(['ipvsadm', '-C']);
          await lab.lb.ip(['addr', 'flush', 'dev', 'lo', 'to', `${VIP}/32`]);
        },
        expectedDaddr: () => VIP,
        openWith: TCP_SYN,
      });
    },
  },
];

/** A kernel balancer configured by commands (nft, ipvsadm), with sinks on the real servers. */
async function commandSetup(
  lab: ThroughputLab,
  c: { load(): Promise<void>; unload(): Promise<void>; expectedDaddr: (real: LabReal) => string; openWith: number },
): Promise<Setup> {
  let sinks: Sink[];
  try {
    await c.load();
    sinks = attachSinks(lab, c.expectedDaddr);
  } catch (e) {
    await c.unload().catch(() => undefined); // what failed is e; a half-done load may not unload
    throw e;
  }
  return {
    sinks,
    openWith: c.openWith,
    measureWith: TCP_ACK,
    teardown: async () => {
      closeAll(sinks);
      await c.unload();
    },
  };
}

function commandExists(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Why kernel IPVS cannot be measured here, or undefined when it can. */
export function ipvsAbsence(): string | undefined {
  if (!existsSync('/sys/module/ip_vs') && !existsSync('/proc/net/ip_vs')) {
    let loaded = false;
    if (commandExists('modprobe')) {
      try {
        execFileSync('modprobe', ['-q', 'ip_vs'], { stdio: 'ignore' });
        loaded = existsSync('/sys/module/ip_vs');
      } catch {
        loaded = false;
      }
    }
    if (!loaded) return 'absent: the kernel has no ip_vs module (not built in, not loadable)';
  }
  if (!commandExists('ipvsadm')) return 'absent: ipvsadm is not installed';
  return undefined;
}

export async function runThroughput(profile: Profile, progress: Progress): Promise<ThroughputResult> {
  const p = profile.throughput;
  progress.step('throughput', `namespaces: client, lb, ${p.reals} real servers`);
  const lab = await throughputLab(p.reals);
  const rows: ThroughputRow[] = [];
  try {
    for (const c of CONTENDERS) {
      const reason = c.absent?.();
      if (reason) {
        rows.push({ key: c.key, name: c.name, status: 'absent', note: reason });
        progress.step('throughput', `${c.name}: ${reason}`);
        continue;
      }
      progress.step('throughput', `${c.name}: ${p.trials} × ${p.seconds} s`);
      rows.push(await measureContender(lab, c, p, progress));
    }
  } finally {
    await lab.destroy();
  }
  const limit = rows.find((r) => r.key === 'a')?.mpps;
  const ceiling = rows.find((r) => r.key === 'ceiling')?.mpps;
  for (const r of rows) {
    if (r.mpps === undefined) continue;
    if (limit) r.ratio = r.mpps / limit;
    if (ceiling && r.key !== 'ceiling') r.stageNs = 1000 / r.mpps - 1000 / ceiling;
  }
  return { seconds: p.seconds, trials: p.trials, flows: p.flows, reals: p.reals, rows };
}

/** The frames the generator sends towards the virtual service. */
export function clientTraffic(lab: ThroughputLab, flags: number, flows: number, start = 0): TrafficSpec {
  const spec: FrameSpec = {
    srcMac: lab.clientIf.mac, dstMac: lab.lbClientIf.mac, proto: 'tcp', tcpFlags: flags,
    server: { address: VIP, port: PORT },
  };
  return { template: frameTemplate(spec), space: CLIENT_FLOWS, flows, start };
}

/** Loads and attaches a sink on every real server, expecting frames to `expectedDaddr(real)`. */
export function attachSinks(lab: ThroughputLab, expectedDaddr: (real: LabReal) => string): Sink[] {
  const sinks: Sink[] = [];
  try {
    for (const r of lab.reals) {
      const sink = new Sink(r.mac, expectedDaddr(r));
      sinks.push(sink);
      sink.attach('eth0', r.ns.name);
    }
    return sinks;
  } catch (e) {
    closeAll(sinks);
    throw e;
  }
}

export function readSinks(sinks: Sink[]): { frames: number; expected: number; perReal: number[] } {
  const counts = sinks.map((s) => s.read());
  return {
    frames: counts.reduce((n, c) => n + c.frames, 0),
    expected: counts.reduce((n, c) => n + c.expected, 0),
    perReal: counts.map((c) => c.frames),
  };
}

/** A veth counter (ethtool -S): on a sending veth, tx_queue_0_xdp_xmit_errors counts the frames
 * redirected into it that the peer's full ring refused. */
function vethCounter(ns: Namespace, dev: string, name: string): number {
  const out = execFileSync('ip', ['netns', 'exec', ns.name, 'ethtool', '-S', dev], { encoding: 'utf8' });
  const m = new RegExp(`^\\s*${name}: (\\d+)$`, 'm').exec(out);
  return m ? Number(m[1]) : 0;
}

/** Frames refused by full rings: at the balancer's input, and towards the real servers. */
export interface RingDrops {
  input: number;
  output: number;
}

export function ringDrops(lab: ThroughputLab): RingDrops {
  const counter = 'tx_queue_0_xdp_xmit_errors';
  return {
    input: vethCounter(lab.client, 'eth0', counter),
    output: lab.reals.reduce((n, r) => n + vethCounter(lab.lb, r.lbIf.name, counter), 0),
  };
}

interface Trial {
  mpps: number;
  sentMpps: number;
  loss: Loss;
}

/** Sends for `seconds` and counts what arrived addressed right, and where the rest was lost. */
export function trial(lab: ThroughputLab, sender: Sender, sinks: Sink[], seconds: number, chunk: number): Trial & { perReal: number[] } {
  for (const s of sinks) s.zero();
  const before = ringDrops(lab);
  const { sent, seconds: took } = sender.sendFor(seconds, chunk);
  const after = ringDrops(lab);
  const got = readSinks(sinks);
  return {
    mpps: got.expected / took / 1e6,
    sentMpps: sent / took / 1e6,
    loss: lossOf(sent, got.expected, before, after),
    perReal: got.perReal,
  };
}

/** Shares of `sent` that were lost, from the ring counters before and after (ringDrops). */
export function lossOf(sent: number, delivered: number, before: RingDrops, after: RingDrops): Loss {
  const inputRing = (after.input - before.input) / sent;
  const outputRing = (after.output - before.output) / sent;
  const total = 1 - delivered / sent;
  return { total, inputRing, outputRing, other: total - inputRing - outputRing };
}

async function measureContender(lab: ThroughputLab, c: Contender, p: Profile['throughput'], progress: Progress): Promise<ThroughputRow> {
  const setup = await c.setup(lab);
  try {
    const opener = new Sender(clientTraffic(lab, setup.openWith, p.flows), lab.clientIf.ifindex, lab.client.name);
    try {
      opener.send(p.flows);
    } finally {
      opener.close();
    }
    // Fresh flows start after the opened ones, so that none of them finds a connection.
    const traffic = clientTraffic(lab, setup.measureWith, setup.freshFlows ? 0 : p.flows, setup.freshFlows ? p.flows : 0);
    const sender = new Sender(traffic, lab.clientIf.ifindex, lab.client.name);
    const trials: Trial[] = [];
    try {
      for (let t = 0; t < p.trials; t++) trials.push(trial(lab, sender, setup.sinks, p.seconds, p.chunk));
    } finally {
      sender.close();
    }
    const byRate = [...trials].sort((x, y) => x.mpps - y.mpps);
    const mid = byRate[byRate.length >> 1]!;
    const row: ThroughputRow = {
      key: c.key, name: c.name, status: 'measured', mpps: mid.mpps, trialsMpps: trials.map((t) => t.mpps),
      sentMpps: mid.sentMpps, loss: mid.loss,
    };
    const path = setup.describe?.();
    if (path) row.note = `xvs counters: ${path}`;
    if (mid.loss.other > 0.001) progress.warn(`${c.name}: ${(mid.loss.other * 100).toFixed(2)}% of frames lost other than at a full ring`);
    progress.step('throughput', `${c.name}: ${mid.mpps.toFixed(2)} Mpps at the receivers (offered ${mid.sentMpps.toFixed(2)} Mpps)`);
    return row;
  } finally {
    await setup.teardown();
  }
}
