// Replies of DR and TUN connections that cross the balancer (bpf/xvs_routed.h), frame by frame
// through BPF_PROG_TEST_RUN with the dataplane's clock frozen: as IPVS's FORWARD hook does, they
// are counted in OutPkts/OutBytes, move the TCP state with the OUTPUT table and switch the
// connection from the INPUT_ONLY table to INPUT (so it closes to TIME_WAIT), and are routed on
// with the TTL decremented; what the kernel's forwarding would refuse is passed to it uncounted.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ServiceKey } from '../lib/balancer.js';
import { u32 } from '../lib/dataplane.js';
import * as L from '../lib/layout.js';
import { ADDR, NET, packetLab, type PacketLab } from './helpers/lb.js';
import { buildFrame, parseFrame, verifyChecksums, type IpSpec } from './helpers/packet.js';
import { recount } from './helpers/recount.js';

const { vip: VIP, vip6: VIP6, client: CLIENT, client6: CLIENT6 } = ADDR;
const R1 = '10.1.0.11';
const R2 = '10.1.0.12';
const R1_6 = 'fd00:1::11';
const S = 1_000_000_000n;
type AddressKey = ServiceKey & { address: string; port: number };
const dr: AddressKey = { protocol: 'tcp', address: VIP, port: 80 };
const tun: AddressKey = { protocol: 'tcp', address: VIP, port: 81 };
const dns: AddressKey = { protocol: 'udp', address: VIP, port: 53 };
const dr6: AddressKey = { protocol: 'tcp', address: VIP6, port: 80 };

let lab: PacketLab;
let nextPort = 30000;

/** A client's packet to the service. */
function fromClient(key: AddressKey, sport: number, flags: string, payload = '') {
  const v6 = key.address.includes(':');
  return lab.run(buildFrame({
    srcMac: ADDR.clientMac,
    ip: { src: v6 ? CLIENT6 : CLIENT, dst: key.address },
    ...(key.protocol === 'tcp' ? { tcp: { sport, dport: key.port, flags } } : { udp: { sport, dport: key.port } }),
    payload,
  }));
}

/** The real server's reply from the virtual address, arriving on the reals' side. */
function replyFrame(key: AddressKey, dport: number, flags: string, payload = '', ip: Partial<IpSpec> = {}) {
  const v6 = key.address.includes(':');
  return buildFrame({
    srcMac: NET.neighbours[v6 ? R1_6 : R1],
    dstMac: lab.realsIf.mac,
    ip: { src: key.address, dst: v6 ? CLIENT6 : CLIENT, ...ip },
    ...(key.protocol === 'tcp' ? { tcp: { sport: key.port, dport, flags, seq: 9000 } } : { udp: { sport: key.port, dport } }),
    payload,
  });
}

function reply(key: AddressKey, dport: number, flags: string, payload = '', ip: Partial<IpSpec> = {}) {
  return lab.run(replyFrame(key, dport, flags, payload, ip), 'reals');
}

function listed(key: ServiceKey) {
  const same = (k: ServiceKey) => ('fwmark' in key ? 'fwmark' in k && k.fwmark === key.fwmark : JSON.stringify(k) === JSON.stringify(key));
  return lab.lb.list().find((s) => same(s.key))!;
}

function state(sport: number): string | undefined {
  return lab.lb.connections().find((c) => c.client.port === sport)?.state;
}

function expires(sport: number): number | undefined {
  return lab.lb.connections().find((c) => c.client.port === sport)?.expiresMs;
}

beforeAll(async () => {
  lab = await packetLab();
});

afterAll(async () => {
  await lab?.destroy();
});

beforeEach(() => {
  lab.lb.dataplane.setClock(5000n * S);
  lab.lb.clear();
  lab.lb.expire();
  lab.lb.zero();
});

afterEach(() => {
  const { fromEntries, counters } = recount(lab.lb);
  expect(counters).toEqual(fromEntries);
});

describe.each([
  ['DR', dr, 'dr' as const],
  ['TUN', tun, 'tun' as const],
])('%s connection whose replies cross the balancer', (_name, key, method) => {
  beforeEach(() => {
    lab.lb.addService(key, { scheduler: 'rr' });
    lab.lb.addRealServer(key, { address: R1 }, { method });
  });

  it('runs the INPUT/OUTPUT tables to TIME_WAIT and counts both directions exactly', () => {
    const k = key;
    const sport = nextPort++;
    const sizes = { in: 0, out: 0 };
    const client = (flags: string, payload = '') => {
      const frame = buildFrame({ ip: { src: CLIENT, dst: VIP }, tcp: { sport, dport: k.port, flags }, payload });
      sizes.in += frame.length - 14;
      expect(['redirect', 'tx']).toContain(lab.run(frame).verdict);
    };
    const server = (flags: string, payload = '') => {
      const frame = replyFrame(k, sport, flags, payload);
      sizes.out += frame.length - 14;
      expect(lab.run(frame, 'reals').verdict).toBe('redirect');
    };
    const counts = () => {
      const r = listed(key).realServers[0]!;
      return [r.activeConns, r.inactiveConns];
    };

    client('S');
    expect(state(sport)).toBe('SYN_RECV');
    server('SA');
    expect(state(sport)).toBe('SYN_RECV');
    client('A');
    expect([state(sport), counts()]).toEqual(['ESTABLISHED', [1, 0]]);
    client('PA', 'GET /');
    server('PA', 'hello');
    expect(state(sport)).toBe('ESTABLISHED');
    client('FA'); // INPUT table: CLOSE_WAIT (INPUT_ONLY would say FIN_WAIT)
    expect([state(sport), expires(sport), counts()]).toEqual(['CLOSE_WAIT', 60_000, [0, 1]]);
    server('A');
    expect(state(sport)).toBe('CLOSE_WAIT');
    server('FA');
    expect([state(sport), expires(sport)]).toEqual(['TIME_WAIT', 120_000]);
    client('A');
    expect(state(sport)).toBe('TIME_WAIT');

    const svc = listed(key);
    const want = { conns: 1n, inpkts: 5n, outpkts: 4n, inbytes: BigInt(sizes.in), outbytes: BigInt(sizes.out) };
    expect(svc.stats).toMatchObject(want);
    expect(svc.realServers[0]!.stats).toMatchObject(want);
    expect(counts()).toEqual([0, 1]);
  });

  it('without replies crossing it, the connection stays on INPUT_ONLY (FIN_WAIT) and counts no output', () => {
    const k = key;
    const sport = nextPort++;
    for (const flags of ['S', 'A', 'FA', 'A']) fromClient(k, sport, flags);
    expect(state(sport)).toBe('FIN_WAIT');
    expect(listed(key).stats).toMatchObject({ inpkts: 4n, outpkts: 0n, outbytes: 0n });
  });
});

describe('the reply itself', () => {
  beforeEach(() => {
    lab.lb.addService(dr, { scheduler: 'rr' });
    lab.lb.addRealServer(dr, { address: R1 });
  });

  it('is routed to the client as the kernel would: MACs from the FIB, TTL - 1, nothing else changed', () => {
    const sport = nextPort++;
    fromClient(dr, sport, 'S');
    const frame = replyFrame(dr, sport, 'SA', 'payload', { ttl: 64, id: 4242, df: true });
    const { verdict, out } = lab.run(frame, 'reals');
    expect(verdict).toBe('redirect');
    const p = parseFrame(out);
    expect(p.dstMac).toBe(ADDR.clientMac);
    expect(p.srcMac).toBe(lab.clientsIf.mac);
    expect(p.ip).toMatchObject({ src: VIP, dst: CLIENT, ttl: 63, id: 4242 });
    expect(p.tcp).toMatchObject({ sport: 80, dport: sport, flags: 'SA', seq: 9000 });
    expect(verifyChecksums(out)).toEqual({ ipOk: true, l4Ok: true });
    expect(out.subarray(14 + 10, 14 + 12)).not.toEqual(frame.subarray(14 + 10, 14 + 12)); // the IPv4 checksum
    expect(out.subarray(14 + 20)).toEqual(frame.subarray(14 + 20)); // TCP header and payload untouched
    expect(lab.lb.reasons().fwd_redirect).toBeGreaterThan(0n);
  });

  it('IPv6: hop limit decremented, counted, OUTPUT state', () => {
    lab.lb.addService(dr6, { scheduler: 'rr' });
    lab.lb.addRealServer(dr6, { address: R1_6 });
    const sport = nextPort++;
    fromClient(dr6, sport, 'S');
    const frame = replyFrame(dr6, sport, 'SA', '', { ttl: 10 });
    const { verdict, out } = lab.run(frame, 'reals');
    expect(verdict).toBe('redirect');
    const p = parseFrame(out);
    expect(p.dstMac).toBe(NET.neighbours[CLIENT6]);
    expect(p.ip).toMatchObject({ src: VIP6, dst: CLIENT6, ttl: 9 });
    expect(verifyChecksums(out).l4Ok).toBe(true);
    fromClient(dr6, sport, 'A');
    fromClient(dr6, sport, 'FA');
    expect(state(sport)).toBe('CLOSE_WAIT');
    expect(listed(dr6).stats).toMatchObject({ inpkts: 3n, outpkts: 1n, outbytes: BigInt(frame.length - 14) });
  });

  it('UDP: counted as output and refreshes the connection\'s timeout', () => {
    lab.lb.addService(dns, { scheduler: 'rr' });
    lab.lb.addRealServer(dns, { address: R1 });
    lab.lb.setTimeouts({ udp: 30 });
    const sport = nextPort++;
    fromClient(dns, sport, '', 'query');
    lab.lb.dataplane.setClock(5020n * S);
    const frame = replyFrame(dns, sport, '', 'answer');
    expect(lab.run(frame, 'reals').verdict).toBe('redirect');
    expect(expires(sport)).toBe(30_000);
    lab.lb.dataplane.setClock(5040n * S);
    lab.lb.expire();
    expect(state(sport)).toBe('UDP');
    expect(listed(dns).stats).toMatchObject({ inpkts: 1n, outpkts: 1n, outbytes: BigInt(frame.length - 14) });
  });

  it('an ICMP error from the real server about the client\'s packet is counted as output (ip_vs_out_icmp) and routed on', () => {
    lab.lb.addService(dns, { scheduler: 'rr' });
    lab.lb.addRealServer(dns, { address: R1 });
    const sport = nextPort++;
    const request = buildFrame({ srcMac: ADDR.clientMac, ip: { src: CLIENT, dst: VIP }, udp: { sport, dport: 53 }, payload: 'query' });
    lab.run(request);
    const error = buildFrame({
      srcMac: NET.neighbours[R1], ip: { src: R1, dst: CLIENT, ttl: 64 }, icmp: { type: 3, code: 3 }, payload: request.subarray(14),
    });
    const { verdict, out } = lab.run(error, 'reals');
    expect(verdict).toBe('redirect');
    expect(parseFrame(out).ip).toMatchObject({ src: R1, dst: CLIENT, ttl: 63 });
    expect(verifyChecksums(out).ipOk).toBe(true);
    expect(out.subarray(14 + 20)).toEqual(error.subarray(14 + 20));
    expect(listed(dns).stats).toMatchObject({ inpkts: 1n, outpkts: 1n, outbytes: BigInt(error.length - 14) });
    expect(state(sport)).toBe('UDP');
  });

  it('a packet that is no reply of a live DR/TUN connection is passed untouched and counts nothing', () => {
    const nat: AddressKey = { protocol: 'tcp', address: VIP, port: 8080 };
    lab.lb.addService(nat, { scheduler: 'rr' });
    lab.lb.addRealServer(nat, { address: '10.1.0.21', port: 80 }, { method: 'nat' });
    const sport = nextPort++;
    fromClient(dr, sport, 'S');
    fromClient(nat, sport, 'S');
    lab.lb.zero();
    const cases = [
      replyFrame(dr, sport + 1, 'SA'), // no such client port
      replyFrame({ ...dr, port: 79 }, sport, 'SA'), // another port of the VIP
      replyFrame(nat, sport, 'SA'), // the NAT connection's tuple reversed: its replies come from the real
      buildFrame({ ip: { src: '10.0.0.99', dst: CLIENT }, tcp: { sport: 80, dport: sport, flags: 'SA' } }), // no VIP
    ];
    for (const frame of cases) {
      const { verdict, out } = lab.run(frame, 'reals');
      expect(verdict).toBe('pass');
      expect(out).toEqual(frame);
    }
    expect(lab.lb.reasons().pass_no_service).toBe(BigInt(cases.length));
    expect(state(sport)).toBe('SYN_RECV');
    for (const svc of lab.lb.list()) expect(svc.stats.outpkts).toBe(0n);
  });

  it('a reply of an expired connection is passed and counted nowhere', () => {
    lab.lb.setTimeouts({ tcp: 5 });
    const sport = nextPort++;
    fromClient(dr, sport, 'S');
    fromClient(dr, sport, 'A');
    lab.lb.dataplane.setClock(5010n * S);
    expect(reply(dr, sport, 'A').verdict).toBe('pass');
    expect(listed(dr).stats.outpkts).toBe(0n);
  });

  it('TTL 1: passed uncounted, the kernel answers time exceeded (ip_forward drops it before IPVS sees it)', () => {
    const sport = nextPort++;
    fromClient(dr, sport, 'S');
    const frame = replyFrame(dr, sport, 'SA', '', { ttl: 1 });
    const { verdict, out } = lab.run(frame, 'reals');
    expect([verdict, out]).toEqual(['pass', frame]);
    expect(lab.lb.reasons().pass_routed).toBe(1n);
    expect(listed(dr).stats.outpkts).toBe(0n);
    fromClient(dr, sport, 'A');
    fromClient(dr, sport, 'FA');
    expect(state(sport)).toBe('FIN_WAIT'); // still INPUT_ONLY
  });

  it('too big for the route: with DF passed uncounted (the kernel sends frag needed), without DF counted and passed (the kernel fragments)', async () => {
    const small = '10.2.0.77';
    await lab.ns.ip(['neigh', 'replace', small, 'lladdr', '02:00:00:00:02:77', 'dev', 'clients', 'nud', 'permanent']);
    await lab.ns.ip(['route', 'replace', `${small}/32`, 'dev', 'clients', 'mtu', 'lock', '600']); // locked: forwarding uses it
    try {
      const sport = nextPort++;
      lab.run(buildFrame({ ip: { src: small, dst: VIP }, tcp: { sport, dport: 80, flags: 'S' } }));
      const big = (df: boolean) => buildFrame({
        ip: { src: VIP, dst: small, df }, tcp: { sport: 80, dport: sport, flags: 'A' }, payload: 'x'.repeat(700),
      });
      expect(lab.run(big(true), 'reals').verdict).toBe('pass');
      expect(listed(dr).stats.outpkts).toBe(0n);
      expect(lab.run(big(false), 'reals').verdict).toBe('pass');
      expect(listed(dr).stats).toMatchObject({ outpkts: 1n, outbytes: BigInt(big(false).length - 14) });
      expect(lab.lb.reasons().pass_routed).toBe(2n);
    } finally {
      await lab.ns.ip(['route', 'del', `${small}/32`]);
      await lab.ns.ip(['neigh', 'del', small, 'dev', 'clients']);
    }
  });
});

describe('which packets are looked at', () => {
  const flags = () => L.config.decode(lab.lb.dataplane.map('config').lookup(u32(0))!).flags;
  const bit = (name: string) => lab.lb.dataplane.enumValue('xvs_config_flags', name);

  it('only while a service has a DR or TUN real server; any source while a firewall-mark service has one', () => {
    const nat: AddressKey = { protocol: 'tcp', address: VIP, port: 8080 };
    lab.lb.addService(nat, { scheduler: 'rr' });
    lab.lb.addRealServer(nat, { address: '10.1.0.21', port: 80 }, { method: 'nat' });
    expect(flags() & (bit('XVS_CFG_F_ROUTED') | bit('XVS_CFG_F_ROUTED_MARK'))).toBe(0);
    lab.lb.addService(dr, { scheduler: 'rr' });
    lab.lb.addRealServer(dr, { address: R1 });
    expect(flags() & bit('XVS_CFG_F_ROUTED')).not.toBe(0);
    lab.lb.editRealServer(dr, { address: R1 }, { method: 'nat' });
    expect(flags() & bit('XVS_CFG_F_ROUTED')).toBe(0);
    lab.lb.editRealServer(dr, { address: R1 }, { method: 'tun' });
    expect(flags() & bit('XVS_CFG_F_ROUTED')).not.toBe(0);
    lab.lb.deleteService(dr);
    expect(flags() & bit('XVS_CFG_F_ROUTED')).toBe(0);

    const fwm: ServiceKey = { fwmark: 7 };
    lab.lb.addMarkRule({ destination: '10.0.5.0/24', protocol: 'tcp', mark: 7 });
    try {
      lab.lb.addService(fwm, { scheduler: 'rr' });
      lab.lb.addRealServer(fwm, { address: R2 });
      expect(flags() & bit('XVS_CFG_F_ROUTED_MARK')).not.toBe(0);
      const sport = nextPort++;
      const vip = '10.0.5.9'; // in no vips entry: only the mark rule knows it
      lab.run(buildFrame({ ip: { src: CLIENT, dst: vip }, tcp: { sport, dport: 443, flags: 'S' } }));
      const frame = buildFrame({ ip: { src: vip, dst: CLIENT }, tcp: { sport: 443, dport: sport, flags: 'SA' } });
      expect(lab.run(frame, 'reals').verdict).toBe('redirect');
      expect(listed(fwm).stats).toMatchObject({ inpkts: 1n, outpkts: 1n });
      lab.lb.deleteService(fwm);
      expect(flags() & bit('XVS_CFG_F_ROUTED_MARK')).toBe(0);
    } finally {
      lab.lb.deleteMarkRule({ destination: '10.0.5.0/24', protocol: 'tcp', mark: 7 });
    }
  });
});
