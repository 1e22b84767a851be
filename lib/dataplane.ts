// The loaded dataplane: the XDP object, its maps, and typed reads and writes of them.
// No policy lives here: the Balancer decides what to write.
import { join } from 'node:path';
import { BpfObject, sumU64PerCpu, type BpfMap, type BpfProgram } from './libbpf.js';
import { forgetEstimate } from './estimator.js';
import { WriteBatch } from './mapbatch.js';
import { packageRoot } from './native.js';
import * as L from './layout.js';
import { hasPins, openPins, pinNew } from './store.js';

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
  /**
   * A directory on the BPF filesystem for the maps: the maps pinned there are used (sizes then
   * come from them), or made and pinned there when there are none. Unset: the maps live as long
   * as this process.
   */
  pinPath?: string;
}

/** What one run of the sweeper ended. */
export type SweepResult = L.Decoded<typeof L.sweep.fields>;

/** Maps written before the maps that refer to them, when a batch is committed (see mapbatch.ts). */
const COMMIT_ORDER = [
  'svc_stats', 'dest_stats', 'rate_est', 'dest_conns', 'dests', 'dest_trash', 'nat_reals', 'sched_slots', 'lblc', 'lblcr',
  'twos_draws', 'svc_sched', 'ctl_sched', 'mark_rules', 'mark_prefixes', 'services', 'ctl',
];

const ENUM_NAMES = [
  'xvs_fwd', 'xvs_sched', 'xvs_svc_flags', 'xvs_sched_flags', 'xvs_dest_flags', 'xvs_dir', 'xvs_conn_flags',
  'xvs_counted', 'xvs_config_flags', 'xvs_conn_state', 'xvs_reason', 'xvs_sctp_state', 'xvs_tun_type', 'xvs_tun_flags',
  'xvs_tpl_state',
];

export type Stats = L.Stats;

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
  readonly maxServices: number;
  readonly maxDests: number;
  /** enum name → value, for every enum of bpf/xvs_consts.h, read from BTF. */
  readonly enums: ReadonlyMap<string, ReadonlyMap<string, number>>;
  readonly pinPath: string | undefined;
  private readonly maps: Record<string, BpfMap>;
  private loaded = false;
  private prog: BpfProgram | undefined;
  private sweepProg: BpfProgram | undefined;
  private writes: WriteBatch | undefined;

  constructor(opts: DataplaneOptions = {}) {
    const path = opts.objectPath ?? join(packageRoot(), 'build', 'bpf', 'xvs.bpf.o');
    let obj = BpfObject.open(path);
    this.pinPath = opts.pinPath;
    try {
      const problems = L.layoutMismatches((name) => obj.btfStruct(name));
      if (problems.length) throw new Error(`xvs: map layouts disagree with BTF:\n  ${problems.join('\n  ')}`);
      this.enums = readEnums(obj);
      const names = obj.mapNames().filter((m) => !m.includes('.'));
      if (opts.pinPath && hasPins(opts.pinPath)) {
        this.maps = openPins(opts.pinPath, names);
      } else {
        this.maps = createMaps(obj, names, opts);
        this.loaded = true;
        if (opts.pinPath && !pinNew(opts.pinPath, this.maps)) {
          // Another process pinned its maps first: use those, and an object not loaded yet.
          for (const map of Object.values(this.maps)) map.close();
          obj.close();
          obj = BpfObject.open(path);
          this.loaded = false;
          this.maps = openPins(opts.pinPath, names);
        }
      }
    } catch (e) {
      obj.close();
      throw e;
    }
    this.object = obj;
    this.maxServices = this.maps.services!.maxEntries;
    this.maxDests = this.maps.dests!.maxEntries;
  }

  /** The XDP program; with pinned maps it is loaded (and verified) on first use, on those maps. */
  get program(): BpfProgram {
    if (!this.prog) {
      if (!this.loaded) {
        for (const name of Object.keys(this.maps)) this.object.reusePinnedMap(name, join(this.pinPath!, name));
        this.object.load();
        this.loaded = true;
      }
      this.prog = this.object.program('xvs_xdp');
    }
    return this.prog;
  }

  /** The sweeper (bpf/xvs_sweep.h), run on demand by sweep(); loaded with the XDP program. */
  get sweeper(): BpfProgram {
    if (!this.sweepProg) {
      void this.program;
      this.sweepProg = this.object.program('xvs_sweep');
    }
    return this.sweepProg;
  }

  /**
   * Runs fn with every map write held back, then applies them together, one batch operation per
   * map (see mapbatch.ts). Reads inside fn see the held-back writes. Nested calls join the outer.
   */
  batch<T>(fn: () => T): T {
    if (this.writes) return fn();
    this.writes = new WriteBatch(COMMIT_ORDER);
    const writes = this.writes;
    try {
      return fn();
    } finally {
      this.writes = undefined;
      // Also after a failure: the caller's in-memory state already holds what fn did.
      writes.commit();
    }
  }

  map(name: string): BpfMap {
    const m = this.maps[name];
    if (!m) throw new Error(`xvs: no map ${name}`);
    return this.writes ? this.writes.view(name, m) : m;
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

  /** Whether a bit of config.flags is set, by its enum xvs_config_flags name. */
  readConfigFlag(name: string): boolean {
    return (this.readConfig().flags & this.enumValue('xvs_config_flags', name)) !== 0;
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

  /** Zeroes a per-CPU stats slot and restarts its rate estimate. */
  zeroStats(map: 'svc_stats' | 'dest_stats', index: number): void {
    this.map(map).updatePerCpu(u32(index), Buffer.alloc(L.stats.size));
    forgetEstimate(this, map === 'svc_stats' ? 'service' : 'dest', index);
  }

  /** Per-reason packet counts, summed over CPUs, keyed by the enum name without XVS_R_. */
  readReasons(): Record<string, bigint> {
    return readEnumCounters(this.map('reasons'), this.enums.get('xvs_reason')!, 'XVS_R_');
  }

  zeroReasons(): void {
    const reasons = this.map('reasons');
    for (const value of this.enums.get('xvs_reason')!.values()) {
      if (value < reasons.maxEntries) reasons.updatePerCpu(u32(value), Buffer.alloc(8));
    }
  }

  close(): void {
    this.prog?.close();
    this.sweepProg?.close();
    for (const map of Object.values(this.maps)) map.close();
    this.object.close();
  }
}

/** Sizes the object's maps, loads it and writes the defaults: a new, unpinned set of maps. */
function createMaps(obj: BpfObject, names: string[], opts: DataplaneOptions): Record<string, BpfMap> {
  const maxServices = opts.maxServices ?? 65536;
  const maxDests = opts.maxDests ?? 262144;
  obj.setMaxEntries('conns', opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS);
  if (opts.maxTemplates) for (const m of ['templates', 'sip_templates', 'sip_refs']) obj.setMaxEntries(m, opts.maxTemplates);
  for (const m of ['services', 'svc_sched', 'svc_stats', 'ctl_sched']) obj.setMaxEntries(m, maxServices);
  for (const m of ['dests', 'dest_conns', 'dest_stats', 'nat_reals', 'tun_src_cache', 'nexthops', 'dest_trash']) {
    obj.setMaxEntries(m, maxDests);
  }
  obj.setMaxEntries('vips', maxServices);
  obj.setMaxEntries('rate_est', maxServices + maxDests);
  obj.load();
  const maps = Object.fromEntries(names.map((m) => [m, obj.map(m)]));
  const cfg = maps.config!;
  const config = L.config.decode(cfg.lookup(u32(0))!);
  const timeout = [...config.timeout];
  for (const [state, seconds] of Object.entries(DEFAULT_TIMEOUTS)) timeout[enumOf(obj, 'xvs_conn_state', state)] = seconds;
  cfg.update(u32(0), L.config.encode({ ...config, timeout }));
  return maps;
}

function enumOf(obj: BpfObject, enumName: string, name: string): number {
  const v = obj.btfEnum(enumName)?.find((e) => e.name === name)?.value;
  if (v === undefined) throw new Error(`xvs: enum ${enumName} has no ${name} in the object's BTF`);
  return v;
}

/**
 * Per-CPU u64 counters indexed by an enum's values, summed over CPUs, keyed by the enumerator's
 * name without `prefix`, in lower case; the enum's `<prefix>COUNT` is left out.
 */
export function readEnumCounters(map: BpfMap, values: Iterable<[string, number]>, prefix: string): Record<string, bigint> {
  const out: Record<string, bigint> = {};
  for (const [name, value] of values) {
    if (name === `${prefix}COUNT`) continue;
    const perCpu = map.lookupPerCpu(u32(value));
    out[name.slice(prefix.length).toLowerCase()] = perCpu ? sumU64PerCpu(perCpu) : 0n;
  }
  return out;
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
