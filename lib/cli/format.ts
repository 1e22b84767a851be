// ipvsadm's listings, byte for byte (print_title, print_service_entry, print_largenum,
// list_conn, list_timeout in ipvsadm.c), from the Balancer's ServiceInfo and ConnectionInfo.
// Sorting reproduces libipvs's comparators, including their int overflow, with glibc's merge sort.
import { addressBytes, familyOf } from '../address.js';
import type { ConnectionInfo, RealServerInfo, ServiceInfo } from '../balancer.js';
import type { Stats } from '../dataplane.js';
import { type Rates, ZERO_RATES } from '../estimator.js';
import { tunnelInfo, tunnelRule } from '../tuntype.js';
import { addressToHost, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, portToService } from './names.js';
import { AF_INET, AF_INET6, type Command, schedFlagBits, schedFlagNames } from './parse.js';
import {
  CONN_COLUMNS, CONN_HEADER, CONN_PE_COLUMNS, FORWARD_NAMES, FORWARD_SWITCHES, LIST_HEADER, NOT_APPLICABLE,
  TITLE_DEFAULT, TITLE_PERSISTENT_COLUMNS, TITLE_RATE_COLUMNS, TITLE_STATS_COLUMNS, TITLE_THRESHOLDS_COLUMNS,
  TITLE_TUN_INFO,
} from './texts.js';

export type Format = Command['format'];

export interface ListOptions {
  format: Format;
  /** -S: restorable rules instead of a table. */
  rule?: boolean;
  /** The "IP Virtual Server version" line with this connection table size (list_all only). */
  connTableSize?: number;
}

const PROTO: Record<string, number> = { tcp: IPPROTO_TCP, udp: IPPROTO_UDP, sctp: IPPROTO_SCTP };
const PROTO_NAME: Record<number, string> = { [IPPROTO_TCP]: 'TCP', [IPPROTO_UDP]: 'UDP', [IPPROTO_SCTP]: 'SCTP' };
const PROTO_SWITCH: Record<number, string> = { [IPPROTO_TCP]: '-t', [IPPROTO_UDP]: '-u', [IPPROTO_SCTP]: '--sctp-service' };

const padEnd = (s: string | number | bigint, n: number) => String(s).padEnd(n);
const padStart = (s: string | number | bigint, n: number) => String(s).padStart(n);

/** Resolves names before formatting (the formatting itself is synchronous). */
class Namer {
  private readonly hosts = new Map<string, string | undefined>();

  constructor(private readonly numeric: boolean) {}

  async prepare(addresses: Iterable<string>): Promise<void> {
    if (this.numeric) return;
    const unique = [...new Set(addresses)].filter((a) => !this.hosts.has(a));
    const names = await Promise.all(unique.map((a) => addressToHost(a)));
    unique.forEach((a, i) => this.hosts.set(a, names[i]));
  }

  /** addrport_to_anyname: "host:port" (IPv6 in brackets), names unless numeric, 59 chars at most. */
  addrPort(address: string, port: number, proto: number): string {
    const v6 = familyOf(address) === 'inet6';
    const host = (this.numeric ? undefined : this.hosts.get(address)) ?? address;
    const service = (this.numeric ? undefined : portToService(port, proto)) ?? String(port);
    return `${v6 ? '[' : ''}${host}${v6 ? ']' : ''}:${service}`.slice(0, 59);
  }
}

/** print_largenum: 9 wide below 1e8, then scaled to K, M, G, T; --exact prints whole numbers. */
export function largenum(i: bigint, exact: boolean): string {
  if (exact) {
    const len = String(i).length;
    return padStart(i, len <= 8 ? 9 : len + 1);
  }
  if (i < 100000000n) return padStart(i, 9);
  if (i < 1000000000n) return `${padStart(i / 1000n, 8)}K`;
  if (i < 100000000000n) return `${padStart(i / 1000000n, 8)}M`;
  if (i < 100000000000000n) return `${padStart(i / 1000000000n, 8)}G`;
  return `${padStart(i / 1000000000000n, 8)}T`;
}

// --- sorting (libipvs ipvs_cmp_services / ipvs_cmp_dests, glibc qsort = merge sort) --------------

/** C's `int r = u32 - u32`. */
const wrap = (a: number, b: number) => (a - b) | 0;

function words(address: string): number[] {
  const b = addressBytes(address);
  return [0, 4, 8, 12].map((o) => b.readUInt32BE(o));
}

function cmpAddress(v6: boolean, a: string, b: string): number {
  const wa = words(a);
  const wb = words(b);
  if (!v6) return wrap(wa[0]!, wb[0]!);
  let r = 0;
  for (let i = 0; !r && i < 4; i++) r = wrap(wa[i]!, wb[i]!);
  return r;
}

interface SortKey {
  fwmark: number;
  af: number;
  protocol: number;
  address: string;
  port: number;
}

function sortKey(s: ServiceInfo): SortKey {
  const k = s.key;
  if ('fwmark' in k) return { fwmark: k.fwmark, af: k.family === 'inet6' ? AF_INET6 : AF_INET, protocol: 0, address: '0.0.0.0', port: 0 };
  return { fwmark: 0, af: afOf(k.address), protocol: PROTO[k.protocol] ?? 0, address: k.address, port: k.port };
}

function cmpServices(a: SortKey, b: SortKey): number {
  return (
    wrap(a.fwmark, b.fwmark) || a.af - b.af || a.protocol - b.protocol ||
    cmpAddress(a.af === AF_INET6, a.address, b.address) || a.port - b.port
  );
}

function cmpDests(a: RealServerInfo, b: RealServerInfo): number {
  return cmpAddress(afOf(a.address) === AF_INET6, a.address, b.address) || a.port - b.port;
}

/** glibc's msort_with_tmp: top-down merge sort, left run first on ties. */
export function msort<T>(items: readonly T[], cmp: (a: T, b: T) => number): T[] {
  if (items.length <= 1) return [...items];
  const n1 = Math.floor(items.length / 2);
  const left = msort(items.slice(0, n1), cmp);
  const right = msort(items.slice(n1), cmp);
  const out: T[] = [];
  let i = 0;
  let j = 0;
  while (i < left.length && j < right.length) out.push(cmp(left[i]!, right[j]!) <= 0 ? left[i++]! : right[j++]!);
  return out.concat(left.slice(i), right.slice(j));
}

function afOf(address: string): number {
  return familyOf(address) === 'inet6' ? AF_INET6 : AF_INET;
}

// --- listing -----------------------------------------------------------------------------------

function title(f: Format): string {
  const line = (cols: string[], widths: number[]) =>
    `${padEnd('Prot LocalAddress:Port', 33)} ${cols.map((c, i) => (widths[i]! > 0 ? padStart(c, widths[i]!) : padEnd(c, -widths[i]!))).join(' ')}\n  -> RemoteAddress:Port\n`;
  if (f.stats) return line(TITLE_STATS_COLUMNS, [8, 8, 8, 8, 8]);
  if (f.rate) return line(TITLE_RATE_COLUMNS, [8, 8, 8, 8, 8]);
  if (f.thresholds) return line(TITLE_THRESHOLDS_COLUMNS, [-10, -10, -10, -10]);
  if (f.persistentConn) return line(TITLE_PERSISTENT_COLUMNS, [-9, -11, -10, -10]);
  if (f.tunInfo) return TITLE_TUN_INFO;
  return TITLE_DEFAULT;
}

const statsColumns = (st: Stats) => [st.conns, st.inpkts, st.outpkts, st.inbytes, st.outbytes];
const rateColumns = (r: Rates) => [r.cps, r.inpps, r.outpps, r.inbps, r.outbps];

function schedFlagsText(s: ServiceInfo): string | undefined {
  const bits = schedFlagBits(s.schedFlags);
  if (!bits) return undefined;
  return schedFlagNames(s.scheduler, bits).join(',');
}

function serviceName(s: ServiceInfo, k: SortKey, rule: boolean, namer: Namer): string {
  if ('fwmark' in s.key) {
    const v6 = k.af === AF_INET6;
    // ipvsadm prints the (unsigned) mark with %d: marks from 2^31 up come out negative.
    const mark = k.fwmark | 0;
    return rule ? `-f ${mark}${v6 ? ' -6' : ''}` : `FWM  ${mark}${v6 ? ' IPv6' : ''}`;
  }
  const vname = namer.addrPort(k.address, k.port, k.protocol);
  if (rule) return `${PROTO_SWITCH[k.protocol] ?? '--xxx-service'} ${vname}`;
  const name = `${padEnd(PROTO_NAME[k.protocol] ?? '?', 4)} ${vname}`;
  return k.af === AF_INET6 ? name : name.slice(0, 33);
}

function persistenceText(s: ServiceInfo, af: number, timeoutWord: string, maskWord: string): string {
  if (!s.persistent) return '';
  let out = ` ${timeoutWord} ${s.persistent}`;
  const mask = s.netmask ?? (af === AF_INET6 ? '128' : '255.255.255.255');
  if (af === AF_INET && mask !== '255.255.255.255') out += ` ${maskWord} ${mask}`;
  if (af === AF_INET6 && mask !== '128') out += ` ${maskWord} ${mask}`;
  return out;
}

function serviceLine(s: ServiceInfo, name: string, af: number, opts: ListOptions): string {
  const f = opts.format;
  const flags = schedFlagsText(s);
  if (opts.rule) {
    return `-A ${name} -s ${s.scheduler}${persistenceText(s, af, '-p', '-M')}${s.pe ? ` --pe ${s.pe}` : ''}` +
      `${s.onePacket ? ' -o' : ''}` +
      `${schedFlagBits(s.schedFlags) ? ` -b ${flags ?? ''}` : ''}\n`;
  }
  if (f.stats || f.rate) {
    const cols = f.stats ? statsColumns(s.stats) : rateColumns(s.rates ?? ZERO_RATES);
    return `${padEnd(name, 33)}${cols.map((n) => largenum(n, f.exact)).join('')}\n`;
  }
  const flagText = schedFlagBits(s.schedFlags) ? ` (${flags ?? ''})` : '';
  // ipvsadm names the engine only with persistence (the kernel uses it only then).
  const pe = s.persistent && s.pe ? ` pe ${s.pe}` : '';
  return `${name} ${s.scheduler}${flagText}${persistenceText(s, af, 'persistent', 'mask')}${pe}${s.onePacket ? ' ops' : ''}\n`;
}

function destLine(d: RealServerInfo, svcName: string, proto: number, opts: ListOptions, namer: Namer): string {
  const f = opts.format;
  let dname = namer.addrPort(d.address, d.port, proto);
  if (!opts.rule && afOf(d.address) !== AF_INET6) dname = dname.slice(0, 28);
  const to = `  -> ${padEnd(dname, 28)}`;
  if (opts.rule) {
    const tunnel = d.method === 'tun' ? tunnelRule(d) : '';
    return `-a ${svcName} -r ${dname} ${FORWARD_SWITCHES[d.method]} -w ${d.weight}${tunnel}\n`;
  }
  if (f.stats) return `${to}${statsColumns(d.stats).map((n) => largenum(n, f.exact)).join('')}\n`;
  if (f.rate) {
    const r = d.rates ?? ZERO_RATES;
    return `${to} ${padStart(r.cps, 8)} ${padStart(r.inpps, 8)} ${padStart(r.outpps, 8)}${largenum(r.inbps, f.exact)}${largenum(r.outbps, f.exact)}\n`;
  }
  if (f.thresholds) {
    return `${to} ${padEnd(d.upperThreshold, 10)} ${padEnd(d.lowerThreshold, 10)} ${padEnd(d.activeConns, 10)} ${padEnd(d.inactiveConns, 10)}\n`;
  }
  if (f.persistentConn) {
    return `${to} ${padEnd(d.weight, 9)} ${padEnd(d.persistConns, 11)} ${padEnd(d.activeConns, 10)} ${padEnd(d.inactiveConns, 10)}\n`;
  }
  const forward = padEnd(FORWARD_NAMES[d.method], 7);
  if (f.tunInfo) {
    const info = d.method === 'tun' ? tunnelInfo(d) : NOT_APPLICABLE;
    return `${to} ${forward} ${padEnd(info, 13)} ${padEnd(d.weight, 6)} ${padEnd(d.activeConns, 10)} ${padEnd(d.inactiveConns, 10)}\n`;
  }
  return `${to} ${forward} ${padEnd(d.weight, 6)} ${padEnd(d.activeConns, 10)} ${padEnd(d.inactiveConns, 10)}\n`;
}

function serviceEntry(s: ServiceInfo, opts: ListOptions, namer: Namer): string {
  const k = sortKey(s);
  const name = serviceName(s, k, !!opts.rule, namer);
  const dests = opts.format.nosort ? s.realServers : msort(s.realServers, cmpDests);
  let out = serviceLine(s, name, k.af, opts);
  for (const d of dests) out += destLine(d, name, k.protocol, opts, namer);
  return out;
}

/** list_all (-L, -S) or, with one service, list_service (-L -t ...). */
export async function formatServices(services: readonly ServiceInfo[], opts: ListOptions): Promise<string> {
  const namer = new Namer(opts.format.numeric);
  await namer.prepare(
    services.flatMap((s) => [...('address' in s.key ? [s.key.address] : []), ...s.realServers.map((d) => d.address)]),
  );
  const sorted = opts.format.nosort ? services : msort(services, (a, b) => cmpServices(sortKey(a), sortKey(b)));
  const parts: string[] = [];
  if (opts.connTableSize !== undefined && !opts.rule) parts.push(LIST_HEADER(opts.connTableSize));
  if (!opts.rule) parts.push(title(opts.format));
  for (const s of sorted) parts.push(serviceEntry(s, opts, namer));
  return parts.join('');
}

/** list_conn (-c): the connection entries, with pe columns in the header under --persistent-conn. */
export async function formatConnections(conns: readonly ConnectionInfo[], format: Format): Promise<string> {
  const namer = new Namer(format.numeric);
  await namer.prepare(conns.flatMap((c) => [c.client.address, c.virtual.address, c.real.address]));
  const header = format.persistentConn
    ? `pro expire ${padEnd(CONN_COLUMNS[0]!, 11)} ${padEnd(CONN_COLUMNS[1]!, 18)} ${padEnd(CONN_COLUMNS[2]!, 18)} ` +
      `${padEnd(CONN_COLUMNS[3]!, 18)} ${padEnd(CONN_PE_COLUMNS[0]!, 16)} ${CONN_PE_COLUMNS[1]}\n`
    : `pro expire ${padEnd(CONN_COLUMNS[0]!, 11)} ${padEnd(CONN_COLUMNS[1]!, 18)} ${padEnd(CONN_COLUMNS[2]!, 18)} ${CONN_COLUMNS[3]}\n`;
  const rows = conns.map((c) => {
    const proto = c.template && !PROTO[c.protocol] ? 0 : PROTO[c.protocol]!;
    const seconds = Math.floor(Math.max(0, c.expiresMs) / 1000);
    const expire = `${String(Math.floor(seconds / 60)).padStart(2, '0')}:${String(seconds % 60).padStart(2, '0')}`;
    const name = (e: { address: string; port: number }) => namer.addrPort(e.address, e.port, proto);
    const row = `${padEnd(PROTO_NAME[proto] ?? 'IP', 3)} ${padEnd(expire, 6)} ${padEnd(c.state, 11)} ${padEnd(name(c.client), 18)} ` +
      `${padEnd(name(c.virtual), 18)}`;
    // ipvsadm prints the pe columns only for entries of an engine, and only under --persistent-conn.
    if (format.persistentConn && c.pe) return `${row} ${padEnd(name(c.real), 16)} ${padEnd(c.pe.name, 18)} ${c.pe.data}\n`;
    return `${row} ${name(c.real)}\n`;
  });
  return CONN_HEADER + header + rows.join('');
}
