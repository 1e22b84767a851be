// Distribution through network namespaces with real sockets (the demo's topology: client — lb —
// r1..r3, DR): wlc places held TCP connections and UDP flows by weight exactly as its model says,
// sh sends a client to the bucket of its address (spreads it by port with sh-port), and a
// persistent service keeps a client on one server through its template. What the clients saw
// must match the dataplane's own counters.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Balancer, type ServiceKey } from '../lib/balancer.js';
import { buildLab, CLIENT_ADDRESS, VIP, type Lab } from '../lib/demo/lab.js';
import { hash32 } from '../lib/sched/hash.js';
import { shBuckets } from '../lib/sched/sh.js';
import { wlcChoose } from '../lib/sched/wlc.js';
import type { ModelDest } from '../lib/sched/types.js';
import { runClient, Session } from '../lib/traffic.js';
import { ipNum } from './helpers/ipvs-model.js';

let lab: Lab;
let lb: Balancer;
const WEIGHTS: Record<string, number> = { r1: 3, r2: 2, r3: 1 };

beforeAll(async () => {
  lab = await buildLab({ prefix: 'xvsd' });
  lb = Balancer.open({ netns: lab.lb.name, sweepIntervalMs: 1000 });
  for (const ifname of lab.lbInterfaces) lb.attach(ifname, { mode: 'native' });
});

afterAll(async () => {
  lb?.close();
  await lab?.destroy();
});

beforeEach(() => {
  lb.clear();
  lb.zero();
});

function addReals(key: ServiceKey, weights = WEIGHTS): void {
  for (const r of lab.reals) lb.addRealServer(key, { address: r.address }, { weight: weights[r.name] ?? 1 });
}

const nameOf = (address: string) => lab.reals.find((r) => r.address === address)!.name;

/** What wlc's model would do with `n` new connections, each counted as `counter` once placed. */
function wlcSequence(n: number, counter: 'active' | 'inactive'): Record<string, number> {
  const dests = [...lab.reals].reverse().map((r, i) => ({
    index: i, weight: WEIGHTS[r.name]!, lastWeight: 0, addr: 0, port: 0, active: 0, inactive: 0, overloaded: false, name: r.name,
  }));
  const got: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const d = wlcChoose(dests as ModelDest[]) as (typeof dests)[number];
    d[counter]++;
    got[d.name] = (got[d.name] ?? 0) + 1;
  }
  return got;
}

describe('distribution with real sockets', () => {
  it('wlc: held TCP connections land by weight, as the model places them, and count as ActiveConn', async () => {
    const web: ServiceKey = { protocol: 'tcp', address: VIP, port: 80 };
    lb.addService(web, { scheduler: 'wlc' });
    addReals(web);
    const sessions: Session[] = [];
    try {
      for (let i = 0; i < 12; i++) sessions.push(await Session.open(lab.topology, lab.client, { proto: 'tcp', host: VIP, port: 80, count: 1 }));
      const landed: Record<string, number> = {};
      for (const s of sessions) landed[s.names[0]!] = (landed[s.names[0]!] ?? 0) + 1;
      expect(landed).toEqual(wlcSequence(12, 'active'));
      const active = Object.fromEntries(lb.list()[0]!.realServers.map((r) => [nameOf(r.address), r.activeConns]));
      expect(active).toEqual(landed);
    } finally {
      for (const s of sessions) await s.close();
    }
  });

  it('wlc: UDP flows from distinct ports land by weight and count as InActConn', async () => {
    const dns: ServiceKey = { protocol: 'udp', address: VIP, port: 53 };
    lb.addService(dns, { scheduler: 'wlc' });
    addReals(dns);
    const result = await runClient(lab.client, { proto: 'udp', host: VIP, port: 53, count: 18, concurrency: 1 });
    expect(result.failures).toBe(0);
    expect(result.answers).toEqual(wlcSequence(18, 'inactive'));
    const info = lb.list()[0]!;
    for (const r of info.realServers) {
      expect(r.inactiveConns).toBe(result.answers[nameOf(r.address)] ?? 0);
      expect(r.stats.conns).toBe(BigInt(result.answers[nameOf(r.address)] ?? 0));
    }
  });

  it('sh: one client goes to the bucket of its address; sh-port spreads its connections', async () => {
    const web: ServiceKey = { protocol: 'tcp', address: VIP, port: 80 };
    lb.addService(web, { scheduler: 'sh' });
    addReals(web);
    const list = lb.list()[0]!.realServers.map((r, i) => ({ index: i, weight: r.weight, address: r.address }));
    const bucket = shBuckets(list)[hash32(ipNum(CLIENT_ADDRESS), 8)]!;
    const result = await runClient(lab.client, { proto: 'tcp', host: VIP, port: 80, count: 20, concurrency: 4 });
    expect(result.answers).toEqual({ [nameOf(list[bucket]!.address)]: 20 });
    lb.editService(web, { schedFlags: ['sh-port'] });
    const spread = await runClient(lab.client, { proto: 'tcp', host: VIP, port: 80, count: 30, concurrency: 4 });
    expect(spread.failures).toBe(0);
    expect(Object.keys(spread.answers).length).toBeGreaterThan(1);
  });

  it('a persistent service keeps a client on one server, through one template', async () => {
    const web: ServiceKey = { protocol: 'tcp', address: VIP, port: 80 };
    lb.addService(web, { scheduler: 'rr', persistent: 60 });
    addReals(web);
    const result = await runClient(lab.client, { proto: 'tcp', host: VIP, port: 80, count: 20, concurrency: 4 });
    expect(result.failures).toBe(0);
    expect(Object.values(result.answers)).toEqual([20]);
    const templates = lb.connections().filter((c) => c.template);
    expect(templates).toHaveLength(1);
    const [server] = Object.keys(result.answers);
    const info = lb.list()[0]!.realServers.find((r) => nameOf(r.address) === server)!;
    expect(info.persistConns).toBe(1);
    expect(info.stats.conns).toBe(20n);
  });
});
