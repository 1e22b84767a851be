// Every scheduler against its reference model: the same random packet sequences (SYN, data, FIN,
// RST, reused ports, UDP datagrams), time passing and expiring connections, weight and threshold
// changes, real servers added and removed; after every step the same real server and the same
// ActiveConn/InActConn/PersistConn. BPF_PROG_TEST_RUN on one CPU, the dataplane's clock frozen.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Differential, prng, randomTraffic, REAL_POOL, type DifferentialSpec, type TrafficMix } from './helpers/differential.js';
import { packetLab, type PacketLab } from './helpers/lb.js';

const VIP = '10.0.0.100';
const MARK_VIPS = Array.from({ length: 12 }, (_, i) => `10.0.0.${10 + i}`);

let lab: PacketLab;

beforeAll(async () => {
  lab = await packetLab({ reals: REAL_POOL, maxConnections: 8192 });
});

afterAll(async () => {
  await lab?.destroy();
});

interface Case {
  name: string;
  spec: DifferentialSpec;
  mix: Omit<TrafficMix, 'steps'>;
  reals?: { weight: number; upper?: number; lower?: number }[];
}

const THREE = [{ weight: 3 }, { weight: 2, upper: 4, lower: 2 }, { weight: 1 }];
const tcpService = (scheduler: string, extra: Partial<DifferentialSpec> = {}): DifferentialSpec => ({
  scheduler, protocol: 'tcp', address: VIP, port: 80, ...extra,
});
const markService = (scheduler: string, extra: Partial<DifferentialSpec> = {}): DifferentialSpec => ({
  scheduler, protocol: 'tcp', fwmark: 7, ...extra,
});
const tcpMix = { vips: [VIP], ports: [80], changes: true };
/** Weights up to INT_MAX, as ipvsadm and the kernel take them; their sum passes 2^32. */
const HUGE = [{ weight: 2147483647 }, { weight: 2147483646 }, { weight: 1 }, { weight: 2147483645 }];
/** ... with thresholds, so that servers are overloaded (wrr then skips rounds by the billion). */
const HUGE_THRESHOLDS = [
  { weight: 2147483647, upper: 3, lower: 1 }, { weight: 2147483646, upper: 2 }, { weight: 1 }, { weight: 2147483645, upper: 4, lower: 2 },
];
/** wrr's period (sum of weight/gcd) stays short when the weights share a large divisor: a table. */
const HUGE_WRR = [{ weight: 2147483646 }, { weight: 1073741823 }, { weight: 0 }, { weight: 1073741823 }];
const hugeMix = (changes: boolean) => ({ vips: [VIP], ports: [80], changes });

const cases: Case[] = [
  ...['rr', 'wrr', 'lc', 'wlc', 'sed', 'nq', 'fo', 'ovf', 'twos'].map((s) => ({ name: `${s} tcp`, spec: tcpService(s), mix: tcpMix })),
  ...['rr', 'wlc', 'twos'].map((s) => ({
    name: `${s} udp`, spec: { scheduler: s, protocol: 'udp' as const, address: VIP, port: 53 }, mix: { vips: [VIP], ports: [53], changes: true },
  })),
  ...['dh', 'lblc', 'lblcr'].map((s) => ({ name: `${s} on a firewall mark`, spec: markService(s), mix: { vips: MARK_VIPS, ports: [80], changes: true } })),
  ...[0, 1, 2, 3].flatMap((flags) => ['sh', 'mh'].map((s) => ({
    name: `${s} flags ${flags}`, spec: tcpService(s, { flags }), mix: tcpMix,
  }))),
  ...['rr', 'lc', 'wlc', 'sed', 'nq', 'fo', 'ovf', 'twos', 'sh', 'mh'].map((s) => ({
    name: `${s} weights near 2^31`, spec: tcpService(s), mix: hugeMix(false), reals: HUGE,
  })),
  ...['dh', 'lblc', 'lblcr'].map((s) => ({
    name: `${s} weights near 2^31`, spec: markService(s), mix: { vips: MARK_VIPS, ports: [80], changes: false }, reals: HUGE,
  })),
  { name: 'wrr stepped (period of billions)', spec: tcpService('wrr'), mix: hugeMix(false), reals: HUGE },
  { name: 'wrr stepped, servers overloaded', spec: tcpService('wrr'), mix: hugeMix(false), reals: HUGE_THRESHOLDS },
  ...['wlc', 'twos', 'lblcr', 'wrr'].map((s) => ({
    name: `${s} weights near 2^31, then changed`, spec: s === 'lblcr' ? markService(s) : tcpService(s),
    mix: s === 'lblcr' ? { vips: MARK_VIPS, ports: [80], changes: true } : hugeMix(true), reals: HUGE,
  })),
  { name: 'wrr weights near 2^31', spec: tcpService('wrr'), mix: hugeMix(false), reals: HUGE_WRR },
  { name: 'wlc nat', spec: tcpService('wlc', { method: 'nat' }), mix: tcpMix },
  { name: 'wlc persistent /24', spec: tcpService('wlc', { persistent: 50, netmask: '255.255.255.0' }), mix: { ...tcpMix, maxAdvance: 80 } },
  { name: 'rr persistent port 0', spec: tcpService('rr', { port: 0, persistent: 30 }), mix: { vips: [VIP], ports: [80, 443, 8443], changes: true, maxAdvance: 70 } },
  { name: 'lc persistent firewall mark', spec: markService('lc', { persistent: 40 }), mix: { vips: MARK_VIPS, ports: [80, 25], changes: true, maxAdvance: 70 } },
  { name: 'sh persistent nat', spec: tcpService('sh', { persistent: 20, method: 'nat' }), mix: { ...tcpMix, maxAdvance: 60 } },
  {
    name: 'wrr one-packet udp', spec: { scheduler: 'wrr', protocol: 'udp', address: VIP, port: 53, onePacket: true },
    mix: { vips: [VIP], ports: [53], changes: true },
  },
  {
    name: 'wlc one-packet persistent udp', spec: { scheduler: 'wlc', protocol: 'udp', address: VIP, port: 53, onePacket: true, persistent: 25 },
    mix: { vips: [VIP], ports: [53], changes: true, maxAdvance: 60 },
  },
];

describe('differential: dataplane vs reference model', () => {
  it('lblcr drops the most loaded member of a set unchanged for a day', () => {
    const d = new Differential(lab, markService('lblcr'));
    const [a, b] = d.freeAddresses();
    d.addReal(a!, { weight: 1 });
    d.addReal(b!, { weight: 1 });
    const conn = (sport: number, flags: string) => d.send({ protocol: 'tcp', saddr: '10.2.1.1', sport, daddr: MARK_VIPS[0]!, dport: 80, flags });
    for (const sport of [1, 2, 3]) {
      conn(sport, 'S');
      conn(sport, 'A');
    }
    // The third connection found the set's only member "overloaded" (2 active > weight 1 while the
    // other server is idle): the set now has two members. Idle use for a day, then one more.
    for (let hour = 0; hour < 27; hour += 3) {
      d.advance(3 * 3600);
      conn(100 + hour, 'S');
    }
    d.advance(60);
    // Both idle: a set that kept its first member would choose it; the pruned one has only the other.
    expect(conn(999, 'S')).toBe(b);
  });

  it.each(['lblc', 'lblcr'])('%s over days: idle entries expire at the full check, old sets shrink', (scheduler) => {
    const d = new Differential(lab, markService(scheduler));
    const addresses = d.freeAddresses();
    [{ weight: 1 }, { weight: 4 }, { weight: 2 }].forEach((o, i) => d.addReal(addresses[i]!, o));
    const rand = prng(scheduler.length);
    const mix = { vips: MARK_VIPS.slice(0, 4), ports: [80], maxAdvance: 3 * 3600 };
    randomTraffic(d, rand, { steps: 250, ...mix });
    d.advance(25 * 3600 + 1800);
    expect(d.swept.locality).toBeGreaterThan(0);
    randomTraffic(d, rand, { steps: 250, ...mix });
  });

  it('re-arms templates that still control connections, as ip_vs_conn_expire does', () => {
    const d = new Differential(lab, tcpService('wlc', { persistent: 20 }));
    d.addReal(d.freeAddresses()[0]!);
    const client = { protocol: 'tcp' as const, saddr: '10.2.1.1', daddr: VIP, dport: 80 };
    d.send({ ...client, sport: 4000, flags: 'S' });
    d.send({ ...client, sport: 4000, flags: 'A' });
    for (let t = 0; t < 6; t++) {
      d.advance(15);
      d.send({ ...client, sport: 4000, flags: 'PA' });
    }
    expect(d.swept.templatesRearmed).toBeGreaterThan(0n);
    d.advance(200);
    expect(d.swept.templatesEnded).toBe(1n);
  });

  it('wrr with weights 2147483647, 2147483646, 1 chooses as Linux 6.1 did (no table: stepped)', () => {
    const d = new Differential(lab, tcpService('wrr'));
    const [a, b, c] = d.freeAddresses();
    d.addReal(a!, { weight: 2147483647 });
    d.addReal(b!, { weight: 2147483646 });
    d.addReal(c!, { weight: 1 });
    const chosen = Array.from({ length: 12 }, (_, i) => d.send({ protocol: 'tcp', saddr: '10.2.1.1', sport: 2000 + i, daddr: VIP, dport: 80, flags: 'S' }));
    // Recorded in the UML guest: ipvsadm -a in this order, 12 SYNs, the destinations in /proc/net/ip_vs_conn.
    expect(chosen).toEqual([c, b, a, a, b, a, b, a, b, a, b, a]);
  });

  it.each(cases)('$name', ({ spec, mix, reals }) => {
    const rand = prng(spec.scheduler.length * 7919 + (spec.flags ?? 0) * 31 + (spec.persistent ?? 0));
    const d = new Differential(lab, spec);
    const addresses = d.freeAddresses();
    (reals ?? THREE).forEach((o, i) => d.addReal(addresses[i]!, o));
    randomTraffic(d, rand, { steps: 300, ...mix });
    // The run must have made the sweeper end connections (and templates, when persistent).
    if (!spec.onePacket) expect(d.swept.conns).toBeGreaterThan(0n);
    if (spec.persistent) expect(d.swept.templatesEnded).toBeGreaterThan(0n);
  });
});
