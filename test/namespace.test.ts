// Real traffic: a client namespace opens TCP connections and sends UDP datagrams to the VIP; real
// servers in their own namespaces answer with their names; xvs runs as native XDP on the lb.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Balancer, type ServiceKey } from '../lib/balancer.js';
import { buildLab, VIP, type Lab } from '../lib/demo/lab.js';
import { runClient, Session } from '../lib/traffic.js';

let lab: Lab;
let lb: Balancer;

beforeAll(async () => {
  lab = await buildLab();
  lb = Balancer.open({ netns: lab.lb.name });
  for (const ifname of lab.lbInterfaces) lb.attach(ifname, { mode: 'native' });
});

afterAll(async () => {
  lb?.close();
  await lab?.destroy();
});

function service(key: ServiceKey, scheduler: string, method: 'dr' | 'nat', weights: number[], port?: number) {
  lb.addService(key, { scheduler });
  lab.reals.forEach((r, i) => lb.addRealServer(key, { address: r.address, port }, { method, weight: weights[i]! }));
  return () => lb.deleteService(key);
}

function answersOf(key: ServiceKey): Record<string, bigint> {
  const svc = lb.list().find((s) => 'port' in s.key && s.key.protocol === key.protocol && s.key.port === key.port)!;
  return Object.fromEntries(
    svc.realServers.map((r) => [lab.reals.find((h) => h.address === r.address)!.name, r.stats.conns]),
  );
}

describe.each(['dr', 'nat'] as const)('%s', (method) => {
  it('rr spreads TCP connections evenly, and every connection is answered', async () => {
    const key = { protocol: 'tcp' as const, address: VIP, port: 80 };
    const remove = service(key, 'rr', method, [1, 1, 1]);
    try {
      const result = await runClient(lab.client, { proto: 'tcp', host: VIP, port: 80, count: 30 });
      expect(result).toMatchObject({ failures: 0, answers: { r1: 10, r2: 10, r3: 10 } });
      expect(answersOf(key)).toEqual({ r1: 10n, r2: 10n, r3: 10n });
      const stats = lb.list()[0]!.stats;
      expect(stats.conns).toBe(30n);
      // The lab's real servers route through the lb: DR replies cross it and count too, as in IPVS.
      expect(stats.outpkts).toBeGreaterThan(0n);
    } finally {
      remove();
    }
  });

  it('wrr follows the weights 3:2:1', async () => {
    const key = { protocol: 'tcp' as const, address: VIP, port: 8080 };
    const remove = service(key, 'wrr', method, [3, 2, 1], method === 'nat' ? 80 : undefined);
    try {
      const result = await runClient(lab.client, { proto: 'tcp', host: VIP, port: 8080, count: 60, concurrency: 1 });
      expect(result).toMatchObject({ failures: 0, answers: { r1: 30, r2: 20, r3: 10 } });
    } finally {
      remove();
    }
  });

  it('UDP: one connection per source port, counters equal what was sent', async () => {
    const key = { protocol: 'udp' as const, address: VIP, port: 53 };
    const remove = service(key, 'rr', method, [1, 1, 1]);
    try {
      const result = await runClient(lab.client, { proto: 'udp', host: VIP, port: 53, count: 12 });
      expect(result).toMatchObject({ failures: 0, answers: { r1: 4, r2: 4, r3: 4 } });
      const stats = lb.list()[0]!.stats;
      expect(stats.conns).toBe(12n);
      expect(stats.inpkts).toBe(12n);
      expect(stats.outpkts).toBe(12n); // DR too: the lab's real servers route through the lb
    } finally {
      remove();
    }
  });

  it('established connections survive adding, reweighting and removing other real servers', async () => {
    const key = { protocol: 'tcp' as const, address: VIP, port: 80 };
    lb.addService(key, { scheduler: 'rr' });
    const [r1, r2, r3] = lab.reals;
    lb.addRealServer(key, { address: r1!.address }, { method });
    lb.addRealServer(key, { address: r2!.address }, { method });
    const session = await Session.open(lab.topology, lab.client, { proto: 'tcp', host: VIP, port: 80, count: 6 });
    try {
      expect(session.names.filter((n) => n === 'r1')).toHaveLength(3);
      expect(session.names.filter((n) => n === 'r2')).toHaveLength(3);
      lb.addRealServer(key, { address: r3!.address }, { method });
      lb.editRealServer(key, { address: r1!.address }, { weight: 5 });
      expect((await session.check()).every((h) => h.echoOk)).toBe(true);
      lb.deleteRealServer(key, { address: r3!.address });
      lb.editRealServer(key, { address: r2!.address }, { weight: 0 });
      const held = await session.check();
      expect(held.map((h) => [h.name, h.echoOk])).toEqual(session.names.map((n) => [n, true]));
      // weight 0 quiesces r2: new connections all go to r1
      const fresh = await runClient(lab.client, { proto: 'tcp', host: VIP, port: 80, count: 4 });
      expect(fresh).toMatchObject({ failures: 0, answers: { r1: 4 } });
    } finally {
      await session.close();
      lb.deleteService(key);
    }
  });
});
