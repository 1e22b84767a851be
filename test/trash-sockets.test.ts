// The destination trash with real sockets: a client holds TCP connections through xvs (native
// XDP); a real server deleted with -d keeps its connection listed and counted while its packets are
// dropped, and added back it carries on with that same connection, its counts and its counters, as
// kernel IPVS 6.1 does (checked in a user-mode Linux guest).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Balancer, type ServiceKey } from '../lib/balancer.js';
import { buildLab, VIP, type Lab } from '../lib/demo/lab.js';
import { Session } from '../lib/traffic.js';

let lab: Lab;
let lb: Balancer;

beforeAll(async () => {
  lab = await buildLab({ reals: 2 });
  lb = Balancer.open({ netns: lab.lb.name });
  for (const ifname of lab.lbInterfaces) lb.attach(ifname, { mode: 'native' });
});

afterAll(async () => {
  lb?.close();
  await lab?.destroy();
});

describe.each(['dr', 'nat'] as const)('%s', (method) => {
  it('a deleted real server keeps its held connection; added back, the connection goes on with its counts', async () => {
    const key: ServiceKey = { protocol: 'tcp', address: VIP, port: 80 };
    const [r1, r2] = lab.reals;
    const realOf = (address: string) => lb.list()[0]!.realServers.find((r) => r.address === address);
    lb.addService(key, { scheduler: 'rr' });
    lb.addRealServer(key, { address: r1!.address }, { method });
    lb.addRealServer(key, { address: r2!.address }, { method });
    const session = await Session.open(lab.topology, lab.client, { proto: 'tcp', host: VIP, port: 80, count: 2, timeoutMs: 1000 });
    try {
      expect([...session.names].sort()).toEqual(['r1', 'r2']);
      const before = realOf(r1!.address)!;
      expect(before).toMatchObject({ activeConns: 1, inactiveConns: 0 });

      lb.deleteRealServer(key, { address: r1!.address });
      expect(lb.connections().filter((c) => c.real.address === r1!.address).map((c) => c.state)).toEqual(['ESTABLISHED']);
      const held = await session.check();
      expect(held.map((h) => [h.name, h.echoOk])).toEqual(session.names.map((n) => [n, n === 'r2']));
      expect(lb.reasons().drop_dest_gone).toBeGreaterThan(0n);

      lb.addRealServer(key, { address: r1!.address }, { method });
      const back = realOf(r1!.address)!;
      expect(back).toMatchObject({ activeConns: 1, inactiveConns: 0 });
      expect(back.stats).toEqual(before.stats); // nothing counted while it was in the trash
      const again = await session.check();
      expect(again.every((h) => h.echoOk)).toBe(true);
      expect(realOf(r1!.address)!.stats.inpkts).toBeGreaterThan(before.stats.inpkts);
      expect(realOf(r1!.address)!.stats.conns).toBe(1n);
    } finally {
      await session.close();
      lb.setSysctls({ expire_nodest_conn: 1 }); // the next test starts without these connections
      lb.deleteService(key);
      lb.setSysctls({ expire_nodest_conn: 0 });
    }
  });
});
