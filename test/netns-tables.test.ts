// One table per network namespace, as with IPVS: `ip netns exec NS xvsadm …` (real `ip netns exec`
// child processes, no pin path given) works on NS's own table, which persists between commands, is
// the table `xvsadm --netns NS` reaches from the host, dies with the namespace, and runs a balancer
// configured by nothing else.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Balancer } from '../lib/balancer.js';
import { pidAlive } from '../lib/pid.js';
import { buildLab, VIP, type Lab } from '../lib/demo/lab.js';
import { readCtl } from '../lib/store.js';
import { uniqueSuffix } from '../lib/topology.js';
import { runClient } from '../lib/traffic.js';
import { ensureBuilt, removeTestPins, spawnProcess, XVSADM_BIN, type Result } from './helpers/xvsadm.js';

const suffix = uniqueSuffix(6);
const A = `xvsnt-${suffix}-a`;
const B = `xvsnt-${suffix}-b`;
const C = `xvsnt-${suffix}-c`;
const NAMES = [A, B, C];
const tablePath = (ns: string) => `/sys/fs/bpf/xvs-netns/${ns}`;
/** No pin path: the table is the namespace's. */
const ENV = { XVS_PIN_PATH: '', XVS_MAX_CONNECTIONS: '4096' };
const NO_XVSD = { ...ENV, XVS_NO_XVSD: '1' };

const inNetns = (ns: string, args: string[], env: Record<string, string> = NO_XVSD) =>
  spawnProcess('ip', ['netns', 'exec', ns, process.execPath, XVSADM_BIN, ...args], env);
const fromHost = (args: string[], env: Record<string, string> = NO_XVSD) => spawnProcess(process.execPath, [XVSADM_BIN, ...args], env);
const sh = (script: string, env = NO_XVSD) => spawnProcess('sh', ['-c', script], env);
const ok = (stdout = ''): Result => ({ status: 0, stdout, stderr: '' });
const HEADER = 'IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });

function daemonOf(pinPath: string): number {
  const b = Balancer.open({ pinPath });
  try {
    return readCtl(b.dataplane).daemonPid;
  } finally {
    b.close();
  }
}

async function waitFor(check: () => boolean, ms: number): Promise<boolean> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await sleep(100)) if (check()) return true;
  return check();
}

beforeAll(() => {
  ensureBuilt();
  for (const ns of NAMES) ip('netns', 'add', ns);
});

afterAll(async () => {
  for (const ns of NAMES) {
    await removeTestPins(tablePath(ns));
    try {
      ip('netns', 'del', ns);
    } catch {
      // deleted by the test
    }
  }
});

describe('tables per network namespace', () => {
  it('keeps a separate table per namespace that persists between commands', async () => {
    const hostTable = existsSync('/sys/fs/bpf/xvs');
    expect(await inNetns(A, ['-A', '-t', '10.1.1.1:80', '-s', 'wrr'])).toEqual(ok());
    expect(await inNetns(A, ['-a', '-t', '10.1.1.1:80', '-r', '10.1.1.2', '-g', '-w', '3'])).toEqual(ok());
    expect(await inNetns(B, ['-A', '-u', '10.2.2.2:53'])).toEqual(ok());
    expect(await inNetns(A, ['-Ln'])).toEqual(ok(`${HEADER}TCP  10.1.1.1:80 wrr\n  -> 10.1.1.2:80                  Route   3      0          0         \n`));
    expect(await inNetns(B, ['-Ln'])).toEqual(ok(`${HEADER}UDP  10.2.2.2:53 wlc\n`));
    expect(await inNetns(C, ['-Ln'])).toEqual(ok(HEADER));
    expect(existsSync(`${tablePath(A)}/ctl`) && existsSync(`${tablePath(B)}/ctl`)).toBe(true);
    // The host's own table is neither used nor made.
    expect(existsSync('/sys/fs/bpf/xvs')).toBe(hostTable);
  });

  it('is the table `xvsadm --netns NS` reaches from the host', async () => {
    expect(await fromHost(['--netns', A, '-Ln'])).toEqual(await inNetns(A, ['-Ln']));
    expect(await fromHost(['-a', '-t', '10.1.1.1:80', '-r', '10.1.1.3', '-g', '--netns', A])).toEqual(ok());
    const saved = await inNetns(A, ['-S', '-n']);
    expect(saved.stdout).toBe('-A -t 10.1.1.1:80 -s wrr\n-a -t 10.1.1.1:80 -r 10.1.1.2:80 -g -w 3\n-a -t 10.1.1.1:80 -r 10.1.1.3:80 -g -w 1\n');
    expect(await fromHost([`--netns=${B}`, '-S', '-n'])).toEqual(ok('-A -u 10.2.2.2:53 -s wlc\n'));
    // The namespace's path names the same table.
    expect(await fromHost(['--netns', `/run/netns/${A}`, '-S', '-n'])).toEqual(saved);
    // An explicit pin path still wins, inside the namespace too (through the bind mount).
    const own = `xvs-test-${uniqueSuffix(8)}`;
    try {
      expect(await inNetns(A, ['-Ln'], { ...NO_XVSD, XVS_PIN_PATH: `/run/xvs/bpffs/${own}` })).toEqual(ok(HEADER));
      expect(existsSync(`/sys/fs/bpf/${own}/ctl`)).toBe(true);
    } finally {
      await removeTestPins(`/sys/fs/bpf/${own}`);
    }
    const missing = await fromHost(['--netns', `xvsnt-${suffix}-none`, '-Ln']);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain(`Cannot open network namespace "xvsnt-${suffix}-none": No such file or directory`);
  });

  it('reaches the bpffs through the parent shell when /run/xvs/bpffs is not there yet (fresh boot)', async () => {
    ip('-n', C, 'link', 'add', 'c0', 'type', 'veth', 'peer', 'name', 'c1');
    execFileSync('ip', ['netns', 'exec', C, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    // A private mount namespace of our own stands in for a host without the bind mount.
    const x = `ip netns exec ${C} ${process.execPath} ${XVSADM_BIN}`;
    const fresh = await sh(
      `exec unshare -m --propagation private sh -c 'umount -l /run/xvs/bpffs 2>/dev/null; mountpoint -q /run/xvs/bpffs && echo still; ` +
        `${x} -A -t 10.3.3.3:80 -s sh && mountpoint -q /run/xvs/bpffs && echo bound && ${x} -S -n && ` +
        `${x} --attach c0 --xdp-mode generic'`,
      ENV,
    );
    expect(fresh).toEqual(ok('bound\n-A -t 10.3.3.3:80 -s sh\n'));
    expect((await fromHost(['--netns', C, '-S', '-n'])).stdout).toBe('-A -t 10.3.3.3:80 -s sh\n');
    // xvsd, started through the shell's mount namespace, outlives the shell.
    await sleep(2500);
    expect(pidAlive(daemonOf(tablePath(C)))).toBe(true);
  });

  it('gives a namespace made again under the same name a fresh table', async () => {
    expect((await fromHost(['--netns', B, '-S', '-n'])).stdout).not.toBe('');
    ip('netns', 'del', B);
    ip('netns', 'add', B);
    expect(await inNetns(B, ['-S', '-n'])).toEqual(ok());
    expect(await fromHost(['--netns', B, '-S', '-n'])).toEqual(ok());
    expect(await inNetns(A, ['-S', '-n'])).not.toEqual(ok());
  });

  it('ends xvsd and the table with the namespace', async () => {
    ip('-n', B, 'link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1');
    ip('-n', B, 'link', 'set', 'd0', 'up');
    execFileSync('ip', ['netns', 'exec', B, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    expect(await inNetns(B, ['--attach', 'd0', '--xdp-mode', 'generic'], ENV)).toEqual(ok());
    const pid = daemonOf(tablePath(B));
    expect(pidAlive(pid)).toBe(true);
    ip('netns', 'del', B);
    expect(await waitFor(() => !pidAlive(pid) && !existsSync(tablePath(B)), 10_000)).toBe(true);
    ip('netns', 'add', B);
  });

  it('--teardown inside the namespace stops its xvsd and removes its table only', async () => {
    const pid = daemonOf(tablePath(C));
    expect(await inNetns(C, ['--teardown'])).toEqual(ok());
    expect(pidAlive(pid)).toBe(false);
    expect(existsSync(tablePath(C))).toBe(false);
    expect(existsSync(`${tablePath(A)}/ctl`)).toBe(true);
  });
});

describe('a balancer configured only by `ip netns exec LB xvsadm`', () => {
  let lab: Lab;
  const lb = () => lab.lb.name;
  const x = (...args: string[]) => inNetns(lb(), args, ENV);

  beforeAll(async () => {
    lab = await buildLab({ prefix: `xvsnt${suffix}` });
  }, 120_000);

  afterAll(async () => {
    if (!lab) return;
    await removeTestPins(tablePath(lab.lb.name));
    await lab.destroy();
  });

  it('attaches, balances real connections, keeps xvsd running and tears down', async () => {
    for (const ifname of lab.lbInterfaces) expect(await x('--attach', ifname)).toEqual(ok());
    expect(await x('-A', '-t', `${VIP}:80`, '-s', 'rr')).toEqual(ok());
    for (const r of lab.reals) expect(await x('-a', '-t', `${VIP}:80`, '-r', r.address, '-g')).toEqual(ok());

    const dr = await runClient(lab.client, { proto: 'tcp', host: VIP, port: 80, count: 30 });
    expect(dr).toMatchObject({ failures: 0, answers: { r1: 10, r2: 10, r3: 10 } });

    // xvsd, started by --attach inside the namespace, outlived that command and estimates rates.
    const pid = daemonOf(tablePath(lb()));
    expect(pidAlive(pid)).toBe(true);
    await runClient(lab.client, { proto: 'tcp', host: VIP, port: 80, count: 30 });
    await sleep(4500);
    const rate = await fromHost(['--netns', lb(), '-L', '-n', '--rate', '-t', `${VIP}:80`]);
    expect(rate.status).toBe(0);
    expect(Number(rate.stdout.split('\n')[2]!.trim().split(/\s+/)[2])).toBeGreaterThan(0);
    expect((await x('-L', '-n', '--stats')).stdout).toMatch(/^TCP {2}10\.100\.0\.1:80 +60 /m);

    expect(await x('--teardown')).toEqual(ok());
    expect(await waitFor(() => !pidAlive(pid), 5000)).toBe(true);
    expect(existsSync(tablePath(lb()))).toBe(false);
    const after = await runClient(lab.client, { proto: 'tcp', host: VIP, port: 80, count: 3, timeoutMs: 500 });
    expect(after.failures).toBe(3);
  }, 60_000);
});
