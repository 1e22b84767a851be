// Errors from the path towards the client, with real sockets: a router's "fragmentation needed"
// for a real server's reply reaches the balancer (it is addressed to the VIP) and must go on to the
// connection's real server, as ip_vs_in_icmp() sends it; otherwise the connection stalls.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Balancer } from '../lib/balancer.js';
import { attachDecap, type DecapHandle } from '../lib/decap.js';
import { buildPathLab, PATH_MTU, PATH_VIP, type PathLab } from './helpers/pathlab.js';
import { bulkEcho, neighboursResolved } from './helpers/sockets.js';

let lab: PathLab;
let lb: Balancer;
let decap: DecapHandle;

beforeAll(async () => {
  lab = await buildPathLab();
  lb = Balancer.open({ netns: lab.lb.name });
  for (const ifname of lab.lbInterfaces) lb.attach(ifname);
  decap = attachDecap('eth0', { netns: lab.real.name });
});

afterAll(async () => {
  decap?.detach();
  lb?.close();
  await lab?.destroy();
});

beforeEach(async () => {
  lb.clear();
  lb.zero();
  await lab.real.ip(['route', 'flush', 'cache']);
});

/** The path MTU the real server has learnt towards the client, if any. */
async function learntMtu(): Promise<number | undefined> {
  const { stdout } = await lab.real.ip(['route', 'get', '10.0.0.1', 'from', PATH_VIP]);
  const match = / mtu (\d+)/.exec(stdout);
  return match ? Number(match[1]) : undefined;
}

describe('a router towards the client with a smaller MTU', () => {
  it.each(['dr', 'nat', 'tun'] as const)('%s: its ICMP reaches the real server, which sends smaller segments', async (method) => {
    const key = { protocol: 'tcp' as const, address: PATH_VIP, port: 80 };
    lb.addService(key, { scheduler: 'rr' });
    lb.addRealServer(key, { address: lab.realAddress, port: method === 'nat' ? 8080 : 80 }, { method });
    await neighboursResolved(lab.lb, [lab.realAddress]);
    expect(await learntMtu()).toBeUndefined();
    const result = await bulkEcho(lab.client, PATH_VIP, 80, 100_000);
    expect(result).toMatchObject({ name: 'r1', echoed: 100_000 });
    expect(await learntMtu()).toBe(PATH_MTU);
  });
});
