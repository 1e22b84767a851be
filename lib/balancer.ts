// The programmatic API of xvs: virtual services and their real servers, written into the
// dataplane's maps. Every call validates its input first and changes nothing when it fails.
import { readFileSync } from 'node:fs';
import { addressBytes, afNumber, familyOf, formatAddress, type Family } from './address.js';
import { Dataplane, type DataplaneOptions, type Stats, type SweepResult, u32 } from './dataplane.js';
import { errors } from './errors.js';
import * as L from './layout.js';
import { type XdpLink, withNetns } from './libbpf.js';
import { MarkClassifier, type MarkRule } from './mark.js';
import { primeNeighbour } from './neigh.js';
import { RangeAllocator, type Range } from './ranges.js';
import { lblcTick, lblcTimer, type LblcTimer } from './sched/lblc.js';
import { SCHEDULERS, type SchedChange, type SchedDest, type SchedPosition, type SchedTable } from './sched/index.js';

export type Protocol = 'tcp' | 'udp';
export type Method = 'dr' | 'nat' | 'tun';
export type XdpMode = 'native' | 'generic';
export type { MarkRule } from './mark.js';

export const DEFAULT_SCHEDULER = 'wlc';
/** ipvsadm's -p without a value. */
export const DEFAULT_PERSISTENT_TIMEOUT = 360;
const MAX_PERSISTENT_TIMEOUT = 86400 * 31;
const PROTO_NUMBER: Record<Protocol, number> = { tcp: 6, udp: 17 };
const METHOD_ENUM: Record<Method, string> = { dr: 'XVS_FWD_DR', nat: 'XVS_FWD_NAT', tun: 'XVS_FWD_TUN' };
const SCHED_FLAG_BITS: Record<string, number> = {
  'flag-1': 1, 'flag-2': 2, 'flag-3': 4, 'sh-fallback': 1, 'sh-port': 2, 'mh-fallback': 1, 'mh-port': 2,
};
const TCP_STATE_NAMES = [
  'NONE', 'ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT', 'TIME_WAIT', 'CLOSE', 'CLOSE_WAIT', 'LAST_ACK',
  'LISTEN', 'SYNACK',
];
/** Most real servers a list scheduler walks per new connection (XVS_MAX_SVC_DESTS). */
const MAX_SVC_DESTS = 1 << 16;

/** A virtual service: ⟨protocol, address, port⟩ (port 0 = all ports, persistent only) or a firewall mark. */
export type ServiceKey =
  | { protocol: Protocol; address: string; port: number }
  | { fwmark: number; family?: Family };

export interface ServiceOptions {
  /** -s; IPVS's default is wlc. */
  scheduler?: string;
  /** -p seconds (1 .. 2678400); 0 turns persistence off. */
  persistent?: number;
  /** -M: IPv4 dotted netmask of the persistence granularity (default 255.255.255.255). */
  netmask?: string;
  /** -o: one-packet scheduling, UDP only. */
  onePacket?: boolean;
  /** -b: 'sh-fallback' | 'sh-port' | 'mh-fallback' | 'mh-port' (or 'flag-1'..'flag-3'). */
  schedFlags?: string[];
}

export interface RealServerKey {
  address: string;
  /** Defaults to the service's port. Only NAT (or a firewall-mark service) may use another. */
  port?: number;
}

export interface RealServerOptions {
  /** ipvsadm -g (dr, the default), -m (nat), -i (tun). */
  method?: Method;
  /** 0–65535, default 1; 0 quiesces the server (no new connections). */
  weight?: number;
  /** -x: upper connection threshold, 0 = none. */
  upperThreshold?: number;
  /** -y: lower connection threshold, 0 = none. */
  lowerThreshold?: number;
}

export interface RealServerInfo {
  address: string;
  port: number;
  method: Method;
  weight: number;
  upperThreshold: number;
  lowerThreshold: number;
  activeConns: number;
  inactiveConns: number;
  persistConns: number;
  stats: Stats;
}

export interface ServiceInfo {
  key: ServiceKey;
  scheduler: string;
  persistent?: number;
  netmask?: string;
  onePacket: boolean;
  schedFlags: string[];
  stats: Stats;
  /** In the kernel's order: newest first. */
  realServers: RealServerInfo[];
}

export interface ConnectionInfo {
  /** 'ip' for the persistence templates of firewall-mark services (IPVS's IPPROTO_IP). */
  protocol: Protocol | 'ip';
  /** IPVS state names ('ESTABLISHED', 'SYN_RECV', ...); UDP connections show 'UDP'. */
  state: string;
  /** Time left before expiry. */
  expiresMs: number;
  client: { address: string; port: number };
  /** For a firewall-mark template, the mark as an address (IPVS shows it so), port 0. */
  virtual: { address: string; port: number };
  real: { address: string; port: number };
  /** A persistence template (ipvsadm -c lists them too). */
  template?: boolean;
}

export interface BalancerOptions extends DataplaneOptions {
  /** Network namespace (name under /run/netns) where the balancer's interfaces live. */
  netns?: string;
  /** Run expire() this often in this process (milliseconds); 0 or absent: call expire() yourself. */
  sweepIntervalMs?: number;
}

export interface AttachOptions {
  /** native (driver) XDP, the default, or generic (skb) XDP. */
  mode?: XdpMode;
}

/** What one expire() ended. */
export interface ExpireResult extends SweepResult {
  /** lblc/lblcr cache entries dropped by their expiry timers. */
  localityEnded: number;
}

interface DestState {
  index: number;
  gen: number;
  address: string;
  port: number;
  method: Method;
  weight: number;
  /** IPVS's last_weight: the last non-zero weight. */
  lastWeight: number;
  upperThreshold: number;
  lowerThreshold: number;
  /** Bumped when a threshold edit clears the overload flag (xvs_dest.thresh_gen). */
  threshGen: number;
}

interface ServiceState {
  key: ServiceKey;
  id: number;
  scheduler: string;
  persistent: number;
  netmask: string;
  onePacket: boolean;
  schedFlags: number;
  dests: DestState[];
  table: SchedTable;
  tableRange: Range;
  listRange: Range;
  position: SchedPosition;
  /** lblc/lblcr: the kernel's periodic expiry timer. */
  localityTimer?: LblcTimer;
}

/** Hands out map indexes, next-fit, so a freed index is not reused at once. */
class IndexPool {
  private readonly used = new Set<number>();
  private next = 0;

  constructor(private readonly size: number) {}

  take(): number | undefined {
    for (let i = 0; i < this.size; i++) {
      const n = (this.next + i) % this.size;
      if (!this.used.has(n)) {
        this.used.add(n);
        this.next = (n + 1) % this.size;
        return n;
      }
    }
    return undefined;
  }

  release(n: number): void {
    this.used.delete(n);
  }
}

const EMPTY_TABLE: SchedTable = { slots: [], cws: [], resume: [], start: 0, position: { last: undefined, cw: 0 } };
const EMPTY_RANGE: Range = { start: 0, len: 0 };

export class Balancer {
  private readonly dp: Dataplane;
  private readonly netns: string | undefined;
  private readonly services = new Map<string, ServiceState>();
  private readonly serviceIds: IndexPool;
  private readonly destIndexes: IndexPool;
  private readonly slots: RangeAllocator;
  private readonly marks: MarkClassifier;
  private readonly links = new Map<string, XdpLink>();
  private readonly sweepTimer: NodeJS.Timeout | undefined;
  private destGen = 0;

  private constructor(opts: BalancerOptions) {
    this.dp = new Dataplane(opts);
    this.netns = opts.netns;
    this.serviceIds = new IndexPool(this.dp.maxServices);
    this.destIndexes = new IndexPool(this.dp.maxDests);
    this.slots = new RangeAllocator(this.dp.map('sched_slots').maxEntries);
    this.marks = new MarkClassifier(this.dp);
    if (opts.sweepIntervalMs) {
      // A failed sweep is reported, not thrown from a timer: the next one may well succeed.
      this.sweepTimer = setInterval(() => {
        try {
          this.expire();
        } catch (e) {
          process.emitWarning(e instanceof Error ? e : String(e), 'XvsSweepWarning');
        }
      }, opts.sweepIntervalMs);
      this.sweepTimer.unref();
    }
  }

  /** Loads the dataplane (not yet attached to any interface). */
  static open(opts: BalancerOptions = {}): Balancer {
    return new Balancer(opts);
  }

  /** The loaded dataplane, for tests and tools that need its maps or program. */
  get dataplane(): Dataplane {
    return this.dp;
  }

  attach(ifname: string, opts: AttachOptions = {}): void {
    if (this.links.has(ifname)) throw errors.invalid(`xvs is already attached to ${ifname}`);
    this.checkForwarding(ifname);
    const link = this.dp.program.attachXdp(ifname, { mode: opts.mode ?? 'native', netns: this.netns });
    this.links.set(ifname, link);
  }

  detach(ifname: string): void {
    const link = this.links.get(ifname);
    if (!link) throw errors.invalid(`xvs is not attached to ${ifname}`);
    link.detach();
    link.close();
    this.links.delete(ifname);
  }

  get interfaces(): string[] {
    return [...this.links.keys()];
  }

  addService(key: ServiceKey, opts: ServiceOptions = {}): void {
    const k = this.checkServiceKey(key);
    const settings = this.checkServiceOptions(key, {
      scheduler: DEFAULT_SCHEDULER, persistent: 0, netmask: '255.255.255.255', onePacket: false, schedFlags: [], ...opts,
    });
    if (this.services.has(k)) throw errors.serviceExists();
    const id = this.serviceIds.take();
    if (id === undefined) throw errors.full('Memory allocation problem: too many services');
    const svc: ServiceState = {
      key: { ...key }, id, ...settings, dests: [], table: EMPTY_TABLE, tableRange: EMPTY_RANGE,
      listRange: EMPTY_RANGE, position: EMPTY_TABLE.position,
    };
    try {
      this.dp.zeroStats('svc_stats', id);
      this.rebuild(svc, { kind: 'init' });
      this.dp.map('services').update(this.svcKeyBytes(key), this.serviceValue(svc));
    } catch (e) {
      this.dp.map('svc_sched').delete(u32(id));
      this.serviceIds.release(id);
      throw e;
    }
    this.services.set(k, svc);
    this.updatePortZeroFlag();
  }

  /** Changes what is given; options left out keep their value (persistent: 0 turns persistence off). */
  editService(key: ServiceKey, opts: ServiceOptions): void {
    const svc = this.service(key, errors.noService);
    const current = {
      scheduler: svc.scheduler, persistent: svc.persistent, netmask: svc.netmask, onePacket: svc.onePacket,
      schedFlags: this.flagNames(svc.scheduler, svc.schedFlags),
    };
    const next = this.checkServiceOptions(svc.key, { ...current, ...opts });
    const before = { ...svc };
    Object.assign(svc, next);
    try {
      if (next.scheduler !== before.scheduler) this.rebuild(svc, { kind: 'init' });
      this.dp.map('services').update(this.svcKeyBytes(svc.key), this.serviceValue(svc));
    } catch (e) {
      Object.assign(svc, before);
      throw e;
    }
  }

  deleteService(key: ServiceKey): void {
    const svc = this.service(key, errors.noService);
    this.dp.map('services').delete(this.svcKeyBytes(svc.key));
    for (const d of svc.dests) this.retireDest(svc, d);
    this.dp.map('svc_sched').delete(u32(svc.id));
    this.dropLocality(svc);
    this.slots.release(svc.tableRange);
    this.slots.release(svc.listRange);
    this.serviceIds.release(svc.id);
    this.services.delete(this.serviceKeyString(svc.key));
    this.updatePortZeroFlag();
  }

  /** Deletes every service (ipvsadm -C). */
  clear(): void {
    for (const svc of [...this.services.values()]) this.deleteService(svc.key);
  }

  addRealServer(key: ServiceKey, real: RealServerKey, opts: RealServerOptions = {}): void {
    const svc = this.service(key, errors.serviceNotDefined);
    const method = this.checkMethod(opts.method ?? 'dr');
    const weight = this.checkWeight(opts.weight ?? 1);
    const [upperThreshold, lowerThreshold] = this.checkThresholds(opts.upperThreshold ?? 0, opts.lowerThreshold ?? 0);
    const port = this.checkRealPort(svc, real, method);
    this.checkRealAddress(svc, real.address);
    if (this.findDest(svc, real.address, port)) throw errors.destExists();
    if (svc.dests.length >= MAX_SVC_DESTS) throw errors.full('Memory allocation problem: too many real servers for one service');
    const index = this.destIndexes.take();
    if (index === undefined) throw errors.full('Memory allocation problem: too many real servers');
    const d: DestState = {
      index, gen: ++this.destGen, address: real.address, port, method, weight, lastWeight: weight,
      upperThreshold, lowerThreshold, threshGen: 0,
    };
    svc.dests.unshift(d);
    try {
      this.dp.zeroStats('dest_stats', index);
      this.dp.map('dest_conns').update(u32(index), Buffer.alloc(L.destConns.size));
      this.writeDest(svc, d);
      this.rebuild(svc, { kind: 'add', index });
      if (method === 'nat') this.natRealRef(svc, d, +1);
    } catch (e) {
      svc.dests.shift();
      this.dp.map('dests').update(u32(index), Buffer.alloc(L.dest.size));
      this.destIndexes.release(index);
      throw e;
    }
    if (method !== 'tun') primeNeighbour(real.address, this.netns);
  }

  editRealServer(key: ServiceKey, real: RealServerKey, opts: RealServerOptions): void {
    const svc = this.service(key, errors.serviceNotDefined);
    const d = this.findDest(svc, real.address, real.port ?? this.servicePort(svc));
    if (!d) throw errors.noDest();
    const method = this.checkMethod(opts.method ?? d.method);
    const weight = this.checkWeight(opts.weight ?? d.weight);
    const [upperThreshold, lowerThreshold] = this.checkThresholds(
      opts.upperThreshold ?? d.upperThreshold, opts.lowerThreshold ?? d.lowerThreshold,
    );
    this.checkRealPort(svc, { address: d.address, port: d.port }, method);
    const before = { ...d };
    // __ip_vs_update_dest: a raised or removed upper threshold clears the overload flag.
    const clearsOverload = upperThreshold === 0 || upperThreshold > d.upperThreshold;
    Object.assign(d, {
      method, weight, upperThreshold, lowerThreshold,
      lastWeight: weight !== 0 ? weight : d.lastWeight,
      threshGen: clearsOverload ? (d.threshGen + 1) >>> 0 : d.threshGen,
    });
    try {
      this.writeDest(svc, d);
      this.rebuild(svc, { kind: 'update', index: d.index });
      if (before.method !== method && (before.method === 'nat' || method === 'nat')) {
        this.natRealRef(svc, d, method === 'nat' ? +1 : -1);
      }
    } catch (e) {
      Object.assign(d, before);
      this.writeDest(svc, d);
      throw e;
    }
  }

  /** Removes the real server; its connections and templates end (as with expire_nodest_conn). */
  deleteRealServer(key: ServiceKey, real: RealServerKey): void {
    const svc = this.service(key, errors.serviceNotDefined);
    const d = this.findDest(svc, real.address, real.port ?? this.servicePort(svc));
    if (!d) throw errors.noDest();
    const at = svc.dests.indexOf(d);
    const successor = svc.dests[at + 1]?.index;
    svc.dests.splice(at, 1);
    this.rebuild(svc, { kind: 'delete', index: d.index, successor });
    this.retireDest(svc, d);
  }

  /** Services with their real servers and counters. */
  list(): ServiceInfo[] {
    return [...this.services.values()].map((svc) => ({
      key: { ...svc.key },
      scheduler: svc.scheduler,
      ...(svc.persistent ? { persistent: svc.persistent, netmask: svc.netmask } : {}),
      onePacket: svc.onePacket,
      schedFlags: this.flagNames(svc.scheduler, svc.schedFlags),
      stats: this.dp.readStats('svc_stats', svc.id),
      realServers: svc.dests.map((d) => {
        const counts = L.destConns.decode(this.dp.map('dest_conns').lookup(u32(d.index))!);
        return {
          address: d.address,
          port: d.port,
          method: d.method,
          weight: d.weight,
          upperThreshold: d.upperThreshold,
          lowerThreshold: d.lowerThreshold,
          activeConns: counts.active,
          inactiveConns: counts.inactive,
          persistConns: counts.persist,
          stats: this.dp.readStats('dest_stats', d.index),
        };
      }),
    }));
  }

  /** Connections and persistence templates (ipvsadm -c), those of removed real servers excepted. */
  connections(): ConnectionInfo[] {
    const now = this.dp.now();
    const dests = new Map<number, DestState>();
    for (const svc of this.services.values()) for (const d of svc.dests) dests.set(d.index, d);
    const live = (index: number, gen: number) => {
      const d = dests.get(index);
      return d && d.gen === gen ? d : undefined;
    };
    const left = (lastSeen: bigint, timeout: number) => Math.max(0, Number(lastSeen + BigInt(timeout) * 1_000_000_000n - now) / 1e6);
    const out: ConnectionInfo[] = [];
    for (const [kb, vb] of this.dp.map('conns').entries()) {
      const k = L.connKey.decode(kb);
      const c = L.conn.decode(vb);
      const d = live(c.dest, c.destGen);
      if (k.dir !== this.dp.enumValue('xvs_dir', 'XVS_DIR_IN') || !d) continue;
      out.push({
        protocol: k.proto === 6 ? 'tcp' : 'udp',
        state: k.proto === 6 ? TCP_STATE_NAMES[c.state] ?? 'UNKNOWN' : 'UDP',
        expiresMs: left(c.lastSeen, c.timeout),
        client: { address: formatAddress(k.saddr, 'inet'), port: k.sport },
        virtual: { address: formatAddress(k.daddr, 'inet'), port: k.dport },
        real: { address: d.address, port: c.rport },
      });
    }
    for (const [kb, vb] of this.dp.map('templates').entries()) {
      const k = L.tplKey.decode(kb);
      const t = L.template.decode(vb);
      const d = live(t.dest, t.destGen);
      if (!d) continue;
      out.push({
        protocol: k.proto === 6 ? 'tcp' : k.proto === 17 ? 'udp' : 'ip',
        state: k.proto === 17 ? 'UDP' : 'NONE',
        expiresMs: left(t.lastSeen, t.timeout),
        client: { address: formatAddress(k.saddr, 'inet'), port: 0 },
        virtual: { address: formatAddress(k.daddr, 'inet'), port: k.dport },
        real: { address: d.address, port: k.dport ? d.port : 0 },
        template: true,
      });
    }
    return out;
  }

  /**
   * Ends what expired: connections and persistence templates whose time came (or whose real server
   * was removed), and lblc/lblcr cache entries by the kernel's periodic timer. Run it often (every
   * second or so): expiry happens when it runs. BalancerOptions.sweepIntervalMs runs it here.
   */
  expire(): ExpireResult {
    const swept = this.dp.sweep();
    return { ...swept, localityEnded: this.expireLocality(Number(this.dp.now()) / 1e9) };
  }

  /** Zeroes the counters of one service and its real servers, or of all (ipvsadm -Z). */
  zero(key?: ServiceKey): void {
    const targets = key ? [this.service(key, errors.noService)] : [...this.services.values()];
    for (const svc of targets) {
      this.dp.zeroStats('svc_stats', svc.id);
      for (const d of svc.dests) this.dp.zeroStats('dest_stats', d.index);
    }
    if (!key) this.dp.zeroReasons();
  }

  /** Packets the dataplane forwarded, passed or dropped, by reason. */
  reasons(): Record<string, bigint> {
    return this.dp.readReasons();
  }

  /** ipvsadm --set tcp tcpfin udp: seconds; 0 or undefined leaves a timeout unchanged. */
  setTimeouts(t: { tcp?: number; tcpfin?: number; udp?: number }): void {
    for (const [name, v] of Object.entries(t)) {
      if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > 2 ** 31 / 1000)) {
        throw errors.invalid(`invalid ${name} timeout: ${v}`);
      }
    }
    const set: Record<string, number> = {};
    if (t.tcp) set.XVS_TCP_S_ESTABLISHED = t.tcp;
    if (t.tcpfin) set.XVS_TCP_S_FIN_WAIT = t.tcpfin;
    if (t.udp) set.XVS_UDP_S_NORMAL = t.udp;
    this.dp.writeTimeouts(set);
  }

  timeouts(): { tcp: number; tcpfin: number; udp: number } {
    const t = this.dp.readTimeouts();
    return { tcp: t.XVS_TCP_S_ESTABLISHED!, tcpfin: t.XVS_TCP_S_FIN_WAIT!, udp: t.XVS_UDP_S_NORMAL! };
  }

  /** Adds a rule of xvs's firewall-mark classifier (see lib/mark.ts). */
  addMarkRule(rule: MarkRule): void {
    this.marks.add(rule);
  }

  deleteMarkRule(rule: MarkRule): void {
    this.marks.delete(rule);
  }

  markRules(): MarkRule[] {
    return this.marks.list();
  }

  /** Detaches from every interface and unloads the dataplane. */
  close(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    for (const ifname of [...this.links.keys()]) {
      try {
        this.detach(ifname);
      } catch {
        // The interface may be gone already (its namespace deleted): nothing left to detach.
      }
    }
    this.dp.close();
  }

  // --- validation ---------------------------------------------------------------------------

  private checkServiceKey(key: ServiceKey): string {
    if ('fwmark' in key) {
      if (!Number.isInteger(key.fwmark) || key.fwmark < 1 || key.fwmark > 0xffffffff) {
        throw errors.invalid(`illegal firewall mark: ${key.fwmark}`);
      }
      if ((key.family ?? 'inet') === 'inet6') throw errors.unsupported('IPv6 services are not supported yet');
      return this.serviceKeyString(key);
    }
    if (key.protocol !== 'tcp' && key.protocol !== 'udp') {
      throw errors.invalid(`unknown protocol ${String(key.protocol)}: use tcp or udp`);
    }
    const family = familyOf(key.address);
    if (!family) throw errors.invalid(`illegal virtual server address: ${key.address}`);
    if (family === 'inet6') throw errors.unsupported('IPv6 services are not supported yet');
    if (!Number.isInteger(key.port) || key.port < 0 || key.port > 65535) {
      throw errors.invalid(`illegal virtual server port: ${key.port}`);
    }
    return this.serviceKeyString(key);
  }

  private checkServiceOptions(key: ServiceKey, o: Required<ServiceOptions>): Omit<
    ServiceState, 'key' | 'id' | 'dests' | 'table' | 'tableRange' | 'listRange' | 'position'
  > {
    if (!SCHEDULERS[o.scheduler]) throw errors.noScheduler(o.scheduler);
    if (!Number.isInteger(o.persistent) || o.persistent < 0 || o.persistent > MAX_PERSISTENT_TIMEOUT) {
      throw errors.invalid(`invalid timeout value \`${o.persistent}' specified`);
    }
    if (!('fwmark' in key) && key.port === 0 && !o.persistent) {
      throw errors.invalid('Zero port specified for non-persistent service');
    }
    if (familyOf(o.netmask) !== 'inet') throw errors.invalid(`invalid netmask \`${o.netmask}' specified`);
    if (o.onePacket && !('fwmark' in key) && key.protocol !== 'udp') {
      throw errors.invalid('One-Packet Scheduling is only for UDP virtual services');
    }
    let schedFlags = 0;
    for (const flag of o.schedFlags) {
      const bit = SCHED_FLAG_BITS[flag];
      if (bit === undefined) throw errors.invalid(`invalid scheduler flag \`${flag}'`);
      const owner = flag.startsWith('sh-') ? 'sh' : flag.startsWith('mh-') ? 'mh' : undefined;
      if (owner && owner !== o.scheduler) throw errors.invalid(`incompatible scheduler flag \`${flag}'`);
      schedFlags |= bit;
    }
    return {
      scheduler: o.scheduler, persistent: o.persistent, netmask: o.netmask, onePacket: o.onePacket, schedFlags,
    };
  }

  private checkMethod(method: string): Method {
    if (method === 'tun') throw errors.unsupported('tunnel forwarding (-i) is not supported yet');
    if (method !== 'dr' && method !== 'nat') throw errors.invalid(`unknown forwarding method ${method}`);
    return method;
  }

  private checkWeight(weight: number): number {
    if (!Number.isInteger(weight) || weight < 0 || weight > 65535) throw errors.invalid('illegal weight specified');
    return weight;
  }

  private checkThresholds(upper: number, lower: number): [number, number] {
    const ok = (n: number) => Number.isInteger(n) && n >= 0 && n <= 0x7fffffff;
    if (!ok(upper)) throw errors.invalid('illegal u_threshold specified');
    if (!ok(lower)) throw errors.invalid('illegal l_threshold specified');
    // ip_vs_add_dest / ip_vs_edit_dest refuse this with ERANGE.
    if (lower > upper) throw errors.invalid('lower threshold is higher than upper threshold');
    return [upper, lower];
  }

  private checkRealAddress(svc: ServiceState, address: string): void {
    const family = familyOf(address);
    if (!family) throw errors.invalid(`illegal real server address: ${address}`);
    if (family !== this.serviceFamily(svc)) {
      throw errors.invalid('real server and virtual service must be of the same address family');
    }
  }

  private checkRealPort(svc: ServiceState, real: RealServerKey, method: Method): number {
    const port = real.port ?? this.servicePort(svc);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw errors.invalid(`illegal real server port: ${port}`);
    if (!('fwmark' in svc.key) && port !== svc.key.port && method !== 'nat') {
      throw errors.invalid('port mapping (real port ≠ virtual port) needs masquerading (nat)');
    }
    return port;
  }

  private checkForwarding(ifname: string): void {
    const path = `/proc/sys/net/ipv4/conf/${ifname}/forwarding`;
    const read = () => readFileSync(path, 'utf8').trim();
    let value: string;
    try {
      value = this.netns ? withNetns(this.netns, read) : read();
    } catch {
      throw errors.invalid(`no such interface: ${ifname}`);
    }
    if (value !== '1') {
      throw errors.invalid(
        `IPv4 forwarding is off on ${ifname}: xvs forwards with bpf_fib_lookup, which needs it ` +
          `(sysctl -w net.ipv4.conf.all.forwarding=1 net.ipv4.conf.${ifname}.forwarding=1)`,
      );
    }
  }

  // --- map writes ---------------------------------------------------------------------------

  private service(key: ServiceKey, missing: () => Error): ServiceState {
    const svc = this.services.get(this.serviceKeyString(key));
    if (!svc) throw missing();
    return svc;
  }

  private servicePort(svc: ServiceState): number {
    return 'fwmark' in svc.key ? 0 : svc.key.port;
  }

  private serviceFamily(svc: ServiceState): Family {
    return 'fwmark' in svc.key ? svc.key.family ?? 'inet' : familyOf(svc.key.address)!;
  }

  private findDest(svc: ServiceState, address: string, port: number): DestState | undefined {
    const a = addressBytes(address);
    return svc.dests.find((d) => d.port === port && addressBytes(d.address).equals(a));
  }

  private serviceKeyString(key: ServiceKey): string {
    if ('fwmark' in key) return `fwm|${key.family ?? 'inet'}|${key.fwmark}`;
    const family = familyOf(key.address);
    const addr = family ? formatAddress(addressBytes(key.address), family) : key.address;
    return `${key.protocol}|${addr}|${key.port}`;
  }

  private flagNames(scheduler: string, bits: number): string[] {
    const names = SCHEDULERS[scheduler]?.flagNames ?? ['flag-1', 'flag-2', 'flag-3'];
    return [0, 1, 2].filter((i) => bits & (1 << i)).map((i) => names[i] ?? `flag-${i + 1}`);
  }

  private svcKeyBytes(key: ServiceKey): Buffer {
    if ('fwmark' in key) return L.svcKey.encode({ af: afNumber(key.family ?? 'inet'), fwmark: key.fwmark });
    return L.svcKey.encode({
      addr: addressBytes(key.address),
      port: key.port,
      proto: PROTO_NUMBER[key.protocol],
      af: afNumber(familyOf(key.address)!),
      fwmark: 0,
    });
  }

  private serviceValue(svc: ServiceState): Buffer {
    const flag = (name: string) => this.dp.enumValue('xvs_svc_flags', name);
    return L.service.encode({
      id: svc.id,
      flags: (svc.persistent ? flag('XVS_SVC_F_PERSISTENT') : 0) | (svc.onePacket ? flag('XVS_SVC_F_ONEPACKET') : 0),
      sched: this.dp.enumValue('xvs_sched', SCHEDULERS[svc.scheduler]!.enumName),
      timeout: svc.persistent,
      netmask: addressBytes(svc.netmask).readUInt32LE(0),
      schedFlags: svc.schedFlags,
      fwmark: 'fwmark' in svc.key ? svc.key.fwmark : 0,
      port: this.servicePort(svc),
    });
  }

  private writeDest(svc: ServiceState, d: DestState): void {
    const value = L.dest.encode({
      addr: addressBytes(d.address),
      port: d.port,
      af: afNumber(familyOf(d.address)!),
      method: this.dp.enumValue('xvs_fwd', METHOD_ENUM[d.method]),
      svc: svc.id,
      gen: d.gen,
      flags: this.dp.enumValue('xvs_dest_flags', 'XVS_DEST_F_AVAILABLE'),
      weight: d.weight,
      uThreshold: d.upperThreshold,
      lThreshold: d.lowerThreshold,
      threshGen: d.threshGen,
    });
    this.dp.map('dests').update(u32(d.index), value);
    this.updateNatPortZeroFlag();
  }

  /** Marks a removed real server unavailable (its connections end) and frees its index. */
  private retireDest(svc: ServiceState, d: DestState): void {
    this.dp.map('dests').update(u32(d.index), Buffer.alloc(L.dest.size));
    if (d.method === 'nat') this.natRealRef(svc, d, -1);
    this.destIndexes.release(d.index);
    this.updateNatPortZeroFlag();
  }

  private natRealRef(svc: ServiceState, d: DestState, delta: 1 | -1): void {
    const protocols: Protocol[] = 'fwmark' in svc.key ? ['tcp', 'udp'] : [svc.key.protocol];
    for (const protocol of protocols) {
      const key = L.realKey.encode({
        addr: addressBytes(d.address),
        port: d.port,
        proto: PROTO_NUMBER[protocol],
        af: afNumber(familyOf(d.address)!),
      });
      const map = this.dp.map('nat_reals');
      const count = (map.lookup(key)?.readUInt32LE(0) ?? 0) + delta;
      if (count > 0) map.update(key, u32(count));
      else map.delete(key);
    }
  }

  private updatePortZeroFlag(): void {
    const any = [...this.services.values()].some((s) => !('fwmark' in s.key) && s.key.port === 0);
    this.dp.writeConfigFlag('XVS_CFG_F_PORT0', any);
  }

  private updateNatPortZeroFlag(): void {
    const any = [...this.services.values()].some((s) => s.dests.some((d) => d.method === 'nat' && d.port === 0));
    this.dp.writeConfigFlag('XVS_CFG_F_NAT_PORT0', any);
  }

  /** Where the dataplane's rr/wrr stands now, from its cursor. */
  private position(svc: ServiceState): SchedPosition {
    const state = this.dp.map('svc_sched').lookup(u32(svc.id));
    const len = svc.table.slots.length;
    if (!state || !len || !SCHEDULERS[svc.scheduler]!.table) return svc.position;
    const { cursor, start, atHead } = L.schedState.decode(state);
    if (atHead) return { last: undefined, cw: cursor === BigInt(start) ? svc.position.cw : svc.table.cws[0]! };
    if (cursor === BigInt(start)) return svc.position;
    const last = Number((cursor - 1n) % BigInt(len));
    return { last: svc.table.slots[last], cw: svc.table.cws[last]! };
  }

  /**
   * Writes the service's real-server list and scheduler table into fresh ranges of sched_slots,
   * then switches its svc_sched entry to them (replaced whole), then gives the old ranges back.
   */
  private rebuild(svc: ServiceState, change: SchedChange): void {
    const scheduler = SCHEDULERS[svc.scheduler]!;
    const dests: SchedDest[] = svc.dests.map((d) => ({
      index: d.index, weight: d.weight, lastWeight: d.lastWeight, addr: addressBytes(d.address).readUInt32BE(0), port: d.port,
    }));
    const table = scheduler.table ? scheduler.table(dests, this.position(svc), change) : EMPTY_TABLE;
    this.slots.recycle();
    const listRange = this.slots.take(dests.length);
    const tableRange = listRange && this.slots.take(table.slots.length);
    if (!listRange || !tableRange) {
      if (listRange) this.slots.release(listRange);
      throw errors.full('Memory allocation problem: scheduler tables are full');
    }
    // Each slot carries its server's weight and thresh_gen, so that walking a list reads one slot
    // and the server's counts.
    const byIndex = new Map(svc.dests.map((d) => [d.index, d]));
    const write = (range: Range, slots: number[], resume: (i: number) => number) => {
      if (!slots.length) return;
      this.dp.map('sched_slots').updateBatch(
        slots.map((_, i) => u32(range.start + i)),
        slots.map((dest, i) => {
          const d = byIndex.get(dest);
          return L.schedSlot.encode({ dest, resume: resume(i), weight: d?.weight ?? 0, threshGen: d?.threshGen ?? 0 });
        }),
      );
    };
    write(listRange, dests.map((d) => d.index), () => 0);
    write(tableRange, table.slots, (i) => table.resume[i]!);
    this.dp.map('svc_sched').update(u32(svc.id), L.schedState.encode({
      cursor: BigInt(table.start), table: tableRange.start, tableLen: table.slots.length, dests: listRange.start,
      ndests: dests.length, start: table.start, atHead: table.position.last === undefined ? 1 : 0,
    }));
    this.slots.release(svc.listRange);
    this.slots.release(svc.tableRange);
    Object.assign(svc, { table, tableRange, listRange, position: table.position });
    if (change.kind === 'init') this.resetLocality(svc);
  }

  /** A new lblc/lblcr scheduler starts with an empty cache and its own expiry timer. */
  private resetLocality(svc: ServiceState): void {
    this.dropLocality(svc);
    svc.localityTimer = svc.scheduler === 'lblc' || svc.scheduler === 'lblcr'
      ? lblcTimer(Number(this.dp.now()) / 1e9) : undefined;
  }

  private dropLocality(svc: ServiceState): void {
    for (const map of ['lblc', 'lblcr'] as const) {
      const keys = [...this.dp.map(map).keys()].filter((k) => L.lblcKey.decode(k).svc === svc.id);
      if (keys.length) this.dp.map(map).deleteBatch(keys);
    }
  }

  /** Runs the lblc/lblcr expiry timers that came due by `now` (seconds). */
  private expireLocality(now: number): number {
    let ended = 0;
    for (const svc of this.services.values()) {
      const timer = svc.localityTimer;
      if (!timer) continue;
      const map = this.dp.map(svc.scheduler as 'lblc' | 'lblcr');
      const codec = svc.scheduler === 'lblc' ? L.lblcEntry : L.lblcrEntry;
      while (timer.next <= now) {
        const at = timer.next;
        const entries = [...map.entries()]
          .filter(([k]) => L.lblcKey.decode(k).svc === svc.id)
          .map(([k, v]) => [k, Number(codec.decode(v).lastuse) / 1e9] as [Buffer, number]);
        const drop = lblcTick(timer, at, entries);
        if (drop.length) map.deleteBatch(drop);
        ended += drop.length;
      }
    }
    return ended;
  }
}
