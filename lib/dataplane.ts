// The loaded dataplane: the XDP object, its maps, and typed reads and writes of them.
// No policy lives here: the Balancer decides what to write.
import { join } from 'node:path';
import { BpfObject, type BpfMap, type BpfProgram } from './libbpf.js';
import { packageRoot } from './native.js';
import * as L from './layout.js';

export const DEFAULT_MAX_CONNECTIONS = 1 << 20;

/** IPVS's default timeouts (seconds) by connection state, and UDP's. */
export const DEFAULT_TIMEOUTS: Record<string, number> = {
  XVS_TCP_S_NONE: 2,
  XVS_TCP_S_ESTABLISHED: 900,
  XVS_TCP_S_SYN_SENT: 120,
  XVS_TCP_S_SYN_RECV: 60,
  XVS_TCP_S_FIN_WAIT: 120,
  XVS_TCP_S_TIME_WAIT: 120,
  XVS_TCP_S_CLOSE: 10,
  XVS_TCP_S_CLOSE_WAIT: 60,
  XVS_TCP_S_LAST_ACK: 30,
  XVS_TCP_S_LISTEN: 120,
  XVS_TCP_S_SYNACK: 120,
  XVS_UDP_S_NORMAL: 300,
};

export interface DataplaneOptions {
  /** Path of the compiled object; defaults to the package's build/bpf/xvs.bpf.o. */
  objectPath?: string;
  /** Connection entries (a NAT connection takes two); when full, new connections are dropped. */
  maxConnections?: number;
  /** Persistence templates. */
  maxTemplates?: number;
  maxServices?: number;
  maxDests?: number;
}

/** What one run of the sweeper ended. */
export type SweepResult = L.Decoded<typeof L.sweep.fields>;

const MAP_NAMES = [
  'services', 'dests', 'dest_conns', 'conns', 'templates', 'svc_sched', 'sched_slots', 'lblc', 'lblcr',
  'twos_draws', 'mark_prefixes', 'mark_rules', 'nat_reals', 'svc_stats', 'dest_stats', 'reasons', 'config',
];

const ENUM_NAMES = [
  'xvs_fwd', 'xvs_sched', 'xvs_svc_flags', 'xvs_sched_flags', 'xvs_dest_flags', 'xvs_dir', 'xvs_conn_flags',
  'xvs_counted', 'xvs_config_flags', 'xvs_conn_state', 'xvs_reason',
];

export type Stats = Omit<L.Decoded<typeof L.stats.fields>, never>;

export const ZERO_STATS: Stats = { conns: 0n, inpkts: 0n, outpkts: 0n, inbytes: 0n, outbytes: 0n };

export function addStats(a: Stats, b: Stats): Stats {
  return {
    conns: a.conns + b.conns,
    inpkts: a.inpkts + b.inpkts,
    outpkts: a.outpkts + b.outpkts,
    inbytes: a.inbytes + b.inbytes,
    outbytes: a.outbytes + b.outbytes,
  };
}

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};

export class Dataplane {
  readonly object: BpfObject;
  readonly program: BpfProgram;
  /** The sweeper (bpf/xvs_sweep.h), run on demand by sweep(). */
  readonly sweeper: BpfProgram;
  readonly maxServices: number;
  readonly maxDests: number;
  /** enum name → value, for every enum of bpf/xvs_consts.h, read from BTF. */
  readonly enums: ReadonlyMap<string, ReadonlyMap<string, number>>;
  private readonly maps: Record<string, BpfMap>;

  constructor(opts: DataplaneOptions = {}) {
    const path = opts.objectPath ?? join(packageRoot(), 'build', 'bpf', 'xvs.bpf.o');
    const obj = BpfObject.open(path);
    try {
      const problems = L.layoutMismatches((name) => obj.btfStruct(name));
      if (problems.length) throw new Error(`xvs: map layouts disagree with BTF:\n  ${problems.join('\n  ')}`);
      this.enums = readEnums(obj);
      this.maxServices = opts.maxServices ?? 65536;
      this.maxDests = opts.maxDests ?? 262144;
      obj.setMaxEntries('conns', opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS);
      if (opts.maxTemplates) obj.setMaxEntries('templates', opts.maxTemplates);
      for (const m of ['services', 'svc_sched', 'svc_stats']) obj.setMaxEntries(m, this.maxServices);
      for (const m of ['dests', 'dest_conns', 'dest_stats', 'nat_reals']) obj.setMaxEntries(m, this.maxDests);
      obj.load();
    } catch (e) {
      obj.close();
      throw e;
    }
    this.object = obj;
    this.program = obj.program('xvs_xdp');
    this.sweeper = obj.program('xvs_sweep');
    this.maps = Object.fromEntries(MAP_NAMES.map((m) => [m, obj.map(m)]));
    this.writeTimeouts(DEFAULT_TIMEOUTS);
  }

  map(name: string): BpfMap {
    const m = this.maps[name];
    if (!m) throw new Error(`xvs: no map ${name}`);
    return m;
  }

  enumValue(enumName: string, name: string): number {
    const v = this.enums.get(enumName)?.get(name);
    if (v === undefined) throw new Error(`xvs: enum ${enumName} has no ${name} in the object's BTF`);
    return v;
  }

  private readConfig(): L.Decoded<typeof L.config.fields> {
    return L.config.decode(this.map('config').lookup(u32(0))!);
  }

  private writeConfig(change: Partial<L.Decoded<typeof L.config.fields>>): void {
    this.map('config').update(u32(0), L.config.encode({ ...this.readConfig(), ...change }));
  }

  writeTimeouts(byState: Record<string, number>): void {
    const timeout = [...this.readConfig().timeout];
    for (const [state, seconds] of Object.entries(byState)) timeout[this.enumValue('xvs_conn_state', state)] = seconds;
    this.writeConfig({ timeout });
  }

  /** Sets or clears (false) a bit of config.flags, by its enum xvs_config_flags name. */
  writeConfigFlag(name: string, on: boolean): void {
    const bit = this.enumValue('xvs_config_flags', name);
    const { flags } = this.readConfig();
    const next = on ? flags | bit : flags & ~bit;
    if (next !== flags) this.writeConfig({ flags: next });
  }

  /**
   * The dataplane's clock in nanoseconds: CLOCK_MONOTONIC (coarse), or the frozen clock that
   * setClock() set. Deadlines of connections and templates are on this clock.
   */
  now(): bigint {
    const { clockNs } = this.readConfig();
    return clockNs || process.hrtime.bigint();
  }

  /**
   * Freezes the dataplane's clock at `ns` (0n: back to the real clock). For deterministic tests of
   * timeouts and expiry only: every packet and sweep then sees this time.
   */
  setClock(ns: bigint): void {
    this.writeConfig({ clockNs: ns });
  }

  /** Runs the sweeper once: ends what expired or lost its real server (see bpf/xvs_sweep.h). */
  sweep(): SweepResult {
    const frame = Buffer.alloc(Math.max(L.sweep.size, 64));
    const { data } = this.sweeper.testRun({ data: frame });
    return L.sweep.decode(data);
  }

  readTimeouts(): Record<string, number> {
    const { timeout } = this.readConfig();
    const out: Record<string, number> = {};
    for (const [name, value] of this.enums.get('xvs_conn_state')!) {
      if (name in DEFAULT_TIMEOUTS) out[name] = timeout[value]!;
    }
    return out;
  }

  /** Sum over CPUs of a per-CPU stats slot. */
  readStats(map: 'svc_stats' | 'dest_stats', index: number): Stats {
    const values = this.map(map).lookupPerCpu(u32(index)) ?? [];
    return values.map((b) => L.stats.decode(b)).reduce(addStats, ZERO_STATS);
  }

  zeroStats(map: 'svc_stats' | 'dest_stats', index: number): void {
    this.map(map).updatePerCpu(u32(index), Buffer.alloc(L.stats.size));
  }

  /** Per-reason packet counts, summed over CPUs, keyed by the enum name without XVS_R_. */
  readReasons(): Record<string, bigint> {
    const out: Record<string, bigint> = {};
    const reasons = this.map('reasons');
    for (const [name, value] of this.enums.get('xvs_reason')!) {
      if (name === 'XVS_R_COUNT') continue;
      const perCpu = reasons.lookupPerCpu(u32(value)) ?? [];
      out[name.replace(/^XVS_R_/, '').toLowerCase()] = perCpu.reduce((s, b) => s + b.readBigUInt64LE(0), 0n);
    }
    return out;
  }

  zeroReasons(): void {
    const reasons = this.map('reasons');
    for (const value of this.enums.get('xvs_reason')!.values()) {
      if (value < reasons.maxEntries) reasons.updatePerCpu(u32(value), Buffer.alloc(8));
    }
  }

  close(): void {
    this.object.close();
  }
}

function readEnums(obj: BpfObject): Map<string, Map<string, number>> {
  return new Map(
    ENUM_NAMES.map((n) => {
      const e = obj.btfEnum(n);
      if (!e) throw new Error(`xvs: enum ${n} is not in the object's BTF`);
      return [n, new Map(e.map((v) => [v.name, v.value]))];
    }),
  );
}

export { u32 };
