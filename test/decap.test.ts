// The real servers' decapsulation program (bpf/xvs_decap.bpf.c) through BPF_PROG_TEST_RUN: what
// leaves it is exactly the inner packet behind the same L2 header; everything else is untouched.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Decap } from '../lib/decap.js';
import { XDP_DROP, XDP_PASS } from '../lib/libbpf.js';
import { buildFrame, fragmentFrame, parseFrame, verifyChecksums, type FrameSpec } from './helpers/packet.js';
import { NET, packetLab, type PacketLab } from './helpers/lb.js';

const inner4: FrameSpec = { ip: { src: '10.2.0.5', dst: '10.0.0.100', tos: 0x02 }, tcp: { sport: 1000, dport: 80, flags: 'S' }, payload: 'in4' };
const inner6: FrameSpec = { ip: { src: 'fd00:2::5', dst: 'fd00:100::1', tos: 0x01 }, udp: { sport: 1000, dport: 53 }, payload: 'in6' };
const outer4 = { src: '10.1.0.1', dst: '10.1.0.11', df: true };
const outer6 = { src: 'fd00:1::1', dst: 'fd00:1::11' };

let decap: Decap;
let filtered: Decap;

function run(d: Decap, frame: Buffer): { verdict: number; out: Buffer } {
  const r = d.program.testRun({ data: frame });
  return { verdict: r.retval, out: r.data };
}

beforeAll(() => {
  decap = new Decap();
  filtered = new Decap({ sources: ['10.1.0.0/24', 'fd00:1::1'] });
});

afterAll(() => {
  decap?.close();
  filtered?.close();
});

describe('decapsulation', () => {
  const cases: [string, FrameSpec, FrameSpec['tunnel']][] = [
    ['IPv4 in IPv4', inner4, outer4],
    ['IPv6 in IPv6', inner6, outer6],
    ['IPv4 in IPv6', inner4, outer6],
    ['IPv6 in IPv4', inner6, outer4],
  ];
  it.each(cases)('%s: the inner packet behind the same MACs', (_name, inner, outer) => {
    const before = decap.stats().ok!;
    const { verdict, out } = run(decap, buildFrame({ ...inner, tunnel: outer }));
    expect(verdict).toBe(XDP_PASS);
    expect(out.toString('hex')).toBe(buildFrame(inner).toString('hex'));
    expect(decap.stats().ok).toBe(before + 1n);
  });

  it('keeps an 802.1Q tag', () => {
    const { out } = run(decap, buildFrame({ ...inner6, vlan: { id: 9 }, tunnel: outer4 }));
    expect(out.toString('hex')).toBe(buildFrame({ ...inner6, vlan: { id: 9 } }).toString('hex'));
  });

  it('restores exactly what the client sent through the balancer\'s tunnel', async () => {
    const lab: PacketLab = await packetLab();
    try {
      const svc = { protocol: 'tcp' as const, address: '10.0.0.100', port: 80 };
      lab.lb.addService(svc, { scheduler: 'rr' });
      lab.lb.addRealServer(svc, { address: 'fd00:1::11' }, { method: 'tun' });
      const sent = buildFrame({ ...inner4, srcMac: NET.neighbours['10.2.0.5'] });
      const { out } = run(decap, lab.run(sent).out);
      expect(out.subarray(12).toString('hex')).toBe(sent.subarray(12).toString('hex'));
    } finally {
      await lab.destroy();
    }
  });
});

describe('ECN (RFC 6040)', () => {
  it('copies an outer CE mark into an ECN-capable inner packet, fixing the IPv4 checksum', () => {
    const { verdict, out } = run(decap, buildFrame({ ...inner4, tunnel: { ...outer6, tos: 0x03 } }));
    expect(verdict).toBe(XDP_PASS);
    expect(parseFrame(out).ip).toMatchObject({ tos: 0x03 });
    expect(verifyChecksums(out)).toEqual({ ipOk: true, l4Ok: true });
    const six = run(decap, buildFrame({ ...inner6, tunnel: { ...outer4, tos: 0x03 } })).out;
    expect(parseFrame(six).ip).toMatchObject({ tos: 0x03 });
  });

  it('drops a CE-marked tunnel packet around a not-ECT packet', () => {
    const before = decap.stats().drop_ecn!;
    const { verdict } = run(decap, buildFrame({ ...inner4, ip: { ...inner4.ip, tos: 0 }, tunnel: { ...outer4, tos: 0x03 } }));
    expect(verdict).toBe(XDP_DROP);
    expect(decap.stats().drop_ecn).toBe(before + 1n);
  });

  it('leaves the inner packet alone otherwise', () => {
    const { out } = run(decap, buildFrame({ ...inner4, tunnel: { ...outer4, tos: 0x01 } }));
    expect(out.toString('hex')).toBe(buildFrame(inner4).toString('hex'));
  });
});

describe('what is not decapsulated', () => {
  it('passes anything but IP-in-IP untouched: TCP, ARP, an outer fragment, a wrong inner version', () => {
    const wrongVersion = buildFrame({ ...inner6, tunnel: outer4 });
    wrongVersion[14 + 9] = 4; // claims IPv4 inside
    const frames: [Buffer, string][] = [
      [buildFrame(inner4), 'pass_not_tunnel'],
      [Buffer.concat([Buffer.from('0200000000020200000000010806', 'hex'), Buffer.alloc(28)]), 'pass_not_tunnel'],
      [fragmentFrame(buildFrame({ ...inner4, payload: 'x'.repeat(200), tunnel: outer4 }), 64)[0]!, 'pass_fragment'],
      [wrongVersion, 'pass_malformed'],
      [buildFrame({ ...inner4, tunnel: outer4, truncate: 10 }), 'pass_malformed'],
    ];
    for (const [frame, reason] of frames) {
      const before = decap.stats()[reason]!;
      const { verdict, out } = run(decap, frame);
      expect(verdict, reason).toBe(XDP_PASS);
      expect(out).toEqual(frame);
      expect(decap.stats()[reason], reason).toBe(before + 1n);
    }
  });

  it('with allowed sources, drops tunnel packets from anywhere else', () => {
    expect(run(filtered, buildFrame({ ...inner4, tunnel: outer4 })).out).toEqual(buildFrame(inner4));
    expect(run(filtered, buildFrame({ ...inner4, tunnel: outer6 })).verdict).toBe(XDP_PASS);
    expect(run(filtered, buildFrame({ ...inner4, tunnel: { ...outer4, src: '10.1.1.1' } })).verdict).toBe(XDP_DROP);
    expect(run(filtered, buildFrame({ ...inner4, tunnel: { ...outer6, src: 'fd00:1::2' } })).verdict).toBe(XDP_DROP);
    expect(filtered.stats().drop_source).toBe(2n);
  });

  it('rejects a malformed source prefix', () => {
    expect(() => new Decap({ sources: ['10.0.0.0/40'] })).toThrow(/illegal tunnel source prefix/);
  });
});
