// GUE and GRE tunnels with real sockets: a client, the balancer and two real servers in network
// namespaces (lib/demo/lab.ts, dual-stack), the real servers decapsulating with xvs's program
// (GUE on its configured ports, GRE always), every checksum flag, IPv4 and IPv6 tunnels.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Balancer, type RealServerOptions, type ServiceKey } from '../lib/balancer.js';
import { attachDecap, type DecapHandle } from '../lib/decap.js';
import { buildLab, VIP, VIP6, type Lab } from '../lib/demo/lab.js';
import { runClient } from '../lib/traffic.js';
import { bulkEcho, neighboursResolved } from './helpers/sockets.js';

let lab: Lab;
let lb: Balancer;
let decaps: DecapHandle[] = [];
const GUE_PORTS = [6080, 6081, 6082];

beforeAll(async () => {
  lab = await buildLab({ reals: 2, ipv6: true, prefix: 'xvgg' });
  lb = Balancer.open({ netns: lab.lb.name });
  for (const ifname of lab.lbInterfaces) lb.attach(ifname);
  decaps = lab.reals.map((r) => attachDecap('eth0', { netns: r.ns.name, guePorts: GUE_PORTS }));
});

afterAll(async () => {
  for (const d of decaps) d.detach();
  lb?.close();
  await lab?.destroy();
});

beforeEach(() => {
  lb.clear();
});

const TUNNELS: [string, RealServerOptions][] = [
  ['gue', { tunType: 'gue', tunPort: 6080 }],
  ['gue csum', { tunType: 'gue', tunPort: 6081, tunChecksum: 'csum' }],
  ['gue remcsum', { tunType: 'gue', tunPort: 6082, tunChecksum: 'remcsum' }],
  ['gre', { tunType: 'gre' }],
  ['gre csum', { tunType: 'gre', tunChecksum: 'csum' }],
];

/** A service whose two real servers take tunnel `t`, r1 over IPv4 and r2 over IPv6. */
type Key = Extract<ServiceKey, { address: string }>;

async function service(protocol: 'tcp' | 'udp', address: string, port: number, t: RealServerOptions): Promise<Key> {
  const key: Key = { protocol, address, port };
  lb.addService(key, { scheduler: 'rr' });
  const reals = [lab.reals[0]!.address, lab.reals[1]!.address6!];
  for (const real of reals) lb.addRealServer(key, { address: real }, { method: 'tun', ...t });
  await neighboursResolved(lab.lb, reals);
  return key;
}

async function answers(key: Key, count = 10): Promise<Record<string, number>> {
  const result = await runClient(lab.client, { proto: key.protocol, host: key.address, port: key.port, count });
  expect(result.errors).toEqual([]);
  expect(result.failures).toBe(0);
  return result.answers;
}

describe('GUE and GRE to real servers decapsulating with xvs', () => {
  it.each(TUNNELS)('%s: TCP and UDP, IPv4 and IPv6 services, over IPv4 and IPv6 tunnels', async (_name, t) => {
    const before = decaps.map((d) => d.stats().ok!);
    for (const vip of [VIP, VIP6]) {
      expect(await answers(await service('tcp', vip, 80, t)), vip).toEqual({ r1: 5, r2: 5 });
      expect(await answers(await service('udp', vip, 53, t)), vip).toEqual({ r1: 5, r2: 5 });
      lb.clear();
    }
    decaps.forEach((d, i) => expect(d.stats().ok).toBeGreaterThan(before[i]!));
    expect(decaps.reduce((n, d) => n + d.stats().drop_csum!, 0n)).toBe(0n);
  });

  it('bulk uploads survive the larger overhead: the client learns the tunnel MTU', async () => {
    for (const [name, t] of [TUNNELS[2]!, TUNNELS[4]!]) {
      for (const vip of [VIP, VIP6]) {
        const key = await service('tcp', vip, 80, t);
        const result = await bulkEcho(lab.client, key.address, key.port, 200_000);
        expect(result, `${name} ${vip}`).toMatchObject({ echoed: 200_000 });
        lb.clear();
      }
    }
    expect(lb.reasons().icmp_too_big).toBeGreaterThan(0n);
  });
});
