// The benchmark's own XDP programs (bench/bpf/bench_*.bpf.c): the traffic generator, the empty
// baseline, the minimal MAC-rewrite forwarder and the counting sink of the real servers.
import { join } from 'node:path';
import { u32 } from '../lib/dataplane.js';
import {
  BPF_F_TEST_XDP_LIVE_FRAMES,
  BpfObject,
  type BpfMap,
  type BpfProgram,
  type GlobalValue,
  type XdpLink,
  sumU64PerCpu,
  withNetns,
} from '../lib/libbpf.js';
import { packageRoot } from '../lib/native.js';
import { FRAME_LEN, type FlowSpace, type FrameTemplate, ipv4Number } from './frames.js';

function objectPath(name: string): string {
  return join(packageRoot(), 'build', 'bpf', `${name}.bpf.o`);
}

/** Opens, configures (rodata/data globals) and loads one of the bench objects. */
function load(name: string, globals: Record<string, Record<string, GlobalValue>> = {}): BpfObject {
  const obj = BpfObject.open(objectPath(name));
  try {
    for (const [section, values] of Object.entries(globals)) obj.setGlobals(section, values);
    obj.load();
    return obj;
  } catch (e) {
    obj.close();
    throw e;
  }
}

const LOOPBACK_IFINDEX = 1;

/** The context of a non-live test run: the frame arrives on `ifindex`. */
function xdpContext(ifindex: number): Buffer {
  const ctx = Buffer.alloc(24); // struct xdp_md
  ctx.writeUInt32LE(FRAME_LEN, 4); // data_end
  ctx.writeUInt32LE(ifindex, 12); // ingress_ifindex
  return ctx;
}

export interface TrafficSpec {
  template: FrameTemplate;
  space: FlowSpace;
  /** Distinct flows cycled through; 0: every packet a new flow. */
  flows: number;
  /** Sequence number of the first packet (default 0). */
  start?: number;
}

function generatorGlobals(spec: TrafficSpec, ifindex = 0): Record<string, Record<string, GlobalValue>> {
  const t = spec.template;
  return {
    '.rodata': {
      bench_gen_frame: t.frame,
      bench_gen_client_is_dst: t.clientIsDst,
      bench_gen_ip_sum: t.ipSum,
      bench_gen_l4_sum: t.l4Sum,
      bench_gen_addr_base: ipv4Number(spec.space.addrBase),
      bench_gen_port_base: spec.space.portBase,
      bench_gen_ports_per_addr: spec.space.portsPerAddr,
      bench_gen_flows: spec.flows,
      bench_gen_ifindex: ifindex,
    },
    '.bss': { bench_gen_seq: BigInt(spec.start ?? 0) },
  };
}

/**
 * Runs a program under test over generated frames: one BPF_PROG_TEST_RUN of the generator, which
 * writes flow after flow and tail-calls the program, in the namespace whose routes and neighbours
 * the program's bpf_fib_lookup must see.
 */
export class Driver {
  private readonly obj: BpfObject;
  private readonly prog: BpfProgram;

  constructor(spec: TrafficSpec, target: BpfProgram) {
    this.obj = load('bench_gen', generatorGlobals(spec));
    this.prog = this.obj.program('bench_gen_call');
    const slots = this.obj.map('bench_gen_target');
    try {
      slots.update(u32(0), u32(target.fd));
    } finally {
      slots.close();
    }
  }

  /**
   * Runs `repeat` packets as if received on `ingressIfindex` of `netns` (default: lo of this
   * namespace); returns the kernel's average ns per packet, the last verdict and the last frame.
   */
  run(repeat: number, netns?: string, ingressIfindex = LOOPBACK_IFINDEX): { ns: number; verdict: number; frame: Buffer } {
    const once = () => this.prog.testRun({ data: Buffer.alloc(FRAME_LEN), ctx: xdpContext(ingressIfindex), repeat });
    const r = netns ? withNetns(netns, once) : once();
    return { ns: r.durationNs, verdict: r.retval, frame: r.data };
  }

  close(): void {
    this.prog.close();
    this.obj.close();
  }
}

/** A live-frames traffic generator: every frame it writes is transmitted on `ifindex`. */
export class Sender {
  private readonly obj: BpfObject;
  private readonly prog: BpfProgram;

  constructor(
    spec: TrafficSpec,
    ifindex: number,
    private readonly netns: string,
  ) {
    this.obj = load('bench_gen', generatorGlobals(spec, ifindex));
    this.prog = this.obj.program('bench_gen_send');
  }

  /** Transmits `count` frames from the calling CPU. */
  send(count: number): void {
    withNetns(this.netns, () =>
      this.prog.testRun({ data: Buffer.alloc(FRAME_LEN), repeat: count, flags: BPF_F_TEST_XDP_LIVE_FRAMES }),
    );
  }

  /** Sends in chunks until `seconds` have passed; returns frames sent and the time taken. */
  sendFor(seconds: number, chunk: number): { sent: number; seconds: number } {
    const start = process.hrtime.bigint();
    const end = start + BigInt(Math.round(seconds * 1e9));
    let sent = 0;
    let now = start;
    do {
      this.send(chunk);
      sent += chunk;
      now = process.hrtime.bigint();
    } while (now < end);
    return { sent, seconds: Number(now - start) / 1e9 };
  }

  close(): void {
    this.prog.close();
    this.obj.close();
  }
}

/** The empty XDP program: the per-packet floor of BPF_PROG_TEST_RUN. */
export class EmptyProgram {
  private readonly obj = load('bench_empty');
  readonly program = this.obj.program('bench_empty');

  /** The cost of the empty program run directly, on one frame. */
  runDirect(repeat: number): number {
    return this.program.testRun({ data: Buffer.alloc(FRAME_LEN), repeat }).durationNs;
  }

  close(): void {
    this.program.close();
    this.obj.close();
  }
}

export interface ForwarderPort {
  ifindex: number;
  /** The next hop's MAC (destination) and the egress interface's MAC (source). */
  dmac: string;
  smac: string;
}

function macBuffer(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
}

/** The minimal forwarders (bench/bpf/bench_fwd.bpf.c): to the ports in turn with their MACs, or to the
 * next hops in turn with bpf_fib_lookup finding the port and MACs. */
export class Forwarder {
  private readonly obj: BpfObject;
  readonly program: BpfProgram;

  private constructor(count: number, program: string, fill: (obj: BpfObject) => void) {
    this.obj = load('bench_fwd', { '.rodata': { bench_fwd_nports: count } });
    try {
      fill(this.obj);
      this.program = this.obj.program(program);
    } catch (e) {
      this.obj.close();
      throw e;
    }
  }

  static macRewrite(ports: ForwarderPort[]): Forwarder {
    return new Forwarder(ports.length, 'bench_fwd', (obj) =>
      fillArray(obj, 'bench_fwd_ports', ports.map((p) => {
        const value = Buffer.alloc(16);
        value.writeUInt32LE(p.ifindex, 0);
        macBuffer(p.dmac).copy(value, 4);
        macBuffer(p.smac).copy(value, 10);
        return value;
      })),
    );
  }

  static fibLookup(nexthops: string[]): Forwarder {
    return new Forwarder(nexthops.length, 'bench_fwd_fib', (obj) =>
      fillArray(obj, 'bench_fwd_nexthops', nexthops.map((a) => {
        const value = Buffer.alloc(4);
        value.writeUInt32BE(ipv4Number(a));
        return value;
      })),
    );
  }

  close(): void {
    this.program.close();
    this.obj.close();
  }
}

function fillArray(obj: BpfObject, name: string, values: Buffer[]): void {
  const map = obj.map(name);
  try {
    values.forEach((v, i) => map.update(u32(i), v));
  } finally {
    map.close();
  }
}

/** Frames counted by a sink: all of them, and those addressed as expected. */
export interface SinkCounts {
  frames: number;
  expected: number;
}

/** The receiving end on a real server's interface: counts and drops. */
export class Sink {
  private readonly obj: BpfObject;
  private readonly prog: BpfProgram;
  private readonly counts: BpfMap;
  private readonly index: { frames: number; expected: number };
  private link: XdpLink | undefined;

  /** mac: of the interface it is attached to; daddr: the IPv4 destination the frames must carry. */
  constructor(mac: string, daddr: string) {
    const addr = Buffer.alloc(4);
    addr.writeUInt32BE(ipv4Number(daddr));
    this.obj = load('bench_sink', { '.rodata': { bench_sink_mac: macBuffer(mac), bench_sink_daddr: addr } });
    this.prog = this.obj.program('bench_sink');
    this.counts = this.obj.map('bench_sink_counts');
    const e = new Map((this.obj.btfEnum('bench_sink_counter') ?? []).map((v) => [v.name, v.value]));
    const frames = e.get('BENCH_SINK_FRAMES');
    const expected = e.get('BENCH_SINK_EXPECTED');
    if (frames === undefined || expected === undefined) throw new Error('bench_sink: counters missing from BTF');
    this.index = { frames, expected };
  }

  attach(ifname: string, netns: string): void {
    this.link = this.prog.attachXdp(ifname, { mode: 'native', netns });
  }

  read(): SinkCounts {
    const at = (i: number) => Number(sumU64PerCpu(this.counts.lookupPerCpu(u32(i))!));
    return { frames: at(this.index.frames), expected: at(this.index.expected) };
  }

  zero(): void {
    for (const i of Object.values(this.index)) this.counts.updatePerCpu(u32(i), Buffer.alloc(8));
  }

  close(): void {
    this.link?.close();
    this.counts.close();
    this.prog.close();
    this.obj.close();
  }
}
