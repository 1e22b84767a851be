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

/** The textual form of a 16-byte dataplane address. */
export function formatAddress(bytes: Buffer, family: Family): string {
  if (family === 'inet') return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  const words = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2));
  // RFC 5952: compress the longest run (>= 2) of zero words, leftmost on a tie.
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
  const hex = words.map((w) => w.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}
