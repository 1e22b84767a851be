// The counts stay exact when two CPUs work on the same connections at once: a worker thread runs
// a second copy of the program over the same maps while this thread sends the same frames and
// runs the sweeper, on the real clock with 1 s timeouts (templates too). Afterwards the counters
// equal a recount of the table's entries, and once everything expired they are all exactly zero.
import { mkdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ServiceKey } from '../lib/balancer.js';
import { netnsPath, unpin } from '../lib/libbpf.js';
import { packageRoot } from '../lib/native.js';
import { uniqueSuffix } from '../lib/topology.js';
import { packetLab, type PacketLab } from './helpers/lb.js';
import { buildFrame } from './helpers/packet.js';
import { recount } from './helpers/recount.js';

const VIP = '10.0.0.100';
const SHARED_MAPS = [
  'services', 'dests', 'dest_conns', 'conns', 'templates', 'svc_sched', 'sched_slots', 'lblc', 'lblcr',
  'twos_draws', 'mark_prefixes', 'mark_rules', 'nat_reals', 'svc_stats', 'dest_stats', 'reasons', 'config',
];

let lab: PacketLab;
const pinDir = `/sys/fs/bpf/xvs-concurrency-${uniqueSuffix()}`;
const pinned: string[] = [];

beforeAll(async () => {
  lab = await packetLab({ maxConnections: 2048 });
});

afterAll(async () => {
  for (const path of pinned) unpin(path);
  try {
    rmdirSync(pinDir);
  } catch {
    // never created
  }
  await lab?.destroy();
});

/** A pool of 5-tuples both CPUs use, each getting SYN, ACK, FIN and RST in a shuffled order. */
function frames(seed: number): Buffer[] {
  let s = seed;
  const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const out: Buffer[] = [];
  for (let i = 0; i < 3000; i++) {
    const client = Math.floor(rand() * 60);
    out.push(buildFrame({
      ip: { src: `10.2.${client % 4}.${client}`, dst: VIP },
      tcp: { sport: 2000 + Math.floor(rand() * 8), dport: rand() < 0.5 ? 80 : 81, flags: ['S', 'S', 'A', 'PA', 'FA', 'R'][Math.floor(rand() * 6)]! },
    }));
  }
  return out;
}

it('keeps counts exact with two CPUs and the sweeper on the same connections', async () => {
  const lb = lab.lb;
  const persistent: ServiceKey = { protocol: 'tcp', address: VIP, port: 80 };
  const plain: ServiceKey = { protocol: 'tcp', address: VIP, port: 81 };
  lb.addService(persistent, { scheduler: 'wlc', persistent: 1 });
  lb.addService(plain, { scheduler: 'lc' });
  for (const key of [persistent, plain]) {
    lb.addRealServer(key, { address: '10.1.0.11', port: key.port }, { weight: 2, upperThreshold: 6, lowerThreshold: 2 });
    lb.addRealServer(key, { address: '10.1.0.12', port: key.port }, { weight: 1, upperThreshold: 4 });
    lb.addRealServer(key, { address: '10.1.0.13', port: key.port });
  }
  lb.dataplane.writeTimeouts(Object.fromEntries(
    ['NONE', 'ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT', 'TIME_WAIT', 'CLOSE', 'CLOSE_WAIT', 'LAST_ACK', 'LISTEN', 'SYNACK']
      .map((st) => [`XVS_TCP_S_${st}`, 1]),
  ));

  mkdirSync(pinDir);
  const maps = SHARED_MAPS.map((name) => {
    const path = join(pinDir, name);
    lb.dataplane.map(name).pin(path);
    pinned.push(path);
    return { name, path, maxEntries: lb.dataplane.map(name).maxEntries };
  });
  const ctx = Buffer.alloc(24);
  ctx.writeUInt32LE(lab.clientsIf.ifindex, 12);
  const ours = frames(1);
  const theirs = frames(2);
  const worker = new Worker(new URL('./helpers/hammer-worker.mjs', import.meta.url), {
    workerData: {
      addonPath: join(packageRoot(), 'build', 'Release', 'xvs_native.node'),
      objectPath: join(packageRoot(), 'build', 'bpf', 'xvs.bpf.o'),
      maps, nsPath: netnsPath(lab.ns.name), ctx, frames: theirs, rounds: 6,
    },
  });
  const done = new Promise<{ sent: number }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  let finished = false;
  void done.then(() => (finished = true), () => (finished = true));
  let sweeps = 0;
  // Our own frames and sweeps, interleaved, until the worker is done.
  while (!finished) {
    for (const f of ours.slice(0, 500)) lab.run(f);
    ours.push(...ours.splice(0, 500));
    lb.expire();
    sweeps++;
    await new Promise((r) => setImmediate(r));
  }
  const { sent } = await done;
  expect(sent).toBe(theirs.length * 6);
  expect(sweeps).toBeGreaterThan(1);

  const now = recount(lb);
  expect(now.counters).toEqual(now.fromEntries);
  const busy = [...now.counters.values()].some((c) => c.active + c.inactive + c.persist > 0);
  expect(busy).toBe(true);

  // Templates that still controlled connections when due wait 60 s more: move the clock past that.
  lb.dataplane.setClock(lb.dataplane.now() + 200n * 1_000_000_000n);
  lb.expire();
  lb.dataplane.setClock(0n);
  const later = recount(lb);
  expect([...later.counters.values()].every((c) => c.active === 0 && c.inactive === 0 && c.persist === 0)).toBe(true);
  expect([...lb.dataplane.map('conns').keys()]).toHaveLength(0);
  expect([...lb.dataplane.map('templates').keys()]).toHaveLength(0);
});
