// IPv6 services: DR and NAT frame by frame (exact bytes, the TCP/UDP checksum's pseudo-header),
// the extension-header policy, and the control plane's IPv6 rules and listing.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { addressBytes, formatAddress } from '../lib/address.js';
import { Balancer } from '../lib/balancer.js';
import { Topology } from '../lib/topology.js';
import { buildFrame, parseFrame, verifyChecksums, type FrameSpec } from './helpers/packet.js';
import { ADDR, NET, addService, packetLab, type PacketLab, listedService } from './helpers/lb.js';

const { vip6: VIP6, client6: CLIENT6, clientMac: CLIENT_MAC } = ADDR;

let lab: PacketLab;
let sport = 20000;

function syn(dport: number, over: Partial<FrameSpec> = {}): FrameSpec {
  return { srcMac: CLIENT_MAC, ip: { src: CLIENT6, dst: VIP6, ttl: 61, flowLabel: 0xabcde }, tcp: { sport: sport++, dport, flags: 'S', seq: 5 }, payload: 'v6', ...over };
}

/** Puts IPv6 extension headers (next header, then its body) between the fixed header and the rest. */
function withExtensions(frame: Buffer, headers: [type: number, body: Buffer][]): Buffer {
  let next = frame[14 + 6]!;
  const built: Buffer[] = [];
  for (let i = headers.length - 1; i >= 0; i--) {
    const [type, body] = headers[i]!;
    const h = Buffer.concat([Buffer.from([next, (body.length + 2) / 8 - 1]), body]);
    built.unshift(h);
    next = type;
  }
  const fixed = Buffer.from(frame.subarray(0, 14 + 40));
  fixed[14 + 6] = next;
  const ext = Buffer.concat(built);
  fixed.writeUInt16BE(frame.readUInt16BE(18) + ext.length, 18);
  return Buffer.concat([fixed, ext, frame.subarray(14 + 40)]);
}

const PAD6 = Buffer.from([1, 4, 0, 0, 0, 0]); // a PadN option filling an 8-byte header
const HOP = 0;
const ROUTING = 43;
const DEST = 60;

beforeAll(async () => {
  lab = await packetLab();
  addService(lab.lb, { protocol: 'tcp', address: VIP6, port: 80 }, [['fd00:1::11', 'dr']]);
  addService(lab.lb, { protocol: 'tcp', address: VIP6, port: 8080 }, [['fd00:1::21', 'nat', 80]]);
  addService(lab.lb, { protocol: 'udp', address: VIP6, port: 53 }, [['fd00:1::21', 'nat', 5353]]);
});

afterAll(async () => {
  await lab?.destroy();
});

beforeEach(() => {
  lab.lb.zero();
});

describe('DR and NAT over IPv6', () => {
  it('DR rewrites only the MACs, towards the real server from the IPv6 FIB', () => {
    const frame = buildFrame(syn(80));
    const { verdict, out } = lab.run(frame);
    expect(verdict).toBe('redirect');
    expect(parseFrame(out)).toMatchObject({ dstMac: NET.neighbours['fd00:1::11'], srcMac: lab.realsIf.mac });
    expect(out.subarray(12)).toEqual(frame.subarray(12));
  });

  it('NAT rewrites destination address and port; the TCP checksum follows the pseudo-header', () => {
    const spec = syn(8080);
    const { out } = lab.run(buildFrame(spec));
    const expected = buildFrame({
      ...spec, dstMac: NET.neighbours['fd00:1::21'], srcMac: lab.realsIf.mac,
      ip: { ...spec.ip, dst: 'fd00:1::21' }, tcp: { ...spec.tcp!, dport: 80 },
    });
    expect(out.toString('hex')).toBe(expected.toString('hex'));
  });

  it('NAT rewrites the reply back to the virtual address and port', () => {
    const spec = syn(8080);
    lab.run(buildFrame(spec));
    const reply: FrameSpec = { ip: { src: 'fd00:1::21', dst: CLIENT6 }, tcp: { sport: 80, dport: spec.tcp!.sport, flags: 'SA', seq: 9, ack: 6 } };
    const { verdict, out } = lab.run(buildFrame(reply), 'reals');
    expect(verdict).toBe('redirect');
    const expected = buildFrame({
      ...reply, dstMac: CLIENT_MAC, srcMac: lab.clientsIf.mac, ip: { ...reply.ip, src: VIP6 }, tcp: { ...reply.tcp!, sport: 8080 },
    });
    expect(out.toString('hex')).toBe(expected.toString('hex'));
  });

  it('NAT fixes the UDP checksum; IPv6 UDP without checksum is malformed (RFC 8200)', () => {
    const spec: FrameSpec = { ip: { src: CLIENT6, dst: VIP6 }, udp: { sport: sport++, dport: 53 }, payload: 'query' };
    const { out } = lab.run(buildFrame(spec));
    expect(parseFrame(out).udp?.dport).toBe(5353);
    expect(verifyChecksums(out)).toEqual({ ipOk: true, l4Ok: true });
    const zero = buildFrame({ ...spec, udp: { sport: sport++, dport: 53, zeroChecksum: true } });
    expect(lab.run(zero).verdict).toBe('pass');
    expect(lab.lb.reasons().pass_malformed).toBe(1n);
  });
});

describe('extension headers', () => {
  it('hop-by-hop and destination options are walked: the packet is balanced and NAT still finds the ports', () => {
    const frame = withExtensions(buildFrame(syn(8080)), [[HOP, PAD6], [DEST, PAD6]]);
    const { verdict, out } = lab.run(frame);
    expect(verdict).toBe('redirect');
    expect(out.readUInt16BE(14 + 40 + 16 + 2)).toBe(80);
    expect(out.subarray(14 + 24, 14 + 40)).toEqual(addressBytes('fd00:1::21'));
  });

  it('a routing header with segments left, a longer chain, AH: passed', () => {
    const routing = Buffer.concat([Buffer.from([0, 1, 0, 0, 0, 0]), addressBytes('fd00:9::1')]); // type 0, 1 segment left
    const cases: [Buffer, string][] = [
      [withExtensions(buildFrame(syn(80)), [[ROUTING, routing]]), 'pass_ipv6_ext'],
      [withExtensions(buildFrame(syn(80)), [[HOP, PAD6], [DEST, PAD6], [DEST, PAD6], [DEST, PAD6], [DEST, PAD6]]), 'pass_ipv6_ext'],
      [withExtensions(buildFrame(syn(80)), [[51, Buffer.alloc(14)]]), 'pass_not_l4'],
    ];
    for (const [frame, reason] of cases) {
      lab.lb.zero();
      const { verdict, out } = lab.run(frame);
      expect(verdict, reason).toBe('pass');
      expect(out).toEqual(frame);
      expect(lab.lb.reasons()[reason], reason).toBe(1n);
    }
  });

  it('a routing header with no segments left is walked', () => {
    const routing = Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0]), addressBytes('fd00:9::1')]);
    expect(lab.run(withExtensions(buildFrame(syn(80)), [[ROUTING, routing]])).verdict).toBe('redirect');
  });
});

describe('control plane', () => {
  it('lists IPv6 addresses as ipvsadm prints them and treats every spelling as one address', () => {
    const svc = addService(lab.lb, { protocol: 'udp', address: 'FD00:0100:0:0::0002', port: 7 }, [['fd00:1:0::0:21', 'nat']]);
    try {
      expect(() => lab.lb.addService({ ...svc, address: 'fd00:100::2' }, { scheduler: 'rr' })).toThrow(/Service already exists/);
      expect(() => lab.lb.addRealServer(svc, { address: 'fd00:1::21' })).toThrow(/Destination already exists/);
      const listed = listedService(lab.lb, 7);
      expect(listed.key.address).toBe('fd00:100::2');
      expect(listed.realServers.map((r) => r.address)).toEqual(['fd00:1::21']);
    } finally {
      lab.lb.deleteService({ ...svc, address: 'fd00:100::2' });
    }
  });

  it('formats addresses as glibc\'s inet_ntop does (RFC 5952, IPv4-mapped tails)', () => {
    const cases: [string, string][] = [
      ['::', '::'], ['::1', '::1'], ['1::', '1::'], ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:0db8::0001', '2001:db8::1'], ['1:0:0:2:0:0:0:3', '1:0:0:2::3'], ['a:0:b:0:c:0:d:0', 'a:0:b:0:c:0:d:0'],
      ['::ffff:10.0.0.1', '::ffff:10.0.0.1'], ['::10.0.0.1', '::10.0.0.1'], ['::0.0.0.2', '::2'],
      ['::ffff:0:0', '::ffff:0.0.0.0'], ['64:ff9b::1.2.3.4', '64:ff9b::102:304'], ['FE80::ABCD', 'fe80::abcd'],
    ];
    for (const [input, printed] of cases) expect(formatAddress(addressBytes(input), 'inet6'), input).toBe(printed);
  });

  it('needs IPv6 forwarding on the attached interfaces for IPv6 services, and changes nothing without', async () => {
    const topology = new Topology();
    try {
      const ns = await topology.addNamespace('fwd6');
      const peer = await topology.addNamespace('peer');
      await topology.link(ns, peer, { a: { name: 'uplink', ipv4: '10.5.0.1/24' } });
      await ns.sysctl('net.ipv4.ip_forward', 1);
      const lb = Balancer.open({ netns: ns.name, maxConnections: 1024 });
      try {
        lb.attach('uplink', { mode: 'generic' });
        expect(() => lb.addService({ protocol: 'tcp', address: VIP6, port: 80 }, { scheduler: 'rr' })).toThrow(/IPv6 forwarding is off on uplink/);
        expect(lb.list()).toEqual([]);
        await ns.sysctl('net.ipv6.conf.all.forwarding', 1);
        lb.addService({ protocol: 'tcp', address: VIP6, port: 80 }, { scheduler: 'rr' });
        lb.detach('uplink');
        await ns.sysctl('net.ipv6.conf.all.forwarding', 0);
        expect(() => lb.attach('uplink', { mode: 'generic' })).toThrow(/IPv6 forwarding is off on uplink/);
      } finally {
        lb.close();
      }
    } finally {
      await topology.destroy();
    }
  });
});
