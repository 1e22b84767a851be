// The dataplane, frame by frame, through BPF_PROG_TEST_RUN: exact bytes out, checksums checked
// by an independent routine, and every packet that is not balanced passed untouched and counted.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildFrame, parseFrame, verifyChecksums, type FrameSpec } from './helpers/packet.js';
import { NET, packetLab, type PacketLab } from './helpers/lb.js';

const VIP = '10.0.0.100';
const CLIENT = '10.2.0.5';
const CLIENT_MAC = '02:00:00:00:02:05';
const svcDr = { protocol: 'tcp' as const, address: VIP, port: 80 };
const svcNat = { protocol: 'tcp' as const, address: VIP, port: 8080 };
const svcUdp = { protocol: 'udp' as const, address: VIP, port: 53 };

let lab: PacketLab;
let sport = 20000;

function syn(dport: number, overrides: Partial<FrameSpec> = {}): Buffer {
  return buildFrame({
    dstMac: '02:00:00:00:00:aa',
    srcMac: CLIENT_MAC,
    ip: { src: CLIENT, dst: VIP, id: 7 },
    tcp: { sport: sport++, dport, flags: 'S', seq: 1000 },
    ...overrides,
  });
}

function tcp(sp: number, dport: number, flags: string, payload = ''): Buffer {
  return buildFrame({
    srcMac: CLIENT_MAC,
    ip: { src: CLIENT, dst: VIP },
    tcp: { sport: sp, dport, flags, seq: 1001 },
    payload,
  });
}

beforeAll(async () => {
  lab = await packetLab();
  lab.lb.addService(svcDr, { scheduler: 'rr' });
  lab.lb.addRealServer(svcDr, { address: '10.1.0.11' });
  lab.lb.addRealServer(svcDr, { address: '10.1.0.12' });
  lab.lb.addService(svcNat, { scheduler: 'rr' });
  lab.lb.addRealServer(svcNat, { address: '10.1.0.21', port: 80 }, { method: 'nat' });
  lab.lb.addService(svcUdp, { scheduler: 'rr' });
  lab.lb.addRealServer(svcUdp, { address: '10.1.0.21', port: 5353 }, { method: 'nat' });
});

afterAll(async () => {
  await lab?.destroy();
});

beforeEach(() => {
  lab.lb.zero();
});

describe('DR (gatewaying)', () => {
  it('rewrites only the MACs, towards the real server found by bpf_fib_lookup', () => {
    const frame = syn(80);
    const { verdict, out } = lab.run(frame);
    expect(verdict).toBe('redirect');
    expect(out.length).toBe(frame.length);
    const p = parseFrame(out);
    expect([NET.neighbours['10.1.0.11'], NET.neighbours['10.1.0.12']]).toContain(p.dstMac);
    expect(p.srcMac).toBe(lab.realsIf.mac);
    expect(out.subarray(12)).toEqual(frame.subarray(12)); // IP header and beyond untouched
  });

  it('sends back out of the ingress interface with XDP_TX when the real is on that segment', () => {
    const frame = syn(80);
    const { verdict, out } = lab.run(frame, 'reals');
    expect(verdict).toBe('tx');
    expect(out.subarray(12)).toEqual(frame.subarray(12));
  });

  it('keeps a connection on its real server and alternates new ones (rr)', () => {
    const chosen: string[] = [];
    for (let i = 0; i < 6; i++) {
      const sp = sport++;
      const first = parseFrame(lab.run(tcp(sp, 80, 'S')).out).dstMac;
      for (const flags of ['A', 'PA', 'FA']) {
        expect(parseFrame(lab.run(tcp(sp, 80, flags, 'x')).out).dstMac).toBe(first);
      }
      chosen.push(first);
    }
    for (let i = 1; i < chosen.length; i++) expect(chosen[i]).not.toBe(chosen[i - 1]);
  });

  it('keeps a one-tag 802.1Q frame tagged when it leaves by the ingress interface', () => {
    const frame = syn(80, { vlan: { id: 42 } });
    const { verdict, out } = lab.run(frame, 'reals');
    expect(verdict).toBe('tx');
    expect(parseFrame(out).vlan?.id).toBe(42);
    expect(out.subarray(12)).toEqual(frame.subarray(12));
  });
});

describe('NAT (masquerading)', () => {
  it('rewrites destination address and port, with correct IPv4 and TCP checksums', () => {
    const frame = syn(8080);
    const { verdict, out } = lab.run(frame);
    expect(verdict).toBe('redirect');
    const p = parseFrame(out);
    expect(p.dstMac).toBe(NET.neighbours['10.1.0.21']);
    expect(p.ip).toMatchObject({ src: CLIENT, dst: '10.1.0.21', ttl: 64, id: 7 });
    expect(p.tcp).toMatchObject({ dport: 80, flags: 'S', seq: 1000 });
    expect(verifyChecksums(out)).toEqual({ ipOk: true, l4Ok: true });
  });

  it('rewrites the real server\'s reply back to the virtual address and port', () => {
    const sp = sport++;
    lab.run(tcp(sp, 8080, 'S'));
    const reply = buildFrame({
      srcMac: NET.neighbours['10.1.0.21'],
      ip: { src: '10.1.0.21', dst: CLIENT },
      tcp: { sport: 80, dport: sp, flags: 'SA', seq: 5000, ack: 1001 },
    });
    const { verdict, out } = lab.run(reply, 'reals');
    expect(verdict).toBe('redirect');
    const p = parseFrame(out);
    expect(p.dstMac).toBe(CLIENT_MAC);
    expect(p.srcMac).toBe(lab.clientsIf.mac);
    expect(p.ip).toMatchObject({ src: VIP, dst: CLIENT });
    expect(p.tcp).toMatchObject({ sport: 8080, dport: sp, flags: 'SA' });
    expect(verifyChecksums(out)).toEqual({ ipOk: true, l4Ok: true });
    const [svc] = lab.lb.list().filter((s) => 'port' in s.key && s.key.port === 8080);
    expect(svc!.stats).toMatchObject({ conns: 1n, inpkts: 1n, outpkts: 1n });
    expect(svc!.stats.outbytes).toBe(BigInt(reply.length - 14));
  });

  it('fixes UDP checksums and leaves a zero (absent) UDP checksum zero', () => {
    for (const zeroChecksum of [false, true]) {
      const frame = buildFrame({
        ip: { src: CLIENT, dst: VIP },
        udp: { sport: sport++, dport: 53, zeroChecksum },
        payload: 'query',
      });
      const { verdict, out } = lab.run(frame);
      expect(verdict).toBe('redirect');
      const p = parseFrame(out);
      expect(p.ip).toMatchObject({ dst: '10.1.0.21' });
      expect(p.udp?.dport).toBe(5353);
      if (zeroChecksum) expect(p.udp?.checksum).toBe(0);
      expect(verifyChecksums(out)).toEqual({ ipOk: true, l4Ok: true });
    }
  });

  it('passes a reply that belongs to no connection untouched', () => {
    const reply = buildFrame({
      ip: { src: '10.1.0.21', dst: CLIENT },
      tcp: { sport: 80, dport: 65000, flags: 'A' },
    });
    const { verdict, out } = lab.run(reply, 'reals');
    expect(verdict).toBe('pass');
    expect(out).toEqual(reply);
  });
});

describe('packets that are not balanced', () => {
  const cases: [string, () => Buffer, string][] = [
    ['not for a service', () => syn(81), 'pass_no_service'],
    ['a TCP segment without connection that is not a SYN', () => tcp(sport++, 80, 'A'), 'pass_no_conn'],
    ['a RST without connection', () => tcp(sport++, 80, 'R'), 'pass_no_conn'],
    ['a SYN+RST', () => tcp(sport++, 80, 'SR'), 'pass_no_conn'],
    // First fragments are balanced (test/fragments.test.ts); a later one whose first was not seen is passed.
    ['a later fragment', () => syn(80, { ip: { src: CLIENT, dst: VIP, id: 4242, fragOffset: 64 } }), 'pass_fragment'],
    ['ICMP to the VIP, neither echo nor error', () => buildFrame({ ip: { src: CLIENT, dst: VIP }, icmp: { type: 13 } }), 'pass_icmp'],
    ['IPv6 not for a service', () => buildFrame({ ip: { src: 'fd00::1', dst: 'fd00::2' }, tcp: { sport: 1, dport: 80, flags: 'S' } }), 'pass_no_service'],
    ['ARP', () => Buffer.concat([Buffer.from('0200000000020200000000010806', 'hex'), Buffer.alloc(28)]), 'pass_not_ip'],
  ];
  it.each(cases)('%s: passed untouched and counted', (_name, make, reason) => {
    const frame = make();
    const { verdict, out } = lab.run(frame);
    expect(verdict).toBe('pass');
    expect(out).toEqual(frame);
    expect(lab.lb.reasons()[reason]).toBe(1n);
  });

  // BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header, so cuts stop there.
  it('passes every truncation of a SYN to the VIP untouched, never forwarding it', () => {
    const full = syn(80);
    for (let len = 14; len < full.length; len++) {
      const frame = full.subarray(0, len);
      const { verdict, out } = lab.run(Buffer.from(frame));
      expect(verdict, `${len} bytes`).toBe('pass');
      expect(out).toEqual(frame);
    }
    expect(lab.lb.reasons().pass_malformed).toBe(BigInt(full.length - 14));
    expect(lab.lb.list().find((s) => 'port' in s.key && s.key.port === 80)!.stats.inpkts).toBe(0n);
  });

  it('passes inconsistent headers: bad IHL, total length beyond the frame, bad TCP offset', () => {
    const bad: Buffer[] = [];
    const ihl = syn(80);
    ihl[14] = 0x44; // IHL 4 < 5
    bad.push(ihl);
    const totLen = syn(80);
    totLen.writeUInt16BE(totLen.length, 16); // claims 14 bytes more than it has
    bad.push(totLen);
    const doff = syn(80);
    doff[14 + 20 + 12] = 0x20; // data offset 2 words
    bad.push(doff);
    const version = syn(80);
    version[14] = 0x65;
    bad.push(version);
    for (const frame of bad) {
      const { verdict, out } = lab.run(Buffer.from(frame));
      expect(verdict).toBe('pass');
      expect(out).toEqual(frame);
    }
    expect(lab.lb.reasons().pass_malformed).toBe(BigInt(bad.length));
  });
});

describe('real server changes', () => {
  const key = { protocol: 'tcp' as const, address: VIP, port: 25 };
  beforeEach(() => lab.lb.addService(key, { scheduler: 'rr' }));
  afterEach(() => lab.lb.deleteService(key));
  const macOf = (frame: Buffer) => parseFrame(lab.run(frame).out).dstMac;

  it('keeps the connections of a removed real server in the trash: their packets are dropped and counted', () => {
    lab.lb.setSysctls({ expire_nodest_conn: 0 });
    try {
      lab.lb.addRealServer(key, { address: '10.1.0.11' });
      lab.lb.addRealServer(key, { address: '10.1.0.12' });
      const sp = sport++;
      const first = macOf(tcp(sp, 25, 'S'));
      const gone = Object.entries(NET.neighbours).find(([, m]) => m === first)![0];
      lab.lb.deleteRealServer(key, { address: gone });
      const { verdict } = lab.run(tcp(sp, 25, 'A', 'data'));
      expect(verdict).toBe('drop');
      expect(lab.lb.reasons().drop_dest_gone).toBe(1n);
      // back from the trash, the connection goes on to it
      lab.lb.addRealServer(key, { address: gone });
      expect(macOf(tcp(sp, 25, 'A', 'more'))).toBe(first);
    } finally {
      lab.lb.setSysctls({ expire_nodest_conn: 1 });
    }
  });

  it('weight 0 takes no new connections but keeps its established ones', () => {
    lab.lb.addRealServer(key, { address: '10.1.0.11' });
    const sp = sport++;
    expect(macOf(tcp(sp, 25, 'S'))).toBe(NET.neighbours['10.1.0.11']);
    lab.lb.editRealServer(key, { address: '10.1.0.11' }, { weight: 0 });
    expect(macOf(tcp(sp, 25, 'A', 'more'))).toBe(NET.neighbours['10.1.0.11']);
    const { verdict } = lab.run(tcp(sport++, 25, 'S'));
    expect(verdict).toBe('pass');
    expect(lab.lb.reasons().pass_no_dest).toBe(1n);
  });
});

describe('next-hop cache', () => {
  it('is not used across a real server\'s removal: a re-added server is looked up afresh', async () => {
    const key = { protocol: 'tcp' as const, address: VIP, port: 26 };
    lab.lb.addService(key, { scheduler: 'rr' });
    try {
      lab.lb.addRealServer(key, { address: '10.1.0.13' });
      const sp = sport++;
      expect(parseFrame(lab.run(tcp(sp, 26, 'S')).out).dstMac).toBe(NET.neighbours['10.1.0.13']);
      expect(parseFrame(lab.run(tcp(sp, 26, 'A')).out).dstMac).toBe(NET.neighbours['10.1.0.13']); // cached
      lab.lb.deleteRealServer(key, { address: '10.1.0.13' });
      await lab.ns.ip(['neigh', 'replace', '10.1.0.13', 'lladdr', '02:00:00:00:01:99', 'dev', 'reals', 'nud', 'permanent']);
      lab.lb.addRealServer(key, { address: '10.1.0.13' });
      expect(parseFrame(lab.run(tcp(sport++, 26, 'S')).out).dstMac).toBe('02:00:00:00:01:99');
    } finally {
      lab.lb.deleteService(key);
      await lab.ns.ip(['neigh', 'replace', '10.1.0.13', 'lladdr', NET.neighbours['10.1.0.13']!, 'dev', 'reals', 'nud', 'permanent']);
    }
  });
});

describe('next-hop cache and the path MTU', () => {
  it('a packet larger than the cached route has taken asks the FIB, which finds it too big', async () => {
    const key = { protocol: 'tcp' as const, address: VIP, port: 27 };
    lab.lb.addService(key, { scheduler: 'rr' });
    await lab.ns.ip(['link', 'set', 'reals', 'mtu', '1400']);
    try {
      lab.lb.addRealServer(key, { address: '10.1.0.11' });
      const sp = sport++;
      expect(lab.run(tcp(sp, 27, 'S')).verdict).toBe('redirect');
      expect(lab.run(tcp(sp, 27, 'A')).verdict).toBe('redirect'); // route cached for small packets
      const big = buildFrame({
        srcMac: CLIENT_MAC, ip: { src: CLIENT, dst: VIP, df: true }, tcp: { sport: sp, dport: 27, flags: 'PA' },
        payload: 'x'.repeat(1450),
      });
      const { out } = lab.run(big);
      expect(parseFrame(out).ip).toMatchObject({ src: VIP, dst: CLIENT, protocol: 1 }); // ICMP, not forwarded
      expect(lab.lb.reasons().icmp_too_big).toBe(1n);
    } finally {
      await lab.ns.ip(['link', 'set', 'reals', 'mtu', '1500']);
      lab.lb.deleteService(key);
    }
  });
});

describe('unresolved next hop', () => {
  it('passes the packet to the kernel and counts it, and xvs has asked the kernel to resolve it', async () => {
    const key = { protocol: 'tcp' as const, address: VIP, port: 443 };
    lab.lb.addService(key, { scheduler: 'rr' });
    lab.lb.addRealServer(key, { address: '10.1.0.99' }); // nobody answers ARP for it
    try {
      const frame = syn(443);
      const { verdict, out } = lab.run(frame);
      expect(verdict).toBe('pass');
      expect(out).toEqual(frame);
      expect(lab.lb.reasons().pass_no_neigh).toBe(1n);
      const neigh = (await lab.ns.ip(['neigh', 'show', '10.1.0.99'])).stdout;
      expect(neigh).toContain('managed');
    } finally {
      lab.lb.deleteService(key);
    }
  });
});

describe('counters', () => {
  it('count connections, packets and IP bytes per service and real server', () => {
    const sp = sport++;
    const frames = [tcp(sp, 80, 'S'), tcp(sp, 80, 'A'), tcp(sp, 80, 'PA', 'hello world'), tcp(sp, 80, 'FA')];
    for (const f of frames) lab.run(f);
    const svc = lab.lb.list().find((s) => 'port' in s.key && s.key.port === 80)!;
    const bytes = BigInt(frames.reduce((n, f) => n + f.length - 14, 0));
    expect(svc.stats).toEqual({ conns: 1n, inpkts: 4n, outpkts: 0n, inbytes: bytes, outbytes: 0n });
    const used = svc.realServers.filter((r) => r.stats.inpkts > 0n);
    expect(used).toHaveLength(1);
    expect(used[0]!.stats).toEqual(svc.stats);
    expect(lab.lb.reasons().fwd_redirect).toBe(4n);
  });
});
