// The kernel side: one boot of Debian's user-mode Linux (a 6.1 kernel with ip_vs, run as an
// ordinary process) whose init script loads the IPVS modules and runs guest.py, which executes every
// command case with ipvsadm and drives every traffic case, writing one JSON result. The guest's
// root file system is the host's (hostfs), so it runs the host's ipvsadm, python3 and this very
// worktree; its network stack is its own. See DEVELOPERS.md.
//
// The kernel's answers only depend on the cases, the lab and the installed packages, and a guest
// run costs about a second per command, so each case's result is kept under node_modules/.cache
// keyed by all of them: a boot runs only the cases the cache lacks. XVS_CONFORMANCE_FRESH=1 runs all.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { packageRoot } from '../../lib/native.js';
import { GUEST, LAB, type Job, type Result as RunResult, type TrafficResult } from './model.js';

const UML = '/usr/bin/linux.uml';
const IPVSADM = '/usr/sbin/ipvsadm';
const UML_MODULES = '/usr/lib/uml/modules';
const INSTALL = 'apt-get install user-mode-linux ipvsadm kmod';
const MODULES = [
  'ip_vs', ...['rr', 'wrr', 'lc', 'wlc', 'sed', 'nq', 'lblc', 'lblcr', 'dh', 'sh', 'mh', 'fo', 'ovf'].map((s) => `ip_vs_${s}`),
  'ip_vs_pe_sip', 'veth', 'dummy', 'ipip', 'ip6_tunnel', 'fou', 'ip_gre',
];
const CACHE = join(packageRoot(), 'node_modules', '.cache', 'xvs-conformance');

export interface GuestResult {
  /** Per command case, per command line. */
  commands: RunResult[][];
  traffic: TrafficResult[];
  /** Cases the guest ran (the others came from the cache), and how long it took. */
  ran: number;
  seconds: number;
}

/** A case as guest.py takes it, keyed by everything its kernel result depends on. */
type Keyed<T> = [key: string, value: T];

/** Checks that the guest can boot; throws what to install when it cannot. */
export function kernelVersion(): string {
  for (const [path, what] of [[UML, 'user-mode-linux'], [IPVSADM, 'ipvsadm'], ['/usr/sbin/modprobe', 'kmod']] as const) {
    if (!existsSync(path)) throw new Error(`${path} is missing (package ${what}): the conformance suite needs it: ${INSTALL}`);
  }
  const versions = existsSync(UML_MODULES) ? readdirSync(UML_MODULES) : [];
  if (versions.length !== 1) {
    throw new Error(`expected one kernel's modules in ${UML_MODULES}, found ${JSON.stringify(versions)}: ${INSTALL}`);
  }
  return versions[0]!;
}

/** The guest's modprobe looks in /lib/modules/<version>, which is the host's: point it at the UML modules. */
function linkModules(version: string): void {
  const link = `/lib/modules/${version}`;
  if (existsSync(link)) return;
  mkdirSync('/lib/modules', { recursive: true });
  symlinkSync(join(UML_MODULES, version), link);
}

function initScript(dir: string): string {
  return [
    '#!/bin/sh',
    'export PATH=/usr/sbin:/usr/bin:/sbin:/bin',
    'mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t tmpfs tmpfs /run; mount -t tmpfs tmpfs /tmp',
    `modprobe -a ${MODULES.join(' ')} > ${dir}/modprobe.log 2>&1`,
    `python3 -B ${dir}/guest.py ${dir}/job.json ${dir}/result.jsonl > ${dir}/lab.log 2>&1`,
    'poweroff -f',
    '',
  ].join('\n');
}

/** What a kind of kernel result depends on besides its case: the scripts, the boot, the installed packages. */
function environmentHash(version: string, scripts: string[]): string {
  const hash = createHash('sha256');
  for (const script of scripts) hash.update(readFileSync(script));
  hash.update(initScript('DIR'));
  for (const file of [UML, IPVSADM]) hash.update(`${file}:${statSync(file).size}:${statSync(file).mtimeMs}`);
  hash.update(version);
  return hash.digest('hex');
}

function keyed<T>(environment: string, kind: string, cases: T[]): Keyed<T>[] {
  return cases.map((c) => [createHash('sha256').update(environment).update(kind).update(JSON.stringify(c)).digest('hex').slice(0, 32), c]);
}

function readLog(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8').trim().split('\n').slice(-15).join('\n') : '(none)';
}

function cached(key: string): unknown {
  const path = join(CACHE, `${key}.json`);
  return !process.env.XVS_CONFORMANCE_FRESH && existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : undefined;
}

/**
 * The kernel's result for every case of `job`: from the cache, or from one boot of the guest that
 * runs every case the cache does not have (each result is cached as soon as the guest wrote it,
 * so a boot cut short still saves what it did).
 */
export async function runGuest(job: Job, timeoutMs: number): Promise<GuestResult> {
  const version = kernelVersion();
  const commands = keyed(environmentHash(version, [GUEST]), 'command', job.commands);
  const traffic = keyed(environmentHash(version, [GUEST, LAB]), 'traffic', job.traffic);
  const results = new Map<string, unknown>();
  for (const [key] of [...commands, ...traffic]) {
    const r = cached(key);
    if (r !== undefined) results.set(key, r);
  }
  const missing = <T>(list: Keyed<T>[]) => list.filter(([key]) => !results.has(key));
  const todo = { commands: missing(commands), traffic: missing(traffic) };
  const ran = todo.commands.length + todo.traffic.length;
  const started = Date.now();
  if (ran) await bootFor(todo, version, timeoutMs, results);
  const get = <T>([key]: Keyed<unknown>) => results.get(key) as T;
  return { commands: commands.map((k) => get<RunResult[]>(k)), traffic: traffic.map((k) => get<TrafficResult>(k)), ran, seconds: (Date.now() - started) / 1000 };
}

async function bootFor(todo: { commands: Keyed<unknown>[]; traffic: Keyed<unknown>[] }, version: string, timeoutMs: number, results: Map<string, unknown>): Promise<void> {
  linkModules(version);
  mkdirSync(CACHE, { recursive: true });
  // Not under /tmp: the guest mounts a tmpfs of its own there.
  const dir = mkdtempSync('/var/tmp/xvs-conformance-');
  try {
    writeFileSync(join(dir, 'job.json'), JSON.stringify(todo));
    // The scripts run from here: the checkout may itself lie under /tmp, hidden by the guest's tmpfs.
    for (const script of [GUEST, LAB]) copyFileSync(script, join(dir, basename(script)));
    writeFileSync(join(dir, 'init.sh'), initScript(dir), { mode: 0o755 });
    let console = '';
    let bootError: Error | undefined;
    try {
      console = await boot(join(dir, 'init.sh'), timeoutMs);
    } catch (e) {
      bootError = e as Error;
    }
    const resultPath = join(dir, 'result.jsonl');
    const errors: string[] = [];
    const lines = existsSync(resultPath) ? readFileSync(resultPath, 'utf8').split('\n').filter(Boolean) : [];
    for (const line of lines) {
      const record = JSON.parse(line) as { key?: string; result?: unknown; error?: string };
      if (record.error) errors.push(record.error);
      if (record.key === undefined) continue;
      results.set(record.key, record.result);
      writeFileSync(join(CACHE, `${record.key}.json`), JSON.stringify(record.result));
    }
    const left = [...todo.commands, ...todo.traffic].filter(([key]) => !results.has(key)).length;
    if (left || errors.length || bootError) {
      throw new Error(
        `the guest left ${left} of ${todo.commands.length + todo.traffic.length} cases undone` +
          `${bootError ? `: ${bootError.message}` : ''}${errors.length ? `\nguest.py: ${errors.join('; ')}` : ''}` +
          `\nconsole:\n${console.slice(-1500)}\nmodprobe:\n${readLog(join(dir, 'modprobe.log'))}\nguest.py log:\n${readLog(join(dir, 'lab.log'))}`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs linux.uml to its poweroff; kills its whole process group after `timeoutMs`. */
function boot(init: string, timeoutMs: number): Promise<string> {
  const args = ['mem=1G', 'root=/dev/root', 'rootfstype=hostfs', 'rootflags=/', 'rw', `init=${init}`, 'con0=null,fd:1', 'con=null'];
  return new Promise((resolve, reject) => {
    const child = spawn(UML, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d));
    child.stderr.on('data', (d: Buffer) => (output += d));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // Already gone.
      }
      reject(new Error(`the guest did not power off within ${timeoutMs / 1000} s; console:\n${output.slice(-2000)}`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${UML}: ${e.message}: ${INSTALL}`));
    });
    child.on('close', () => {
      clearTimeout(timer);
      resolve(output);
    });
  });
}
