// The outer source address of tunnelled (TUN, -i) packets, per outer family (bpf/xvs_tun.h).
// Unset, it is the route's source towards the real server, as IPVS uses. An address is used as
// it is. A prefix gives every flow its own source inside it: the host bits (at most the low 32)
// come from the flow's hash, so that the real server's RSS, which hashes IPIP packets by their
// outer addresses only, spreads the flows over its queues.
import { ADDRESS_BITS, addressBytes, formatAddress, parsePrefix, type Family } from './address.js';
import { errors } from './errors.js';
import * as L from './layout.js';

export interface TunnelSource {
  /** Outer source for IPv4 outer headers: `10.255.0.9` or `10.255.0.0/24`. */
  inet?: string;
  /** Outer source for IPv6 outer headers: `fd00:ff::9` or `fd00:ff::/96`. */
  inet6?: string;
}

/** The tun_sources map value for one family; undefined text: the route's source (all zero). */
export function tunnelSourceValue(text: string | undefined, family: Family): Buffer {
  if (text === undefined) return L.tunSource.encode({});
  const parsed = parsePrefix(text);
  if (parsed?.family !== family) {
    throw errors.invalid(`illegal ${family === 'inet' ? 'IPv4' : 'IPv6'} tunnel source: ${text}`);
  }
  const prefix = parsed.length;
  const addr = addressBytes(parsed.address);
  const hostmask = hostMask(prefix, family);
  if (addr.every((b) => b === 0)) throw errors.invalid(`tunnel source ${text} is the unspecified address`);
  if (addr.some((b, i) => (b & hostmask[i]!) !== 0)) {
    throw errors.invalid(`tunnel source ${text}: host bits set (the prefix is ${formatAddress(network(addr, hostmask), family)}/${prefix})`);
  }
  // The dataplane fills at most the low 32 bits from the flow hash.
  if (family === 'inet6') hostmask.fill(0, 0, 12);
  return L.tunSource.encode({ addr, hostmask });
}

/** Bits of the prefix's host part, as a 16-byte mask (IPv4 in the first 4 bytes). */
function hostMask(prefix: number, family: Family): Buffer {
  const mask = Buffer.alloc(16);
  for (let bit = prefix; bit < ADDRESS_BITS[family]; bit++) mask[bit >> 3]! |= 0x80 >> (bit & 7);
  return mask;
}

function network(addr: Buffer, hostmask: Buffer): Buffer {
  return Buffer.from(addr.map((b, i) => b & ~hostmask[i]!));
}
