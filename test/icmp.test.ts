// ICMP through BPF_PROG_TEST_RUN: echo requests to virtual addresses are answered; errors are
// related to their connection by the packet they quote and translated or forwarded as IPVS does.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildFrame, parseFrame, verifyChecksums, type FrameSpec } from './helpers/packet.js';
import { ADDR, NET, addService, packetLab, type PacketLab, listedService } from './helpers/lb.js';

const { vip: VIP, vip6: VIP6, client: CLIENT, client6: CLIENT6, clientMac: CLIENT_MAC, lbMac: LB_MAC } = ADDR;
const ROUTER = '10.2.0.77';

let lab: PacketLab;
let sport = 40000;

const ip4Of = (frame: Buffer) => frame.subarray(14);

beforeAll(async () => {
  lab = await packetLab();
  addService(lab.lb, { protocol: 'udp', address: VIP, port: 53 }, [['10.1.0.21', 'nat', 5353]]);
  addService(lab.lb, { protocol: 'udp', address: VIP6, port: 53 }, [['fd00:1::21', 'nat', 5353]]);
  addService(lab.lb, { protocol: 'tcp', address: VIP, port: 80 }, [['10.1.0.11', 'dr']]);
  addService(lab.lb, { protocol: 'tcp', address: VIP6, port: 80 }, [['fd00:1::11', 'tun']]);
  addService(lab.lb, { protocol: 'tcp', address: VIP, port: 8080 }, [['10.1.0.21', 'nat', 80]]);
});

afterAll(async () => {
  await lab?.destroy();
});

beforeEach(() => {
  lab.lb.zero();
});

describe('echo', () => {
  const echo = (src: string, dst: string): FrameSpec => ({
    dstMac: LB_MAC, srcMac: CLIENT_MAC, ip: { src, dst, ttl: 50, id: 5 },
    icmp: { type: src.includes(':') ? 128 : 8, rest: 0x00070001 }, payload: 'abcdefgh',
  });

  it('an echo request to a virtual address is answered from it, back to the neighbour it came from', () => {
    for (const [src, dst, reply] of [[CLIENT, VIP, 0], [CLIENT6, VIP6, 129]] as const) {
      const { verdict, out } = lab.run(buildFrame(echo(src, dst)));
      expect(verdict).toBe('redirect'); // to the ingress interface (see reply_to_sender())
      const expected = buildFrame({
        dstMac: CLIENT_MAC, srcMac: LB_MAC, ip: { src: dst, dst: src, ttl: 64, id: 5 },
        icmp: { type: reply, rest: 0x00070001 }, payload: 'abcdefgh',
      });
      expect(out.toString('hex')).toBe(expected.toString('hex'));
    }
    expect(lab.lb.reasons().icmp_echo_reply).toBe(2n);
  });

  it('an echo request to another address is passed', () => {
    const frame = buildFrame(echo(CLIENT, '10.0.0.101'));
    const { verdict, out } = lab.run(frame);
    expect(verdict).toBe('pass');
    expect(out).toEqual(frame);
    expect(lab.lb.reasons().pass_icmp).toBe(1n);
  });

  it('is answered while any service uses the address', () => {
    const other = addService(lab.lb, { protocol: 'tcp', address: '10.0.0.102', port: 1 }, []);
    const again = addService(lab.lb, { ...other, port: 2 }, []);
    lab.lb.deleteService(other);
    expect(lab.run(buildFrame(echo(CLIENT, '10.0.0.102'))).verdict).toBe('redirect');
    lab.lb.deleteService(again);
    expect(lab.run(buildFrame(echo(CLIENT, '10.0.0.102'))).verdict).toBe('pass');
  });
});

describe('errors from a NAT real server, or the path to it', () => {
  it('port unreachable goes to the client from the VIP, quoting the packet the client sent', () => {
    const request = buildFrame({ srcMac: CLIENT_MAC, ip: { src: CLIENT, dst: VIP, id: 3 }, udp: { sport: sport++, dport: 53 }, payload: 'query' });
    const natted = lab.run(request).out;
    expect(parseFrame(natted).ip).toMatchObject({ dst: '10.1.0.21' });
    const error = buildFrame({
      srcMac: NET.neighbours['10.1.0.21'], ip: { src: '10.1.0.21', dst: CLIENT, tos: 0xc0, id: 9 },
      icmp: { type: 3, code: 3 }, payload: ip4Of(natted),
    });
    const { verdict, out } = lab.run(error, 'reals');
    expect(verdict).toBe('redirect');
    const expected = buildFrame({
      dstMac: CLIENT_MAC, srcMac: lab.clientsIf.mac, ip: { src: VIP, dst: CLIENT, tos: 0xc0, id: 9 },
      icmp: { type: 3, code: 3 }, payload: ip4Of(request),
    });
    expect(out.toString('hex')).toBe(expected.toString('hex'));
    const svc = listedService(lab.lb, 53, VIP);
    expect(svc.stats).toMatchObject({ inpkts: 1n, outpkts: 1n, outbytes: BigInt(error.length - 14) });
  });

  it('IPv6: ICMPv6 port unreachable, its pseudo-header checksum fixed', () => {
    const request = buildFrame({ srcMac: CLIENT_MAC, ip: { src: CLIENT6, dst: VIP6 }, udp: { sport: sport++, dport: 53 }, payload: 'query6' });
    const natted = lab.run(request).out;
    const error = buildFrame({
      ip: { src: 'fd00:1::21', dst: CLIENT6 }, icmp: { type: 1, code: 4 }, payload: ip4Of(natted),
    });
    const { out } = lab.run(error, 'reals');
    const expected = buildFrame({
      dstMac: CLIENT_MAC, srcMac: lab.clientsIf.mac, ip: { src: VIP6, dst: CLIENT6 },
      icmp: { type: 1, code: 4 }, payload: ip4Of(request),
    });
    expect(out.toString('hex')).toBe(expected.toString('hex'));
  });

  it('fragmentation needed from a router towards the real server: translated the same way', () => {
    const request = buildFrame({ srcMac: CLIENT_MAC, ip: { src: CLIENT, dst: VIP, df: true }, tcp: { sport: sport++, dport: 8080, flags: 'S' } });
    const natted = lab.run(request).out;
    // A router quotes as little as the IP header and 8 bytes: the TCP checksum is not in the quote.
    const error = buildFrame({
      ip: { src: '10.1.0.50', dst: CLIENT }, icmp: { type: 3, code: 4, rest: 1400 }, payload: ip4Of(natted).subarray(0, 28),
    });
    const { out } = lab.run(error, 'reals');
    const expected = buildFrame({
      dstMac: CLIENT_MAC, srcMac: lab.clientsIf.mac, ip: { src: VIP, dst: CLIENT },
      icmp: { type: 3, code: 4, rest: 1400 }, payload: ip4Of(request).subarray(0, 28),
    });
    expect(out.toString('hex')).toBe(expected.toString('hex'));
  });
});

describe('errors from the path towards the client', () => {
  // A router between the balancer and the client cannot deliver a packet the connection sent to the
  // client (from the VIP): the error goes to the VIP, and on to the connection's real server.
  function pathError(reply: FrameSpec, code = 4): Buffer {
    const v6 = reply.ip.src.includes(':');
    return buildFrame({
      srcMac: CLIENT_MAC, dstMac: LB_MAC, ip: { src: v6 ? 'fd00:2::77' : ROUTER, dst: reply.ip.src },
      icmp: v6 ? { type: 2, rest: 1280 } : { type: 3, code, rest: 1400 }, payload: ip4Of(buildFrame(reply)),
    });
  }

  it('DR: forwarded as it is to the real server', () => {
    const sp = sport++;
    lab.run(buildFrame({ ip: { src: CLIENT, dst: VIP }, tcp: { sport: sp, dport: 80, flags: 'S' } }));
    const error = pathError({ ip: { src: VIP, dst: CLIENT, df: true }, tcp: { sport: 80, dport: sp, flags: 'SA' }, payload: 'x'.repeat(1400) });
    const { verdict, out } = lab.run(error);
    expect(verdict).toBe('redirect');
    expect(parseFrame(out).dstMac).toBe(NET.neighbours['10.1.0.11']);
    expect(out.subarray(12)).toEqual(error.subarray(12));
    expect(listedService(lab.lb, 80, VIP).stats.inpkts).toBe(2n);
  });

  it('TUN: tunnelled to the real server', () => {
    const sp = sport++;
    lab.run(buildFrame({ ip: { src: CLIENT6, dst: VIP6 }, tcp: { sport: sp, dport: 80, flags: 'S' } }));
    const error = pathError({ ip: { src: VIP6, dst: CLIENT6 }, tcp: { sport: 80, dport: sp, flags: 'A' } });
    const p = parseFrame(lab.run(error).out);
    expect(p.ip).toMatchObject({ dst: 'fd00:1::11', protocol: 41 });
    expect(p.inner?.icmp).toMatchObject({ type: 2, rest: 1280 });
    expect(p.inner?.icmp?.quoted?.ip).toMatchObject({ src: VIP6, dst: CLIENT6 });
  });

  it('NAT: translated to the real server, quoting the packet the real server sent', () => {
    const sp = sport++;
    lab.run(buildFrame({ ip: { src: CLIENT, dst: VIP }, tcp: { sport: sp, dport: 8080, flags: 'S' } }));
    const reply = { ip: { src: VIP, dst: CLIENT, df: true }, tcp: { sport: 8080, dport: sp, flags: 'SA', seq: 9 } };
    const { verdict, out } = lab.run(pathError(reply));
    expect(verdict).toBe('redirect');
    const sent = buildFrame({ ip: { ...reply.ip, src: '10.1.0.21' }, tcp: { ...reply.tcp, sport: 80 } });
    const expected = buildFrame({
      dstMac: NET.neighbours['10.1.0.21'], srcMac: lab.realsIf.mac, ip: { src: ROUTER, dst: '10.1.0.21' },
      icmp: { type: 3, code: 4, rest: 1400 }, payload: ip4Of(sent),
    });
    expect(out.toString('hex')).toBe(expected.toString('hex'));
    expect(verifyChecksums(out).l4Ok).toBe(true);
  });
});

describe('packets too big for the real server\'s link', () => {
  it('NAT: the client learns the MTU from an error quoting its own, untranslated packet', () => {
    const request = buildFrame({
      dstMac: LB_MAC, srcMac: CLIENT_MAC, ip: { src: CLIENT, dst: VIP, df: true }, tcp: { sport: sport++, dport: 8080, flags: 'A' },
      payload: 'x'.repeat(1600),
    });
    lab.run(buildFrame({ ip: { src: CLIENT, dst: VIP }, tcp: { sport: sport - 1, dport: 8080, flags: 'S' } }));
    const { verdict, out } = lab.run(request);
    expect(verdict).toBe('redirect');
    const expected = buildFrame({
      dstMac: CLIENT_MAC, srcMac: LB_MAC, ip: { src: VIP, dst: CLIENT, tos: 0xc0 },
      icmp: { type: 3, code: 4, rest: 1500 }, payload: ip4Of(request).subarray(0, 548),
    });
    expect(out.toString('hex')).toBe(expected.toString('hex'));
  });
});

describe('errors xvs passes', () => {
  it('an error quoting no connection, or not sent back to the quoted source', () => {
    const sp = sport++;
    lab.run(buildFrame({ ip: { src: CLIENT, dst: VIP }, tcp: { sport: sp, dport: 80, flags: 'S' } }));
    const quote = (src: string) => buildFrame({ ip: { src, dst: CLIENT }, tcp: { sport: 80, dport: sp, flags: 'A' } }).subarray(14);
    const frames = [
      buildFrame({ ip: { src: ROUTER, dst: VIP }, icmp: { type: 3, code: 1 }, payload: quote('10.0.0.101') }),
      buildFrame({ ip: { src: ROUTER, dst: '10.0.0.101' }, icmp: { type: 3, code: 1 }, payload: quote(VIP) }),
      buildFrame({ ip: { src: ROUTER, dst: VIP }, icmp: { type: 3, code: 1 }, payload: quote(VIP).subarray(0, 22) }),
    ];
    for (const frame of frames) {
      const { verdict, out } = lab.run(frame);
      expect(verdict).toBe('pass');
      expect(out).toEqual(frame);
    }
    expect(lab.lb.reasons().pass_icmp).toBe(3n);
  });
});
