// GUE and GRE tunnels (--tun-type gue|gre) through BPF_PROG_TEST_RUN: the exact bytes for every
// type x checksum flag x inner family x outer family, with every checksum computed here again
// over the whole packet (the dataplane derives them from the headers alone).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RealServerOptions } from '../lib/balancer.js';
import { Decap } from '../lib/decap.js';
import { XDP_DROP, XDP_PASS } from '../lib/libbpf.js';
import { flowHash } from './helpers/flowhash.js';
import { ADDR, NET, packetLab, type PacketLab } from './helpers/lb.js';
import { buildFrame, checksum, fragmentFrame, ip, onesComplementSum, parseFrame, type FrameSpec } from './helpers/packet.js';

const { vip: VIP, vip6: VIP6, client: CLIENT, client6: CLIENT6, clientMac: CLIENT_MAC, lbMac: LB_MAC } = ADDR;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;

type Case = { name: string; tunnel: RealServerOptions; outer6: boolean; inner6: boolean; port: number };
const TUNNELS: [string, RealServerOptions][] = [
  ['gue', { tunType: 'gue', tunPort: 6080 }],
  ['gue csum', { tunType: 'gue', tunPort: 6081, tunChecksum: 'csum' }],
  ['gue remcsum', { tunType: 'gue', tunPort: 6082, tunChecksum: 'remcsum' }],
  ['gre', { tunType: 'gre' }],
  ['gre csum', { tunType: 'gre', tunChecksum: 'csum' }],
];
const CASES: Case[] = TUNNELS.flatMap(([name, tunnel], t) =>
  [false, true].flatMap((inner6) => [false, true].map((outer6, o) => ({
    name: `${name}, IPv${inner6 ? 6 : 4} in IPv${outer6 ? 6 : 4}`, tunnel, outer6, inner6,
    port: 1000 + t * 4 + (inner6 ? 2 : 0) + o,
  }))),
);

let lab: PacketLab;
let decap: Decap;
let sport = 40000;

const realOf = (outer6: boolean) => (outer6 ? 'fd00:1::11' : '10.1.0.11');

function pseudo(src: string, dst: string, proto: number, len: number): Buffer {
  const s = ip(src);
  const d = ip(dst);
  const b = Buffer.alloc(s.length === 4 ? 12 : 40);
  s.copy(b, 0);
  d.copy(b, s.length);
  if (s.length === 4) {
    b[9] = proto;
    b.writeUInt16BE(len, 10);
  } else {
    b.writeUInt32BE(len, 32);
    b[39] = proto;
  }
  return b;
}

/** The GUE source port: the flow hash spread over 32768-60999 as udp_flow_src_port() does. */
function gueSport(hash: number): number {
  const h = (hash ^ (hash << 16)) >>> 0;
  return Number((BigInt(h) * BigInt(60999 - 32768)) >> 32n) + 32768;
}

/** The outer IP header, as tun.test.ts's IPIP expectations have it, for `proto`. */
function outerHeader(outer6: boolean, proto: number, payloadLen: number, hash: number, dst: string): Buffer {
  if (!outer6) {
    const h = Buffer.alloc(20);
    h[0] = 0x45;
    h[1] = 0x2a;
    h.writeUInt16BE(20 + payloadLen, 2);
    h.writeUInt16BE(0x4000, 6);
    h[8] = 57;
    h[9] = proto;
    ip(NET.lbReals).copy(h, 12);
    ip(dst).copy(h, 16);
    h.writeUInt16BE(checksum(h), 10);
    return h;
  }
  const h = Buffer.alloc(40);
  h.writeUInt32BE(((6 << 28) | (0x2a << 20) | (hash & 0xfffff)) >>> 0, 0);
  h.writeUInt16BE(payloadLen, 4);
  h[6] = proto;
  h[7] = 57;
  ip(NET.lbReals6).copy(h, 8);
  ip(dst).copy(h, 24);
  return h;
}

/** What the balancer must send for `inner` (the client's frame) to a real server with `tunnel`. */
function expected(frame: Buffer, c: Case, hash: number): Buffer {
  let inner = Buffer.from(frame.subarray(14));
  const innerHlen = c.inner6 ? 40 : 20;
  const dst = realOf(c.outer6);
  const src = c.outer6 ? NET.lbReals6 : NET.lbReals;
  const check = c.tunnel.tunChecksum ?? 'nocsum';
  let mid: Buffer;
  if (c.tunnel.tunType === 'gre') {
    mid = Buffer.alloc(check === 'csum' ? 8 : 4);
    mid.writeUInt16BE(check === 'csum' ? 0x8000 : 0, 0);
    mid.writeUInt16BE(c.inner6 ? 0x86dd : 0x0800, 2);
    if (check === 'csum') mid.writeUInt16BE(checksum(Buffer.concat([mid, inner])), 4);
  } else {
    const remcsum = check === 'remcsum';
    if (remcsum) {
      // The inner checksum becomes its pseudo-header sum, which the receiver completes.
      const seg = inner.subarray(innerHlen);
      const p = parseFrame(frame).ip!;
      seg.writeUInt16BE(onesComplementSum(pseudo(p.src, p.dst, IPPROTO_TCP, seg.length)), 16);
    }
    const gue = Buffer.alloc(remcsum ? 12 : 4);
    gue[0] = remcsum ? 2 : 0;
    gue[1] = c.inner6 ? 41 : 4;
    if (remcsum) {
      gue.writeUInt16BE(0x0001, 2);
      gue.writeUInt32BE(0x80000000, 4);
      gue.writeUInt16BE(innerHlen, 8);
      gue.writeUInt16BE(innerHlen + 16, 10);
    }
    const udp = Buffer.alloc(8);
    udp.writeUInt16BE(gueSport(hash), 0);
    udp.writeUInt16BE(c.tunnel.tunPort!, 2);
    udp.writeUInt16BE(8 + gue.length + inner.length, 4);
    mid = Buffer.concat([udp, gue]);
    if (check !== 'nocsum') {
      const sum = checksum(Buffer.concat([pseudo(src, dst, IPPROTO_UDP, mid.length + inner.length), mid, inner]));
      mid.writeUInt16BE(sum || 0xffff, 6);
    }
  }
  const proto = c.tunnel.tunType === 'gre' ? 47 : IPPROTO_UDP;
  return Buffer.concat([outerHeader(c.outer6, proto, mid.length + inner.length, hash, dst), mid, inner]);
}

function clientFrame(c: Case, payload = 'hello'): { frame: Buffer; spec: FrameSpec } {
  const spec: FrameSpec = {
    dstMac: LB_MAC, srcMac: CLIENT_MAC,
    ip: { src: c.inner6 ? CLIENT6 : CLIENT, dst: c.inner6 ? VIP6 : VIP, ttl: 57, tos: 0x2a, df: true, id: 99, flowLabel: 0x12345 },
    tcp: { sport: sport++, dport: c.port, flags: 'S', seq: 7 },
    payload,
  };
  return { frame: buildFrame(spec), spec };
}

beforeAll(async () => {
  lab = await packetLab();
  decap = new Decap({ guePorts: [6080, 6081, 6082], sources: [NET.realsPrefix, NET.realsPrefix6] });
  for (const c of CASES) {
    const key = { protocol: 'tcp' as const, address: c.inner6 ? VIP6 : VIP, port: c.port };
    lab.lb.addService(key, { scheduler: 'rr' });
    lab.lb.addRealServer(key, { address: realOf(c.outer6) }, { method: 'tun', ...c.tunnel });
  }
});

afterAll(async () => {
  decap?.close();
  await lab?.destroy();
});

beforeEach(() => {
  lab.lb.zero();
});

describe('GUE and GRE encapsulation: exact bytes', () => {
  it.each(CASES)('$name', (c) => {
    const { frame, spec } = clientFrame(c);
    const { verdict, out } = lab.run(frame);
    expect(verdict).toBe('redirect');
    expect(out.subarray(0, 6).toString('hex')).toBe(NET.neighbours[realOf(c.outer6)]!.replaceAll(':', ''));
    const hash = flowHash(spec.ip.src, spec.ip.dst, spec.tcp!.sport, c.port, IPPROTO_TCP);
    expect(out.subarray(12, 14).toString('hex')).toBe(c.outer6 ? '86dd' : '0800');
    expect(out.subarray(14).toString('hex')).toBe(expected(frame, c, hash).toString('hex'));
  });

  it('GUE remote checksum: the receiver completing the inner checksum gets the client\'s back', () => {
    const c = CASES.find((k) => k.tunnel.tunChecksum === 'remcsum' && !k.outer6 && !k.inner6)!;
    const { frame } = clientFrame(c, 'remote checksum offload');
    const out = lab.run(frame).out;
    const start = 14 + 20 + 8 + 12 + 20; // to the inner TCP header
    const seg = Buffer.from(out.subarray(start));
    // skb_remcsum_process(): the sum from csum start to the end, folded, at csum start + offset.
    const completed = checksum(seg);
    expect(completed).toBe(frame.readUInt16BE(14 + 20 + 16));
    // And the UDP checksum covers the packet as sent (partial inner checksum included).
    const udp = out.subarray(14 + 20);
    expect(onesComplementSum(Buffer.concat([pseudo(NET.lbReals, '10.1.0.11', IPPROTO_UDP, udp.length), udp]))).toBe(0xffff);
  });
});

describe('checksums over packets without a checksum to lean on', () => {
  it('a UDP datagram without checksum and a fragment: their bytes summed', async () => {
    const key = { protocol: 'udp' as const, address: VIP, port: 53 };
    lab.lb.addService(key, { scheduler: 'rr' });
    lab.lb.addRealServer(key, { address: '10.1.0.12' }, { method: 'tun', tunType: 'gre', tunChecksum: 'csum' });
    try {
      const payload = 'q'.repeat(1001);
      const frame = buildFrame({ dstMac: LB_MAC, srcMac: CLIENT_MAC, ip: { src: CLIENT, dst: VIP, df: true }, udp: { sport: 5353, dport: 53, zeroChecksum: true }, payload });
      expect(frame.readUInt16BE(14 + 20 + 6)).toBe(0);
      const out = lab.run(frame).out;
      const gre = out.subarray(14 + 20);
      expect(gre.readUInt16BE(0)).toBe(0x8000);
      expect(onesComplementSum(gre)).toBe(0xffff);
      for (const piece of fragmentFrame(buildFrame({ dstMac: LB_MAC, srcMac: CLIENT_MAC, ip: { src: CLIENT, dst: VIP }, udp: { sport: 5354, dport: 53 }, payload }), 600)) {
        const r = lab.run(piece);
        expect(r.verdict).toBe('redirect');
        expect(onesComplementSum(r.out.subarray(14 + 20))).toBe(0xffff);
      }
    } finally {
      lab.lb.deleteService(key);
    }
  });
});

describe('path MTU with the larger headers', () => {
  it('the client learns the MTU less the whole tunnel overhead (GUE over IPv4: 32 bytes, remcsum 40, GRE csum 28)', () => {
    for (const [name, overhead] of [['gue', 32], ['gue remcsum', 40], ['gre csum', 28], ['gre', 24]] as const) {
      const c = CASES.find((k) => k.name === `${name}, IPv4 in IPv4`)!;
      const fits = clientFrame(c, 'x'.repeat(1500 - overhead - 40));
      expect(lab.run(fits.frame).verdict, name).toBe('redirect');
      const big = clientFrame(c, 'x'.repeat(1500 - overhead - 40 + 1));
      const r = parseFrame(lab.run(big.frame).out);
      expect(r.icmp, name).toMatchObject({ type: 3, code: 4, rest: 1500 - overhead });
    }
  });
});

describe('the real server\'s decapsulator takes what the balancer sends', () => {
  const unwrap = (frame: Buffer) => {
    const r = decap.program.testRun({ data: frame });
    return { verdict: r.retval, out: r.data };
  };

  it.each(CASES)('$name: exactly the client\'s packet comes out', (c) => {
    const { frame } = clientFrame(c, 'through the tunnel and back');
    const before = decap.stats().ok!;
    const { verdict, out } = unwrap(lab.run(frame).out);
    expect(verdict).toBe(XDP_PASS);
    // remcsum: the inner checksum the balancer left to the receiver is the client's again.
    expect(out.subarray(14).toString('hex')).toBe(frame.subarray(14).toString('hex'));
    expect(decap.stats().ok).toBe(before + 1n);
  });

  it('drops a GUE or GRE packet whose checksum is wrong, counted', () => {
    for (const name of ['gue csum, IPv6 in IPv4', 'gre csum, IPv4 in IPv6', 'gue remcsum, IPv4 in IPv4']) {
      const c = CASES.find((k) => k.name === name)!;
      const sent = Buffer.from(lab.run(clientFrame(c, 'corrupted on the way').frame).out);
      sent[sent.length - 1]! ^= 0x40;
      const before = decap.stats().drop_csum!;
      expect(unwrap(sent).verdict, name).toBe(XDP_DROP);
      expect(decap.stats().drop_csum, name).toBe(before + 1n);
    }
  });

  it('passes untouched: GUE to a port not configured, GRE with a key, GUE control messages', () => {
    const c = CASES.find((k) => k.name === 'gue, IPv4 in IPv4')!;
    const other = new Decap({ guePorts: [7000] });
    try {
      const sent = lab.run(clientFrame(c).frame).out;
      const r = other.program.testRun({ data: sent });
      expect(r.retval).toBe(XDP_PASS);
      expect(r.data.toString('hex')).toBe(sent.toString('hex'));
      expect(other.stats().pass_not_tunnel).toBe(1n);
    } finally {
      other.close();
    }
    const control = Buffer.from(lab.run(clientFrame(c).frame).out);
    control[14 + 20 + 8] = 0x20; // C: a control message
    expect(unwrap(control).out.toString('hex')).toBe(control.toString('hex'));
    const g = CASES.find((k) => k.name === 'gre, IPv4 in IPv4')!;
    const keyed = Buffer.from(lab.run(clientFrame(g).frame).out);
    keyed[14 + 20] = 0x20; // K
    const before = decap.stats().pass_gre_options!;
    expect(unwrap(keyed)).toMatchObject({ verdict: XDP_PASS });
    expect(decap.stats().pass_gre_options).toBe(before + 1n);
  });
});

describe('the API', () => {
  const key = { protocol: 'tcp' as const, address: VIP, port: 9 };

  it('keeps the tunnel per real server, lists it, and keeps it through an edit that does not name it', () => {
    lab.lb.addService(key, { scheduler: 'rr' });
    try {
      lab.lb.addRealServer(key, { address: '10.1.0.13' }, { method: 'tun', tunType: 'gue', tunPort: 5555, tunChecksum: 'remcsum' });
      lab.lb.editRealServer(key, { address: '10.1.0.13' }, { weight: 4 });
      const listed = lab.lb.list().find((s) => 'port' in s.key && s.key.port === 9)!.realServers[0]!;
      expect(listed).toMatchObject({ method: 'tun', weight: 4, tunType: 'gue', tunPort: 5555, tunChecksum: 'remcsum' });
      lab.lb.editRealServer(key, { address: '10.1.0.13' }, { tunType: 'gre' });
      expect(lab.lb.list().find((s) => 'port' in s.key && s.key.port === 9)!.realServers[0]).toMatchObject({ tunType: 'gre', tunPort: 0, tunChecksum: 'nocsum' });
      lab.lb.editRealServer(key, { address: '10.1.0.13' }, { method: 'dr' });
      expect(lab.lb.list().find((s) => 'port' in s.key && s.key.port === 9)!.realServers[0]).toMatchObject({ method: 'dr', tunType: 'ipip' });
    } finally {
      lab.lb.deleteService(key);
    }
  });

  it.each([
    [{ method: 'tun', tunType: 'gue' }, /tun-port/],
    [{ method: 'tun', tunType: 'gre', tunChecksum: 'remcsum' }, /tun-remcsum/],
    [{ method: 'tun', tunType: 'gre', tunPort: 1 }, /tun-port/],
    [{ method: 'tun', tunChecksum: 'csum' }, /ipip/],
    [{ method: 'tun', tunType: 'gue', tunPort: 70000 }, /tunnel port/],
    [{ method: 'nat', tunType: 'gue', tunPort: 1 }, /conflict with forward method/],
    [{ method: 'tun', tunType: 'vxlan' }, /tunnel type/],
  ] as [RealServerOptions, RegExp][])('refuses %j and changes nothing', (opts, message) => {
    lab.lb.addService(key, { scheduler: 'rr' });
    try {
      expect(() => lab.lb.addRealServer(key, { address: '10.1.0.13' }, opts)).toThrow(message);
      expect(lab.lb.list().find((s) => 'port' in s.key && s.key.port === 9)!.realServers).toEqual([]);
    } finally {
      lab.lb.deleteService(key);
    }
  });
});
