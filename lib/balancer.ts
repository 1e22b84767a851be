// The programmatic API of xvs: virtual services and their real servers, written into the
// dataplane's maps. Every call validates its input first and changes nothing when it fails.
import { readFileSync } from 'node:fs';
import { addressBytes, afNumber, familyOf, formatAddress, type Family } from './address.js';
import { type ConnCounts, type ConnectionInfo, destCounts, listConnections } from './connections.js';
import { Dataplane, type DataplaneOptions, type Stats, type SweepResult, u32 } from './dataplane.js';
import { errors } from './errors.js';
import { estimateAll, type Rates, readRates } from './estimator.js';
import * as L from './layout.js';
import { type XdpLink, withNetns } from './libbpf.js';
import { MarkClassifier, type MarkRule } from './mark.js';
import { NeighbourPrimer } from './neigh.js';
import { PROTO_NUMBER, protocolOf, type Protocol } from './protocol.js';
import { ensureBpffsBind } from './nstable.js';
import { RangeAllocator, type Range } from './ranges.js';
import { writeRoutedReplyFlags } from './routed.js';
import { lblcTick, lblcTimer, type LblcTimer } from './sched/lblc.js';
import { steppedCursor, steppedPosition } from './sched/wrr.js';
import { SCHEDULERS, type SchedChange, type SchedDest, type SchedPosition, type SchedTable } from './sched/index.js';
import { checkPersistenceEngine, peFlags, peOfFlags } from './sip.js';
import * as store from './store.js';
import { DestTrash, type Trashed } from './trash.js';
import { tunnelSourceValue, type TunnelSource } from './tunnel.js';
import { checkTunnel, storedTunnel, TUN_TYPE_ENUM, tunnelFlags, type TunnelSettings } from './tuntype.js';

export type { TunnelSource } from './tunnel.js';
export type { TunnelChecksum, TunnelSettings, TunnelType } from './tuntype.js';

export type { Protocol } from './protocol.js';
export type Method = 'dr' | 'nat' | 'tun';
export type XdpMode = 'native' | 'generic';
export type { ConnectionInfo } from './connections.js';
export type { Rates } from './estimator.js';
export type { MarkRule } from './mark.js';

export const DEFAULT_SCHEDULER = 'wlc';
/** ipvsadm's -p without a value. */
export const DEFAULT_PERSISTENT_TIMEOUT = 360;
const MAX_PERSISTENT_TIMEOUT = 86400 * 31;
const METHOD_ENUM: Record<Method, string> = { dr: 'XVS_FWD_DR', nat: 'XVS_FWD_NAT', tun: 'XVS_FWD_TUN' };
const SCHED_FLAG_BITS: Record<string, number> = {
  'flag-1': 1, 'flag-2': 2, 'flag-3': 4, 'sh-fallback': 1, 'sh-port': 2, 'mh-fallback': 1, 'mh-port': 2,
};
/** Most real servers a list scheduler walks per new connection (XVS_MAX_SVC_DESTS). */
const MAX_SVC_DESTS = 1 << 16;

/** A virtual service: ⟨protocol, address, port⟩ (port 0 = all ports, persistent only) or a firewall mark. */
export type ServiceKey =
  | { protocol: Protocol; address: string; port: number }
  | { fwmark: number; family?: 'inet' | 'inet6' };

export interface ServiceOptions {
  /** ipvsadm -s; IPVS's default is wlc. */
  scheduler?: string;
  /** -p seconds; 0 or undefined: not persistent. */
  persistent?: number;
  /** -M: IPv4 dotted mask or IPv6 prefix length (default: the whole address). */
  netmask?: string;
  /** -o (UDP only). */
  onePacket?: boolean;
  /** -b: 'sh-fallback' | 'sh-port' | 'mh-fallback' | 'mh-port'. */
  schedFlags?: string[];
  /** --pe: 'sip' (templates by SIP Call-ID, used when persistent; lib/sip.ts); '' or absent: none. */
  pe?: string;
}

export interface RealServerKey {
  address: string;
  /** Defaults to the service's port. Only NAT may map it to another port. */
  port?: number;
}

/** tun: --tun-type (ipip, the default), --tun-port (gue), --tun-nocsum/--tun-csum/--tun-remcsum. */
export interface RealServerOptions extends Partial<TunnelSettings> {
  /** ipvsadm -g (dr, the default), -m (nat), -i (tun). */
  method?: Method;
  /** 0–2147483647 (INT_MAX), default 1; 0 quiesces the server (no new connections). */
  weight?: number;
  /** -x, 0 = none. */
  upperThreshold?: number;
  /** -y, 0 = none. */
  lowerThreshold?: number;
}

export interface RealServerInfo extends ConnCounts, TunnelSettings {
  address: string;
  port: number;
  method: Method;
  weight: number;
  upperThreshold: number;
  lowerThreshold: number;
  stats: Stats;
  /** With list({ rates: true }): xvsd's estimates. */
  rates?: Rates;
}

export interface ServiceInfo {
  key: ServiceKey;
  scheduler: string;
  persistent?: number;
  netmask?: string;
  onePacket: boolean;
  schedFlags: string[];
  /** The persistence engine (--pe), when one is set. */
  pe?: string;
  stats: Stats;
  /** With list({ rates: true }): xvsd's estimates. */
  rates?: Rates;
  /** In the kernel's order: newest first. */
  realServers: RealServerInfo[];
}

export interface BalancerOptions extends DataplaneOptions {
  /** Network namespace (name under /run/netns) where the balancer's interfaces live. */
  netns?: string;
  /** Pinned: the cookie of the namespace the table belongs to, recorded when none is (lib/nstable.ts). */
  netnsCookie?: bigint;
  /** Total scheduler slots: every service's real-server list and table (wrr: sum of weight/gcd). */
  maxSchedulerSlots?: number;
  /** Outer source of tunnelled packets per outer family (see lib/tunnel.ts); default: the route's. */
  tunnelSource?: TunnelSource;
  /** Run expireConnections() this often in this process (ms); 0 or absent: xvsd or the caller runs it. */
  sweepIntervalMs?: number;
}

/** What one expireConnections() ended. */
export interface ExpireResult extends SweepResult {
  /** lblc/lblcr cache entries dropped by their expiry timers. */
  localityEnded: number;
  /** Real servers freed from the destination trash (nothing referred to them for 120 to 180 s). */
  trashFreed: number;
}

/** The kernel's sysctls (net.ipv4.vs.*) that xvs has, 0 or 1. */
export interface Sysctls {
  /** Connections of a deleted real server end at once instead of living on to their expiry. */
  expire_nodest_conn: number;
  /** A persistence template of a real server with weight 0 is void, as one of a deleted server. */
  expire_quiescent_template: number;
}

const SYSCTL_FLAGS: Record<keyof Sysctls, string> = {
  expire_nodest_conn: 'XVS_CFG_F_EXPIRE_NODEST_CONN',
  expire_quiescent_template: 'XVS_CFG_F_EXPIRE_QUIESCENT_TEMPLATE',
};

export interface AttachOptions {
  /** native (driver) XDP, the default, or generic (skb) XDP. */
  mode?: XdpMode;
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
  tunnel: TunnelSettings;
  /** xvs_dest.list_order: taken from the gen counter when added or restored (newest first). */
  listOrder: number;
}

interface ServiceSettings {
  scheduler: string;
  persistent: number;
  netmask: string;
  onePacket: boolean;
  schedFlags: number;
  pe: string;
}

interface ServiceState extends ServiceSettings {
  key: ServiceKey;
  id: number;
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

  constructor(
    private readonly size: number,
    private next = 0,
  ) {}

  /** Marks an index in use that another process handed out. */
  claim(n: number): void {
    this.used.add(n);
  }

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
  private netns: string | undefined;
  private readonly services = new Map<string, ServiceState>();
  private serviceIds: IndexPool;
  private destIndexes: IndexPool;
  private slots: RangeAllocator;
  private readonly slotCount: number;
  private readonly marks: MarkClassifier;
  private readonly links = new Map<string, XdpLink>();
  private readonly sweepTimer: NodeJS.Timeout | undefined;
  private destGen = 0;
  private readonly neighbours: NeighbourPrimer;
  private destHigh = 0;
  /** ctl.version this state was read at or last wrote. */
  private version = 0;
  private inTransaction = false;
  private tunnel: TunnelSource = {};
  private readonly trash: DestTrash<DestState>;

  private constructor(opts: BalancerOptions) {
    const tunnelValues = checkTunnelSource(opts.tunnelSource ?? {});
    this.dp = new Dataplane(opts);
    this.netns = opts.netns;
    this.neighbours = new NeighbourPrimer(() => this.netns);
    this.serviceIds = new IndexPool(this.dp.maxServices);
    this.destIndexes = new IndexPool(this.dp.maxDests);
    this.slotCount = Math.min(opts.maxSchedulerSlots ?? Infinity, this.dp.map('sched_slots').maxEntries);
    this.slots = new RangeAllocator(this.slotCount);
    this.marks = new MarkClassifier(this.dp);
    this.trash = new DestTrash(this.dp);
    this.writeTunnelSource(opts.tunnelSource ?? {}, tunnelValues);
    if (opts.sweepIntervalMs) {
      // A failed sweep is reported, not thrown from a timer: the next one may well succeed.
      this.sweepTimer = setInterval(() => {
        try {
          this.expireConnections();
        } catch (e) {
          process.emitWarning(e instanceof Error ? e : String(e), 'XvsSweepWarning');
        }
      }, opts.sweepIntervalMs);
      this.sweepTimer.unref();
    }
  }

  /**
   * Loads the dataplane (not yet attached to any interface). With `pinPath` its maps are those
   * pinned there (made and pinned on first use), and the balancer carries on with the services,
   * real servers and scheduler positions found in them; see lib/store.ts.
   */
  static open(opts: BalancerOptions = {}): Balancer {
    const b = new Balancer(opts);
    try {
      if (opts.pinPath) {
        ensureBpffsBind();
        b.openStored(opts.netns, opts.netnsCookie);
      }
    } catch (e) {
      b.dp.close();
      throw e;
    }
    return b;
  }

  /** The loaded dataplane, for tests and tools that need its maps or program. */
  get dataplane(): Dataplane {
    return this.dp;
  }

  /** The network namespace of the balancer's interfaces (pinned: as recorded with the maps). */
  get namespace(): string | undefined {
    return this.netns;
  }

  /** Attaches the dataplane to an interface; with pinned maps the attachment is pinned too. */
  attach(ifname: string, opts: AttachOptions = {}): void {
    if (this.interfaces.includes(ifname)) throw errors.invalid(`xvs is already attached to ${ifname}`);
    this.checkForwarding(ifname, 'inet');
    if (this.usesInet6()) this.checkForwarding(ifname, 'inet6');
    const link = this.dp.program.attachXdp(ifname, { mode: opts.mode ?? 'native', netns: this.netns });
    if (this.dp.pinPath) {
      try {
        store.pinLink(this.dp.pinPath, ifname, link);
      } catch (e) {
        link.close();
        throw e;
      }
    }
    this.links.set(ifname, link);
  }

  detach(ifname: string): void {
    const link = this.links.get(ifname);
    this.links.delete(ifname);
    if (this.dp.pinPath) {
      link?.close();
      if (!store.detachPinnedLink(this.dp.pinPath, ifname)) throw errors.invalid(`xvs is not attached to ${ifname}`);
      return;
    }
    if (!link) throw errors.invalid(`xvs is not attached to ${ifname}`);
    link.detach();
    link.close();
  }

  get interfaces(): string[] {
    return this.dp.pinPath ? store.pinnedInterfaces(this.dp.pinPath) : [...this.links.keys()];
  }

  /** Sets the outer source of tunnelled packets, per outer family; a family left out uses the route's. */
  setTunnelSource(source: TunnelSource): void {
    this.writeTunnelSource(source, checkTunnelSource(source));
  }

  get tunnelSource(): TunnelSource {
    return { ...this.tunnel };
  }

  addService(key: ServiceKey, opts: ServiceOptions = {}): void {
    const k = this.checkServiceKey(key);
    const family = keyFamily(key);
    const settings = this.checkServiceOptions(key, {
      scheduler: DEFAULT_SCHEDULER, persistent: 0, netmask: family === 'inet6' ? '128' : '255.255.255.255',
      onePacket: false, schedFlags: [], pe: '', ...opts,
    });
    if (this.services.has(k)) throw errors.serviceExists();
    if (family === 'inet6') this.checkForwardingEverywhere('inet6');
    const id = this.serviceIds.take();
    if (id === undefined) throw errors.full('Memory allocation problem: too many services');
    const svcKey: ServiceKey = 'fwmark' in key
      ? { fwmark: key.fwmark, family }
      : { ...key, address: canonical(key.address) };
    const svc: ServiceState = {
      key: svcKey, id, ...settings, dests: [], table: EMPTY_TABLE, tableRange: EMPTY_RANGE,
      listRange: EMPTY_RANGE, position: EMPTY_TABLE.position,
    };
    try {
      this.dp.zeroStats('svc_stats', id);
      this.rebuild(svc, { kind: 'init' });
      this.dp.map('services').update(this.svcKeyBytes(svc.key), this.serviceValue(svc));
      if (!('fwmark' in svc.key)) this.vipRef(svc.key.address, +1);
    } catch (e) {
      this.dp.map('services').delete(this.svcKeyBytes(svc.key));
      this.dp.map('svc_sched').delete(u32(id));
      this.slots.release(svc.tableRange);
      this.slots.release(svc.listRange);
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
      schedFlags: this.flagNames(svc.scheduler, svc.schedFlags), pe: svc.pe,
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
    this.removeService(this.service(key, errors.noService));
    this.expireNodestConns();
  }

  /** Deletes every service (ipvsadm -C). */
  clear(): void {
    for (const svc of [...this.services.values()]) this.removeService(svc);
    this.expireNodestConns();
  }

  private removeService(svc: ServiceState): void {
    this.dp.map('services').delete(this.svcKeyBytes(svc.key));
    if (!('fwmark' in svc.key)) this.vipRef(svc.key.address, -1);
    this.trash.orphan(this.svcKeyBytes(svc.key));
    for (const d of svc.dests) this.trashDest(svc, d, true);
    this.dp.map('svc_sched').delete(u32(svc.id));
    this.dp.map('ctl_sched').delete(u32(svc.id));
    this.dropLocality(svc);
    this.slots.release(svc.tableRange);
    this.slots.release(svc.listRange);
    this.serviceIds.release(svc.id);
    this.services.delete(this.serviceKeyString(svc.key));
    this.updatePortZeroFlag();
    this.updateRealServerFlags();
  }

  addRealServer(key: ServiceKey, real: RealServerKey, opts: RealServerOptions = {}): void {
    const svc = this.service(key, errors.serviceNotDefined);
    const method = this.checkMethod(opts.method ?? 'dr');
    const weight = this.checkWeight(opts.weight ?? 1);
    const [upperThreshold, lowerThreshold] = this.checkThresholds(opts.upperThreshold ?? 0, opts.lowerThreshold ?? 0);
    const tunnel = checkTunnel(method, opts);
    const port = this.checkRealPort(svc, real, method);
    this.checkRealAddress(svc, real.address, method);
    if (this.findDest(svc, real.address, port)) throw errors.destExists();
    if (svc.dests.length >= MAX_SVC_DESTS) throw errors.full('Memory allocation problem: too many real servers for one service');
    if (familyOf(real.address) === 'inet6') this.checkForwardingEverywhere('inet6');
    const trashed = this.trash.take(this.svcKeyBytes(svc.key), real.address, port);
    if (trashed) return this.restoreDest(svc, trashed, { method, weight, upperThreshold, lowerThreshold, tunnel });
    const index = this.destIndexes.take();
    if (index === undefined) throw errors.full('Memory allocation problem: too many real servers');
    const d: DestState = {
      index, gen: ++this.destGen, address: canonical(real.address), port, method, weight, lastWeight: weight,
      upperThreshold, lowerThreshold, threshGen: 0, tunnel, listOrder: this.destGen,
    };
    svc.dests.unshift(d);
    try {
      this.destHigh = Math.max(this.destHigh, index + 1);
      store.writeCtl(this.dp, { destGen: this.destGen, destHigh: this.destHigh });
      this.dp.zeroStats('dest_stats', index);
      this.dp.map('dest_conns').update(u32(index), Buffer.alloc(L.destConns.size));
      this.writeDest(svc, d);
      this.rebuild(svc, { kind: 'add', index });
      if (method === 'nat') this.natRealRef(svc.key, d, +1);
    } catch (e) {
      svc.dests.shift();
      this.dp.map('dests').update(u32(index), Buffer.alloc(L.dest.size));
      this.destIndexes.release(index);
      throw e;
    }
    this.updateRealServerFlags();
    this.neighbours.use(real.address, true);
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
    const tunnel = checkTunnel(method, opts, d.tunnel);
    this.checkRealPort(svc, { address: d.address, port: d.port }, method);
    this.checkRealAddress(svc, d.address, method);
    const before = { ...d };
    // __ip_vs_update_dest: a raised or removed upper threshold clears the overload flag.
    const clearsOverload = upperThreshold === 0 || upperThreshold > d.upperThreshold;
    Object.assign(d, {
      method, weight, upperThreshold, lowerThreshold, tunnel,
      lastWeight: weight !== 0 ? weight : d.lastWeight,
      threshGen: clearsOverload ? (d.threshGen + 1) >>> 0 : d.threshGen,
    });
    try {
      this.writeDest(svc, d);
      this.rebuild(svc, { kind: 'update', index: d.index });
      if (before.method !== method && (before.method === 'nat' || method === 'nat')) {
        this.natRealRef(svc.key, d, method === 'nat' ? +1 : -1);
      }
    } catch (e) {
      Object.assign(d, before);
      this.writeDest(svc, d);
      throw e;
    }
    this.updateRealServerFlags();
  }

  /**
   * Removes the real server into the destination trash: its connections and templates live on to
   * their expiry (their packets dropped), and adding it back brings them back (lib/trash.ts).
   */
  deleteRealServer(key: ServiceKey, real: RealServerKey): void {
    const svc = this.service(key, errors.serviceNotDefined);
    const d = this.findDest(svc, real.address, real.port ?? this.servicePort(svc));
    if (!d) throw errors.noDest();
    const at = svc.dests.indexOf(d);
    const successor = svc.dests[at + 1]?.index;
    svc.dests.splice(at, 1);
    this.rebuild(svc, { kind: 'delete', index: d.index, successor });
    this.trashDest(svc, d, false);
    this.updateRealServerFlags();
    this.expireNodestConns();
  }

  /** Services with their real servers, counters and connection counts; rates on request. */
  list(opts: { rates?: boolean } = {}): ServiceInfo[] {
    const rates = (kind: 'service' | 'dest', index: number) =>
      opts.rates ? { rates: readRates(this.dp, kind, index) } : {};
    return [...this.services.values()].map((svc) => ({
      key: { ...svc.key },
      scheduler: svc.scheduler,
      ...(svc.persistent ? { persistent: svc.persistent, netmask: svc.netmask } : {}),
      onePacket: svc.onePacket,
      schedFlags: this.flagNames(svc.scheduler, svc.schedFlags),
      ...(svc.pe ? { pe: svc.pe } : {}),
      stats: this.dp.readStats('svc_stats', svc.id),
      ...rates('service', svc.id),
      realServers: svc.dests.map((d) => ({
        address: d.address,
        port: d.port,
        method: d.method,
        weight: d.weight,
        upperThreshold: d.upperThreshold,
        lowerThreshold: d.lowerThreshold,
        ...d.tunnel,
        ...destCounts(this.dp, d.index),
        stats: this.dp.readStats('dest_stats', d.index),
        ...rates('dest', d.index),
      })),
    }));
  }

  /**
   * One 2 s tick of the rate estimator over every service and real server (xvsd runs it);
   * `restart`: start every estimate again from the counters as they are (xvsd starting).
   */
  estimateRates(opts: { restart?: boolean } = {}): void {
    const objects = [...this.services.values()].flatMap((svc) => [
      { kind: 'service' as const, index: svc.id },
      ...svc.dests.map((d) => ({ kind: 'dest' as const, index: d.index })),
    ]);
    estimateAll(this.dp, objects, opts.restart);
  }

  /**
   * Connections and persistence templates (ipvsadm -c), with those of real servers in the trash
   * (unless expire_nodest_conn ends them).
   */
  connections(): ConnectionInfo[] {
    const dests = new Map<number, DestState>();
    for (const svc of this.services.values()) for (const d of svc.dests) dests.set(d.index, d);
    if (!this.sysctls().expire_nodest_conn) for (const d of this.trash.dests()) dests.set(d.index, d);
    return listConnections(this.dp, (index) => dests.get(index));
  }

  /** The sysctls of kernel IPVS that xvs has (net.ipv4.vs.expire_nodest_conn, …), 0 or 1 each. */
  sysctls(): Sysctls {
    const value = (name: keyof Sysctls) => (this.dp.readConfigFlag(SYSCTL_FLAGS[name]) ? 1 : 0);
    return { expire_nodest_conn: value('expire_nodest_conn'), expire_quiescent_template: value('expire_quiescent_template') };
  }

  /** Sets sysctls as `sysctl -w net.ipv4.vs.NAME=VALUE` would; those left out keep their value. */
  setSysctls(values: Partial<Sysctls>): void {
    const entries = Object.entries(values) as [keyof Sysctls, number][];
    for (const [name, v] of entries) {
      if (!SYSCTL_FLAGS[name]) throw errors.invalid(`unknown sysctl ${String(name)}`);
      if (v !== 0 && v !== 1) throw errors.invalid(`invalid value for ${name}: ${String(v)} (0 or 1)`);
    }
    for (const [name, v] of entries) this.dp.writeConfigFlag(SYSCTL_FLAGS[name], v === 1);
  }

  /**
   * Ends what expired: connections and persistence templates whose time came (or whose real server
   * was removed), and lblc/lblcr cache entries by the kernel's periodic timer. Run it often (every
   * second or so): expiry happens when it runs. xvsd runs it on every tick; so does this process
   * with BalancerOptions.sweepIntervalMs.
   */
  expireConnections(): ExpireResult {
    const swept = this.dp.sweep();
    const now = this.dp.now();
    return { ...swept, localityEnded: this.expireLocality(Number(now) / 1e9), trashFreed: this.expireTrash(now) };
  }

  /** The same as expireConnections(). */
  expire(): ExpireResult {
    return this.expireConnections();
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

  /**
   * Runs fn under the lock of the pinned balancer (other processes wait), on state reread from
   * the maps when another process changed it since, with fn's map writes applied together.
   * `configuration: false` (xvsd's ticks): fn changes no configuration, other holders need not reload.
   */
  transaction<T>(fn: () => T, opts: { configuration?: boolean } = {}): T {
    if (this.inTransaction) return fn();
    const release = store.lock(this.dp);
    this.inTransaction = true;
    try {
      const { version } = store.readCtl(this.dp);
      if (version !== this.version) this.adopt(store.readState(this.dp));
      return this.batch(() => {
        try {
          return fn();
        } finally {
          // Also when fn failed half-way: what it wrote is committed, so others must reload.
          if (opts.configuration !== false) {
            this.version = (version + 1) >>> 0;
            store.writeCtl(this.dp, { version: this.version });
          }
        }
      });
    } finally {
      this.inTransaction = false;
      release();
    }
  }

  /**
   * Runs fn with its map writes held back and applied together (one batch operation per map),
   * and the neighbour entries of new real servers made once at the end.
   */
  batch<T>(fn: () => T): T {
    return this.neighbours.defer(() => this.dp.batch(fn));
  }

  /**
   * Closes this handle. Unpinned: detaches from every interface and unloads the dataplane.
   * Pinned: the attachments and the configuration stay for the next process.
   */
  close(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    for (const [ifname, link] of [...this.links]) {
      if (this.dp.pinPath) {
        link.close();
        continue;
      }
      try {
        this.detach(ifname);
      } catch {
        // The interface may be gone already (its namespace deleted): nothing left to detach.
      }
    }
    this.links.clear();
    this.dp.close();
  }

  /** Pinned: detaches from every interface, closes, and removes the pins (the balancer is gone). */
  destroy(): void {
    const pinPath = this.dp.pinPath;
    this.close();
    if (pinPath) store.removePins(pinPath);
  }

  // --- validation ---------------------------------------------------------------------------

  private checkServiceKey(key: ServiceKey): string {
    if ('fwmark' in key) {
      if (!Number.isInteger(key.fwmark) || key.fwmark < 1 || key.fwmark > 0xffffffff) {
        throw errors.invalid(`illegal firewall mark: ${key.fwmark}`);
      }
      const family = key.family ?? 'inet';
      if (family !== 'inet' && family !== 'inet6') throw errors.invalid(`unknown address family ${String(family)}`);
      return this.serviceKeyString(key);
    }
    if (!Object.hasOwn(PROTO_NUMBER, key.protocol)) {
      throw errors.invalid(`unknown protocol ${String(key.protocol)}: use tcp, udp or sctp`);
    }
    if (!familyOf(key.address)) throw errors.invalid(`illegal virtual server address: ${key.address}`);
    if (!Number.isInteger(key.port) || key.port < 0 || key.port > 65535) {
      throw errors.invalid(`illegal virtual server port: ${key.port}`);
    }
    return this.serviceKeyString(key);
  }

  private checkServiceOptions(key: ServiceKey, o: Required<ServiceOptions>): ServiceSettings {
    if (!SCHEDULERS[o.scheduler]) throw errors.noScheduler(o.scheduler);
    if (!Number.isInteger(o.persistent) || o.persistent < 0 || o.persistent > MAX_PERSISTENT_TIMEOUT) {
      throw errors.invalid(`invalid timeout value \`${o.persistent}' specified`);
    }
    if (!('fwmark' in key) && key.port === 0 && !o.persistent) {
      throw errors.invalid('Zero port specified for non-persistent service');
    }
    if (keyFamily(key) === 'inet6') {
      const bits = Number(o.netmask);
      if (!/^\d+$/.test(String(o.netmask)) || bits < 1 || bits > 128) {
        throw errors.invalid(`invalid netmask \`${o.netmask}' specified`);
      }
    } else if (familyOf(o.netmask) !== 'inet') {
      throw errors.invalid(`invalid netmask \`${o.netmask}' specified`);
    }
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
    checkPersistenceEngine(o.pe ?? '');
    return {
      scheduler: o.scheduler, persistent: o.persistent, netmask: String(o.netmask), onePacket: o.onePacket, schedFlags,
      pe: o.pe ?? '',
    };
  }

  private checkThresholds(upper: number, lower: number): [number, number] {
    const ok = (n: number) => Number.isInteger(n) && n >= 0 && n <= 0x7fffffff;
    if (!ok(upper)) throw errors.invalid('illegal u_threshold specified');
    if (!ok(lower)) throw errors.invalid('illegal l_threshold specified');
    // As the kernel (ip_vs_add_dest / ip_vs_edit_dest: ERANGE): checked even with no upper threshold.
    if (lower > upper) throw errors.range('lower threshold is higher than upper threshold');
    return [upper, lower];
  }

  private checkMethod(method: string): Method {
    if (method !== 'dr' && method !== 'nat' && method !== 'tun') throw errors.invalid(`unknown forwarding method ${method}`);
    return method;
  }

  private checkWeight(weight: number): number {
    if (!Number.isInteger(weight) || weight < 0 || weight > 0x7fffffff) throw errors.invalid('illegal weight specified');
    return weight;
  }

  private checkRealAddress(svc: ServiceState, address: string, method: Method): void {
    const family = familyOf(address);
    if (!family) throw errors.invalid(`illegal real server address: ${address}`);
    // As the kernel (ip_vs_ctl.c): mixed address families only for tunnels.
    if (family !== keyFamily(svc.key) && method !== 'tun') {
      throw errors.invalid('real server and virtual service of different address families need tunnelling (tun)');
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

  private checkForwarding(ifname: string, family: Family): void {
    const ipv = family === 'inet' ? 'ipv4' : 'ipv6';
    const path = `/proc/sys/net/${ipv}/conf/${ifname}/forwarding`;
    const read = () => readFileSync(path, 'utf8').trim();
    let value: string;
    try {
      value = this.netns ? withNetns(this.netns, read) : read();
    } catch {
      throw errors.invalid(family === 'inet' ? `no such interface: ${ifname}` : `IPv6 is disabled on ${ifname}`);
    }
    if (value !== '1') {
      throw errors.invalid(
        `${family === 'inet' ? 'IPv4' : 'IPv6'} forwarding is off on ${ifname}: xvs forwards with bpf_fib_lookup, ` +
          `which needs it (sysctl -w net.${ipv}.conf.all.forwarding=1 net.${ipv}.conf.${ifname}.forwarding=1)`,
      );
    }
  }

  /** IPv6 packets (an IPv6 service, or IPv6 tunnels) need IPv6 forwarding on every interface. */
  private checkForwardingEverywhere(family: Family): void {
    for (const ifname of this.interfaces) this.checkForwarding(ifname, family);
  }

  private usesInet6(): boolean {
    return [...this.services.values()].some(
      (svc) => keyFamily(svc.key) === 'inet6' || svc.dests.some((d) => familyOf(d.address) === 'inet6'),
    );
  }

  private writeTunnelSource(source: TunnelSource, values: [Buffer, Buffer]): void {
    const map = this.dp.map('tun_sources');
    values.forEach((value, slot) => map.update(u32(slot), value));
    this.tunnel = { ...source };
  }

  /** Counts the services on a virtual address, so that the dataplane answers ICMP echo for it. */
  private vipRef(address: string, delta: 1 | -1): void {
    const key = L.vipKey.encode({ addr: addressBytes(address), af: afNumber(familyOf(address)!) });
    const map = this.dp.map('vips');
    const count = (map.lookup(key)?.readUInt32LE(0) ?? 0) + delta;
    if (count > 0) map.update(key, u32(count));
    else map.delete(key);
  }

  // --- pinned state ----------------------------------------------------------------------------

  /** Takes over the state pinned with the maps; records the namespace when none is yet. */
  private openStored(netns: string | undefined, netnsCookie: bigint | undefined): void {
    const ctl = store.readCtl(this.dp);
    if (netns && ctl.netns && netns !== ctl.netns) {
      throw errors.invalid(`the balancer pinned at ${this.dp.pinPath} lives in network namespace ${ctl.netns}, not ${netns}`);
    }
    this.netns = netns ?? (ctl.netns || undefined);
    if (netns && !ctl.netns) store.writeCtl(this.dp, { netns });
    if (netnsCookie && !ctl.netnsCookie) store.writeCtl(this.dp, { netnsCookie });
    this.adopt(store.readState(this.dp));
  }

  /** Rebuilds the in-memory state from what the maps hold. */
  private adopt(state: store.StoredState): void {
    this.services.clear();
    this.serviceIds = new IndexPool(this.dp.maxServices);
    this.destIndexes = new IndexPool(this.dp.maxDests, state.ctl.destHigh % this.dp.maxDests);
    this.slots = new RangeAllocator(this.slotCount);
    this.destGen = state.ctl.destGen;
    this.destHigh = state.ctl.destHigh;
    this.version = state.ctl.version;
    const schedulers = new Map(
      Object.values(SCHEDULERS).map((s) => [this.dp.enumValue('xvs_sched', s.enumName), s.name]),
    );
    const methods = new Map(
      (Object.entries(METHOD_ENUM) as [Method, string][]).map(([m, e]) => [this.dp.enumValue('xvs_fwd', e), m]),
    );
    const persistentFlag = this.dp.enumValue('xvs_svc_flags', 'XVS_SVC_F_PERSISTENT');
    const onePacketFlag = this.dp.enumValue('xvs_svc_flags', 'XVS_SVC_F_ONEPACKET');
    const now = Number(this.dp.now()) / 1e9;
    for (const s of state.services) {
      const scheduler = schedulers.get(s.value.sched);
      if (!scheduler) throw errors.invalid(`service ${s.id} pinned with an unknown scheduler (${s.value.sched})`);
      const dests = s.dests.map((d) => destState(d, methods, (e, n) => this.dp.enumValue(e, n)));
      const position: SchedPosition = s.schedCtl
        ? { last: s.schedCtl.last ? s.schedCtl.last - 1 : undefined, cw: s.schedCtl.cw }
        : EMPTY_TABLE.position;
      const sched = SCHEDULERS[scheduler]!;
      const model = sched.table ? sched.table(schedDests(dests), position, { kind: 'init' }) : EMPTY_TABLE;
      const same = model.slots.length === s.slots.length && model.slots.every((slot, i) => slot === s.slots[i]);
      const table: SchedTable = {
        slots: s.slots, cws: same ? model.cws : s.slots.map(() => 0), resume: s.resume,
        start: s.schedCtl?.start ?? s.sched?.start ?? 0, position,
      };
      const tableRange = s.sched ? { start: s.sched.table, len: s.sched.tableLen } : EMPTY_RANGE;
      const listRange = s.sched ? { start: s.sched.dests, len: s.sched.ndests } : EMPTY_RANGE;
      this.slots.claim(tableRange);
      this.slots.claim(listRange);
      this.serviceIds.claim(s.id);
      for (const d of dests) this.destIndexes.claim(d.index);
      const key = storedServiceKey(s.key);
      const family = keyFamily(key);
      const v = s.value;
      this.services.set(this.serviceKeyString(key), {
        key, id: s.id, scheduler, dests, table, tableRange, listRange, position,
        persistent: v.flags & persistentFlag ? v.timeout : 0,
        netmask: family === 'inet6' ? String(v.netmask || 128) : formatAddress(u32(v.netmask), 'inet'),
        onePacket: (v.flags & onePacketFlag) !== 0,
        schedFlags: v.schedFlags,
        pe: peOfFlags(this.dp, v.flags),
        localityTimer: scheduler === 'lblc' || scheduler === 'lblcr' ? lblcTimer(now) : undefined,
      });
    }
    this.trash.adopt(state.trash.map((t) => ({
      dest: destState(t.dest, methods, (e, n) => this.dp.enumValue(e, n)), svcKey: t.record.svc, orphaned: t.record.orphaned !== 0, idleSince: t.record.idleSince,
    })));
    for (const t of state.trash) this.destIndexes.claim(t.dest.index);
    this.marks.reload();
  }

  private service(key: ServiceKey, missing: () => Error): ServiceState {
    const svc = this.services.get(this.serviceKeyString(key));
    if (!svc) throw missing();
    return svc;
  }

  private findDest(svc: ServiceState, address: string, port: number): DestState | undefined {
    const a = addressBytes(address);
    return svc.dests.find((d) => d.port === port && addressBytes(d.address).equals(a));
  }

  private servicePort(svc: ServiceState): number {
    return 'fwmark' in svc.key ? 0 : svc.key.port;
  }

  private flagNames(scheduler: string, bits: number): string[] {
    const names = SCHEDULERS[scheduler]?.flagNames ?? ['flag-1', 'flag-2', 'flag-3'];
    return [0, 1, 2].filter((i) => bits & (1 << i)).map((i) => names[i] ?? `flag-${i + 1}`);
  }

  private serviceKeyString(key: ServiceKey): string {
    if ('fwmark' in key) return `fwmark|${key.family ?? 'inet'}|${key.fwmark}`;
    const family = familyOf(key.address);
    const addr = family ? formatAddress(addressBytes(key.address), family) : key.address;
    return `${key.protocol}|${addr}|${key.port}`;
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
      flags: (svc.persistent ? flag('XVS_SVC_F_PERSISTENT') : 0) | (svc.onePacket ? flag('XVS_SVC_F_ONEPACKET') : 0) |
        peFlags(this.dp, svc.pe),
      sched: this.dp.enumValue('xvs_sched', SCHEDULERS[svc.scheduler]!.enumName),
      timeout: svc.persistent,
      // IPv4: the mask as the packet holds addresses; IPv6: the prefix length (bpf/xvs_persist.h).
      netmask: keyFamily(svc.key) === 'inet6' ? Number(svc.netmask) : addressBytes(svc.netmask).readUInt32LE(0),
      schedFlags: svc.schedFlags,
      fwmark: 'fwmark' in svc.key ? svc.key.fwmark : 0,
      port: this.servicePort(svc),
    });
  }

  private writeDest(svc: ServiceState, d: DestState, available = true): void {
    const value = L.dest.encode({
      addr: addressBytes(d.address),
      port: d.port,
      af: afNumber(familyOf(d.address)!),
      method: this.dp.enumValue('xvs_fwd', METHOD_ENUM[d.method]),
      svc: svc.id,
      gen: d.gen,
      flags: available ? this.dp.enumValue('xvs_dest_flags', 'XVS_DEST_F_AVAILABLE') : 0,
      weight: d.weight,
      uThreshold: d.upperThreshold,
      lThreshold: d.lowerThreshold,
      threshGen: d.threshGen,
      lastWeight: d.lastWeight,
      tunType: this.dp.enumValue('xvs_tun_type', TUN_TYPE_ENUM[d.tunnel.tunType]),
      tunFlags: tunnelFlags(d.tunnel.tunChecksum, (n) => this.dp.enumValue('xvs_tun_flags', n)),
      tunPort: d.tunnel.tunPort,
      listOrder: d.listOrder,
    });
    this.dp.map('dests').update(u32(d.index), value);
  }

  /**
   * Moves a deleted real server into the destination trash: unavailable, with its slot, gen,
   * counts, counters, NAT reply lookup and neighbour kept for the connections that live on.
   */
  private trashDest(svc: ServiceState, d: DestState, orphaned: boolean): void {
    this.writeDest(svc, d, false);
    this.trash.put(d, this.svcKeyBytes(svc.key), orphaned, this.dp.now());
  }

  /**
   * ip_vs_expire_nodest_conn_flush: with expire_nodest_conn, the connections of trashed real
   * servers (and the templates left controlling none) end at once rather than at the next sweep.
   * Within a batch the sweeper still sees the maps as they were: they end at the next sweep.
   */
  private expireNodestConns(): void {
    if (this.sysctls().expire_nodest_conn) this.dp.sweep();
  }

  /** ip_vs_add_dest finding the real server in the trash: it comes back with what it kept. */
  private restoreDest(svc: ServiceState, t: Trashed<DestState>, o: Pick<DestState, 'method' | 'weight' | 'upperThreshold' | 'lowerThreshold' | 'tunnel'>): void {
    const was = t.dest;
    // __ip_vs_update_dest: a raised or removed upper threshold clears the overload flag.
    const clearsOverload = o.upperThreshold === 0 || o.upperThreshold > was.upperThreshold;
    const d: DestState = {
      ...was, ...o, lastWeight: o.weight, // __ip_vs_update_dest with add: even a weight of 0
      threshGen: clearsOverload ? (was.threshGen + 1) >>> 0 : was.threshGen, listOrder: ++this.destGen,
    };
    svc.dests.unshift(d);
    try {
      store.writeCtl(this.dp, { destGen: this.destGen });
      // Its service was deleted: the kernel zeroes its counters as it joins the new one.
      if (t.orphaned) this.dp.zeroStats('dest_stats', d.index);
      this.forgetRoutes(d.index);
      this.writeDest(svc, d);
      this.rebuild(svc, { kind: 'add', index: d.index });
      if ((was.method === 'nat') !== (d.method === 'nat')) this.natRealRef(svc.key, d, d.method === 'nat' ? +1 : -1);
    } catch (e) {
      svc.dests.shift();
      this.writeDest(svc, was, false);
      this.trash.put(was, t.svcKey, t.orphaned, this.dp.now());
      throw e;
    }
    this.updateRealServerFlags();
  }

  /** A real server back from the trash is routed afresh: its cached next hop and tunnel source go. */
  private forgetRoutes(index: number): void {
    const nexthops = this.dp.map('nexthops');
    nexthops.updatePerCpu(u32(index), Buffer.alloc(nexthops.valueSize));
    const tunSrc = this.dp.map('tun_src_cache');
    tunSrc.update(u32(index), Buffer.alloc(tunSrc.valueSize));
  }

  /** ip_vs_dest_trash_expire: frees the trashed real servers nothing referred to for the period. */
  private expireTrash(now: bigint): number {
    const freed = this.trash.expire(now);
    for (const t of freed) {
      this.dp.map('dests').update(u32(t.dest.index), Buffer.alloc(L.dest.size));
      if (t.dest.method === 'nat') this.natRealRef(storedServiceKey(L.svcKey.decode(t.svcKey)), t.dest, -1);
      this.neighbours.release(t.dest.address);
      this.destIndexes.release(t.dest.index);
    }
    if (freed.length) this.updateRealServerFlags();
    if (freed.length && this.dp.pinPath) {
      // Other processes must forget these real servers: a change of configuration.
      this.version = (store.readCtl(this.dp).version + 1) >>> 0;
      store.writeCtl(this.dp, { version: this.version });
    }
    return freed.length;
  }

  private natRealRef(svcKey: ServiceKey, d: DestState, delta: 1 | -1): void {
    const protocols: Protocol[] = 'fwmark' in svcKey ? ['tcp', 'udp', 'sctp'] : [svcKey.protocol];
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

  /** The dataplane's flags that depend on real servers: NAT port 0, DR/TUN replies (lib/routed.ts). */
  private updateRealServerFlags(): void {
    // Trashed real servers count: their connections' replies still go back to the clients.
    const dests = [...this.services.values()].flatMap((s) => s.dests).concat(this.trash.dests());
    const any = dests.some((d) => d.method === 'nat' && d.port === 0);
    this.dp.writeConfigFlag('XVS_CFG_F_NAT_PORT0', any);
    writeRoutedReplyFlags(this.dp, this.services.values());
  }

  /** Where the dataplane's rr/wrr stands now, from its cursor. */
  private position(svc: ServiceState): SchedPosition {
    const state = this.dp.map('svc_sched').lookup(u32(svc.id));
    if (state && svc.table.stepped) return steppedPosition(L.schedState.decode(state).cursor, schedDests(svc.dests));
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
    const dests = schedDests(svc.dests);
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
      cursor: table.stepped ? steppedCursor(table.position.cw) : BigInt(table.start), table: tableRange.start,
      tableLen: table.slots.length, dests: listRange.start, ndests: dests.length, start: table.start,
      atHead: table.position.last === undefined ? 1 : 0, wrrDi: table.stepped?.di ?? 0, wrrMw: table.stepped?.mw ?? 0,
    }));
    // Where the control plane's model stands, for a process that reopens the pinned maps.
    const { last, cw } = table.position;
    this.dp.map('ctl_sched').update(
      u32(svc.id), L.schedCtl.encode({ start: table.start, last: last === undefined ? 0 : last + 1, cw }),
    );
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

function storedServiceKey(k: store.StoredService['key']): ServiceKey {
  const family = k.af === afNumber('inet6') ? 'inet6' : 'inet';
  if (k.fwmark) return { fwmark: k.fwmark, family };
  return { protocol: protocolOf(k.proto) ?? 'tcp', address: formatAddress(k.addr, family), port: k.port };
}

function destState(d: store.StoredDest, methods: Map<number, Method>, enumValue: (e: string, n: string) => number): DestState {
  return {
    index: d.index, gen: d.gen, address: d.address, port: d.port, method: methods.get(d.method) ?? 'dr',
    weight: d.weight, lastWeight: d.lastWeight || d.weight, upperThreshold: d.uThreshold,
    lowerThreshold: d.lThreshold, threshGen: d.threshGen, listOrder: d.listOrder,
    tunnel: storedTunnel(d.tunType, d.tunPort, d.tunFlags, enumValue),
  };
}

/** The textual form ipvsadm prints (RFC 5952 for IPv6). */
function canonical(address: string): string {
  return formatAddress(addressBytes(address), familyOf(address)!);
}

/** Validates both families' tunnel sources before anything is written. */
function checkTunnelSource(source: TunnelSource): [Buffer, Buffer] {
  return [tunnelSourceValue(source.inet, 'inet'), tunnelSourceValue(source.inet6, 'inet6')];
}

function keyFamily(key: ServiceKey): Family {
  return 'fwmark' in key ? key.family ?? 'inet' : familyOf(key.address)!;
}

/** What the schedulers see of the real servers; an IPv6 address folded as the kernel hashes it. */
function schedDests(dests: readonly DestState[]): SchedDest[] {
  return dests.map((d) => {
    const a = addressBytes(d.address);
    const addr = familyOf(d.address) === 'inet6'
      ? (a.readUInt32BE(0) ^ a.readUInt32BE(4) ^ a.readUInt32BE(8) ^ a.readUInt32BE(12)) >>> 0
      : a.readUInt32BE(0);
    return { index: d.index, weight: d.weight, lastWeight: d.lastWeight, addr, port: d.port };
  });
}

/** The protocol of an IP protocol number of a stored service. */
