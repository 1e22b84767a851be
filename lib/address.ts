// IP addresses as the dataplane stores them: 16 bytes, an IPv4 address in the first 4.
import { isIPv4, isIPv6 } from 'node:net';

export type Family = 'inet' | 'inet6';

export const AF_INET = 2;
export const AF_INET6 = 10;

export function familyOf(address: string): Family | undefined {
  if (isIPv4(address)) return 'inet';
  if (isIPv6(address)) return 'inet6';
  return undefined;
}

export function afNumber(family: Family): number {
  return family === 'inet' ? AF_INET : AF_INET6;
}

/** The 16-byte dataplane form of an address that familyOf() accepted. */
export function addressBytes(address: string): Buffer {
  const out = Buffer.alloc(16);
  if (isIPv4(address)) {
    address.split('.').forEach((octet, i) => out.writeUInt8(Number(octet), i));
    return out;
  }
  const [head, tail = ''] = address.includes('::') ? address.split('::') : [address, undefined];
  const words = (s: string | undefined) => (s ? s.split(':') : []);
  let hw = words(head);
  let tw = words(tail);
  const lastOf = (ws: string[]) => ws[ws.length - 1] ?? '';
  const expandV4 = (ws: string[]) => {
    const last = lastOf(ws);
    if (!isIPv4(last)) return ws;
    const b = addressBytes(last);
    return [...ws.slice(0, -1), b.readUInt16BE(0).toString(16), b.readUInt16BE(2).toString(16)];
  };
  if (tw.length) tw = expandV4(tw);
  else hw = expandV4(hw);
  const all = address.includes('::')
    ? [...hw, ...Array<string>(8 - hw.length - tw.length).fill('0'), ...tw]
    : hw;
  all.forEach((w, i) => out.writeUInt16BE(parseInt(w, 16), i * 2));
  return out;
}

/**
 * The textual form of a 16-byte dataplane address, as ipvsadm prints it (glibc's inet_ntop):
 * RFC 5952 for IPv6 (lower case, no leading zeros, the longest run of two or more zero groups
 * compressed, the leftmost on a tie), with an IPv4-mapped or -compatible tail in dotted form
 * (`::ffff:10.0.0.1`, `::10.0.0.1`).
 */
export function formatAddress(bytes: Buffer, family: Family): string {
  const dotted = (at: number) => `${bytes[at]}.${bytes[at + 1]}.${bytes[at + 2]}.${bytes[at + 3]}`;
  if (family === 'inet') return dotted(0);
  const words = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  if (best === 0 && (bestLen === 6 || (bestLen === 5 && words[5] === 0xffff))) {
    return `::${bestLen === 5 ? 'ffff:' : ''}${dotted(12)}`;
  }
  const hex = words.map((w) => w.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export const ADDRESS_BITS: Record<Family, number> = { inet: 32, inet6: 128 };

/** `ADDR` or `ADDR/LEN`: the address, its family and its prefix length (the whole address when no
 * length is given); undefined when malformed. */
export function parsePrefix(text: string): { address: string; family: Family; length: number } | undefined {
  const [address = '', length, extra] = text.split('/');
  const family = familyOf(address);
  if (!family || extra !== undefined || (length !== undefined && !/^\d{1,3}$/.test(length))) return undefined;
  const bits = length === undefined ? ADDRESS_BITS[family] : Number(length);
  return bits > ADDRESS_BITS[family] ? undefined : { address, family, length: bits };
}
