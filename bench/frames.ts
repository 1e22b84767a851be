// The frames of the benchmarks: a 64-byte Ethernet/IPv4/TCP-or-UDP template that the generator
// program (bench/bpf/bench_gen.bpf.c) completes per flow, and the flow numbering it shares with the
// control-plane side (prefilled connections, expected tuples).
import { isIPv4 } from 'node:net';

export const FRAME_LEN = 64;
const ETH_LEN = 14;
const IP_LEN = 20;
const IP_OFF = ETH_LEN;
const L4_OFF = ETH_LEN + IP_LEN;
const PROTO = { tcp: 6, udp: 17 } as const;

export const TCP_SYN = 0x02;
export const TCP_ACK = 0x10;

export type L4Proto = keyof typeof PROTO;

/** How flows are numbered: flow f has client address addrBase + f / portsPerAddr and client port
 * portBase + f % portsPerAddr. */
export interface FlowSpace {
  addrBase: string;
  portBase: number;
  portsPerAddr: number;
}

/** The clients' prefix in the benchmark namespaces, and its flows: ports 1024–33791. */
export const CLIENTS_PREFIX = '10.128.0.0/10';
export const CLIENT_FLOWS: FlowSpace = { addrBase: '10.128.0.0', portBase: 1024, portsPerAddr: 32768 };

export interface FlowTuple {
  address: string;
  port: number;
}

export function ipv4Number(address: string): number {
  if (!isIPv4(address)) throw new Error(`not an IPv4 address: ${address}`);
  return address.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
}

export function ipv4Text(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Flow f's client address (as a number) and port, exactly as the generator computes them. */
export function flowNumbers(space: FlowSpace, f: number): { addr: number; port: number } {
  return {
    addr: (ipv4Number(space.addrBase) + Math.floor(f / space.portsPerAddr)) >>> 0,
    port: space.portBase + (f % space.portsPerAddr),
  };
}

export function flowTuple(space: FlowSpace, f: number): FlowTuple {
  const { addr, port } = flowNumbers(space, f);
  return { address: ipv4Text(addr), port };
}

export interface FrameSpec {
  srcMac: string;
  dstMac: string;
  proto: L4Proto;
  /** TCP flags byte (TCP_SYN, TCP_ACK, ...); ignored for UDP. */
  tcpFlags?: number;
  /** The side that stays the same in every flow: the virtual service, or the replying server. */
  server: FlowTuple;
  /** false: client → server (a request); true: server → client (a reply). */
  clientIsDst?: boolean;
}

/** A template and what the generator needs to finish it per flow (its .rodata globals). */
export interface FrameTemplate {
  frame: Buffer;
  clientIsDst: boolean;
  /** One's-complement sums (unfolded) without the client's address and port. */
  ipSum: number;
  l4Sum: number;
}

function macBytes(mac: string): Buffer {
  const bytes = mac.split(':').map((h) => parseInt(h, 16));
  if (bytes.length !== 6 || bytes.some((b) => !(b >= 0 && b <= 255))) throw new Error(`not a MAC address: ${mac}`);
  return Buffer.from(bytes);
}

/** Sum of big-endian 16-bit words of buf[from, to), not folded. */
function wordSum(buf: Buffer, from: number, to: number): number {
  let sum = 0;
  for (let i = from; i < to; i += 2) sum += buf.readUInt16BE(i);
  return sum;
}

/** The template of spec's frames: the client's address, port and both checksums left zero. */
export function frameTemplate(spec: FrameSpec): FrameTemplate {
  const clientIsDst = spec.clientIsDst ?? false;
  const f = Buffer.alloc(FRAME_LEN);
  macBytes(spec.dstMac).copy(f, 0);
  macBytes(spec.srcMac).copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  const ipLen = FRAME_LEN - ETH_LEN;
  f.writeUInt8(0x45, IP_OFF);
  f.writeUInt16BE(ipLen, IP_OFF + 2);
  f.writeUInt16BE(0x4000, IP_OFF + 6); // DF
  f.writeUInt8(64, IP_OFF + 8);
  f.writeUInt8(PROTO[spec.proto], IP_OFF + 9);
  f.writeUInt32BE(ipv4Number(spec.server.address), IP_OFF + (clientIsDst ? 12 : 16));
  f.writeUInt16BE(spec.server.port, L4_OFF + (clientIsDst ? 0 : 2));
  const l4Len = ipLen - IP_LEN;
  if (spec.proto === 'tcp') {
    f.writeUInt32BE(1, L4_OFF + 4); // seq
    f.writeUInt32BE(spec.tcpFlags === TCP_SYN ? 0 : 1, L4_OFF + 8); // ack
    f.writeUInt8(5 << 4, L4_OFF + 12);
    f.writeUInt8(spec.tcpFlags ?? TCP_ACK, L4_OFF + 13);
    f.writeUInt16BE(65535, L4_OFF + 14);
  } else {
    f.writeUInt16BE(l4Len, L4_OFF + 4);
  }
  const pseudo = wordSum(f, IP_OFF + 12, IP_OFF + 20) + PROTO[spec.proto] + l4Len;
  return {
    frame: f,
    clientIsDst,
    ipSum: wordSum(f, IP_OFF, IP_OFF + IP_LEN),
    l4Sum: pseudo + wordSum(f, L4_OFF, FRAME_LEN),
  };
}
