// Running xvsadm in tests: in-process through the runner (the bin's own code path, fast) or as
// the real bin in a process of its own; unique pin directories removed afterwards, with any xvsd
// that ran for them.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Balancer } from '../../lib/balancer.js';
import { stopDaemon } from '../../lib/daemon.js';
import { packageRoot } from '../../lib/native.js';
import { xvsadm as run } from '../../lib/cli/run.js';
import { hasPins, removePins } from '../../lib/store.js';
import { uniqueSuffix } from '../../lib/topology.js';

export interface Result {
  status: number;
  stdout: string;
  stderr: string;
}

const ROOT = packageRoot();
export const XVSADM_BIN = join(ROOT, 'dist', 'lib', 'cli', 'xvsadm.js');

/** A pin directory of its own for a test (bpffs names may not contain dots). */
export function testPinPath(): string {
  return `/sys/fs/bpf/xvs-test-${uniqueSuffix(8)}`;
}

/** Stops xvsd and removes every pin (links detached) of a test's balancer. */
export async function removeTestPins(pinPath: string): Promise<void> {
  if (!hasPins(pinPath)) return;
  const b = Balancer.open({ pinPath });
  try {
    await stopDaemon(b.dataplane);
  } finally {
    b.close();
  }
  removePins(pinPath);
}

/** Runs xvsadm in this process, as the bin would (argv without the program name). */
export async function xvsadm(pinPath: string, args: string[], stdin = ''): Promise<Result> {
  let stdout = '';
  let stderr = '';
  const status = await run(
    args,
    'ipvsadm',
    { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), readStdin: () => stdin },
    { XVS_PIN_PATH: pinPath, XVS_MAX_CONNECTIONS: '4096', XVS_NO_XVSD: '1' },
  );
  return { status, stdout, stderr };
}

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

/** Compiles lib/ to dist/ when the bin is older than a source file, so spawned processes run this code. */
export function ensureBuilt(): void {
  if (existsSync(XVSADM_BIN) && statSync(XVSADM_BIN).mtimeMs >= newestSource(join(ROOT, 'lib'))) return;
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.json')], {
    stdio: 'inherit',
  });
}

/** Runs the xvsadm bin (or `file`, e.g. a script) in a process of its own. */
export function spawnProcess(file: string, args: string[], env: Record<string, string>, stdin = ''): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status: status ?? -1, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

export function spawnXvsadm(pinPath: string, args: string[], env: Record<string, string> = {}, stdin = ''): Promise<Result> {
  return spawnProcess(process.execPath, [XVSADM_BIN, ...args], { XVS_PIN_PATH: pinPath, ...env }, stdin);
}
