// xvs's firewall-mark classifier feeding firewall-mark services (ipvsadm -f): the longest matching
// prefix first, its rules in the order they were added, shorter prefixes when none matches; a
// mark without a service, or no mark, falls back to ⟨protocol, address, port⟩ services.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { MarkRule } from '../lib/balancer.js';
import { NET, packetLab, type PacketLab } from './helpers/lb.js';
import { buildFrame, parseFrame } from './helpers/packet.js';

const R1 = '10.1.0.11';
const R2 = '10.1.0.12';
const R3 = '10.1.0.13';
// IPv4 neighbours only: the IPv6 real servers share their MACs.
const REAL_BY_MAC = new Map(Object.entries(NET.neighbours).filter(([a]) => !a.includes(':')).map(([a, m]) => [m, a]));

let lab: PacketLab;
let sport = 30000;

function realFor(dst: string, dport: number, protocol: 'tcp' | 'udp' = 'tcp'): string {
  const frame = buildFrame({
    ip: { src: '10.2.0.5', dst },
    ...(protocol === 'tcp' ? { tcp: { sport: sport++, dport, flags: 'S' } } : { udp: { sport: sport++, dport } }),
  });
  const { verdict, out } = lab.run(frame);
  return verdict === 'redirect' ? REAL_BY_MAC.get(parseFrame(out).dstMac)! : verdict;
}

/** One firewall-mark service per mark, each with its own real server. */
function markServices(byMark: Record<number, string>): void {
  for (const [mark, real] of Object.entries(byMark)) {
    lab.lb.addService({ fwmark: Number(mark) }, { scheduler: 'rr' });
    lab.lb.addRealServer({ fwmark: Number(mark) }, { address: real });
  }
}

function rules(...list: MarkRule[]): void {
  for (const r of list) lab.lb.addMarkRule(r);
}

beforeAll(async () => {
  lab = await packetLab();
});

afterAll(async () => {
  await lab?.destroy();
});

beforeEach(() => {
  lab.lb.clear();
  for (const r of lab.lb.markRules()) lab.lb.deleteMarkRule(r);
});

describe('mark classifier', () => {
  it('lets the longest matching prefix decide', () => {
    markServices({ 1: R1, 2: R2 });
    rules({ destination: '10.0.0.0/16', mark: 1 }, { destination: '10.0.7.0/24', mark: 2 });
    expect(realFor('10.0.3.1', 80)).toBe(R1);
    expect(realFor('10.0.7.1', 80)).toBe(R2);
  });

  it('tries the rules of one prefix in the order they were added, by protocol and port range', () => {
    markServices({ 1: R1, 2: R2, 3: R3 });
    rules(
      { destination: '10.0.0.0/24', protocol: 'tcp', ports: [80, 89], mark: 1 },
      { destination: '10.0.0.0/24', protocol: 'udp', mark: 2 },
      { destination: '10.0.0.0/24', mark: 3 },
    );
    expect(realFor('10.0.0.9', 85)).toBe(R1);
    expect(realFor('10.0.0.9', 85, 'udp')).toBe(R2);
    expect(realFor('10.0.0.9', 90)).toBe(R3);
  });

  it('falls back to a shorter prefix when no rule of the longest one matches', () => {
    markServices({ 1: R1, 2: R2 });
    rules({ destination: '10.0.0.0/8', mark: 1 }, { destination: '10.0.0.0/24', ports: 443, mark: 2 });
    expect(realFor('10.0.0.9', 443)).toBe(R2);
    expect(realFor('10.0.0.9', 80)).toBe(R1);
  });

  it('puts firewall-mark services before address services, and falls back to them without a mark service', () => {
    const web = { protocol: 'tcp' as const, address: '10.0.0.100', port: 80 };
    lab.lb.addService(web, { scheduler: 'rr' });
    lab.lb.addRealServer(web, { address: R3 });
    markServices({ 1: R1 });
    rules({ destination: '10.0.0.100/32', ports: 80, mark: 1 }, { destination: '10.0.0.0/24', ports: 81, mark: 5 });
    expect(realFor('10.0.0.100', 80)).toBe(R1);
    lab.lb.deleteMarkRule({ destination: '10.0.0.100', ports: 80, mark: 1 });
    expect(realFor('10.0.0.100', 80)).toBe(R3);
    expect(realFor('10.0.0.100', 81)).toBe('pass'); // mark 5 has no service, nor has port 81
  });

  it('lists rules and refuses duplicates, unknown rules and bad prefixes; takes IPv6 prefixes', () => {
    rules({ destination: '10.0.0.1', protocol: 'tcp', ports: 80, mark: 4 });
    expect(lab.lb.markRules()).toEqual([{ destination: '10.0.0.1/32', protocol: 'tcp', ports: [80, 80], mark: 4 }]);
    expect(() => lab.lb.addMarkRule({ destination: '10.0.0.1/32', protocol: 'tcp', ports: [80, 80], mark: 4 })).toThrow('Mark rule already exists');
    expect(() => lab.lb.deleteMarkRule({ destination: '10.0.0.1', mark: 4 })).toThrow('No such mark rule');
    lab.lb.addMarkRule({ destination: 'fd00::1:0/112', protocol: 'udp', mark: 6 });
    expect(lab.lb.markRules()[1]).toEqual({ destination: 'fd00::1:0/112', protocol: 'udp', ports: [0, 65535], mark: 6 });
    expect(() => lab.lb.addMarkRule({ destination: 'fd00::/129', mark: 4 })).toThrow('illegal prefix length');
    expect(() => lab.lb.addMarkRule({ destination: '10.0.0.0/33', mark: 4 })).toThrow('illegal prefix length');
    expect(() => lab.lb.addMarkRule({ destination: '10.0.0.0/8', ports: [90, 80], mark: 4 })).toThrow('illegal port range');
    expect(lab.lb.markRules()).toHaveLength(2);
    lab.lb.deleteMarkRule({ destination: 'fd00::1:0/112', protocol: 'udp', mark: 6 });
  });
});

describe('IPv6 firewall-mark services', () => {
  it('classifies IPv6 destinations and keeps a /64 of clients on one server through one template', () => {
    const key = { fwmark: 66, family: 'inet6' as const };
    lab.lb.addMarkRule({ destination: 'fd00:100::/64', protocol: 'tcp', mark: 66 });
    lab.lb.addService(key, { scheduler: 'rr', persistent: 60, netmask: '64' });
    for (const r of ['fd00:1::11', 'fd00:1::12', 'fd00:1::21']) lab.lb.addRealServer(key, { address: r });
    const v6mac = new Map(Object.entries(NET.neighbours).filter(([a]) => a.includes(':')).map(([a, m]) => [m, a]));
    const send = (src: string, dst: string, dport: number) => {
      const { verdict, out } = lab.run(buildFrame({ ip: { src, dst }, tcp: { sport: sport++, dport, flags: 'S' } }));
      return verdict === 'redirect' ? v6mac.get(parseFrame(out).dstMac)! : verdict;
    };
    try {
      const first = send('fd00:2::5', 'fd00:100::1', 80);
      expect(first).toMatch(/^fd00:1::(11|12|21)$/);
      // Same /64 of clients, other virtual address and port of the mark: the same template.
      expect(send('fd00:2::77', 'fd00:100::2', 443)).toBe(first);
      expect(send('fd00:2::5', 'fd00:100::3', 8080)).toBe(first);
      const other = send('fd00:3::5', 'fd00:100::1', 80);
      expect(other).not.toBe(first);
      const templates = lab.lb.connections().filter((c) => c.template);
      expect(templates.map((t) => t.client.address).sort()).toEqual(['fd00:2::', 'fd00:3::']);
      expect(lab.lb.list()[0]!.realServers.find((r) => r.address === first)).toMatchObject({ activeConns: 0, inactiveConns: 3, persistConns: 1 });
    } finally {
      lab.lb.deleteService(key);
      lab.lb.deleteMarkRule({ destination: 'fd00:100::/64', protocol: 'tcp', mark: 66 });
    }
  });
});
