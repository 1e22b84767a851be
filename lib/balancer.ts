// The programmatic API of xvs: virtual services and their real servers, written into the
// dataplane's maps. Every call validates its input first and changes nothing when it fails.
import { readFileSync } from 'node:fs';
import { addressBytes, afNumber, familyOf, formatAddress, type Family } from './address.js';
import { Dataplane, type DataplaneOptions, type Stats, u32 } from './dataplane.js';
import { errors } from './errors.js';
import * as L from './layout.js';
import { type XdpLink, withNetns } from './libbpf.js';
import { primeNeighbour } from './neigh.js';
import { SCHED_ENUM, SCHEDULERS, type SchedChange, type SchedPosition, type SchedTable } from './sched/index.js';
import { tunnelSourceValue, type TunnelSource } from './tunnel.js';

export type { TunnelSource } from './tunnel.js';

export type Protocol = 'tcp' | 'udp';
export type Method = 'dr' | 'nat' | 'tun';
export type XdpMode = 'native' | 'generic';

export const DEFAULT_SCHEDULER = 'wlc';
const PROTO_NUMBER: Record<Protocol, number> = { tcp: 6, udp: 17 };
const METHOD_ENUM: Record<Method, string> = { dr: 'XVS_FWD_DR', nat: 'XVS_FWD_NAT', tun: 'XVS_FWD_TUN' };

/** A virtual service: ⟨protocol, virtual address, virtual port⟩. */
export interface ServiceKey {
  protocol: Protocol;
  address: string;
  port: number;
}

export interface ServiceOptions {
  /** ipvsadm -s; IPVS's default is wlc. */
  scheduler?: string;
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
}

export interface RealServerInfo {
  address: string;
  port: number;
  method: Method;
  weight: number;
  stats: Stats;
}

export interface ServiceInfo extends ServiceKey {
  scheduler: string;
  stats: Stats;
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
  key: ServiceKey;
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

const EMPTY_TABLE: SchedTable = { slots: [], cws: [], start: 0, position: { last: undefined, cw: 0 } };

export class Balancer {
  private readonly dp: Dataplane;
  private readonly netns: string | undefined;
  private readonly services = new Map<string, ServiceState>();
  private readonly serviceIds: IndexPool;
  private readonly destIndexes: IndexPool;
  private readonly links = new Map<string, XdpLink>();
  private readonly maxSlots: number;
  private slotsInUse = 0;
  private destGen = 0;
  private tunnel: TunnelSource = {};

  private constructor(opts: BalancerOptions) {
    const tunnelValues = checkTunnelSource(opts.tunnelSource ?? {});
    this.dp = new Dataplane(opts);
    this.netns = opts.netns;
    this.serviceIds = new IndexPool(this.dp.maxServices);
    this.destIndexes = new IndexPool(this.dp.maxDests);
    this.maxSlots = Math.min(opts.maxSchedulerSlots ?? 1 << 20, this.dp.map('sched_slots').maxEntries / 2);
    this.writeTunnelSource(opts.tunnelSource ?? {}, tunnelValues);
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
    this.checkForwarding(ifname, 'inet');
    if (this.usesInet6()) this.checkForwarding(ifname, 'inet6');
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

  /** Sets the outer source of tunnelled packets, per outer family; a family left out uses the route's. */
  setTunnelSource(source: TunnelSource): void {
    this.writeTunnelSource(source, checkTunnelSource(source));
  }

  get tunnelSource(): TunnelSource {
    return { ...this.tunnel };
  }

  addService(key: ServiceKey, opts: ServiceOptions = {}): void {
    const k = this.checkServiceKey(key);
    const scheduler = this.checkScheduler(opts.scheduler ?? DEFAULT_SCHEDULER);
    if (this.services.has(k)) throw errors.serviceExists();
    if (familyOf(key.address) === 'inet6') this.checkForwardingEverywhere('inet6');
    const id = this.serviceIds.take();
    if (id === undefined) throw errors.full('Memory allocation problem: too many services');
    const svc: ServiceState = {
      key: { ...key, address: canonical(key.address) }, id, scheduler, dests: [], table: EMPTY_TABLE, tableGen: 0,
      position: EMPTY_TABLE.position,
    };
    try {
      this.dp.zeroStats('svc_stats', id);
      this.dp.map('svc_sched').update(u32(id), L.schedState.encode({ cursor: 0n, gen: 0, len: 0 }));
      this.dp.map('services').update(this.svcKeyBytes(key), this.serviceValue(svc));
      this.vipRef(svc.key.address, +1);
    } catch (e) {
      this.dp.map('services').delete(this.svcKeyBytes(key));
      this.dp.map('svc_sched').delete(u32(id));
      this.serviceIds.release(id);
      throw e;
    }
    this.services.set(k, svc);
  }

  editService(key: ServiceKey, opts: ServiceOptions): void {
    const svc = this.service(key, errors.noService);
    const scheduler = this.checkScheduler(opts.scheduler ?? svc.scheduler);
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
    const port = this.checkRealPort(svc, real, method);
    this.checkRealAddress(svc, real.address, method);
    if (this.findDest(svc, real.address, port)) throw errors.destExists();
    if (familyOf(real.address) === 'inet6') this.checkForwardingEverywhere('inet6');
    const index = this.destIndexes.take();
    if (index === undefined) throw errors.full('Memory allocation problem: too many real servers');
    const d: DestState = { index, gen: ++this.destGen, address: canonical(real.address), port, method, weight };
    svc.dests.unshift(d);
    try {
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
    primeNeighbour(real.address, this.netns);
  }

  editRealServer(key: ServiceKey, real: RealServerKey, opts: RealServerOptions): void {
    const svc = this.service(key, errors.serviceNotDefined);
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

  /** Services with their real servers and counters. */
  list(): ServiceInfo[] {
    return [...this.services.values()].map((svc) => ({
      ...svc.key,
      scheduler: svc.scheduler,
      stats: this.dp.readStats('svc_stats', svc.id),
      realServers: svc.dests.map((d) => ({
        address: d.address,
        port: d.port,
        method: d.method,
        weight: d.weight,
        stats: this.dp.readStats('dest_stats', d.index),
      })),
    }));
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

  /** Detaches from every interface and unloads the dataplane. */
  close(): void {
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
    if (!SCHEDULERS[name]) throw errors.noScheduler(name);
    return name;
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
    for (const ifname of this.links.keys()) this.checkForwarding(ifname, family);
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
    const family = familyOf(key.address);
    const addr = family ? formatAddress(addressBytes(key.address), family) : key.address;
    return `${key.protocol}|${addr}|${key.port}`;
  }

  private svcKeyBytes(key: ServiceKey): Buffer {
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

/** The textual form ipvsadm prints (RFC 5952 for IPv6). */
function canonical(address: string): string {
  return formatAddress(addressBytes(address), familyOf(address)!);
}

/** Validates both families' tunnel sources before anything is written. */
function checkTunnelSource(source: TunnelSource): [Buffer, Buffer] {
  return [tunnelSourceValue(source.inet, 'inet'), tunnelSourceValue(source.inet6, 'inet6')];
}
