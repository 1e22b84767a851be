// Fragments and IPv4 options through BPF_PROG_TEST_RUN. XDP sees every fragment: the first (with
// the ports) is balanced, later ones follow it to the same real server with the same rewrite, and
// a later fragment whose first was not balanced here is passed to the kernel, never guessed.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  buildFrame, checksum, fragmentFrame, parseFrame, verifyChecksums, type FrameSpec,
} from './helpers/packet.js';
import { ADDR, NET, addService, packetLab, type PacketLab, listedService } from './helpers/lb.js';

const { vip: VIP, vip6: VIP6, client: CLIENT, client6: CLIENT6 } = ADDR;

let lab: PacketLab;
let sport = 50000;
let id = 100;

function datagram(dst: string, dport: number, bytes = 3000): Buffer {
  const src = dst.includes(':') ? CLIENT6 : CLIENT;
  return buildFrame({ ip: { src, dst, id: 1 }, udp: { sport: sport++, dport }, payload: Buffer.alloc(bytes, 'frag') });
}

/** Joins the fragments that came out back into one frame, as the receiving host reassembles. */
function reassemble(frames: Buffer[]): Buffer {
  const first = frames[0]!;
  const v6 = first.readUInt16BE(12) === 0x86dd;
  const headerEnd = v6 ? 14 + 48 : 14 + (first[14]! & 0x0f) * 4;
  const body = Buffer.concat(frames.map((f) => {
    const end = v6 ? 14 + 40 + f.readUInt16BE(18) : 14 + f.readUInt16BE(16);
    return f.subarray(v6 ? 14 + 48 : 14 + (f[14]! & 0x0f) * 4, end);
  }));
  const header = Buffer.from(first.subarray(0, v6 ? 14 + 40 : headerEnd));
  if (v6) {
    header[14 + 6] = first[14 + 40]!; // the fragment header's next header
    header.writeUInt16BE(body.length, 18);
  } else {
    header.writeUInt16BE(headerEnd - 14 + body.length, 16);
    header.writeUInt16BE(header.readUInt16BE(20) & 0x4000, 20);
    header.writeUInt16BE(0, 24);
    header.writeUInt16BE(checksum(header.subarray(14)), 24);
  }
  return Buffer.concat([header, body]);
}

beforeAll(async () => {
  lab = await packetLab();
  addService(lab.lb, { protocol: 'udp', address: VIP, port: 53 }, [['10.1.0.21', 'nat', 5353]]);
  addService(lab.lb, { protocol: 'udp', address: VIP6, port: 53 }, [['fd00:1::21', 'nat', 5353]]);
  addService(lab.lb, { protocol: 'udp', address: VIP, port: 54 }, [['10.1.0.11', 'dr'], ['10.1.0.12', 'dr']]);
  addService(lab.lb, { protocol: 'udp', address: VIP6, port: 55 }, [['fd00:1::11', 'tun'], ['fd00:1::12', 'tun']]);
  addService(lab.lb, { protocol: 'tcp', address: VIP, port: 8080 }, [['10.1.0.21', 'nat', 80]]);
  addService(lab.lb, { protocol: 'tcp', address: VIP, port: 80 }, [['10.1.0.11', 'dr']]);
  addService(lab.lb, { protocol: 'tcp', address: VIP, port: 81 }, [['10.1.0.12', 'tun']]);
});

afterAll(async () => {
  await lab?.destroy();
});

beforeEach(() => {
  lab.lb.zero();
  lab.lb.setTunnelSource({});
});

describe('fragments of a balanced datagram', () => {
  it('NAT (IPv4): every fragment is rewritten; the reassembled datagram has the real address, port and a right checksum', () => {
    const whole = datagram(VIP, 53);
    const pieces = fragmentFrame(whole, 1000, ++id);
    expect(pieces).toHaveLength(4);
    const outs = pieces.map((f) => lab.run(f));
    expect(outs.map((o) => o.verdict)).toEqual(['redirect', 'redirect', 'redirect', 'redirect']);
    for (const o of outs) {
      expect(parseFrame(o.out).ip).toMatchObject({ src: CLIENT, dst: '10.1.0.21', id });
      expect(verifyChecksums(o.out).ipOk).toBe(true);
    }
    const joined = parseFrame(reassemble(outs.map((o) => o.out)));
    expect(joined.udp).toMatchObject({ dport: 5353, length: 3008 });
    expect(verifyChecksums(reassemble(outs.map((o) => o.out)))).toEqual({ ipOk: true, l4Ok: true });
    const svc = listedService(lab.lb, 53, VIP);
    expect(svc.stats).toMatchObject({ conns: 1n, inpkts: 4n, inbytes: BigInt(pieces.reduce((n, f) => n + f.length - 14, 0)) });
  });

  it('NAT (IPv6, fragment header): the same, and the reply\'s fragments come back from the VIP', () => {
    const whole = datagram(VIP6, 53);
    const sp = parseFrame(whole).udp!.sport;
    const outs = fragmentFrame(whole, 1200, ++id).map((f) => lab.run(f).out);
    for (const out of outs) expect(parseFrame(out).ip).toMatchObject({ src: CLIENT6, dst: 'fd00:1::21', protocol: 44 });
    expect(verifyChecksums(reassemble(outs))).toEqual({ ipOk: true, l4Ok: true });

    const reply = buildFrame({ ip: { src: 'fd00:1::21', dst: CLIENT6 }, udp: { sport: 5353, dport: sp }, payload: Buffer.alloc(2500, 'r') });
    const back = fragmentFrame(reply, 1200, ++id).map((f) => lab.run(f, 'reals'));
    expect(back.map((b) => b.verdict)).toEqual(['redirect', 'redirect', 'redirect']);
    for (const b of back) expect(parseFrame(b.out).ip).toMatchObject({ src: VIP6, dst: CLIENT6 });
    expect(parseFrame(reassemble(back.map((b) => b.out))).udp).toMatchObject({ sport: 53, dport: sp });
    expect(verifyChecksums(reassemble(back.map((b) => b.out)))).toEqual({ ipOk: true, l4Ok: true });
  });

  it('DR: the fragments of each datagram follow their first fragment, whichever real server it got', () => {
    for (let i = 0; i < 4; i++) {
      const pieces = fragmentFrame(datagram(VIP, 54), 1000, ++id);
      const macs = pieces.map((f) => parseFrame(lab.run(f).out).dstMac);
      expect(new Set(macs).size).toBe(1);
      expect([NET.neighbours['10.1.0.11'], NET.neighbours['10.1.0.12']]).toContain(macs[0]);
    }
    expect(listedService(lab.lb, 54).realServers.map((r) => r.stats.conns)).toEqual([2n, 2n]);
  });

  it('TUN: every fragment is tunnelled to the first one\'s real server, from the same outer source', () => {
    lab.lb.setTunnelSource({ inet6: 'fd00:ff::/112' });
    const outs = fragmentFrame(datagram(VIP6, 55), 1200, ++id).map((f) => parseFrame(lab.run(f).out));
    expect(new Set(outs.map((o) => `${o.ip!.src} ${o.ip!.dst}`)).size).toBe(1);
    expect(outs[0]!.ip).toMatchObject({ protocol: 41 });
    expect(outs.map((o) => o.inner?.fragment6?.offset)).toEqual([0, 1200, 2400]);
  });
});

describe('fragments that are passed', () => {
  it('a later fragment before its first: passed; once the first was balanced, later ones follow', () => {
    const [first, second, third] = fragmentFrame(datagram(VIP, 53), 1000, ++id);
    const early = lab.run(third!);
    expect(early.verdict).toBe('pass');
    expect(early.out).toEqual(third);
    expect(lab.lb.reasons().pass_fragment).toBe(1n);
    expect(lab.run(first!).verdict).toBe('redirect');
    expect(parseFrame(lab.run(second!).out).ip?.dst).toBe('10.1.0.21');
  });

  it('a later fragment of another datagram (other id, source or protocol) is not taken for this one', () => {
    const pieces = fragmentFrame(datagram(VIP, 53), 1000, ++id);
    lab.run(pieces[0]!);
    const otherId = fragmentFrame(datagram(VIP, 53), 1000, id + 1000)[1]!;
    const otherSource = Buffer.from(pieces[1]!);
    otherSource[14 + 15] = 6; // 10.2.0.6
    otherSource.writeUInt16BE(0, 24);
    otherSource.writeUInt16BE(checksum(otherSource.subarray(14, 34)), 24);
    for (const frame of [otherId, otherSource]) expect(lab.run(frame).verdict).toBe('pass');
    expect(lab.lb.reasons().pass_fragment).toBe(2n);
  });

  it('a later fragment whose connection ended (real server removed) is passed', () => {
    const svc = addService(lab.lb, { protocol: 'udp', address: VIP, port: 60 }, [['10.1.0.13', 'dr']]);
    const pieces = fragmentFrame(datagram(VIP, 60), 1000, ++id);
    expect(lab.run(pieces[0]!).verdict).toBe('redirect');
    lab.lb.deleteService(svc);
    expect(lab.run(pieces[1]!).verdict).toBe('pass');
  });

  it('fragmented ICMP, first or later fragment, is left to the kernel', () => {
    const ping = buildFrame({ ip: { src: CLIENT, dst: VIP }, icmp: { type: 8 }, payload: Buffer.alloc(2000) });
    for (const frame of fragmentFrame(ping, 1000, ++id)) {
      const { verdict, out } = lab.run(frame);
      expect(verdict).toBe('pass');
      expect(out).toEqual(frame);
    }
    expect(lab.lb.reasons().pass_fragment).toBe(3n);
  });

  it('a first fragment too short for the TCP header is malformed', () => {
    const syn = buildFrame({ ip: { src: CLIENT, dst: VIP, id: ++id }, tcp: { sport: sport++, dport: 80, flags: 'S' }, payload: 'x'.repeat(100) });
    const [tiny] = fragmentFrame(syn, 16, id);
    expect(lab.run(tiny!).verdict).toBe('pass');
    expect(lab.lb.reasons().pass_malformed).toBe(1n);
  });
});

describe('IPv4 options', () => {
  // Record route (7) with room for two addresses, then end of options: the IHL is 8 words.
  const options = Buffer.from([7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  const syn = (dport: number): FrameSpec => ({
    ip: { src: CLIENT, dst: VIP, options, df: true }, tcp: { sport: sport++, dport, flags: 'S', seq: 1 }, payload: 'opt',
  });

  it('DR forwards the packet with its options untouched', () => {
    const frame = buildFrame(syn(80));
    const { verdict, out } = lab.run(frame);
    expect(verdict).toBe('redirect');
    expect(out.subarray(12)).toEqual(frame.subarray(12));
  });

  it('NAT finds the TCP header behind the options and fixes both checksums', () => {
    const spec = syn(8080);
    const { out } = lab.run(buildFrame(spec));
    const p = parseFrame(out);
    expect(p.ip).toMatchObject({ ihl: 8, dst: '10.1.0.21', options });
    expect(p.tcp).toMatchObject({ dport: 80, sport: spec.tcp!.sport });
    expect(verifyChecksums(out)).toEqual({ ipOk: true, l4Ok: true });
  });

  it('TUN carries the options inside the tunnel', () => {
    const frame = buildFrame(syn(81));
    const p = parseFrame(lab.run(frame).out);
    expect(p.ip).toMatchObject({ ihl: 5, protocol: 4, dst: '10.1.0.12' });
    expect(p.inner?.ip).toMatchObject({ ihl: 8, options });
    expect(p.inner?.tcp?.dport).toBe(81);
  });
});
