// Control plane: how long the API takes to build a large configuration, and what changing a real
// server's weight does to traffic flowing at full rate (loss counted at the real servers).
import type { ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Balancer, type ServiceKey } from '../lib/balancer.js';
import { ipv4Number, ipv4Text, TCP_SYN } from './frames.js';
import { packetLab, packetLabReal, type ThroughputLab, throughputLab, VIP } from './lab.js';
import type { Profile } from './profile.js';
import { describeReasons, type Progress } from './progress.js';
import { encodeJob } from './gen-child.js';
import { attachSinks, clientTraffic, type Loss, lossOf, readSinks, ringDrops } from './throughput.js';

export interface AddServicesResult {
  services: number;
  realsPerService: number;
  realPool: number;
  scheduler: string;
  /** Wall time of all addService + addRealServer calls. */
  seconds: number;
  perServiceUs: number;
  perRealServerUs: number;
  /** addRealServer with an address no real server used yet (its neighbour is primed: `ip` runs),
   * and with one already in use. */
  firstUseUs: number;
  reuseUs: number;
  /** Wall time of clear() (deleting every service). */
  clearSeconds: number;
}

export interface TrafficRun {
  sent: number;
  /** Frames that reached a real server addressed right. */
  delivered: number;
  mpps: number;
  loss: Loss;
  /** Share of the delivered frames at each real server; the first one's weight is the one changed. */
  perReal: number[];
  /** How xvs counted the packets. */
  xvs: string;
}

export interface WeightChangeResult {
  seconds: number;
  everyMs: number;
  reals: number;
  /** Weights the changed real server alternates between (the others keep the first). */
  weights: [number, number];
  changes: number;
  /** The same traffic without changes, for comparison. */
  steady: TrafficRun;
  changing: TrafficRun;
}

export interface ControlResult {
  addServices: AddServicesResult;
  weightChange: WeightChangeResult;
}

const SCHEDULER = 'wrr';

export async function runControl(profile: Profile, progress: Progress): Promise<ControlResult> {
  const addServices = await measureAddServices(profile.control, progress);
  const weightChange = await measureWeightChange(profile, progress);
  return { addServices, weightChange };
}

async function measureAddServices(c: Profile['control'], progress: Progress): Promise<AddServicesResult> {
  progress.step('control', `${c.services} services × ${c.realsPerService} real servers (pool of ${c.realPool} addresses) through the API`);
  const lab = await packetLab(c.realPool);
  try {
    const lb = Balancer.open({ netns: lab.ns.name, maxConnections: 1024 });
    try {
      const base = ipv4Number('10.200.0.0');
      const step = Math.max(1, Math.floor(c.services / 10));
      const started = process.hrtime.bigint();
      let servicesNs = 0n;
      const realNs = { first: 0n, firstCount: 0, reuse: 0n, reuseCount: 0 };
      for (let i = 0; i < c.services; i++) {
        const svc: ServiceKey = { protocol: 'tcp', address: ipv4Text(base + i), port: 80 };
        const t = process.hrtime.bigint();
        lb.addService(svc, { scheduler: SCHEDULER });
        servicesNs += process.hrtime.bigint() - t;
        for (let j = 0; j < c.realsPerService; j++) {
          const n = i * c.realsPerService + j;
          const real = packetLabReal(1 + (n % c.realPool));
          const t0 = process.hrtime.bigint();
          lb.addRealServer(svc, { address: real.address }, { weight: 1 + (j % 4) });
          const took = process.hrtime.bigint() - t0;
          if (n < c.realPool) {
            realNs.first += took;
            realNs.firstCount++;
          } else {
            realNs.reuse += took;
            realNs.reuseCount++;
          }
        }
        if ((i + 1) % step === 0) progress.step('control', `${i + 1} services added`);
      }
      const totalNs = process.hrtime.bigint() - started;
      const clearStarted = process.hrtime.bigint();
      lb.clear();
      const clearNs = process.hrtime.bigint() - clearStarted;
      const reals = c.services * c.realsPerService;
      const result: AddServicesResult = {
        services: c.services, realsPerService: c.realsPerService, realPool: c.realPool, scheduler: SCHEDULER,
        seconds: Number(totalNs) / 1e9,
        perServiceUs: Number(servicesNs) / 1e3 / c.services,
        perRealServerUs: Number(totalNs - servicesNs) / 1e3 / reals,
        firstUseUs: Number(realNs.first) / 1e3 / Math.max(1, realNs.firstCount),
        reuseUs: realNs.reuseCount ? Number(realNs.reuse) / 1e3 / realNs.reuseCount : NaN,
        clearSeconds: Number(clearNs) / 1e9,
      };
      progress.step('control', `added in ${result.seconds.toFixed(2)} s (${result.perRealServerUs.toFixed(0)} µs per real server), cleared in ${result.clearSeconds.toFixed(2)} s`);
      return result;
    } finally {
      lb.close();
    }
  } finally {
    await lab.destroy();
  }
}

/** Starts the generator child in the client namespace; resolves once it is about to send. */
function startGenerator(lab: ThroughputLab, job: string): { ready: Promise<void>; done: Promise<{ sent: number; seconds: number }>; child: ChildProcess } {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'gen-child.js');
  const child = lab.topology.spawn(lab.client, process.execPath, [script, job]);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: child.stdout! });
  let last = '';
  const ready = new Promise<void>((resolve, reject) => {
    lines.on('line', (line) => {
      if (line === 'ready') resolve();
      else last = line;
    });
    child.once('exit', () => reject(new Error(`generator exited before sending: ${stderr.trim()}`)));
  });
  const done = new Promise<{ sent: number; seconds: number }>((resolve, reject) => {
    child.once('exit', (code) => {
      if (code === 0 && last) resolve(JSON.parse(last) as { sent: number; seconds: number });
      else reject(new Error(`generator failed (exit ${code}): ${stderr.trim()}`));
    });
  });
  ready.catch(() => undefined);
  return { ready, done, child };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function measureWeightChange(profile: Profile, progress: Progress): Promise<WeightChangeResult> {
  const c = profile.control;
  const t = profile.throughput;
  const weights: [number, number] = [2, 5];
  progress.step('control', `weight changes under a flood of new connections: ${t.reals} real servers, ${c.weightSeconds} s runs`);
  const lab = await throughputLab(t.reals);
  try {
    const lb = Balancer.open({ netns: lab.lb.name });
    const svc: ServiceKey = { protocol: 'tcp', address: VIP, port: 80 };
    try {
      lb.addService(svc, { scheduler: SCHEDULER });
      for (const r of lab.reals) lb.addRealServer(svc, { address: r.address }, { weight: weights[0] });
      lb.attach(lab.lbClientIf.name, { mode: 'native' });
      const sinks = attachSinks(lab, () => VIP);
      try {
        const changed = { address: lab.reals[0]!.address };
        let flows = 0;
        const run = async (change: boolean): Promise<{ run: TrafficRun; changes: number }> => {
          for (const s of sinks) s.zero();
          lb.zero();
          const before = ringDrops(lab);
          // Every packet a new connection, each run with flows of its own.
          const job = encodeJob(clientTraffic(lab, TCP_SYN, 0, flows), {
            ifindex: lab.clientIf.ifindex, netns: lab.client.name, seconds: c.weightSeconds, chunk: t.chunk,
          });
          flows += 100_000_000;
          const gen = startGenerator(lab, job);
          await gen.ready;
          let changes = 0;
          let running = true;
          void gen.done.finally(() => (running = false)).catch(() => undefined);
          while (change && running) {
            await sleep(c.weightEveryMs);
            if (!running) break;
            lb.editRealServer(svc, changed, { weight: weights[(changes + 1) % 2] });
            changes++;
          }
          const { sent, seconds } = await gen.done;
          if (changes % 2) lb.editRealServer(svc, changed, { weight: weights[0] });
          const after = ringDrops(lab);
          const got = readSinks(sinks);
          return {
            changes,
            run: {
              sent, delivered: got.expected, mpps: got.expected / seconds / 1e6,
              loss: lossOf(sent, got.expected, before, after),
              perReal: got.perReal.map((n) => n / Math.max(1, got.frames)),
              xvs: describeReasons(lb.reasons()).text,
            },
          };
        };
        const steady = await run(false);
        progress.step('control', `steady: ${steady.run.mpps.toFixed(2)} Mpps, loss ${(steady.run.loss.total * 100).toFixed(3)}% (${steady.run.xvs})`);
        const changing = await run(true);
        progress.step('control', `${changing.changes} weight changes: ${changing.run.mpps.toFixed(2)} Mpps, loss ${(changing.run.loss.total * 100).toFixed(3)}% (${changing.run.xvs})`);
        return {
          seconds: c.weightSeconds, everyMs: c.weightEveryMs, reals: t.reals, weights,
          changes: changing.changes, steady: steady.run, changing: changing.run,
        };
      } finally {
        for (const s of sinks) s.close();
      }
    } finally {
      lb.close();
    }
  } finally {
    await lab.destroy();
  }
}
