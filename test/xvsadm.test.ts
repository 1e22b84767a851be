// xvsadm on the real dataplane: every command goes through the CLI's runner (the bin's code, in
// this process for speed, or the bin itself where it says so) against pinned maps; traffic is
// real frames through the XDP program (BPF_PROG_TEST_RUN) in a namespace of its own. Listings are
// compared byte for byte with what ipvsadm 1.31 prints for the same state.
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Balancer } from '../lib/balancer.js';
import { daemonTick, registerDaemon, unregisterDaemon } from '../lib/daemon.js';
import * as L from '../lib/layout.js';
import { packetLab, type PacketLab } from './helpers/lb.js';
import { buildFrame, parseFrame } from './helpers/packet.js';
import {
  ensureBuilt, removeTestPins, spawnProcess, spawnXvsadm, testPinPath, xvsadm, XVSADM_BIN, type Result,
} from './helpers/xvsadm.js';

const VIP = '10.0.0.100';
const CLIENT = '10.2.0.5';
const HEADER = 'IP Virtual Server version 1.2.1 (size=4096)\n';
const TITLE = 'Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n';
const CONFIG = [
  ['-A', '-t', `${VIP}:80`, '-s', 'rr'],
  ['-a', '-t', `${VIP}:80`, '-r', '10.1.0.11', '-g'],
  ['-a', '-t', `${VIP}:80`, '-r', '10.1.0.12', '-g', '-w', '2'],
  ['-A', '-t', `${VIP}:8080`, '-s', 'wrr'],
  ['-a', '-t', `${VIP}:8080`, '-r', '10.1.0.21:80', '-m', '-w', '3'],
  ['-A', '-u', `${VIP}:53`, '-s', 'rr'],
  ['-a', '-u', `${VIP}:53`, '-r', '10.1.0.21:5353', '-m'],
];

let pinPath: string;
let lab: PacketLab;

const x = (...args: string[]) => xvsadm(pinPath, args);
const ok = (stdout = ''): Result => ({ status: 0, stdout, stderr: '' });

function tcp(sport: number, dport: number, flags: string): Buffer {
  return buildFrame({ srcMac: '02:00:00:00:02:05', ip: { src: CLIENT, dst: VIP }, tcp: { sport, dport, flags, seq: 1 } });
}

function udp(sport: number, dport: number): Buffer {
  return buildFrame({ srcMac: '02:00:00:00:02:05', ip: { src: CLIENT, dst: VIP }, udp: { sport, dport }, payload: 'ping' });
}

async function configure(): Promise<void> {
  expect(await x('-C')).toEqual(ok());
  for (const args of CONFIG) expect(await x(...args), args.join(' ')).toEqual(ok());
}

beforeAll(async () => {
  pinPath = testPinPath();
  lab = await packetLab({ pinPath });
});

afterAll(async () => {
  await lab?.destroy();
  await removeTestPins(pinPath);
});

describe('listings on the running dataplane', () => {
  beforeAll(async () => {
    await configure();
    expect(lab.run(tcp(30000, 80, 'S')).verdict).toBe('redirect');
    expect(lab.run(tcp(30000, 80, 'A')).verdict).toBe('redirect');
    expect(lab.run(tcp(30001, 8080, 'S')).verdict).toBe('redirect');
    expect(lab.run(udp(30002, 53)).verdict).toBe('redirect');
  });

  it('-L -n: services sorted, real servers sorted, connection counts', async () => {
    expect(await x('-L', '-n')).toEqual(ok(
      HEADER + TITLE +
        'TCP  10.0.0.100:80 rr\n' +
        '  -> 10.1.0.11:80                 Route   1      0          0         \n' +
        '  -> 10.1.0.12:80                 Route   2      1          0         \n' +
        'TCP  10.0.0.100:8080 wrr\n' +
        '  -> 10.1.0.21:80                 Masq    3      0          1         \n' +
        'UDP  10.0.0.100:53 rr\n' +
        '  -> 10.1.0.21:5353               Masq    1      0          1         \n',
    ));
    expect(await x('-ln')).toEqual(await x('--list', '--numeric', '--sort'));
  });

  it('-L -n -t: one service, without the version line', async () => {
    expect(await x('-L', '-n', '-t', `${VIP}:8080`)).toEqual(ok(
      TITLE + 'TCP  10.0.0.100:8080 wrr\n' + '  -> 10.1.0.21:80                 Masq    3      0          1         \n',
    ));
  });

  it('--nosort keeps the kernel order: newest real server first', async () => {
    const out = (await x('-L', '-n', '--nosort')).stdout;
    expect(out).toContain(
      'TCP  10.0.0.100:80 rr\n' +
        '  -> 10.1.0.12:80                 Route   2      1          0         \n' +
        '  -> 10.1.0.11:80                 Route   1      0          0         \n',
    );
  });

  it('--stats and --stats --exact count what went through the program', async () => {
    const stats =
      HEADER +
      'Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  -> RemoteAddress:Port\n' +
      'TCP  10.0.0.100:80                       1        2        0       80        0\n' +
      '  -> 10.1.0.11:80                        0        0        0        0        0\n' +
      '  -> 10.1.0.12:80                        1        2        0       80        0\n' +
      'TCP  10.0.0.100:8080                     1        1        0       40        0\n' +
      '  -> 10.1.0.21:80                        1        1        0       40        0\n' +
      'UDP  10.0.0.100:53                       1        1        0       32        0\n' +
      '  -> 10.1.0.21:5353                      1        1        0       32        0\n';
    expect(await x('-L', '-n', '--stats')).toEqual(ok(stats));
    expect(await x('-L', '-n', '--stats', '--exact')).toEqual(ok(stats));
  });

  it('--thresholds, --persistent-conn and --tun-info', async () => {
    expect(await x('-L', '-n', '--thresholds', '-t', `${VIP}:80`)).toEqual(ok(
      'Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n  -> RemoteAddress:Port\n' +
        'TCP  10.0.0.100:80 rr\n' +
        '  -> 10.1.0.11:80                 0          0          0          0         \n' +
        '  -> 10.1.0.12:80                 0          0          1          0         \n',
    ));
    expect(await x('-L', '-n', '--persistent-conn', '-u', `${VIP}:53`)).toEqual(ok(
      'Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn \n  -> RemoteAddress:Port\n' +
        'UDP  10.0.0.100:53 rr\n' +
        '  -> 10.1.0.21:5353               1         0           0          1         \n',
    ));
    expect(await x('-L', '-n', '--tun-info', '-t', `${VIP}:8080`)).toEqual(ok(
      'Prot LocalAddress:Port Scheduler Flags\n' +
        '  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n' +
        'TCP  10.0.0.100:8080 wrr\n' +
        '  -> 10.1.0.21:80                 Masq    n/a           3      0          1         \n',
    ));
  });

  it('-c lists the connections: protocol, expiry, state, source, virtual, destination', async () => {
    const { status, stdout } = await x('-L', '-n', '-c');
    expect(status).toBe(0);
    const [title, header, ...rows] = stdout.trimEnd().split('\n');
    expect([title, header]).toEqual([
      'IPVS connection entries',
      'pro expire state       source             virtual            destination',
    ]);
    // The expiry counts down while the test runs: checked as a range, the rest byte for byte.
    const expiry = (row: string) => Number(row.slice(4, 6)) * 60 + Number(row.slice(7, 9));
    const byState = Object.fromEntries(rows.map((r) => [r.slice(11, 22).trim(), r]));
    expect(Object.keys(byState).sort()).toEqual(['ESTABLISHED', 'SYN_RECV', 'UDP']);
    for (const [state, full, row] of [
      ['ESTABLISHED', 900, 'TCP 14:59  ESTABLISHED 10.2.0.5:30000     10.0.0.100:80      10.1.0.12:80'],
      ['SYN_RECV', 60, 'TCP 00:59  SYN_RECV    10.2.0.5:30001     10.0.0.100:8080    10.1.0.21:80'],
      ['UDP', 300, 'UDP 04:59  UDP         10.2.0.5:30002     10.0.0.100:53      10.1.0.21:5353'],
    ] as const) {
      const got = byState[state]!;
      expect(got.slice(0, 4) + got.slice(9)).toBe(row.slice(0, 4) + row.slice(9));
      expect(expiry(got)).toBeGreaterThan(full - 10);
      expect(expiry(got)).toBeLessThan(full);
    }
    expect((await x('-L', '-n', '-c', '--persistent-conn')).stdout.split('\n')[1]).toBe(
      'pro expire state       source             virtual            destination        pe name          pe_data',
    );
  });

  it('-S and -S -n print the restorable configuration', async () => {
    const rules =
      '-A -t 10.0.0.100:80 -s rr\n' +
      '-a -t 10.0.0.100:80 -r 10.1.0.11:80 -g -w 1\n' +
      '-a -t 10.0.0.100:80 -r 10.1.0.12:80 -g -w 2\n' +
      '-A -t 10.0.0.100:8080 -s wrr\n' +
      '-a -t 10.0.0.100:8080 -r 10.1.0.21:80 -m -w 3\n' +
      '-A -u 10.0.0.100:53 -s rr\n' +
      '-a -u 10.0.0.100:53 -r 10.1.0.21:5353 -m -w 1\n';
    expect(await x('-S', '-n')).toEqual(ok(rules));
    expect(await x('--save', '--numeric')).toEqual(ok(rules));
  });

  it('--timeout, --set and --daemon', async () => {
    expect(await x('-L', '--timeout')).toEqual(ok('Timeout (tcp tcpfin udp): 900 120 300\n'));
    expect(await x('--set', '1000', '0', '200')).toEqual(ok());
    expect(await x('-L', '--timeout')).toEqual(ok('Timeout (tcp tcpfin udp): 1000 120 200\n'));
    expect(await x('--set', '900', '120', '300')).toEqual(ok());
    expect(await x('-L', '--timeout')).toEqual(ok('Timeout (tcp tcpfin udp): 900 120 300\n'));
    // No connection synchronisation daemon runs, as IPVS prints for none.
    expect(await x('-L', '--daemon')).toEqual(ok());
  });

  it('--rate says when xvsd does not run, and prints its estimates when it does', async () => {
    const none = await x('-L', '-n', '--rate');
    expect(none.status).toBe(1);
    expect(none.stdout).toBe('');
    expect(none.stderr).toContain(`rates are estimated by xvsd, which is not running for ${pinPath}`);

    // This process plays xvsd: it registers and ticks with xvsd's own functions.
    const b = Balancer.open({ pinPath });
    try {
      expect(registerDaemon(b)).toBe(0);
      for (let i = 0; i < 100; i++) lab.run(tcp(31000 + i, 8080, 'S'));
      daemonTick(b); // 100 connections, 100 packets, 4000 bytes in this interval
      expect(await x('-L', '-n', '--rate', '-t', `${VIP}:8080`)).toEqual(ok(
        'Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n  -> RemoteAddress:Port\n' +
          'TCP  10.0.0.100:8080                    12       12        0      500        0\n' +
          '  -> 10.1.0.21:80                       12       12        0      500        0\n',
      ));
      expect((await x('-L', '-n', '--rate', '--exact', '-t', `${VIP}:80`)).stdout).toContain(
        'TCP  10.0.0.100:80                       0        0        0        0        0\n' +
          '  -> 10.1.0.11:80                        0        0        0        0        0\n',
      );
      // -Z zeroes the rates with the counters (ip_vs_zero_estimator).
      expect(await x('-Z', '-t', `${VIP}:8080`)).toEqual(ok());
      expect((await x('-L', '-n', '--rate', '-t', `${VIP}:8080`)).stdout).toContain(
        'TCP  10.0.0.100:8080                     0        0        0        0        0\n',
      );
    } finally {
      unregisterDaemon(b);
      b.close();
    }
  });

  it('-Z zeroes one service, then all', async () => {
    await x('-Z', '-t', `${VIP}:80`);
    const one = (await x('-L', '-n', '--stats')).stdout;
    expect(one).toContain('TCP  10.0.0.100:80                       0        0        0        0        0\n');
    expect(one).toContain('UDP  10.0.0.100:53                       1        1        0       32        0\n');
    expect(await x('--zero')).toEqual(ok());
    expect((await x('-L', '-n', '--stats')).stdout).toContain('UDP  10.0.0.100:53                       0        0        0        0        0\n');
  });
});

describe('mistakes: ipvsadm exit codes and messages, and nothing changes', () => {
  beforeAll(configure);

  it.each([
    [['-A', '-t', `${VIP}:80`, '-s', 'wrr'], 255, 'Service already exists\n'],
    [['-E', '-t', `${VIP}:81`, '-s', 'rr'], 255, 'No such service\n'],
    [['-D', '-t', `${VIP}:81`], 255, 'No such service\n'],
    [['-Z', '-u', `${VIP}:80`], 255, 'No such service\n'],
    [['-a', '-t', `${VIP}:81`, '-r', '10.1.0.11'], 255, 'Service not defined\n'],
    [['-a', '-t', `${VIP}:80`, '-r', '10.1.0.11', '-w', '5'], 255, 'Destination already exists\n'],
    [['-d', '-t', `${VIP}:80`, '-r', '10.1.0.13'], 255, 'No such destination\n'],
    [['-e', '-t', `${VIP}:80`, '-r', '10.1.0.13', '-w', '3'], 255, 'No such destination\n'],
    [['-A', '-t', `${VIP}:81`, '-s', 'fastest'], 255, 'Scheduler or persistence engine not found\n'],
    [['-E', '-t', `${VIP}:80`, '-s', 'fastest'], 255, 'Scheduler or persistence engine not found\n'],
    [['-A', '-u', `${VIP}:5060`, '-p', '60', '--pe', 'foo'], 255, 'Scheduler or persistence engine not found\n'],
    [['-A', '-u', `${VIP}:5060`, '-p', '60', '--pe', 'SIP'], 255, 'Scheduler or persistence engine not found\n'],
    [['-E', '-u', `${VIP}:53`, '-s', 'rr', '--pe', 'sipx'], 255, 'Scheduler or persistence engine not found\n'],
    [['-E', '-u', `${VIP}:5060`, '-p', '--pe', 'sip'], 255, 'No such service\n'],
    [['-A', '-t', `${VIP}:80`, '-p', '--pe', 'sip'], 255, 'Service already exists\n'],
    [['-A', '-u', `${VIP}:5060`, '-p', '--pe', 'sip', '--pe', 'sip'], 2, "multiple 'pe' options specified\n"],
    [['-a', '-u', `${VIP}:53`, '-r', '10.1.0.13', '--pe', 'sip'], 2, "Illegal 'pe' option with the 'add-server' command\n"],
    [['-a', '-t', `${VIP}:80`, '-r', '10.1.0.13', '-x', '0', '-y', '10'], 255, 'Numerical result out of range\n'],
    [['--set', '2600000', '0', '0'], 255, 'Invalid operation.  Possibly wrong module version, address not unicast, ...\n'],
    [['-a', '-t', `${VIP}:80`, '-r', '10.1.0.13', '-w', '2147483648'], 2, 'illegal weight specified\n'],
    [['-A', '-t', `${VIP}:0`, '-s', 'rr'], 2, 'Zero port specified for non-persistent service\n'],
    [['-A', '-t', '10.0.0.256:80'], 2, 'illegal virtual server address[:port] specified\n'],
    [['-L', '-t', `${VIP}:81`], 1, 'No such service\n'],
    [['--start-daemon', 'master'], 255, 'connection synchronisation (--start-daemon/--stop-daemon) is not implemented in xvs yet: it is a later feature\n'],
    [['--stop-daemon', 'backup'], 255, 'connection synchronisation (--start-daemon/--stop-daemon) is not implemented in xvs yet: it is a later feature\n'],
  ])('ipvsadm %j: status %i, %j', async (args, status, stderr) => {
    const before = await x('-S', '-n');
    expect(await x(...args)).toEqual({ status, stdout: '', stderr });
    expect(await x('-S', '-n')).toEqual(before);
  });

  it('takes every scheduler, persistence, one-packet, firewall marks, thresholds and -b, and reads them back', async () => {
    const before = await x('-S', '-n');
    const made = [
      ['-A', '-t', `${VIP}:81`],
      ['-A', '-t', `${VIP}:82`, '-s', 'rr', '-p', '600', '-M', '255.255.255.0'],
      ['-A', '-u', `${VIP}:54`, '-s', 'sh', '-b', 'sh-port', '-o'],
      ['-A', '-f', '7', '-s', 'lblcr', '-p'],
      ['-a', '-f', '7', '-r', '10.1.0.13', '-x', '10', '-y', '5'],
      ['-A', '-t', `${VIP}:83`, '-s', 'mh', '-b', 'mh-fallback,mh-port'],
    ];
    for (const args of made) expect(await x(...args), args.join(' ')).toEqual(ok());
    const saved = (await x('-S', '-n')).stdout;
    for (const line of [
      '-A -t 10.0.0.100:81 -s wlc\n',
      '-A -t 10.0.0.100:82 -s rr -p 600 -M 255.255.255.0\n',
      '-A -u 10.0.0.100:54 -s sh -o -b sh-port\n',
      '-A -f 7 -s lblcr -p 360\n',
      '-a -f 7 -r 10.1.0.13:0 -g -w 1\n',
      '-A -t 10.0.0.100:83 -s mh -b mh-fallback,mh-port\n',
    ]) {
      expect(saved).toContain(line);
    }
    // Read back by another process from the pinned maps: thresholds too.
    expect((await x('-L', '-n', '--thresholds', '-f', '7')).stdout).toMatch(/-> 10\.1\.0\.13:0 +10 +5 /);
    for (const args of [['-D', '-t', `${VIP}:81`], ['-D', '-t', `${VIP}:82`], ['-D', '-u', `${VIP}:54`], ['-D', '-f', '7'], ['-D', '-t', `${VIP}:83`]]) {
      expect(await x(...args)).toEqual(ok());
    }
    expect(await x('-S', '-n')).toEqual(before);
  });

  it('takes --pe sip as ipvsadm 1.31 and Linux 6.1 do: listed with persistence only, saved always, -E without it drops it', async () => {
    const before = await x('-S', '-n');
    for (const args of [
      ['-A', '-u', `${VIP}:5060`, '-s', 'rr', '-p', '60', '--pe', 'sip'],
      ['-A', '-u', `${VIP}:5061`, '-s', 'sh', '-b', 'sh-port,sh-fallback', '-p', '60', '-M', '255.255.0.0', '--pe', 'sip', '-o'],
      ['-A', '-t', `${VIP}:5062`, '-s', 'rr', '--pe', 'sip'],
      ['-A', '-u', `${VIP}:5063`, '-s', 'rr', '--pe', ''],
      ['-A', '-u', '[fd00:100::1]:5060', '-s', 'rr', '-p', '60', '-M', '64', '--pe', 'sip'],
    ]) {
      expect(await x(...args), args.join(' ')).toEqual(ok());
    }
    const listed = (await x('-L', '-n')).stdout;
    for (const line of [
      'UDP  10.0.0.100:5060 rr persistent 60 pe sip\n',
      'UDP  10.0.0.100:5061 sh (sh-fallback,sh-port) persistent 60 mask 255.255.0.0 pe sip ops\n',
      'TCP  10.0.0.100:5062 rr\n',
      'UDP  10.0.0.100:5063 rr\n',
      'UDP  [fd00:100::1]:5060 rr persistent 60 mask 64 pe sip\n',
    ]) {
      expect(listed).toContain(line);
    }
    const saved = (await x('-S', '-n')).stdout;
    for (const line of [
      '-A -u 10.0.0.100:5060 -s rr -p 60 --pe sip\n',
      '-A -u 10.0.0.100:5061 -s sh -p 60 -M 255.255.0.0 --pe sip -o -b sh-fallback,sh-port\n',
      '-A -t 10.0.0.100:5062 -s rr --pe sip\n',
      '-A -u 10.0.0.100:5063 -s rr\n',
      '-A -u [fd00:100::1]:5060 -s rr -p 60 -M 64 --pe sip\n',
    ]) {
      expect(saved).toContain(line);
    }
    expect(await x('-E', '-u', `${VIP}:5060`, '-s', 'rr', '-p', '60')).toEqual(ok());
    expect(await x('-E', '-t', `${VIP}:5062`, '-s', 'rr', '-p', '30', '--pe', 'sip')).toEqual(ok());
    expect((await x('-S', '-n')).stdout).toContain('-A -u 10.0.0.100:5060 -s rr -p 60\n-A -t 10.0.0.100:5062 -s rr -p 30 --pe sip\n'.split('\n')[0]);
    expect((await x('-L', '-n', '-t', `${VIP}:5062`)).stdout).toContain('TCP  10.0.0.100:5062 rr persistent 30 pe sip\n');
    for (const args of [['-D', '-u', `${VIP}:5060`], ['-D', '-u', `${VIP}:5061`], ['-D', '-t', `${VIP}:5062`], ['-D', '-u', `${VIP}:5063`], ['-D', '-u', '[fd00:100::1]:5060']]) {
      expect(await x(...args)).toEqual(ok());
    }
    expect(await x('-S', '-n')).toEqual(before);
  });

  it('-E replaces the whole service, as ipvsadm sends it: no -s means wlc', async () => {
    expect(await x('-E', '-t', `${VIP}:80`)).toEqual(ok());
    expect((await x('-L', '-n', '-t', `${VIP}:80`)).stdout).toContain('TCP  10.0.0.100:80 wlc\n');
    expect(await x('-E', '-t', `${VIP}:80`, '-s', 'wrr')).toEqual(ok());
    expect((await x('-L', '-n', '-t', `${VIP}:80`)).stdout).toContain('TCP  10.0.0.100:80 wrr\n');
  });

  it('-e replaces the whole real server: no -w means weight 1, no -m means gatewaying', async () => {
    expect(await x('-e', '-t', `${VIP}:80`, '-r', '10.1.0.12')).toEqual(ok());
    expect((await x('-S', '-n')).stdout).toContain('-a -t 10.0.0.100:80 -r 10.1.0.12:80 -g -w 1\n');
  });
});

describe('state lives in the pinned maps, not in a process', () => {
  it('a later process carries on with the scheduler where the dataplane left it', async () => {
    expect(await x('-C')).toEqual(ok());
    await x('-A', '-t', `${VIP}:80`, '-s', 'rr');
    await x('-a', '-t', `${VIP}:80`, '-r', '10.1.0.11');
    await x('-a', '-t', `${VIP}:80`, '-r', '10.1.0.12');
    const realOf = (sport: number) => parseFrame(lab.run(tcp(sport, 80, 'S')).out).dstMac;
    // rr starts at the head of the list: the newest real server.
    expect(realOf(32000)).toBe('02:00:00:00:01:12');
    // Another process adds 10.1.0.13 at the head; the kernel's cursor stays on .12, so .11 is next.
    await x('-a', '-t', `${VIP}:80`, '-r', '10.1.0.13');
    expect([realOf(32001), realOf(32002), realOf(32003)]).toEqual(['02:00:00:00:01:11', '02:00:00:00:01:13', '02:00:00:00:01:12']);
  });

  it('serialises the changes of concurrent processes, and takes over the lock of a dead one', async () => {
    expect(await x('-C')).toEqual(ok());
    const rules = (third: number) =>
      Array.from({ length: 200 }, (_, i) => `-A -t 10.${third}.${i >> 8}.${i & 255}:80 -s rr\n-a -t 10.${third}.${i >> 8}.${i & 255}:80 -r 10.1.0.11`).join('\n');
    ensureBuilt();
    const results = await Promise.all([201, 202, 203].map((third) => spawnXvsadm(pinPath, ['-R'], { XVS_NO_XVSD: '1' }, rules(third))));
    expect(results).toEqual([ok(), ok(), ok()]);
    expect((await x('-S', '-n')).stdout.split('\n').filter(Boolean)).toHaveLength(1200);

    const dead = await spawnProcess(process.execPath, ['-e', 'console.log(process.pid)'], {});
    const b = Balancer.open({ pinPath });
    try {
      const key = Buffer.alloc(4);
      b.dataplane.map('ctl_lock').update(key, L.ctlLock.encode({ pid: Number(dead.stdout), sinceNs: 0n }));
      expect(await x('-C')).toEqual(ok());
      expect(b.dataplane.map('ctl_lock').lookup(key)).toBeUndefined();
    } finally {
      b.close();
    }
  });

  it('-R with a failing operation goes on; a line ipvsadm cannot parse ends it', async () => {
    expect(await x('-C')).toEqual(ok());
    const input = [
      `-A -t ${VIP}:80 -s rr`,
      `-A -t ${VIP}:80 -s rr`,
      `-a -t ${VIP}:80 -r 10.1.0.11`,
      `-a -t ${VIP}:80 -r 10.1.0.12 -w nine`,
      `-a -t ${VIP}:80 -r 10.1.0.13`,
    ].join('\n');
    expect(await xvsadm(pinPath, ['-R'], input)).toEqual({ status: 2, stdout: '', stderr: 'Service already exists\nillegal weight specified\n' });
    expect((await x('-S', '-n')).stdout).toBe(`-A -t ${VIP}:80 -s rr\n-a -t ${VIP}:80 -r 10.1.0.11:80 -g -w 1\n`);
    // The last line's status is -R's status.
    expect(await xvsadm(pinPath, ['-R'], `-A -t ${VIP}:80 -s rr\n-L -n -t ${VIP}:80\n`)).toEqual({
      status: 0,
      stdout: TITLE + 'TCP  10.0.0.100:80 rr\n  -> 10.1.0.11:80                 Route   1      0          0         \n',
      stderr: 'Service already exists\n',
    });
  });
});

describe('--add-mark-rule, --del-mark-rule, --list-mark-rules: the marks of firewall-mark services', () => {
  it('adds, lists and deletes rules across separate processes; the dataplane marks by them', async () => {
    expect(await x('-C')).toEqual(ok());
    ensureBuilt();
    const bin = (...args: string[]) => spawnXvsadm(pinPath, args, { XVS_NO_XVSD: '1' });
    for (const rule of ['10.0.0.0/8=3', '10.0.0.100,tcp,90=7', '10.0.0.0/24,udp,53-60=9', 'fd00::/64,tcp,80-89=11']) {
      expect(await bin('--add-mark-rule', rule), rule).toEqual(ok());
    }
    // Another process reads them back from the pinned maps: IPv4 first, longest prefix first.
    const listed = '10.0.0.100/32,tcp,90=7\n10.0.0.0/24,udp,53-60=9\n10.0.0.0/8=3\nfd00::/64,tcp,80-89=11\n';
    expect(await x('--list-mark-rules')).toEqual(ok(listed));
    expect(await bin('--list-mark-rules')).toEqual(ok(listed));

    // A packet to 10.0.0.100:90 gets mark 7 and so goes to the -f 7 service.
    expect(await x('-A', '-f', '7', '-s', 'rr')).toEqual(ok());
    expect(await x('-a', '-f', '7', '-r', '10.1.0.12', '-g')).toEqual(ok());
    expect(parseFrame(lab.run(tcp(33000, 90, 'S')).out).dstMac).toBe('02:00:00:00:01:12');

    expect(await bin('--del-mark-rule', '10.0.0.100/32,tcp,90=7')).toEqual(ok());
    expect(await x('--del-mark-rule', 'fd00::/64,tcp,80-89=11')).toEqual(ok());
    expect(await bin('--list-mark-rules')).toEqual(ok('10.0.0.0/24,udp,53-60=9\n10.0.0.0/8=3\n'));
    expect(await x('--del-mark-rule', '10.0.0.0/24,udp,53-60=9')).toEqual(ok());
    expect(await x('--del-mark-rule', '10.0.0.0/8=3')).toEqual(ok());
    expect(await x('--list-mark-rules')).toEqual(ok());
    expect(await x('-C')).toEqual(ok());
  });

  it('refuses a malformed rule (status 2), a duplicate or unknown one (status 255), and changes nothing', async () => {
    expect(await x('--add-mark-rule', '10.0.0.0/24,tcp,80=5')).toEqual(ok());
    const before = await x('--list-mark-rules');
    expect(await x('--add-mark-rule', '10.0.0.0/24,sctp=5')).toEqual({
      status: 2,
      stdout: '',
      stderr: 'illegal mark rule 10.0.0.0/24,sctp=5: sctp is not tcp, udp, a port or a port range LO-HI (syntax: prefix[,tcp|udp][,port|lo-hi]=mark)\n',
    });
    expect((await x('--add-mark-rule', '10.0.0.0/33=5')).status).toBe(2);
    expect((await x('--add-mark-rule', '10.0.0.0/24,tcp,80')).status).toBe(2);
    expect(await x('--add-mark-rule', '10.0.0.0/24,tcp,80=5')).toEqual({ status: 255, stdout: '', stderr: 'Mark rule already exists\n' });
    expect(await x('--del-mark-rule', '10.0.0.0/24,tcp,81=5')).toEqual({ status: 255, stdout: '', stderr: 'No such mark rule\n' });
    expect((await x('--list-mark-rules', '-n')).status).toBe(2);
    expect(await x('--list-mark-rules')).toEqual(before);
    expect(await x('--del-mark-rule', '10.0.0.0/24,tcp,80=5')).toEqual(ok());
  });
});

describe('--sysctl: the kernel IPVS sysctls xvs has', () => {
  it('shows and sets expire_nodest_conn and expire_quiescent_template across processes; refuses others', async () => {
    expect(await x('--sysctl', 'net.ipv4.vs.expire_quiescent_template')).toEqual(ok('net.ipv4.vs.expire_quiescent_template = 0\n'));
    expect(await x('--sysctl', 'expire_quiescent_template=1')).toEqual(ok());
    expect(await x('--sysctl', 'expire_quiescent_template')).toEqual(ok('net.ipv4.vs.expire_quiescent_template = 1\n'));
    expect(await x('--sysctl', 'expire_quiescent_template=0')).toEqual(ok());
    expect(await x('--sysctl', 'expire_quiescent_template=2')).toEqual({
      status: 255, stdout: '', stderr: 'invalid value for expire_quiescent_template: 2 (0 or 1)\n',
    });
    expect((await x('--sysctl', 'conn_reuse_mode')).stderr).toMatch(/^unknown sysctl conn_reuse_mode/);
    expect((await x('--sysctl', 'expire nodest')).status).toBe(2);
    expect(await x('--sysctl', 'expire_quiescent_template')).toEqual(ok('net.ipv4.vs.expire_quiescent_template = 0\n'));
  });
});

describe('scripts as keepalived users keep them, run unchanged', () => {
  it('replays an ipvsadm shell script against the xvsadm bin and lists the result', async () => {
    ensureBuilt();
    chmodSync(XVSADM_BIN, 0o755);
    const dir = mkdtempSync(join(tmpdir(), 'xvsadm-script-'));
    try {
      symlinkSync(XVSADM_BIN, join(dir, 'ipvsadm'));
      const script = join(dir, 'lvs.sh');
      writeFileSync(
        script,
        [
          '#!/bin/sh',
          'set -e',
          'ipvsadm -C',
          '# web: weighted, two real servers',
          `ipvsadm -A -t ${VIP}:80 -s wrr`,
          `ipvsadm -a -t ${VIP}:80 -r 10.1.0.11:80 -g -w 100`,
          `ipvsadm -a -t ${VIP}:80 -r 10.1.0.12:80 -g -w 100`,
          `ipvsadm -A -t ${VIP}:https -s rr`,
          `ipvsadm -a -t ${VIP}:https -r 10.1.0.11 -g`,
          `ipvsadm -a -t ${VIP}:https -r 10.1.0.12 -g`,
          `ipvsadm --add-service --udp-service ${VIP}:domain --scheduler rr`,
          `ipvsadm --add-server --udp-service ${VIP}:domain --real-server 10.1.0.21:5353 --masquerading`,
          '# health check of 10.1.0.12 fails: drain web, drop https',
          `ipvsadm -e -t ${VIP}:80 -r 10.1.0.12:80 -g -w 0`,
          `ipvsadm -d -t ${VIP}:443 -r 10.1.0.12`,
          '# it is back',
          `ipvsadm -a -t ${VIP}:443 -r 10.1.0.12 -g -w 1 || echo "already there"`,
          `ipvsadm -a -t ${VIP}:443 -r 10.1.0.12 -g -w 1 || echo "already there"`,
          `ipvsadm -E -t ${VIP}:443 -s wrr`,
          `ipvsadm -D -u ${VIP}:53`,
          'ipvsadm -Ln',
        ].join('\n') + '\n',
      );
      const r = await spawnProcess('/bin/sh', [script], { PATH: `${dir}:${process.env.PATH}`, XVS_PIN_PATH: pinPath });
      expect(r).toEqual({
        status: 0,
        stderr: 'Destination already exists\n',
        stdout:
          'already there\n' + HEADER + TITLE +
          'TCP  10.0.0.100:80 wrr\n' +
          '  -> 10.1.0.11:80                 Route   100    0          0         \n' +
          '  -> 10.1.0.12:80                 Route   0      0          0         \n' +
          'TCP  10.0.0.100:443 wrr\n' +
          '  -> 10.1.0.11:443                Route   1      0          0         \n' +
          '  -> 10.1.0.12:443                Route   1      0          0         \n',
      });
      // The name it was called by is the name in its messages.
      const help = await spawnProcess(join(dir, 'ipvsadm'), ['--nosuch'], { XVS_PIN_PATH: pinPath });
      expect(help).toEqual({ status: 255, stdout: '', stderr: "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('-S / -R round trip', () => {
  it('restores 1,000 services x 10 real servers to an identical configuration', async () => {
    // Written in the order -S prints: TCP services before UDP ones, then by address.
    const tcp: string[] = [];
    const udp: string[] = [];
    for (let s = 0; s < 1000; s++) {
      const vip = `10.200.${s >> 8}.${s & 255}`;
      const [lines, proto, port] = s % 3 === 2 ? [udp, '-u', 53] : [tcp, '-t', 80];
      lines.push(`-A ${proto} ${vip}:${port} -s ${s % 2 ? 'wrr' : 'rr'}`);
      for (let r = 1; r <= 10; r++) {
        const nat = (s + r) % 4 === 0;
        lines.push(`-a ${proto} ${vip}:${port} -r 10.3.${r}.${(s % 250) + 1}:${nat ? 8000 + r : port} ${nat ? '-m' : '-g'} -w ${(s * r) % 7}`);
      }
    }
    const rules = [...tcp, ...udp].join('\n') + '\n';
    expect(await x('-C')).toEqual(ok());
    expect(await spawnXvsadm(pinPath, ['-R'], { XVS_NO_XVSD: '1' }, rules)).toEqual(ok());
    const saved = await x('-S', '-n');
    expect(saved).toEqual(ok(rules));
    const listed = (await x('-L', '-n')).stdout;
    expect(await x('-C')).toEqual(ok());
    expect(await xvsadm(pinPath, ['-R'], saved.stdout)).toEqual(ok());
    expect(await x('-S', '-n')).toEqual(saved);
    expect((await x('-L', '-n')).stdout).toBe(listed);
    expect(await x('-C')).toEqual(ok());
  });
});
