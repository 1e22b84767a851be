// The programmatic API of xvs: virtual services and their real servers, written into the
// dataplane's maps. Every call validates its input first and changes nothing when it fails.
import { readFileSync } from 'node:fs';
import { addressBytes, afNumber, familyOf, formatAddress, type Family } from './address.js';
import { type ConnCounts, type ConnectionInfo, scanConnections } from './connections.js';
import { Dataplane, type DataplaneOptions, type Stats, u32 } from './dataplane.js';
import { errors } from './errors.js';
import { estimateAll, type Rates, readRates } from './estimator.js';
import * as L from './layout.js';
import { type XdpLink, withNetns } from './libbpf.js';
import { NeighbourPrimer } from './neigh.js';
import { SCHED_ENUM, SCHEDULERS, type SchedChange, type SchedPosition, type SchedTable } from './sched/index.js';
import * as store from './store.js';
import { tunnelSourceValue, type TunnelSource } from './tunnel.js';

export type { TunnelSource } from './tunnel.js';

export type Protocol = 'tcp' | 'udp';
export type Method = 'dr' | 'nat' | 'tun';
export type XdpMode = 'native' | 'generic';
export type { ConnectionInfo } from './connections.js';
export type { Rates } from './estimator.js';

export const DEFAULT_SCHEDULER = 'wlc';
const PROTO_NUMBER: Record<Protocol, number> = { tcp: 6, udp: 17 };
const METHOD_ENUM: Record<Method, string> = { dr: 'XVS_FWD_DR', nat: 'XVS_FWD_NAT', tun: 'XVS_FWD_TUN' };
/** The schedulers of IPVS: those xvs lacks are refused as not supported yet, other names as unknown. */
const IPVS_SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'twos'];

/** A virtual service: ⟨protocol, address, port⟩ (port 0 = all ports, persistent only) or a firewall mark. */
export type ServiceKey =
  | { protocol: Protocol; address: string; port: number }
  | { fwmark: number; family?: 'inet' | 'inet6' };

type AddressKey = Extract<ServiceKey, { protocol: Protocol }>;

export interface ServiceOptions {
  /** ipvsadm -s; IPVS's default is wlc. */
  scheduler?: string;
  /** -p seconds; 0 or undefined: not persistent. */
  persistent?: number;
  /** -M: IPv4 dotted mask or IPv6 prefix length. */
  netmask?: string;
  /** -o (UDP only). */
  onePacket?: boolean;
  /** -b: 'sh-fallback' | 'sh-port' | 'mh-fallback' | 'mh-port'. */
  schedFlags?: string[];
}

export interface RealServerKey {
  address: string;
  /** Defaults to the service's port. Only NAT may map it to another port. */
  port?: number;
}

export interface RealServerOptions {
  /** ipvsadm -g (dr, the default), -m (nat), -i (tun). */
  method?: Method;
  /** 0–65535, default 1; 0 quiesces the server (no new connections). */
  weight?: number;
  /** -x, 0 = none. */
  upperThreshold?: number;
  /** -y, 0 = none. */
  lowerThreshold?: number;
}

export interface RealServerInfo extends ConnCounts {
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
  stats: Stats;
  /** With list({ rates: true }): xvsd's estimates. */
  rates?: Rates;
  /** In the kernel's order: newest first. */
  realServers: RealServerInfo[];
}

export interface BalancerOptions extends DataplaneOptions {
  /** Network namespace (name under /run/netns) where the balancer's interfaces live. */
  netns?: string;
  /** Total scheduler table slots (wrr uses sum of weight/gcd per service). */
  maxSchedulerSlots?: number;
  /** Outer source of tunnelled packets per outer family (see lib/tunnel.ts); default: the route's. */
  tunnelSource?: TunnelSource;
}

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
}

interface ServiceState {
  key: AddressKey;
  id: number;
  scheduler: string;
  dests: DestState[];
  table: SchedTable;
  tableGen: number;
  position: SchedPosition;
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

const EMPTY_TABLE: SchedTable = { slots: [], cws: [], start: 0, position: { last: undefined, cw: 0 } };

export class Balancer {
  private readonly dp: Dataplane;
  private netns: string | undefined;
  private readonly services = new Map<string, ServiceState>();
  private serviceIds: IndexPool;
  private destIndexes: IndexPool;
  private readonly links = new Map<string, XdpLink>();
  private readonly maxSlots: number;
  private slotsInUse = 0;
  private destGen = 0;
  private readonly neighbours: NeighbourPrimer;
  private destHigh = 0;
  /** ctl.version this state was read at or last wrote. */
  private version = 0;
  private inTransaction = false;
  private tunnel: TunnelSource = {};

  private constructor(opts: BalancerOptions) {
    const tunnelValues = checkTunnelSource(opts.tunnelSource ?? {});
    this.dp = new Dataplane(opts);
    this.netns = opts.netns;
    this.neighbours = new NeighbourPrimer(() => this.netns);
    this.serviceIds = new IndexPool(this.dp.maxServices);
    this.destIndexes = new IndexPool(this.dp.maxDests);
    this.maxSlots = Math.min(opts.maxSchedulerSlots ?? 1 << 20, this.dp.map('sched_slots').maxEntries / 2);
    this.writeTunnelSource(opts.tunnelSource ?? {}, tunnelValues);
  }

  /**
   * Loads the dataplane (not yet attached to any interface). With `pinPath` its maps are those
   * pinned there (made and pinned on first use), and the balancer carries on with the services,
   * real servers and scheduler positions found in them; see lib/store.ts.
   */
  static open(opts: BalancerOptions = {}): Balancer {
    const b = new Balancer(opts);
    try {
      if (opts.pinPath) b.openStored(opts.netns);
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
    if (this.services.has(k)) throw errors.serviceExists();
    const scheduler = this.checkScheduler(opts.scheduler ?? DEFAULT_SCHEDULER);
    this.checkServiceOptions(opts);
    const address = (key as AddressKey).address;
    if (familyOf(address) === 'inet6') this.checkForwardingEverywhere('inet6');
    const id = this.serviceIds.take();
    if (id === undefined) throw errors.full('Memory allocation problem: too many services');
    const svc: ServiceState = {
      key: { ...(key as AddressKey), address: canonical(address) }, id, scheduler, dests: [], table: EMPTY_TABLE, tableGen: 0,
      position: EMPTY_TABLE.position,
    };
    try {
      this.dp.zeroStats('svc_stats', id);
      this.dp.map('svc_sched').update(u32(id), L.schedState.encode({ cursor: 0n, gen: 0, len: 0 }));
      this.dp.map('services').update(this.svcKeyBytes(svc.key), this.serviceValue(svc));
      this.vipRef(svc.key.address, +1);
    } catch (e) {
      this.dp.map('services').delete(this.svcKeyBytes(svc.key));
      this.dp.map('svc_sched').delete(u32(id));
      this.serviceIds.release(id);
      throw e;
    }
    this.services.set(k, svc);
  }

  editService(key: ServiceKey, opts: ServiceOptions): void {
    const svc = this.service(key, errors.noService);
    const scheduler = this.checkScheduler(opts.scheduler ?? svc.scheduler);
    this.checkServiceOptions(opts);
    if (scheduler === svc.scheduler) return;
    const previous = svc.scheduler;
    svc.scheduler = scheduler;
    try {
      this.rebuild(svc, { kind: 'init' });
      this.dp.map('services').update(this.svcKeyBytes(svc.key), this.serviceValue(svc));
    } catch (e) {
      svc.scheduler = previous;
      throw e;
    }
  }

  deleteService(key: ServiceKey): void {
    const svc = this.service(key, errors.noService);
    this.dp.map('services').delete(this.svcKeyBytes(svc.key));
    this.vipRef(svc.key.address, -1);
    for (const d of svc.dests) this.retireDest(svc, d);
    this.deleteSlots(svc, svc.tableGen, svc.table.slots.length);
    this.slotsInUse -= svc.table.slots.length;
    this.dp.map('svc_sched').delete(u32(svc.id));
    this.dp.map('ctl_sched').delete(u32(svc.id));
    this.serviceIds.release(svc.id);
    this.services.delete(this.serviceKeyString(svc.key));
  }

  /** Deletes every service (ipvsadm -C). */
  clear(): void {
    for (const svc of [...this.services.values()]) this.deleteService(svc.key);
  }

  addRealServer(key: ServiceKey, real: RealServerKey, opts: RealServerOptions = {}): void {
    const svc = this.service(key, errors.serviceNotDefined);
    const method = this.checkMethod(opts.method ?? 'dr');
    const weight = this.checkWeight(opts.weight ?? 1);
    this.checkThresholds(opts);
    const port = this.checkRealPort(svc, real, method);
    this.checkRealAddress(svc, real.address, method);
    if (this.findDest(svc, real.address, port)) throw errors.destExists();
    if (familyOf(real.address) === 'inet6') this.checkForwardingEverywhere('inet6');
    const index = this.destIndexes.take();
    if (index === undefined) throw errors.full('Memory allocation problem: too many real servers');
    const d: DestState = { index, gen: ++this.destGen, address: canonical(real.address), port, method, weight };
    svc.dests.unshift(d);
    try {
      this.destHigh = Math.max(this.destHigh, index + 1);
      store.writeCtl(this.dp, { destGen: this.destGen, destHigh: this.destHigh });
      this.dp.zeroStats('dest_stats', index);
      this.writeDest(svc, d);
      this.rebuild(svc, { kind: 'add', index });
      if (method === 'nat') this.natRealRef(svc, d, +1);
    } catch (e) {
      svc.dests.shift();
      this.dp.map('dests').update(u32(index), Buffer.alloc(L.dest.size));
      this.destIndexes.release(index);
      throw e;
    }
    this.neighbours.use(real.address, true);
  }

  editRealServer(key: ServiceKey, real: RealServerKey, opts: RealServerOptions): void {
    const svc = this.service(key, errors.serviceNotDefined);
    this.checkThresholds(opts);
    const d = this.findDest(svc, real.address, real.port ?? svc.key.port);
    if (!d) throw errors.noDest();
    const method = this.checkMethod(opts.method ?? d.method);
    const weight = this.checkWeight(opts.weight ?? d.weight);
    this.checkRealPort(svc, { address: d.address, port: d.port }, method);
    this.checkRealAddress(svc, d.address, method);
    const before = { ...d };
    Object.assign(d, { method, weight });
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

  deleteRealServer(key: ServiceKey, real: RealServerKey): void {
    const svc = this.service(key, errors.serviceNotDefined);
    const d = this.findDest(svc, real.address, real.port ?? svc.key.port);
    if (!d) throw errors.noDest();
    const at = svc.dests.indexOf(d);
    const successor = svc.dests[at + 1]?.index;
    svc.dests.splice(at, 1);
    this.rebuild(svc, { kind: 'delete', index: d.index, successor });
    this.retireDest(svc, d);
  }

  /** Services with their real servers, counters and connection counts; rates on request. */
  list(opts: { rates?: boolean } = {}): ServiceInfo[] {
    const { counts } = this.scanConnections();
    const rates = (kind: 'service' | 'dest', index: number) =>
      opts.rates ? { rates: readRates(this.dp, kind, index) } : {};
    return [...this.services.values()].map((svc) => ({
      key: { ...svc.key },
      scheduler: svc.scheduler,
      onePacket: false,
      schedFlags: [],
      stats: this.dp.readStats('svc_stats', svc.id),
      ...rates('service', svc.id),
      realServers: svc.dests.map((d) => ({
        address: d.address,
        port: d.port,
        method: d.method,
        weight: d.weight,
        upperThreshold: 0,
        lowerThreshold: 0,
        ...(counts.get(d.index) ?? { activeConns: 0, inactiveConns: 0, persistConns: 0 }),
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

  /** The connection table (ipvsadm -c): live connections of the clients' side. */
  connections(): ConnectionInfo[] {
    return this.scanConnections().connections;
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
    if ('fwmark' in key) throw errors.unsupported('firewall-mark services (-f) are not supported yet');
    if (key.protocol !== 'tcp' && key.protocol !== 'udp') {
      throw errors.invalid(`unknown protocol ${String(key.protocol)}: use tcp or udp`);
    }
    if (!familyOf(key.address)) throw errors.invalid(`illegal virtual server address: ${key.address}`);
    if (!Number.isInteger(key.port) || key.port < 1 || key.port > 65535) {
      throw errors.invalid(`illegal virtual server port: ${key.port}`);
    }
    return this.serviceKeyString(key);
  }

  private checkScheduler(name: string): string {
    if (SCHEDULERS[name]) return name;
    if (!IPVS_SCHEDULERS.includes(name)) throw errors.noScheduler(name);
    throw errors.unsupported(`the ${name} scheduler is not supported yet (xvs has ${Object.keys(SCHEDULERS).join(', ')})`);
  }

  private checkServiceOptions(opts: ServiceOptions): void {
    if (opts.persistent) throw errors.unsupported('persistent services (-p) are not supported yet');
    if (opts.onePacket) throw errors.unsupported('one-packet scheduling (-o) is not supported yet');
    if (opts.schedFlags?.length) throw errors.unsupported('scheduler flags (-b) are not supported yet');
  }

  private checkThresholds(opts: RealServerOptions): void {
    const upper = opts.upperThreshold ?? 0;
    const lower = opts.lowerThreshold ?? 0;
    for (const [what, v] of [['u_threshold', upper], ['l_threshold', lower]] as const) {
      if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) throw errors.invalid(`illegal ${what} specified`);
    }
    // As the kernel: checked even when there is no upper threshold.
    if (lower > upper) throw errors.range('lower threshold is higher than upper threshold');
    if (upper || lower) throw errors.unsupported('connection thresholds (-x, -y) are not supported yet');
  }

  private checkMethod(method: string): Method {
    if (method !== 'dr' && method !== 'nat' && method !== 'tun') throw errors.invalid(`unknown forwarding method ${method}`);
    return method;
  }

  private checkWeight(weight: number): number {
    if (!Number.isInteger(weight) || weight < 0 || weight > 65535) throw errors.invalid('illegal weight specified');
    return weight;
  }

  private checkRealAddress(svc: ServiceState, address: string, method: Method): void {
    const family = familyOf(address);
    if (!family) throw errors.invalid(`illegal real server address: ${address}`);
    // As the kernel (ip_vs_ctl.c): mixed address families only for tunnels.
    if (family !== familyOf(svc.key.address) && method !== 'tun') {
      throw errors.invalid('real server and virtual service of different address families need tunnelling (tun)');
    }
  }

  private checkRealPort(svc: ServiceState, real: RealServerKey, method: Method): number {
    const port = real.port ?? svc.key.port;
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw errors.invalid(`illegal real server port: ${port}`);
    if (port !== svc.key.port && method !== 'nat') {
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
      (svc) => familyOf(svc.key.address) === 'inet6' || svc.dests.some((d) => familyOf(d.address) === 'inet6'),
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

  // --- map writes ---------------------------------------------------------------------------

  private scanConnections(): ReturnType<typeof scanConnections> {
    const dests = new Map<number, DestState>();
    for (const svc of this.services.values()) for (const d of svc.dests) dests.set(d.index, d);
    return scanConnections(this.dp, (index) => dests.get(index));
  }

  // --- pinned state ----------------------------------------------------------------------------

  /** Takes over the state pinned with the maps; records the namespace when none is yet. */
  private openStored(netns: string | undefined): void {
    const ctl = store.readCtl(this.dp);
    if (netns && ctl.netns && netns !== ctl.netns) {
      throw errors.invalid(`the balancer pinned at ${this.dp.pinPath} lives in network namespace ${ctl.netns}, not ${netns}`);
    }
    this.netns = netns ?? (ctl.netns || undefined);
    if (netns && !ctl.netns) store.writeCtl(this.dp, { netns });
    this.adopt(store.readState(this.dp));
  }

  /** Rebuilds the in-memory state from what the maps hold. */
  private adopt(state: store.StoredState): void {
    this.services.clear();
    this.serviceIds = new IndexPool(this.dp.maxServices);
    this.destIndexes = new IndexPool(this.dp.maxDests, state.ctl.destHigh % this.dp.maxDests);
    this.destGen = state.ctl.destGen;
    this.destHigh = state.ctl.destHigh;
    this.version = state.ctl.version;
    this.slotsInUse = 0;
    const schedulers = new Map(Object.entries(SCHED_ENUM).map(([name, e]) => [this.dp.enumValue('xvs_sched', e), name]));
    const methods = new Map(
      (Object.entries(METHOD_ENUM) as [Method, string][]).map(([m, e]) => [this.dp.enumValue('xvs_fwd', e), m]),
    );
    for (const s of state.services) {
      const scheduler = schedulers.get(s.value.sched);
      if (!scheduler) throw errors.invalid(`service ${s.id} pinned with an unknown scheduler (${s.value.sched})`);
      const dests: DestState[] = s.dests.map((d) => ({
        index: d.index, gen: d.gen, address: d.address, port: d.port, method: methods.get(d.method) ?? 'dr', weight: d.weight,
      }));
      const position: SchedPosition = s.schedCtl
        ? { last: s.schedCtl.last ? s.schedCtl.last - 1 : undefined, cw: s.schedCtl.cw }
        : EMPTY_TABLE.position;
      const model = SCHEDULERS[scheduler]!.build(dests, position, { kind: 'init' });
      const same = model.slots.length === s.slots.length && model.slots.every((slot, i) => slot === s.slots[i]);
      const table: SchedTable = {
        slots: s.slots, cws: same ? model.cws : s.slots.map(() => 0), start: s.schedCtl?.start ?? 0, position,
      };
      this.serviceIds.claim(s.id);
      for (const d of dests) this.destIndexes.claim(d.index);
      this.slotsInUse += s.slots.length;
      const key = storedServiceKey(s.key);
      this.services.set(this.serviceKeyString(key), {
        key, id: s.id, scheduler, dests, table, tableGen: s.sched?.gen ?? 0, position,
      });
    }
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

  private serviceKeyString(key: ServiceKey): string {
    if ('fwmark' in key) return `fwmark|${key.family ?? 'inet'}|${key.fwmark}`;
    const family = familyOf(key.address);
    const addr = family ? formatAddress(addressBytes(key.address), family) : key.address;
    return `${key.protocol}|${addr}|${key.port}`;
  }

  private svcKeyBytes(key: AddressKey): Buffer {
    return L.svcKey.encode({
      addr: addressBytes(key.address),
      port: key.port,
      proto: PROTO_NUMBER[key.protocol],
      af: afNumber(familyOf(key.address)!),
      fwmark: 0,
    });
  }

  private serviceValue(svc: ServiceState): Buffer {
    return L.service.encode({ id: svc.id, sched: this.dp.enumValue('xvs_sched', SCHED_ENUM[svc.scheduler]!) });
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
    });
    this.dp.map('dests').update(u32(d.index), value);
  }

  /** Marks a removed real server unavailable (its connections end) and frees its index. */
  private retireDest(svc: ServiceState, d: DestState): void {
    this.dp.map('dests').update(u32(d.index), Buffer.alloc(L.dest.size));
    if (d.method === 'nat') this.natRealRef(svc, d, -1);
    this.neighbours.release(d.address);
    this.destIndexes.release(d.index);
  }

  private natRealRef(svc: ServiceState, d: DestState, delta: 1 | -1): void {
    const key = L.realKey.encode({
      addr: addressBytes(d.address),
      port: d.port,
      proto: PROTO_NUMBER[svc.key.protocol],
      af: afNumber(familyOf(d.address)!),
    });
    const map = this.dp.map('nat_reals');
    const count = (map.lookup(key)?.readUInt32LE(0) ?? 0) + delta;
    if (count > 0) map.update(key, u32(count));
    else map.delete(key);
  }

  /** Where the dataplane's scheduler stands now, from its cursor. */
  private position(svc: ServiceState): SchedPosition {
    const state = this.dp.map('svc_sched').lookup(u32(svc.id));
    const len = svc.table.slots.length;
    if (!state || !len) return svc.position;
    const cursor = L.schedState.decode(state).cursor;
    if (cursor === BigInt(svc.table.start)) return svc.position;
    const last = Number((cursor - 1n) % BigInt(len));
    return { last: svc.table.slots[last], cw: svc.table.cws[last]! };
  }

  /** Writes the service's new scheduler table into the idle generation, then switches to it. */
  private rebuild(svc: ServiceState, change: SchedChange): void {
    const scheduler = SCHEDULERS[svc.scheduler]!;
    const table = scheduler.build(svc.dests, this.position(svc), change);
    const oldLen = svc.table.slots.length;
    if (this.slotsInUse - oldLen + table.slots.length > this.maxSlots) {
      throw errors.full(`Memory allocation problem: scheduler tables would need more than ${this.maxSlots} slots`);
    }
    const gen = svc.tableGen ^ 1;
    const slots = this.dp.map('sched_slots');
    const keys = table.slots.map((_, slot) => L.slotKey.encode({ svc: svc.id, gen, slot }));
    slots.updateBatch(keys, table.slots.map(u32));
    this.dp.map('svc_sched').update(
      u32(svc.id),
      L.schedState.encode({ cursor: BigInt(table.start), gen, len: table.slots.length }),
    );
    const { last, cw } = table.position;
    this.dp.map('ctl_sched').update(u32(svc.id), L.schedCtl.encode({ start: table.start, last: last === undefined ? 0 : last + 1, cw }));
    this.deleteSlots(svc, svc.tableGen, oldLen);
    this.slotsInUse += table.slots.length - oldLen;
    svc.table = table;
    svc.tableGen = gen;
    svc.position = table.position;
  }

  private deleteSlots(svc: ServiceState, gen: number, len: number): void {
    if (!len) return;
    const keys = Array.from({ length: len }, (_, slot) => L.slotKey.encode({ svc: svc.id, gen, slot }));
    this.dp.map('sched_slots').deleteBatch(keys);
  }
}

function storedServiceKey(k: store.StoredService['key']): AddressKey {
  const family = k.af === afNumber('inet6') ? 'inet6' : 'inet';
  return { protocol: k.proto === PROTO_NUMBER.udp ? 'udp' : 'tcp', address: formatAddress(k.addr, family), port: k.port };
}

/** The textual form ipvsadm prints (RFC 5952 for IPv6). */
function canonical(address: string): string {
  return formatAddress(addressBytes(address), familyOf(address)!);
}

/** Validates both families' tunnel sources before anything is written. */
function checkTunnelSource(source: TunnelSource): [Buffer, Buffer] {
  return [tunnelSourceValue(source.inet, 'inet'), tunnelSourceValue(source.inet6, 'inet6')];
}
