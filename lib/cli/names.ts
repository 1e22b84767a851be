// Names as ipvsadm uses them: host names through the system resolver (gethostbyname and
// gethostbyaddr, so /etc/hosts and DNS as nsswitch says), service names from /etc/services
// (getservbyname/getservbyport), and the C library's number parsing (inet_aton, strtol).
import { lookup, lookupService } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_SCTP = 132;

const PROTO_NAMES: Record<number, string> = { [IPPROTO_TCP]: 'tcp', [IPPROTO_UDP]: 'udp', [IPPROTO_SCTP]: 'sctp' };

interface ServiceEntry {
  names: string[];
  port: number;
  proto: string;
}

let services: ServiceEntry[] | undefined;

function servicesFile(): ServiceEntry[] {
  if (services) return services;
  services = [];
  let text = '';
  try {
    text = readFileSync('/etc/services', 'utf8');
  } catch {
    return services;
  }
  for (const line of text.split('\n')) {
    const [name, portProto, ...aliases] = line.replace(/#.*/, '').trim().split(/\s+/);
    const m = /^(\d+)\/(\w+)$/.exec(portProto ?? '');
    if (name && m) services.push({ names: [name, ...aliases], port: Number(m[1]), proto: m[2]! });
  }
  return services;
}

/** getservbyname(name, proto) for tcp, udp and sctp; undefined for other protocols or no match. */
export function serviceToPort(name: string, proto: number): number | undefined {
  const p = PROTO_NAMES[proto];
  if (!p) return undefined;
  return servicesFile().find((s) => s.proto === p && s.names.includes(name))?.port;
}

/** getservbyport(port, proto): the service's first name. */
export function portToService(port: number, proto: number): string | undefined {
  const p = PROTO_NAMES[proto];
  if (!p) return undefined;
  return servicesFile().find((s) => s.proto === p && s.port === port)?.names[0];
}

/** strtol(s, &end, 10) that must consume the whole string (ipvsadm's string_to_number core). */
export function strtol(s: string): number | undefined {
  const m = /^[ \t\n\v\f\r]*([+-]?)(\d+)$/.exec(s);
  if (!m) return undefined;
  const n = Number(m[2]);
  return m[1] === '-' ? -n : n;
}

/** ipvsadm's string_to_number: an integer in [min, max], else undefined. */
export function stringToNumber(s: string, min: number, max: number): number | undefined {
  const n = strtol(s);
  return n !== undefined && n >= min && n <= max ? n : undefined;
}

/** str_is_digit: every character a digit (true for the empty string, as in ipvsadm). */
export function strIsDigit(s: string): boolean {
  return /^\d*$/.test(s);
}

/** glibc's inet_aton: a, a.b, a.b.c or a.b.c.d, each part decimal, octal (0…) or hex (0x…). */
export function inetAton(s: string): string | undefined {
  const text = s.split(/[ \t\n\v\f\r]/)[0]!;
  const parts = text.split('.');
  if (parts.length > 4 || parts.some((p) => p === '')) return undefined;
  const values: number[] = [];
  for (const p of parts) {
    let v: number;
    if (/^0[xX][0-9a-fA-F]*$/.test(p)) v = p.length > 2 ? parseInt(p.slice(2), 16) : 0;
    else if (/^0[0-7]*$/.test(p)) v = parseInt(p, 8);
    else if (/^[1-9]\d*$/.test(p)) v = parseInt(p, 10);
    else return undefined;
    values.push(v);
  }
  const last = values.pop()!;
  if (values.some((v) => v > 255) || last >= 2 ** (8 * (4 - values.length))) return undefined;
  let n = last;
  values.forEach((v, i) => (n += v * 2 ** (8 * (3 - i))));
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** gethostbyname for IPv4 (ipvsadm's host_to_addr); undefined when the name does not resolve. */
export async function hostToAddress(name: string): Promise<string | undefined> {
  if (!name) return undefined;
  try {
    return (await lookup(name, { family: 4 })).address;
  } catch {
    return undefined;
  }
}

const hostNames = new Map<string, Promise<string | undefined>>();

/** gethostbyaddr: the host's name, undefined when it has none. Cached per address. */
export function addressToHost(address: string): Promise<string | undefined> {
  let name = hostNames.get(address);
  if (!name) {
    name = lookupService(address, 0).then(
      ({ hostname }) => (hostname === address || isIPv4(hostname) || isIPv6(hostname) ? undefined : hostname),
      () => undefined,
    );
    hostNames.set(address, name);
  }
  return name;
}
