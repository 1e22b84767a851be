// xvsadm alone runs a balancer: the lab topology (client, lb, r1..r3 in namespaces, lib/demo/lab.ts)
// is built, then only the xvsadm bin, each call a process of its own, attaches the dataplane,
// starts xvsd, configures a DR and a NAT service; a real client's TCP connections get through,
// xvsadm lists them, and --teardown leaves nothing behind.
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLab, VIP, type Lab } from '../lib/demo/lab.js';
import { runClient } from '../lib/traffic.js';
import { ensureBuilt, removeTestPins, spawnXvsadm, testPinPath, type Result } from './helpers/xvsadm.js';

let lab: Lab;
let pinPath: string;
const x = (...args: string[]) => spawnXvsadm(pinPath, args);
const ok = (stdout = ''): Result => ({ status: 0, stdout, stderr: '' });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  ensureBuilt();
  pinPath = testPinPath();
  lab = await buildLab({ prefix: 'xvsadm' });
}, 120_000);

afterAll(async () => {
  await removeTestPins(pinPath);
  await lab?.destroy();
});

describe('a balancer configured by xvsadm alone', () => {
  it('attaches to every interface of the lb namespace and starts xvsd', async () => {
    const [first, ...rest] = lab.lbInterfaces;
    expect(await x('--attach', first!, '--netns', lab.lb.name, '--xdp-mode', 'native')).toEqual(ok());
    for (const ifname of rest) expect(await x('--attach', ifname)).toEqual(ok());
    expect(existsSync(`${pinPath}/links/${first}`)).toBe(true);
    const again = await x('--attach', first!);
    expect([again.status, again.stderr]).toEqual([255, `xvs is already attached to ${first}\n`]);
  });

  it('balances real TCP connections to a DR service (rr) and a NAT service (wrr, port mapped)', async () => {
    expect(await x('-A', '-t', `${VIP}:80`, '-s', 'rr')).toEqual(ok());
    for (const r of lab.reals) expect(await x('-a', '-t', `${VIP}:80`, '-r', r.address, '-g')).toEqual(ok());
    expect(await x('-A', '-t', `${VIP}:8080`, '-s', 'wrr')).toEqual(ok());
    for (const [i, r] of lab.reals.entries()) {
      expect(await x('-a', '-t', `${VIP}:8080`, '-r', `${r.address}:80`, '-m', '-w', String(3 - i))).toEqual(ok());
    }

    const dr = await runClient(lab.client, { proto: 'tcp', host: VIP, port: 80, count: 30 });
    expect(dr).toMatchObject({ failures: 0, answers: { r1: 10, r2: 10, r3: 10 } });
    const nat = await runClient(lab.client, { proto: 'tcp', host: VIP, port: 8080, count: 30 });
    expect(nat).toMatchObject({ failures: 0, answers: { r1: 15, r2: 10, r3: 5 } });

    const stats = await x('-L', '-n', '--stats', '-t', `${VIP}:80`);
    expect(stats.stdout).toMatch(/^TCP {2}10\.100\.0\.1:80 +30 /m);
    for (const r of lab.reals) expect(stats.stdout).toMatch(new RegExp(`^  -> ${r.address.replace(/\./g, '\\.')}:80 +10 `, 'm'));
  });

  it('lists the connections of the client with -c', async () => {
    const { status, stdout } = await x('-L', '-n', '-c');
    expect(status).toBe(0);
    const rows = stdout.split('\n').slice(2).filter(Boolean);
    expect(rows.length).toBeGreaterThanOrEqual(60);
    for (const row of rows) expect(row).toMatch(/^TCP \d\d:\d\d  \S+ +10\.0\.0\.1:\d+ +10\.100\.0\.1:(80|8080) +10\.[123]\.0\.1:80$/);
  });

  it('shows rates estimated by the xvsd that --attach started', async () => {
    await runClient(lab.client, { proto: 'tcp', host: VIP, port: 80, count: 60 });
    await sleep(4500); // two estimator ticks
    const rate = await x('-L', '-n', '--rate', '-t', `${VIP}:80`);
    expect(rate.status).toBe(0);
    const line = rate.stdout.split('\n')[2]!;
    const [cps, inpps] = line.trim().split(/\s+/).slice(2).map(Number);
    expect(cps).toBeGreaterThan(0);
    expect(inpps).toBeGreaterThan(cps!);
  });

  it('keeps the configuration when no process holds it, and --teardown removes everything', async () => {
    const listing = await x('-S', '-n');
    expect(listing.stdout.split('\n').filter(Boolean)).toHaveLength(8);
    for (const ifname of lab.lbInterfaces.slice(1)) expect(await x('--detach', ifname)).toEqual(ok());
    expect((await x('--detach', 'r1')).stderr).toBe('xvs is not attached to r1\n');
    expect(await x('--teardown')).toEqual(ok());
    expect(existsSync(pinPath)).toBe(false);
    const after = await runClient(lab.client, { proto: 'tcp', host: VIP, port: 80, count: 3, timeoutMs: 500 });
    expect(after.failures).toBe(3);
  });
});
