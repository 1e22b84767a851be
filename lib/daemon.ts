// xvsd, the long-running control process of a pinned balancer: every 2 seconds it runs the rate
// estimator (lib/estimator.ts) and, when the Balancer has one, the connection expiry sweeper.
// It registers its pid and a heartbeat in the ctl map, so that xvsadm can tell whether rates are
// being estimated, start it (xvsadm --attach) and stop it (xvsadm --teardown).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Balancer } from './balancer.js';
import type { Dataplane } from './dataplane.js';
import { ESTIMATOR_INTERVAL_MS } from './estimator.js';
import { dropIfStale } from './nstable.js';
import { pidAlive } from './pid.js';
import * as store from './store.js';

/** A heartbeat older than this means xvsd is stuck or gone. */
const STALE_NS = BigInt(5 * ESTIMATOR_INTERVAL_MS) * 1_000_000n;
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

/** The Balancer method of the connection expiry sweeper, called on every tick when it exists. */
export const SWEEPER_METHOD = 'expireConnections';

/** xvsd's pid when it runs and ticks for this balancer, else undefined. */
export function runningDaemon(dp: Dataplane): number | undefined {
  const ctl = store.readCtl(dp);
  if (!pidAlive(ctl.daemonPid)) return undefined;
  return process.hrtime.bigint() - ctl.daemonTickNs < STALE_NS ? ctl.daemonPid : undefined;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Starts xvsd for the pinned balancer, detached, and waits until it has registered. With `via`,
 * xvsd starts in that process's mount namespace, where the pins are at via.pinPath (lib/nstable.ts).
 */
export async function startDaemon(dp: Dataplane, pinPath: string, via?: { pid: number; pinPath: string }): Promise<number> {
  const running = runningDaemon(dp);
  if (running) return running;
  const script = fileURLToPath(new URL('./xvsd.js', import.meta.url));
  const xvsd = [process.execPath, script, '--pin-path', via?.pinPath ?? pinPath];
  const argv = via ? ['nsenter', `--mount=/proc/${via.pid}/ns/mnt`, '--', ...xvsd] : xvsd;
  const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: 'ignore' });
  child.unref();
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (store.readCtl(dp).daemonPid === child.pid) return child.pid;
    if (child.exitCode !== null) break;
    await sleep(20);
  }
  throw new Error(`xvsd (pid ${child.pid}) did not start for ${pinPath}`);
}

/** Stops the xvsd registered for this balancer, if any. */
export async function stopDaemon(dp: Dataplane): Promise<void> {
  const pid = store.readCtl(dp).daemonPid;
  if (!pidAlive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (pidAlive(pid) && Date.now() < deadline) await sleep(20);
  if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
}

/** One tick: rates, expiry, heartbeat; under the balancer's lock. */
export function daemonTick(b: Balancer): void {
  b.transaction(
    () => {
      b.estimateRates();
      const sweep = (b as unknown as Record<string, unknown>)[SWEEPER_METHOD];
      if (typeof sweep === 'function') sweep.call(b);
      store.writeCtl(b.dataplane, { daemonTickNs: process.hrtime.bigint() });
    },
    { configuration: false },
  );
}

/**
 * Registers this process as the balancer's xvsd and restarts every estimate from the counters as
 * they are. Returns the pid of another live xvsd instead, registering nothing.
 */
export function registerDaemon(b: Balancer): number {
  const dp = b.dataplane;
  let owner = 0;
  b.transaction(
    () => {
      const other = store.readCtl(dp).daemonPid;
      if (other !== process.pid && pidAlive(other)) {
        owner = other;
        return;
      }
      b.estimateRates({ restart: true });
      store.writeCtl(dp, { daemonPid: process.pid, daemonTickNs: process.hrtime.bigint() });
    },
    { configuration: false },
  );
  return owner;
}

export function unregisterDaemon(b: Balancer): void {
  b.transaction(
    () => {
      if (store.readCtl(b.dataplane).daemonPid === process.pid) store.writeCtl(b.dataplane, { daemonPid: 0 });
    },
    { configuration: false },
  );
}

/**
 * Runs xvsd until SIGTERM/SIGINT, until the pin directory disappears (xvsadm --teardown) or until
 * the network namespace its table belongs to is gone (the table is removed then).
 * Refuses to run beside another live xvsd of the same balancer.
 */
export async function runDaemon(b: Balancer, pinPath: string, log: (line: string) => void): Promise<void> {
  const owner = registerDaemon(b);
  if (owner) throw new Error(`xvsd already runs for ${pinPath} (pid ${owner})`);
  log(`xvsd ${process.pid}: estimating rates every ${ESTIMATOR_INTERVAL_MS / 1000} s for ${pinPath}`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      clearInterval(timer);
      resolve();
    };
    const timer = setInterval(() => {
      if (dropIfStale(b.dataplane, pinPath) || !store.hasPins(pinPath)) return stop();
      try {
        daemonTick(b);
      } catch (e) {
        log(`xvsd: tick failed: ${(e as Error).message}`);
      }
    }, ESTIMATOR_INTERVAL_MS);
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  if (store.hasPins(pinPath)) unregisterDaemon(b);
  log(`xvsd ${process.pid}: stopped`);
}
