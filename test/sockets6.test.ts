// TUN, IPv6 DR/NAT and ICMP with real sockets: a client, the balancer and two real servers in
// network namespaces (lib/demo/lab.ts, dual-stack), the real servers decapsulating with xvs's own
// program (the kernel here has no ipip module).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Balancer, type ServiceKey } from '../lib/balancer.js';
import { attachDecap, type DecapHandle } from '../lib/decap.js';
import { buildLab, VIP, VIP6, type Lab } from '../lib/demo/lab.js';
import { runClient } from '../lib/traffic.js';
import { addService, type RealSpec } from './helpers/lb.js';
import { bulkEcho, neighboursResolved, ping, udpQuery } from './helpers/sockets.js';

let lab: Lab;
let lb: Balancer;
let decaps: DecapHandle[] = [];
let nextPort = 1000;

beforeAll(async () => {
  lab = await buildLab({ reals: 2, ipv6: true, prefix: 'xvs5' });
  lb = Balancer.open({ netns: lab.lb.name });
  for (const ifname of lab.lbInterfaces) lb.attach(ifname);
  decaps = lab.reals.map((r) => attachDecap('eth0', { netns: r.ns.name }));
});

afterAll(async () => {
  for (const d of decaps) d.detach();
  lb?.close();
  await lab?.destroy();
});

beforeEach(() => {
  lb.clear();
});

/** A service on a fresh port of the address, whose reals are given as [address, method, port?]. */
async function service(protocol: 'tcp' | 'udp', address: string, reals: RealSpec[], port?: number): Promise<ServiceKey> {
  const key = addService(lb, { protocol, address, port: port ?? nextPort++ }, reals);
  await neighboursResolved(lab.lb, reals.map(([real]) => real));
  return key;
}

const [r1, r2] = [0, 1];
const v4 = (i: number) => lab.reals[i]!.address;
const v6 = (i: number) => lab.reals[i]!.address6!;

async function answers(key: ServiceKey, count = 10): Promise<Record<string, number>> {
  const result = await runClient(lab.client, { proto: key.protocol, host: key.address, port: key.port, count });
  expect(result.errors).toEqual([]);
  expect(result.failures).toBe(0);
  return result.answers;
}

describe('TUN with the decapsulation program on the real servers', () => {
  it('IPv4 in IPv4: TCP and UDP connections reach both real servers', async () => {
    const before = decaps.map((d) => d.stats().ok!);
    expect(await answers(await service('tcp', VIP, [[v4(r1), 'tun'], [v4(r2), 'tun']], 80))).toEqual({ r1: 5, r2: 5 });
    expect(await answers(await service('udp', VIP, [[v4(r1), 'tun'], [v4(r2), 'tun']], 53))).toEqual({ r1: 5, r2: 5 });
    decaps.forEach((d, i) => expect(d.stats().ok).toBeGreaterThan(before[i]!));
  });

  it('IPv6 in IPv6', async () => {
    expect(await answers(await service('tcp', VIP6, [[v6(r1), 'tun'], [v6(r2), 'tun']], 80))).toEqual({ r1: 5, r2: 5 });
    expect(await answers(await service('udp', VIP6, [[v6(r1), 'tun'], [v6(r2), 'tun']], 53))).toEqual({ r1: 5, r2: 5 });
  });

  it('across families: an IPv4 service on IPv6 tunnels and an IPv6 service on IPv4 tunnels', async () => {
    expect(await answers(await service('tcp', VIP, [[v6(r1), 'tun'], [v4(r2), 'tun']], 80))).toEqual({ r1: 5, r2: 5 });
    expect(await answers(await service('tcp', VIP6, [[v4(r1), 'tun'], [v6(r2), 'tun']], 80))).toEqual({ r1: 5, r2: 5 });
  });

  it('with a tunnel source prefix, and the real servers accepting only it', async () => {
    const reattach = (sources?: string[]) => {
      decaps.forEach((d) => d.detach());
      decaps = lab.reals.map((r) => attachDecap('eth0', { netns: r.ns.name, sources }));
    };
    reattach(['10.255.0.0/24', 'fd00:ff::/112']);
    lb.setTunnelSource({ inet: '10.255.0.0/24', inet6: 'fd00:ff::/112' });
    try {
      expect(await answers(await service('tcp', VIP, [[v4(r1), 'tun'], [v6(r2), 'tun']], 80))).toEqual({ r1: 5, r2: 5 });
      lb.setTunnelSource({});
      const refused = await runClient(lab.client, { proto: 'tcp', host: VIP, port: 80, count: 2, timeoutMs: 500 });
      expect(refused.failures).toBe(2);
      expect(decaps.reduce((n, d) => n + d.stats().drop_source!, 0n)).toBeGreaterThan(0n);
    } finally {
      lb.setTunnelSource({});
      reattach();
    }
  });

  it('a bulk upload through the tunnel survives: the client learns the tunnel MTU (IPv4 and IPv6)', async () => {
    for (const [vip, real] of [[VIP, v4(r1)], [VIP6, v6(r2)]] as const) {
      const key = await service('tcp', vip, [[real, 'tun']], 80);
      const result = await bulkEcho(lab.client, key.address, key.port, 200_000);
      expect(result, vip).toMatchObject({ echoed: 200_000 });
    }
    expect(lb.reasons().icmp_too_big).toBeGreaterThan(0n);
  });
});

describe('IPv6 DR and NAT', () => {
  it('DR: TCP and UDP', async () => {
    expect(await answers(await service('tcp', VIP6, [[v6(r1), 'dr'], [v6(r2), 'dr']], 80))).toEqual({ r1: 5, r2: 5 });
    expect(await answers(await service('udp', VIP6, [[v6(r1), 'dr'], [v6(r2), 'dr']], 53))).toEqual({ r1: 5, r2: 5 });
  });

  it('NAT: TCP with port mapping and UDP', async () => {
    expect(await answers(await service('tcp', VIP6, [[v6(r1), 'nat', 80], [v6(r2), 'nat', 80]]))).toEqual({ r1: 5, r2: 5 });
    expect(await answers(await service('udp', VIP6, [[v6(r1), 'nat', 53], [v6(r2), 'nat', 53]]))).toEqual({ r1: 5, r2: 5 });
  });
});

describe('ICMP', () => {
  it('a NAT real server\'s port unreachable reaches the client\'s socket as a refusal (IPv4 and IPv6)', async () => {
    for (const [vip, real] of [[VIP, v4(r1)], [VIP6, v6(r1)]] as const) {
      const key = await service('udp', vip, [[real, 'nat', 5999]]);
      expect(await udpQuery(lab.client, key.address, key.port), vip).toEqual({ error: 'ECONNREFUSED' });
    }
  });

  it('an echo request to a virtual address is answered by the balancer', async () => {
    await service('tcp', VIP, [[v4(r1), 'dr']], 80);
    await service('tcp', VIP6, [[v6(r1), 'dr']], 80);
    expect(await ping(lab.client, VIP)).toBe(VIP);
    expect(await ping(lab.client, VIP6)).toBe(VIP6);
    expect(lb.reasons().icmp_echo_reply).toBeGreaterThanOrEqual(2n);
  });
});
