// TUN (-i) through BPF_PROG_TEST_RUN: the exact encapsulated bytes for every family combination,
// the outer source (route's, fixed, per-flow inside a prefix), and packets too big for the tunnel.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildFrame, checksum, ip, parseFrame, verifyChecksums, type FrameSpec, type IpSpec } from './helpers/packet.js';
import { flowHash } from './helpers/flowhash.js';
import { ADDR, NET, addService, packetLab, type PacketLab, listedService } from './helpers/lb.js';

const { vip: VIP, vip6: VIP6, client: CLIENT, client6: CLIENT6, clientMac: CLIENT_MAC, lbMac: LB_MAC } = ADDR;
const IPPROTO_TCP = 6;

let lab: PacketLab;
let sport = 30000;

function clientPacket(dst: string, dport: number, over: Partial<IpSpec> = {}, payload = 'hello'): FrameSpec {
  const src = dst.includes(':') ? CLIENT6 : CLIENT;
  return {
    dstMac: LB_MAC,
    srcMac: CLIENT_MAC,
    ip: { src, dst, ttl: 57, tos: 0x2a, df: true, id: 99, flowLabel: 0x12345, ...over },
    tcp: { sport: sport++, dport, flags: 'S', seq: 7 },
    payload,
  };
}

/** What the dataplane should send: the client's packet unchanged inside an outer header. */
function encapsulated(inner: FrameSpec, outer: IpSpec, dstMac: string): Buffer {
  return buildFrame({ ...inner, dstMac, srcMac: lab.realsIf.mac, tunnel: outer });
}

beforeAll(async () => {
  lab = await packetLab();
  addService(lab.lb, { protocol: 'tcp', address: VIP, port: 80 }, [['10.1.0.11', 'tun']]);
  addService(lab.lb, { protocol: 'tcp', address: VIP6, port: 80 }, [['fd00:1::11', 'tun']]);
  addService(lab.lb, { protocol: 'tcp', address: VIP, port: 81 }, [['fd00:1::12', 'tun']]);
  addService(lab.lb, { protocol: 'tcp', address: VIP6, port: 81 }, [['10.1.0.12', 'tun']]);
  addService(lab.lb, { protocol: 'udp', address: VIP, port: 53 }, [['10.9.0.7', 'tun']]);
});

afterAll(async () => {
  await lab?.destroy();
});

beforeEach(() => {
  lab.lb.zero();
  lab.lb.setTunnelSource({});
});

describe('encapsulation', () => {
  it('IPv4 in IPv4: outer header from the route source, TOS and TTL copied, DF, the packet unchanged inside', () => {
    const inner = clientPacket(VIP, 80);
    const { verdict, out } = lab.run(buildFrame(inner));
    expect(verdict).toBe('redirect');
    const outer = { src: NET.lbReals, dst: '10.1.0.11', ttl: 57, tos: 0x2a, df: true, id: 0 };
    expect(out.toString('hex')).toBe(encapsulated(inner, outer, NET.neighbours['10.1.0.11']!).toString('hex'));
    expect(parseFrame(out).ip).toMatchObject({ protocol: 4, totalLength: 20 + 20 + 20 + 5 });
    expect(verifyChecksums(out)).toEqual({ ipOk: true, l4Ok: true });
  });

  it('IPv6 in IPv6: next header 41, traffic class and hop limit copied, flow label from the flow hash', () => {
    const inner = clientPacket(VIP6, 80);
    const { verdict, out } = lab.run(buildFrame(inner));
    expect(verdict).toBe('redirect');
    const hash = flowHash(CLIENT6, VIP6, inner.tcp!.sport, 80, IPPROTO_TCP);
    const outer = { src: NET.lbReals6, dst: 'fd00:1::11', ttl: 57, tos: 0x2a, flowLabel: hash & 0xfffff };
    expect(out.toString('hex')).toBe(encapsulated(inner, outer, NET.neighbours['fd00:1::11']!).toString('hex'));
    expect(parseFrame(out).ip).toMatchObject({ version: 6, protocol: 41, payloadLength: 40 + 20 + 5 });
  });

  it('IPv4 service to an IPv6 real server: IPv4 inside IPv6 (next header 4)', () => {
    const inner = clientPacket(VIP, 81);
    const { out } = lab.run(buildFrame(inner));
    const hash = flowHash(CLIENT, VIP, inner.tcp!.sport, 81, IPPROTO_TCP);
    const outer = { src: NET.lbReals6, dst: 'fd00:1::12', ttl: 57, tos: 0x2a, flowLabel: hash & 0xfffff };
    expect(out.toString('hex')).toBe(encapsulated(inner, outer, NET.neighbours['fd00:1::12']!).toString('hex'));
    expect(parseFrame(out).ip).toMatchObject({ version: 6, protocol: 4 });
  });

  it('IPv6 service to an IPv4 real server: IPv6 inside IPv4 (protocol 41)', () => {
    const inner = clientPacket(VIP6, 81);
    const { out } = lab.run(buildFrame(inner));
    const outer = { src: NET.lbReals, dst: '10.1.0.12', ttl: 57, tos: 0x2a, df: true };
    expect(out.toString('hex')).toBe(encapsulated(inner, outer, NET.neighbours['10.1.0.12']!).toString('hex'));
    expect(parseFrame(out).ip).toMatchObject({ version: 4, protocol: 41 });
    expect(verifyChecksums(out)).toEqual({ ipOk: true, l4Ok: true });
  });

  it('reaches a real server beyond a router: the next hop is the router, the outer destination the real', () => {
    const inner: FrameSpec = { srcMac: CLIENT_MAC, ip: { src: CLIENT, dst: VIP, df: true }, udp: { sport: sport++, dport: 53 }, payload: 'q' };
    const { verdict, out } = lab.run(buildFrame(inner));
    expect(verdict).toBe('redirect');
    const p = parseFrame(out);
    expect(p.dstMac).toBe(NET.neighbours['10.1.0.50']);
    expect(p.ip).toMatchObject({ src: NET.lbReals, dst: '10.9.0.7', protocol: 4 });
    expect(p.inner?.udp?.dport).toBe(53);
  });

  it('keeps every packet of a connection in the tunnel and counts the inner bytes, as IPVS does', () => {
    const spec = clientPacket(VIP, 80);
    const frames = ['S', 'A', 'PA', 'FA'].map((flags) => buildFrame({ ...spec, tcp: { ...spec.tcp!, flags } }));
    for (const frame of frames) {
      const p = parseFrame(lab.run(frame).out);
      expect(p.ip).toMatchObject({ dst: '10.1.0.11', protocol: 4 });
    }
    const svc = listedService(lab.lb, 80, VIP);
    const bytes = frames.reduce((n, f) => n + f.length - 14, 0);
    expect(svc.stats).toEqual({ conns: 1n, inpkts: 4n, outpkts: 0n, inbytes: BigInt(bytes), outbytes: 0n });
  });

  it('keeps a tagged frame tagged when it leaves by its ingress interface', () => {
    const inner = { ...clientPacket(VIP, 80), vlan: { id: 7 } };
    const { verdict, out } = lab.run(buildFrame(inner), 'reals');
    expect(verdict).toBe('tx');
    const p = parseFrame(out);
    expect(p.vlan?.id).toBe(7);
    expect(p.ip).toMatchObject({ dst: '10.1.0.11', protocol: 4 });
    expect(p.inner?.tcp?.dport).toBe(80);
  });
});

describe('outer source', () => {
  function outerSource(frame: FrameSpec): string {
    return parseFrame(lab.run(buildFrame(frame)).out).ip!.src;
  }

  it('is a configured address, used as it is', () => {
    lab.lb.setTunnelSource({ inet: '10.1.0.99', inet6: 'fd00:1::99' });
    expect(outerSource(clientPacket(VIP, 80))).toBe('10.1.0.99');
    expect(outerSource(clientPacket(VIP6, 80))).toBe('fd00:1::99');
    expect(outerSource(clientPacket(VIP6, 81))).toBe('10.1.0.99');
  });

  it('with a prefix, takes its host bits from the flow hash: one source per flow, flows spread', () => {
    lab.lb.setTunnelSource({ inet: '10.255.0.0/24', inet6: 'fd00:ff::/112' });
    const seen4 = new Set<string>();
    const seen6 = new Set<string>();
    for (let i = 0; i < 32; i++) {
      const spec4 = clientPacket(VIP, 80);
      const hash4 = flowHash(CLIENT, VIP, spec4.tcp!.sport, 80, IPPROTO_TCP);
      const src4 = outerSource(spec4);
      expect(src4).toBe(`10.255.0.${hash4 & 0xff}`);
      expect(outerSource({ ...spec4, tcp: { ...spec4.tcp!, flags: 'A' } })).toBe(src4);
      seen4.add(src4);
      const spec6 = clientPacket(VIP6, 80);
      const hash6 = flowHash(CLIENT6, VIP6, spec6.tcp!.sport, 80, IPPROTO_TCP);
      const src6 = outerSource(spec6);
      expect(src6).toBe(`fd00:ff::${(hash6 & 0xffff).toString(16)}`);
      seen6.add(src6);
    }
    // 32 flows over 256 (65536) sources: all distinct but for a rare collision.
    expect(seen4.size).toBeGreaterThan(24);
    expect(seen6.size).toBeGreaterThan(24);
  });

  it('rejects malformed sources, a wrong family and host bits, and changes nothing', () => {
    lab.lb.setTunnelSource({ inet: '10.1.0.99' });
    for (const bad of [{ inet: 'fd00::1' }, { inet: '10.1.0.0/33' }, { inet: '10.1.0.1/24' }, { inet6: '10.0.0.1' }, { inet: '0.0.0.0' }, { inet6: 'fd00::/x' }]) {
      expect(() => lab.lb.setTunnelSource(bad), JSON.stringify(bad)).toThrow(/tunnel source/);
    }
    expect(lab.lb.tunnelSource).toEqual({ inet: '10.1.0.99' });
    expect(outerSource(clientPacket(VIP, 80))).toBe('10.1.0.99');
  });
});

describe('packets too big for the tunnel', () => {
  const big = 'x'.repeat(1500 - 20 - 20);
  const big6 = 'x'.repeat(1500 - 40 - 20);

  it('IPv4 with DF: ICMP fragmentation needed from the VIP with the tunnel MTU, quoting 548 bytes', () => {
    const spec = clientPacket(VIP, 80, {}, big);
    const frame = buildFrame(spec);
    const { verdict, out } = lab.run(frame);
    expect(verdict).toBe('redirect'); // back out of the ingress interface
    const quote = frame.subarray(14, 14 + 548);
    const icmp = Buffer.concat([Buffer.from([3, 4, 0, 0, 0, 0, 1480 >> 8, 1480 & 0xff]), quote]);
    icmp.writeUInt16BE(checksum(icmp), 2);
    const expected = buildFrame({
      dstMac: CLIENT_MAC, srcMac: LB_MAC, ip: { src: VIP, dst: CLIENT, tos: 0xc0, ttl: 64, protocol: 1 }, payload: icmp,
    });
    expect(out.toString('hex')).toBe(expected.toString('hex'));
    expect(verifyChecksums(out).l4Ok).toBe(true);
    expect(lab.lb.reasons().icmp_too_big).toBe(1n);
  });

  it('IPv6: ICMPv6 packet too big with the tunnel MTU, quoting up to the minimum MTU', () => {
    const frame = buildFrame(clientPacket(VIP6, 80, {}, big6));
    const { verdict, out } = lab.run(frame);
    expect(verdict).toBe('redirect');
    const expected = buildFrame({
      dstMac: CLIENT_MAC, srcMac: LB_MAC, ip: { src: VIP6, dst: CLIENT6, ttl: 64 },
      icmp: { type: 2, code: 0, rest: 1460 }, payload: frame.subarray(14, 14 + 1280 - 48),
    });
    expect(out.toString('hex')).toBe(expected.toString('hex'));
  });

  it('an IPv4 client of an IPv6 tunnel learns MTU - 40; an IPv6 client of an IPv4 tunnel MTU - 20', () => {
    const four = parseFrame(lab.run(buildFrame(clientPacket(VIP, 81, {}, big))).out);
    expect(four.icmp).toMatchObject({ type: 3, code: 4, rest: 1460 });
    expect(four.icmp?.quoted?.ip).toMatchObject({ src: CLIENT, dst: VIP });
    const six = parseFrame(lab.run(buildFrame(clientPacket(VIP6, 81, {}, big6))).out);
    expect(six.icmp).toMatchObject({ type: 2, code: 0, rest: 1480 });
    expect(six.icmp?.quoted?.tcp?.dport).toBe(81);
  });

  it('never exceeds 576 bytes (ICMP) or 1280 bytes (ICMPv6)', () => {
    expect(parseFrame(lab.run(buildFrame(clientPacket(VIP, 80, {}, 'x'.repeat(1461)))).out).ip).toMatchObject({ totalLength: 576 });
    expect(parseFrame(lab.run(buildFrame(clientPacket(VIP6, 80, {}, 'x'.repeat(1441)))).out).ip).toMatchObject({ payloadLength: 1240 });
  });

  it('IPv4 without DF: dropped and counted (xvs does not fragment)', () => {
    const { verdict } = lab.run(buildFrame(clientPacket(VIP, 80, { df: false }, big)));
    expect(verdict).toBe('drop');
    expect(lab.lb.reasons().drop_too_big).toBe(1n);
  });

  it('a packet that fits exactly is tunnelled', () => {
    const { verdict, out } = lab.run(buildFrame(clientPacket(VIP, 80, {}, big.slice(20))));
    expect(verdict).toBe('redirect');
    expect(parseFrame(out).ip).toMatchObject({ totalLength: 1500, protocol: 4 });
  });
});

describe('configuration', () => {
  it('allows different families only for tunnels, as the kernel does', () => {
    const svc = addService(lab.lb, { protocol: 'udp', address: VIP6, port: 9 }, []);
    try {
      for (const method of ['dr', 'nat'] as const) {
        expect(() => lab.lb.addRealServer(svc, { address: '10.1.0.11' }, { method })).toThrow(/different address families/);
      }
      lab.lb.addRealServer(svc, { address: '10.1.0.11' }, { method: 'tun' });
      expect(() => lab.lb.editRealServer(svc, { address: '10.1.0.11' }, { method: 'dr' })).toThrow(/different address families/);
      expect(listedService(lab.lb, 9).realServers).toMatchObject([{ address: '10.1.0.11', method: 'tun' }]);
    } finally {
      lab.lb.deleteService(svc);
    }
  });
});
