// DR and TUN real servers whose replies route through the balancer, with real sockets: r1 (DR)
// and r2 (TUN, xvs's decapsulator) have the lb as default route, r3 (DR) answers the client over a
// link of its own. The expectations are what Linux 6.1's IPVS showed in a user-mode Linux guest
// for the same topology, the same ipvsadm services and the same traffic agent (lib/agents/
// traffic.mjs: one held TCP session per service, closed by the client, one UDP query):
//   -Lnc after close: TCP TIME_WAIT when the replies cross the director, FIN_WAIT when they do
//   not; --stats --exact (after 2.5 s):
//     TCP via the director   Conns 1  InPkts 5  OutPkts 4  InBytes 268  OutBytes 219
//     TCP direct             Conns 1  InPkts 5  OutPkts 0  InBytes 268  OutBytes 0
//     UDP via the director   Conns 1  InPkts 1  OutPkts 1  InBytes 32   OutBytes 31
//     UDP direct             Conns 1  InPkts 1  OutPkts 0  InBytes 32   OutBytes 0
//   and every real server ActiveConn 0, InActConn 1.
// (The kernel's director holds the VIP, so it needs accept_local=1 to forward replies from it;
// xvs's balancer does not hold it.) Whether the real server acknowledges the client's FIN with an
// ACK of its own before its FIN depends on timing (delayed ACK): 3 replies of 167 bytes on a fast
// machine, 4 of 219 in the slow guest; both are exact counts of what crossed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Balancer, type ServiceKey } from '../lib/balancer.js';
import { attachDecap, type DecapHandle } from '../lib/decap.js';
import { buildLab, CLIENT_ADDRESS, VIP, type Lab } from '../lib/demo/lab.js';
import { runClient, Session, startServer } from '../lib/traffic.js';
import { neighboursResolved } from './helpers/sockets.js';

let lab: Lab;
let lb: Balancer;
let decap: DecapHandle | undefined;

const tcp = (port: number): ServiceKey => ({ protocol: 'tcp', address: VIP, port });
const udp = (port: number): ServiceKey => ({ protocol: 'udp', address: VIP, port });
/** [service, real server index, method, replies cross the balancer] */
const SERVICES = [
  [tcp(80), 0, 'dr', true],
  [udp(53), 0, 'dr', true],
  [tcp(81), 1, 'tun', true],
  [udp(54), 1, 'tun', true],
  [tcp(82), 2, 'dr', false],
  [udp(55), 2, 'dr', false],
] as const;

const KERNEL_STATS = {
  tcp: { via: { conns: 1n, inpkts: 5n, outpkts: 4n, inbytes: 268n, outbytes: 219n },
    direct: { conns: 1n, inpkts: 5n, outpkts: 0n, inbytes: 268n, outbytes: 0n } },
  udp: { via: { conns: 1n, inpkts: 1n, outpkts: 1n, inbytes: 32n, outbytes: 31n },
    direct: { conns: 1n, inpkts: 1n, outpkts: 0n, inbytes: 32n, outbytes: 0n } },
};

beforeAll(async () => {
  lab = await buildLab({ reals: 3, prefix: 'xvsro' });
  const [r1, r2, r3] = lab.reals;
  await startServer(lab.topology, r2!.ns, { name: 'r2', tcp: [81], udp: [54] });
  await startServer(lab.topology, r3!.ns, { name: 'r3', tcp: [82], udp: [55] });
  await lab.topology.link(r3!.ns, lab.client, {
    a: { name: 'direct', ipv4: '10.9.0.2/24' },
    b: { name: 'direct', ipv4: '10.9.0.1/24' },
  });
  await r3!.ns.route(`${CLIENT_ADDRESS}/32`, { via: '10.9.0.1' });
  await lab.client.sysctl('net.ipv4.conf.all.rp_filter', 0);
  await lab.client.sysctl('net.ipv4.conf.direct.rp_filter', 0);
  lb = Balancer.open({ netns: lab.lb.name });
  for (const ifname of lab.lbInterfaces) lb.attach(ifname, { mode: 'native' });
  decap = attachDecap('eth0', { netns: r2!.ns.name });
  for (const [key, real, method] of SERVICES) {
    lb.addService(key, { scheduler: 'rr' });
    lb.addRealServer(key, { address: lab.reals[real]!.address }, { method });
  }
  await neighboursResolved(lab.lb, [r1!.address, r2!.address, r3!.address]);
});

afterAll(async () => {
  decap?.detach();
  lb?.close();
  await lab?.destroy();
});

function connectionOf(port: number) {
  return lb.connections().find((c) => c.virtual.port === port && !c.template);
}

async function until(what: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!what() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
}

describe('replies that cross the balancer, with real sockets, against the kernel\'s numbers', () => {
  it('TCP: ESTABLISHED while held; TIME_WAIT (via the lb) or FIN_WAIT (direct) after close', async () => {
    const sessions = await Promise.all(
      [80, 81, 82].map((port) => Session.open(lab.topology, lab.client, { proto: 'tcp', host: VIP, port, count: 1 })),
    );
    try {
      expect(sessions.map((s) => s.names)).toEqual([['r1'], ['r2'], ['r3']]);
      expect([80, 81, 82].map((p) => connectionOf(p)?.state)).toEqual(['ESTABLISHED', 'ESTABLISHED', 'ESTABLISHED']);
    } finally {
      await Promise.all(sessions.map((s) => s.close()));
    }
    await until(() => connectionOf(80)?.state === 'TIME_WAIT' && connectionOf(81)?.state === 'TIME_WAIT');
    expect([80, 81, 82].map((p) => connectionOf(p)?.state)).toEqual(['TIME_WAIT', 'TIME_WAIT', 'FIN_WAIT']);
    for (const port of [80, 81, 82]) expect(connectionOf(port)!.expiresMs).toBeGreaterThan(110_000);
  });

  it('UDP: one query each, answered', async () => {
    for (const [port, name] of [[53, 'r1'], [54, 'r2'], [55, 'r3']] as const) {
      const result = await runClient(lab.client, { proto: 'udp', host: VIP, port, count: 1 });
      expect(result).toMatchObject({ failures: 0, answers: { [name]: 1 } });
      expect(connectionOf(port)?.state).toBe('UDP');
    }
  });

  it('--stats --exact and the connection counts equal the kernel\'s', () => {
    const listing = lb.list();
    for (const [key, , , via] of SERVICES) {
      const svc = listing.find((s) => JSON.stringify(s.key) === JSON.stringify(key))!;
      let want = KERNEL_STATS[key.protocol][via ? 'via' : 'direct'];
      if (key.protocol === 'tcp' && via && svc.stats.outpkts === 3n) want = { ...want, outpkts: 3n, outbytes: 167n };
      expect({ key, stats: svc.stats }).toEqual({ key, stats: want });
      expect(svc.realServers[0]!.stats).toEqual(want);
      expect([svc.realServers[0]!.activeConns, svc.realServers[0]!.inactiveConns]).toEqual([0, 1]);
    }
  });
});
