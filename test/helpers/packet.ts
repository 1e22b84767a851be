// Frame builder and parser for BPF_PROG_TEST_RUN tests.
//
// Deliberately independent of the dataplane: its own RFC 1071 checksum, its own header layouts,
// so that a shared mistake cannot make a wrong dataplane look right. Covers Ethernet with an
// optional 802.1Q tag, IPv4 (with options) and IPv6, IP-in-IP tunnels (protocols 4 and 41), and
// option-free TCP and UDP, ICMP and ICMPv6 (errors parsed down to the quoted packet), and IPv4 and
// IPv6 fragmentation. Addresses are strings; multi-byte fields are big-endian on the wire.

const ETH_P_IPV4 = 0x0800;
const ETH_P_IPV6 = 0x86dd;
const ETH_P_8021Q = 0x8100;
const IPPROTO_IPIP = 4;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const IPPROTO_IPV6 = 41;
const IPPROTO_FRAGMENT = 44;
const IPPROTO_ICMP = 1;
const IPPROTO_ICMPV6 = 58;
/** ICMP and ICMPv6 error types, whose body quotes the packet in error. */
const ICMP_ERRORS = new Set([3, 4, 5, 11, 12]);
const ICMPV6_ERRORS = new Set([1, 2, 3, 4]);
const TCP_FLAG_BITS = 'FSRPAUEC';

// ---- addresses ----

/** Six bytes from `02:00:00:00:00:01`. */
export function mac(text: string): Buffer {
  const parts = text.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-f]{1,2}$/i.test(p))) {
    throw new Error(`not a MAC address: "${text}"`);
  }
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

/** Four bytes from `10.0.0.1`. */
export function ipv4(text: string): Buffer {
  const parts = text.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
    throw new Error(`not an IPv4 address: "${text}"`);
  }
  return Buffer.from(parts.map(Number));
}

/** Sixteen bytes from any IPv6 text form (`fd00::1`, `::ffff:10.0.0.1`, ...). */
export function ipv6(text: string): Buffer {
  let canonical: string;
  try {
    // The URL parser rejects malformed addresses and rewrites the rest in hexadecimal groups.
    canonical = new URL(`http://[${text}]/`).hostname.slice(1, -1);
  } catch {
    throw new Error(`not an IPv6 address: "${text}"`);
  }
  const [head = '', tail] = canonical.split('::');
  const groups = (s: string) => (s === '' ? [] : s.split(':'));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** IPv4 or IPv6 bytes, by the form of the text. */
export function ip(text: string): Buffer {
  return text.includes(':') ? ipv6(text) : ipv4(text);
}

export function formatMac(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** Dotted IPv4 or canonical (RFC 5952) IPv6 text. */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return [...bytes].join('.');
  const buf = Buffer.from(bytes);
  const groups = Array.from({ length: 8 }, (_, i) => buf.readUInt16BE(i * 2).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

// ---- checksums ----

/** RFC 1071: the 16-bit one's-complement sum of `data` (odd length padded with zero), folded. */
export function onesComplementSum(data: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i + 1 < data.length; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (data.length % 2 === 1) sum += data[data.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** The Internet checksum of `data`: the complement of its one's-complement sum. */
export function checksum(data: Uint8Array): number {
  return ~onesComplementSum(data) & 0xffff;
}

function pseudoHeader(src: Buffer, dst: Buffer, protocol: number, length: number): Buffer {
  if (src.length === 4) {
    const ph = Buffer.alloc(12);
    src.copy(ph, 0);
    dst.copy(ph, 4);
    ph[9] = protocol;
    ph.writeUInt16BE(length, 10);
    return ph;
  }
  const ph = Buffer.alloc(40);
  src.copy(ph, 0);
  dst.copy(ph, 16);
  ph.writeUInt32BE(length, 32);
  ph[39] = protocol;
  return ph;
}

function l4Checksum(src: Buffer, dst: Buffer, protocol: number, segment: Buffer): number {
  return checksum(Buffer.concat([pseudoHeader(src, dst, protocol, segment.length), segment]));
}

// ---- building ----

export interface IpSpec {
  src: string;
  dst: string;
  /** TTL (IPv4) or hop limit (IPv6); default 64. */
  ttl?: number;
  /** IPv4 identification; default 0. */
  id?: number;
  /** IPv4 TOS or IPv6 traffic class; default 0. */
  tos?: number;
  /** IPv4 don't-fragment; default false. */
  df?: boolean;
  /** IPv4 more-fragments; default false. */
  mf?: boolean;
  /** IPv4 fragment offset in bytes (a multiple of 8); default 0. */
  fragOffset?: number;
  /** IPv4 options, padded with zeros to a multiple of 4 bytes (the IHL follows). */
  options?: Uint8Array;
  /** IPv6 flow label; default 0. */
  flowLabel?: number;
  /** Protocol number when the frame has no tcp or udp part. */
  protocol?: number;
}

export interface TcpSpec {
  sport: number;
  dport: number;
  seq?: number;
  ack?: number;
  /** Letters as tcpdump prints them: S(YN) A(CK) F(IN) R(ST) P(SH) U(RG) E(CE) C(WR); e.g. 'SA'. */
  flags?: string;
  window?: number;
}

export interface UdpSpec {
  sport: number;
  dport: number;
  /** Send checksum 0 ("none"): legal over IPv4, invalid over IPv6. */
  zeroChecksum?: boolean;
}

export interface IcmpSpec {
  type: number;
  code?: number;
  /** The header's second word (MTU, identifier and sequence, ...); default 0. */
  rest?: number;
}

export interface FrameSpec {
  /** Default 02:00:00:00:00:02. */
  dstMac?: string;
  /** Default 02:00:00:00:00:01. */
  srcMac?: string;
  /** A single 802.1Q tag. */
  vlan?: { id: number; pcp?: number };
  ip: IpSpec;
  /** Encapsulates the `ip` packet in an outer IP header (IPIP or IPv6 tunnel). */
  tunnel?: IpSpec;
  tcp?: TcpSpec;
  udp?: UdpSpec;
  /** ICMP over IPv4, ICMPv6 over IPv6; the payload follows the 8-byte header. */
  icmp?: IcmpSpec;
  payload?: Uint8Array | string;
  /** Make checksums wrong: the `ip` header's (IPv4 only) and/or the TCP/UDP one. */
  corrupt?: { ip?: boolean; l4?: boolean };
  /** Cut this many bytes off the end; headers still claim the full length. */
  truncate?: number;
}

/** Changes a checksum into a wrong one (never into 0x0000/0xffff, its one's-complement twin). */
function spoil(buf: Buffer, offset: number): void {
  buf.writeUInt16BE(buf.readUInt16BE(offset) ^ 0x0101, offset);
}

export function tcpFlags(letters: string): number {
  let bits = 0;
  for (const letter of letters.toUpperCase()) {
    const bit = TCP_FLAG_BITS.indexOf(letter);
    if (bit < 0) throw new Error(`unknown TCP flag "${letter}" in "${letters}"`);
    bits |= 1 << bit;
  }
  return bits;
}

function formatTcpFlags(bits: number): string {
  return [...'SAFRPUEC'].filter((l) => bits & (1 << TCP_FLAG_BITS.indexOf(l))).join('');
}

function tcpHeader(spec: TcpSpec): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(spec.sport, 0);
  h.writeUInt16BE(spec.dport, 2);
  h.writeUInt32BE((spec.seq ?? 0) >>> 0, 4);
  h.writeUInt32BE((spec.ack ?? 0) >>> 0, 8);
  h[12] = 5 << 4;
  h[13] = tcpFlags(spec.flags ?? '');
  h.writeUInt16BE(spec.window ?? 65535, 14);
  return h;
}

function udpHeader(spec: UdpSpec, payloadLength: number): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16BE(spec.sport, 0);
  h.writeUInt16BE(spec.dport, 2);
  h.writeUInt16BE(8 + payloadLength, 4);
  return h;
}

/** The TCP or UDP segment with its checksum, for the addresses of `ip`. */
function buildSegment(spec: FrameSpec, payload: Buffer): { protocol: number; segment: Buffer } {
  if ([spec.tcp, spec.udp, spec.icmp].filter(Boolean).length > 1) throw new Error('a frame has one of tcp, udp, icmp');
  if (spec.icmp) return icmpMessage(spec, payload);
  if (!spec.tcp && !spec.udp) {
    if (spec.ip.protocol === undefined) throw new Error('give tcp, udp or ip.protocol');
    return { protocol: spec.ip.protocol, segment: payload };
  }
  const protocol = spec.tcp ? IPPROTO_TCP : IPPROTO_UDP;
  const header = spec.tcp ? tcpHeader(spec.tcp) : udpHeader(spec.udp!, payload.length);
  const segment = Buffer.concat([header, payload]);
  const offset = spec.tcp ? 16 : 6;
  if (!spec.udp?.zeroChecksum) {
    let sum = l4Checksum(ip(spec.ip.src), ip(spec.ip.dst), protocol, segment);
    // In UDP a computed 0 is sent as 0xffff: 0 means "no checksum".
    if (sum === 0 && spec.udp) sum = 0xffff;
    segment.writeUInt16BE(sum, offset);
  }
  if (spec.corrupt?.l4) spoil(segment, offset);
  return { protocol, segment };
}

function icmpMessage(spec: FrameSpec, payload: Buffer): { protocol: number; segment: Buffer } {
  const v6 = spec.ip.src.includes(':');
  const header = Buffer.alloc(8);
  header[0] = spec.icmp!.type;
  header[1] = spec.icmp!.code ?? 0;
  header.writeUInt32BE((spec.icmp!.rest ?? 0) >>> 0, 4);
  const segment = Buffer.concat([header, payload]);
  const protocol = v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP;
  // ICMPv6's checksum covers a pseudo-header (RFC 4443 2.3), ICMP's only the message.
  segment.writeUInt16BE(v6 ? l4Checksum(ip(spec.ip.src), ip(spec.ip.dst), protocol, segment) : checksum(segment), 2);
  if (spec.corrupt?.l4) spoil(segment, 2);
  return { protocol, segment };
}

function ipv4Header(spec: IpSpec, protocol: number, payloadLength: number): Buffer {
  const options = Buffer.from(spec.options ?? []);
  const optionsLength = Math.ceil(options.length / 4) * 4;
  const fragOffset = spec.fragOffset ?? 0;
  if (fragOffset % 8 !== 0) throw new Error(`fragment offset ${fragOffset} is not a multiple of 8`);
  const h = Buffer.alloc(20 + optionsLength);
  h[0] = 0x40 | (5 + optionsLength / 4);
  h[1] = spec.tos ?? 0;
  h.writeUInt16BE(h.length + payloadLength, 2);
  h.writeUInt16BE(spec.id ?? 0, 4);
  h.writeUInt16BE((spec.df ? 0x4000 : 0) | (spec.mf ? 0x2000 : 0) | (fragOffset / 8), 6);
  h[8] = spec.ttl ?? 64;
  h[9] = protocol;
  ipv4(spec.src).copy(h, 12);
  ipv4(spec.dst).copy(h, 16);
  options.copy(h, 20);
  h.writeUInt16BE(checksum(h), 10);
  return h;
}

function ipv6Header(spec: IpSpec, protocol: number, payloadLength: number): Buffer {
  const h = Buffer.alloc(40);
  h.writeUInt32BE(((6 << 28) | ((spec.tos ?? 0) << 20) | (spec.flowLabel ?? 0)) >>> 0, 0);
  h.writeUInt16BE(payloadLength, 4);
  h[6] = protocol;
  h[7] = spec.ttl ?? 64;
  ipv6(spec.src).copy(h, 8);
  ipv6(spec.dst).copy(h, 24);
  return h;
}

function ipPacket(spec: IpSpec, protocol: number, payload: Buffer, corrupt = false): Buffer {
  const v6 = spec.src.includes(':');
  const header = (v6 ? ipv6Header : ipv4Header)(spec, protocol, payload.length);
  if (corrupt && !v6) spoil(header, 10);
  return Buffer.concat([header, payload]);
}

/** Builds a frame with correct checksums, unless asked to spoil them. */
export function buildFrame(spec: FrameSpec): Buffer {
  const payload = Buffer.from(spec.payload ?? '');
  const { protocol, segment } = buildSegment(spec, payload);
  let packet = ipPacket(spec.ip, protocol, segment, spec.corrupt?.ip);
  let outer = spec.ip;
  if (spec.tunnel) {
    const inner = spec.ip.src.includes(':') ? IPPROTO_IPV6 : IPPROTO_IPIP;
    packet = ipPacket(spec.tunnel, inner, packet);
    outer = spec.tunnel;
  }
  const eth = Buffer.alloc(spec.vlan ? 18 : 14);
  mac(spec.dstMac ?? '02:00:00:00:00:02').copy(eth, 0);
  mac(spec.srcMac ?? '02:00:00:00:00:01').copy(eth, 6);
  if (spec.vlan) {
    eth.writeUInt16BE(ETH_P_8021Q, 12);
    eth.writeUInt16BE(((spec.vlan.pcp ?? 0) << 13) | spec.vlan.id, 14);
  }
  eth.writeUInt16BE(outer.src.includes(':') ? ETH_P_IPV6 : ETH_P_IPV4, eth.length - 2);
  const frame = Buffer.concat([eth, packet]);
  return frame.subarray(0, frame.length - (spec.truncate ?? 0));
}

// ---- parsing ----

export interface ParsedIpv4 {
  version: 4;
  src: string;
  dst: string;
  ttl: number;
  protocol: number;
  tos: number;
  id: number;
  df: boolean;
  mf: boolean;
  /** In bytes. */
  fragOffset: number;
  /** Header length in 32-bit words. */
  ihl: number;
  totalLength: number;
  checksum: number;
  options: Buffer;
}

export interface ParsedIpv6 {
  version: 6;
  src: string;
  dst: string;
  /** Hop limit. */
  ttl: number;
  /** Next header. */
  protocol: number;
  /** Traffic class. */
  tos: number;
  flowLabel: number;
  payloadLength: number;
}

export type ParsedIp = ParsedIpv4 | ParsedIpv6;

export interface ParsedTcp {
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  /** Letters in the order S A F R P U E C, e.g. 'SA'. */
  flags: string;
  /** Header length in 32-bit words. */
  dataOffset: number;
  window: number;
  checksum: number;
}

export interface ParsedIcmp {
  type: number;
  code: number;
  checksum: number;
  /** The header's second word. */
  rest: number;
  /** For an error: the packet it quotes (cut where the quote ends). */
  quoted?: ParsedPacket;
}

/** An IPv6 fragment header. */
export interface ParsedFragment6 {
  nextHeader: number;
  /** In bytes. */
  offset: number;
  more: boolean;
  id: number;
}

export interface ParsedUdp {
  sport: number;
  dport: number;
  length: number;
  checksum: number;
}

/** An IP packet: its header, what it carries, and the bytes after the last parsed header. */
export interface ParsedPacket {
  ip: ParsedIp;
  tcp?: ParsedTcp;
  udp?: ParsedUdp;
  icmp?: ParsedIcmp;
  /** IPv6: the fragment header directly after the fixed header. */
  fragment6?: ParsedFragment6;
  /** The encapsulated packet of an IP-in-IP tunnel. */
  inner?: ParsedPacket;
  payload: Buffer;
}

export interface ParsedFrame extends Partial<ParsedPacket> {
  dstMac: string;
  srcMac: string;
  vlan?: { id: number; pcp: number };
  /** The EtherType after any VLAN tag. */
  ethertype: number;
  payload: Buffer;
}

/** Where the pieces of a packet sit in the frame, for checksum verification. */
interface Layout {
  ipStart: number;
  ipHeaderEnd: number;
  /** End of the packet as its IP header declares it (may lie beyond a truncated frame). */
  declaredEnd: number;
  inner?: Layout;
}

function parseIpv4(b: Buffer, at: number): { ip: ParsedIpv4; headerEnd: number; declaredEnd: number } {
  const ihl = b[at]! & 0x0f;
  const flags = b.readUInt16BE(at + 6);
  const totalLength = b.readUInt16BE(at + 2);
  return {
    ip: {
      version: 4,
      src: formatIp(b.subarray(at + 12, at + 16)),
      dst: formatIp(b.subarray(at + 16, at + 20)),
      ttl: b[at + 8]!,
      protocol: b[at + 9]!,
      tos: b[at + 1]!,
      id: b.readUInt16BE(at + 4),
      df: (flags & 0x4000) !== 0,
      mf: (flags & 0x2000) !== 0,
      fragOffset: (flags & 0x1fff) * 8,
      ihl,
      totalLength,
      checksum: b.readUInt16BE(at + 10),
      options: Buffer.from(b.subarray(at + 20, at + ihl * 4)),
    },
    headerEnd: at + ihl * 4,
    declaredEnd: at + totalLength,
  };
}

function parseIpv6(b: Buffer, at: number): { ip: ParsedIpv6; headerEnd: number; declaredEnd: number } {
  const first = b.readUInt32BE(at);
  const payloadLength = b.readUInt16BE(at + 4);
  return {
    ip: {
      version: 6,
      src: formatIp(b.subarray(at + 8, at + 24)),
      dst: formatIp(b.subarray(at + 24, at + 40)),
      ttl: b[at + 7]!,
      protocol: b[at + 6]!,
      tos: (first >>> 20) & 0xff,
      flowLabel: first & 0xfffff,
      payloadLength,
    },
    headerEnd: at + 40,
    declaredEnd: at + 40 + payloadLength,
  };
}

function parsePacket(b: Buffer, at: number, version: number): { packet: ParsedPacket; layout: Layout } {
  if (version !== 4 && version !== 6) throw new Error(`IP version ${version} at offset ${at}`);
  const minimum = version === 4 ? 20 : 40;
  if (b.length < at + minimum) throw new Error(`frame too short for an IPv${version} header`);
  const parsed = version === 4 ? parseIpv4(b, at) : parseIpv6(b, at);
  const { ip, declaredEnd } = parsed;
  let headerEnd = parsed.headerEnd;
  const end = Math.min(b.length, declaredEnd);
  const layout: Layout = { ipStart: at, ipHeaderEnd: headerEnd, declaredEnd };
  const packet: ParsedPacket = { ip, payload: b.subarray(headerEnd, end) };
  // Later fragments carry no transport header.
  if (ip.version === 4 && ip.fragOffset !== 0) return { packet, layout };
  let protocol = ip.protocol;
  if (ip.version === 6 && protocol === IPPROTO_FRAGMENT && end - headerEnd >= 8) {
    const word = b.readUInt16BE(headerEnd + 2);
    packet.fragment6 = {
      nextHeader: b[headerEnd]!,
      offset: word & 0xfff8,
      more: (word & 1) === 1,
      id: b.readUInt32BE(headerEnd + 4),
    };
    protocol = packet.fragment6.nextHeader;
    headerEnd += 8;
    layout.ipHeaderEnd = headerEnd;
    packet.payload = b.subarray(headerEnd, end);
    if (packet.fragment6.offset !== 0) return { packet, layout };
  }
  if ((protocol === IPPROTO_ICMP || protocol === IPPROTO_ICMPV6) && end - headerEnd >= 8) {
    const type = b[headerEnd]!;
    packet.icmp = {
      type,
      code: b[headerEnd + 1]!,
      checksum: b.readUInt16BE(headerEnd + 2),
      rest: b.readUInt32BE(headerEnd + 4),
    };
    packet.payload = b.subarray(headerEnd + 8, end);
    const quotes = (protocol === IPPROTO_ICMP ? ICMP_ERRORS : ICMPV6_ERRORS).has(type);
    if (quotes && end - headerEnd >= 8 + (ip.version === 4 ? 20 : 40)) {
      packet.icmp.quoted = parsePacket(b.subarray(0, end), headerEnd + 8, ip.version).packet;
    }
  } else if (protocol === IPPROTO_TCP && end - headerEnd >= 20) {
    const dataOffset = b[headerEnd + 12]! >> 4;
    packet.tcp = {
      sport: b.readUInt16BE(headerEnd),
      dport: b.readUInt16BE(headerEnd + 2),
      seq: b.readUInt32BE(headerEnd + 4),
      ack: b.readUInt32BE(headerEnd + 8),
      flags: formatTcpFlags(b[headerEnd + 13]!),
      dataOffset,
      window: b.readUInt16BE(headerEnd + 14),
      checksum: b.readUInt16BE(headerEnd + 16),
    };
    packet.payload = b.subarray(Math.min(end, headerEnd + dataOffset * 4), end);
  } else if (ip.protocol === IPPROTO_UDP && end - headerEnd >= 8) {
    packet.udp = {
      sport: b.readUInt16BE(headerEnd),
      dport: b.readUInt16BE(headerEnd + 2),
      length: b.readUInt16BE(headerEnd + 4),
      checksum: b.readUInt16BE(headerEnd + 6),
    };
    packet.payload = b.subarray(headerEnd + 8, end);
  } else if (ip.protocol === IPPROTO_IPIP || ip.protocol === IPPROTO_IPV6) {
    const inner = parsePacket(b, headerEnd, ip.protocol === IPPROTO_IPIP ? 4 : 6);
    packet.inner = inner.packet;
    layout.inner = inner.layout;
    packet.payload = inner.packet.payload;
  }
  return { packet, layout };
}

function parseWithLayout(frame: Uint8Array): { parsed: ParsedFrame; layout?: Layout } {
  const b = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  if (b.length < 14) throw new Error(`frame of ${b.length} bytes is shorter than an Ethernet header`);
  let at = 12;
  let ethertype = b.readUInt16BE(at);
  let vlan: ParsedFrame['vlan'];
  if (ethertype === ETH_P_8021Q && b.length >= 18) {
    const tci = b.readUInt16BE(14);
    vlan = { id: tci & 0x0fff, pcp: tci >> 13 };
    at = 16;
    ethertype = b.readUInt16BE(at);
  }
  at += 2;
  const parsed: ParsedFrame = {
    dstMac: formatMac(b.subarray(0, 6)),
    srcMac: formatMac(b.subarray(6, 12)),
    ethertype,
    payload: b.subarray(at),
  };
  if (vlan) parsed.vlan = vlan;
  if (ethertype !== ETH_P_IPV4 && ethertype !== ETH_P_IPV6) return { parsed };
  const { packet, layout } = parsePacket(b, at, ethertype === ETH_P_IPV4 ? 4 : 6);
  return { parsed: { ...parsed, ...packet }, layout };
}

/** Parses a frame; fields of layers that are absent (or cut off) are left undefined. */
export function parseFrame(frame: Uint8Array): ParsedFrame {
  return parseWithLayout(frame).parsed;
}

// ---- verification ----

export interface ChecksumResult {
  /** Every IPv4 header checksum (outer and inner) is right; IPv6 headers have none. */
  ipOk: boolean;
  /** The innermost TCP/UDP/ICMP checksum is right; true when there is none to check. */
  l4Ok: boolean;
}

/**
 * Recomputes the checksums of a frame from its bytes. A truncated segment fails; UDP checksum 0 is
 * accepted over IPv4 only. Not meaningful for the first fragment of a fragmented datagram.
 */
export function verifyChecksums(frame: Uint8Array): ChecksumResult {
  let parsed: ParsedFrame;
  let layout: Layout | undefined;
  try {
    ({ parsed, layout } = parseWithLayout(frame));
  } catch {
    return { ipOk: false, l4Ok: false };
  }
  if (!parsed.ip || !layout) return { ipOk: false, l4Ok: false };
  const b = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  let ipOk = true;
  let packet: ParsedPacket = parsed as ParsedPacket;
  let at: Layout = layout;
  for (;;) {
    if (packet.ip.version === 4) {
      ipOk &&= onesComplementSum(b.subarray(at.ipStart, at.ipHeaderEnd)) === 0xffff;
    }
    if (!packet.inner || !at.inner) break;
    packet = packet.inner;
    at = at.inner;
  }
  return { ipOk, l4Ok: l4ChecksumOk(b, packet, at) };
}

function l4ChecksumOk(b: Buffer, packet: ParsedPacket, at: Layout): boolean {
  if (packet.icmp) {
    if (at.declaredEnd > b.length) return false;
    const message = b.subarray(at.ipHeaderEnd, at.declaredEnd);
    if (packet.ip.version === 4) return onesComplementSum(message) === 0xffff;
    return l4Checksum(ip(packet.ip.src), ip(packet.ip.dst), IPPROTO_ICMPV6, message) === 0;
  }
  if (!packet.tcp && !packet.udp) return true;
  if (at.declaredEnd > b.length) return false;
  if (packet.udp?.checksum === 0) return packet.ip.version === 4;
  const segment = b.subarray(at.ipHeaderEnd, at.declaredEnd);
  const protocol = packet.tcp ? IPPROTO_TCP : IPPROTO_UDP;
  // Summed with its checksum in place, a correct segment sums to 0xffff: its checksum is 0.
  return l4Checksum(ip(packet.ip.src), ip(packet.ip.dst), protocol, segment) === 0;
}

// ---- fragmentation ----

/**
 * Splits the IP packet of an untagged frame (no tunnel) into fragments of at most `size` bytes of
 * fragmentable payload (a multiple of 8), as a router or the sender would: IPv4 with MF and
 * offsets, IPv6 with a fragment header; both with identification `id`. The Ethernet header is
 * repeated.
 */
export function fragmentFrame(frame: Buffer, size: number, id = 0x1234): Buffer[] {
  if (size % 8 !== 0) throw new Error(`fragment size ${size} is not a multiple of 8`);
  const eth = frame.subarray(0, 14);
  const v6 = frame.readUInt16BE(12) === ETH_P_IPV6;
  const headerLength = v6 ? 40 : (frame[14]! & 0x0f) * 4;
  const header = frame.subarray(14, 14 + headerLength);
  const body = frame.subarray(14 + headerLength);
  const out: Buffer[] = [];
  for (let offset = 0; offset < body.length; offset += size) {
    const piece = body.subarray(offset, offset + size);
    const more = offset + size < body.length;
    const h = Buffer.from(header);
    if (v6) {
      const fragment = Buffer.alloc(8);
      fragment[0] = h[6]!;
      fragment.writeUInt16BE(offset | (more ? 1 : 0), 2);
      fragment.writeUInt32BE(id >>> 0, 4);
      h[6] = IPPROTO_FRAGMENT;
      h.writeUInt16BE(8 + piece.length, 4);
      out.push(Buffer.concat([eth, h, fragment, piece]));
    } else {
      h.writeUInt16BE(headerLength + piece.length, 2);
      h.writeUInt16BE(id & 0xffff, 4);
      h.writeUInt16BE((h.readUInt16BE(6) & 0x4000) | (more ? 0x2000 : 0) | (offset / 8), 6);
      h.writeUInt16BE(0, 10);
      h.writeUInt16BE(checksum(h), 10);
      out.push(Buffer.concat([eth, h, piece]));
    }
  }
  return out;
}
