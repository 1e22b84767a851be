// xvsadm's tunnel options (--tun-type, --tun-port, --tun-nocsum/--tun-csum/--tun-remcsum) against
// what ipvsadm 1.31 printed on Linux 6.1's IPVS for the very same session (run in the UML guest):
// listings, -S rules, edits (which, as ipvsadm sends the whole destination, reset what they do
// not name) and every error with its exit code.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTestPins, testPinPath, xvsadm, type Result } from './helpers/xvsadm.js';

let pinPath: string;
const x = (...args: string[]) => xvsadm(pinPath, args);
const ok = (stdout = ''): Result => ({ status: 0, stdout, stderr: '' });
const HEADER = 'IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n';
const TUN_TITLE = '  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n';
const S = '-t 1.2.3.4:80';

const SESSION = [
  '-A -t 1.2.3.4:80',
  `-a ${S} -r 10.0.0.1 -i`,
  `-a ${S} -r 10.0.0.2 -i --tun-type ipip`,
  `-a ${S} -r 10.0.0.3 -i --tun-type gue --tun-port 6080`,
  `-a ${S} -r 10.0.0.4 -i --tun-type gue --tun-port 6081 --tun-nocsum`,
  `-a ${S} -r 10.0.0.5 -i --tun-type gue --tun-port 6082 --tun-csum`,
  `-a ${S} -r 10.0.0.6 -i --tun-type gue --tun-port 6083 --tun-remcsum`,
  `-a ${S} -r 10.0.0.7 -i --tun-type gre`,
  `-a ${S} -r 10.0.0.8 -i --tun-type gre --tun-nocsum`,
  `-a ${S} -r 10.0.0.9 -i --tun-type gre --tun-csum`,
  `-a ${S} -r 10.0.0.10 -m`,
  `-a ${S} -r 10.0.0.11 -g`,
  '-A -t [fd01::1]:80',
  '-a -t [fd01::1]:80 -r 10.0.0.3 -i --tun-type gre --tun-csum',
];

beforeAll(async () => {
  pinPath = testPinPath();
  for (const line of SESSION) expect(await x(...line.split(' ')), line).toEqual(ok());
});

afterAll(async () => {
  if (pinPath) await removeTestPins(pinPath);
});

describe('tunnel options as kernel IPVS keeps and lists them', () => {
  it('-Ln --tun-info', async () => {
    expect(await x('-Ln', '--tun-info')).toEqual(ok(HEADER + TUN_TITLE +
      'TCP  1.2.3.4:80 wlc\n' +
      '  -> 10.0.0.1:80                  Tunnel  ipip          1      0          0         \n' +
      '  -> 10.0.0.2:80                  Tunnel  ipip          1      0          0         \n' +
      '  -> 10.0.0.3:80                  Tunnel  gue:6080:-c   1      0          0         \n' +
      '  -> 10.0.0.4:80                  Tunnel  gue:6081:-c   1      0          0         \n' +
      '  -> 10.0.0.5:80                  Tunnel  gue:6082:+c   1      0          0         \n' +
      '  -> 10.0.0.6:80                  Tunnel  gue:6083:r+c  1      0          0         \n' +
      '  -> 10.0.0.7:80                  Tunnel  gre:-c        1      0          0         \n' +
      '  -> 10.0.0.8:80                  Tunnel  gre:-c        1      0          0         \n' +
      '  -> 10.0.0.9:80                  Tunnel  gre:+c        1      0          0         \n' +
      '  -> 10.0.0.10:80                 Masq    n/a           1      0          0         \n' +
      '  -> 10.0.0.11:80                 Route   n/a           1      0          0         \n' +
      'TCP  [fd01::1]:80 wlc\n' +
      '  -> 10.0.0.3:80                  Tunnel  gre:+c        1      0          0         \n'));
  });

  it('-S -n', async () => {
    expect(await x('-S', '-n')).toEqual(ok(
      '-A -t 1.2.3.4:80 -s wlc\n' +
      '-a -t 1.2.3.4:80 -r 10.0.0.1:80 -i -w 1 --tun-type ipip\n' +
      '-a -t 1.2.3.4:80 -r 10.0.0.2:80 -i -w 1 --tun-type ipip\n' +
      '-a -t 1.2.3.4:80 -r 10.0.0.3:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum\n' +
      '-a -t 1.2.3.4:80 -r 10.0.0.4:80 -i -w 1 --tun-type gue --tun-port 6081 --tun-nocsum\n' +
      '-a -t 1.2.3.4:80 -r 10.0.0.5:80 -i -w 1 --tun-type gue --tun-port 6082 --tun-csum\n' +
      '-a -t 1.2.3.4:80 -r 10.0.0.6:80 -i -w 1 --tun-type gue --tun-port 6083 --tun-remcsum\n' +
      '-a -t 1.2.3.4:80 -r 10.0.0.7:80 -i -w 1 --tun-type gre --tun-nocsum\n' +
      '-a -t 1.2.3.4:80 -r 10.0.0.8:80 -i -w 1 --tun-type gre --tun-nocsum\n' +
      '-a -t 1.2.3.4:80 -r 10.0.0.9:80 -i -w 1 --tun-type gre --tun-csum\n' +
      '-a -t 1.2.3.4:80 -r 10.0.0.10:80 -m -w 1\n' +
      '-a -t 1.2.3.4:80 -r 10.0.0.11:80 -g -w 1\n' +
      '-A -t [fd01::1]:80 -s wlc\n' +
      '-a -t [fd01::1]:80 -r 10.0.0.3:80 -i -w 1 --tun-type gre --tun-csum\n'));
  });

  it.each([
    ['-i --tun-port 6080', "Illegal 'tun-port' option with the 'ipip' tunnel type"],
    ['-i --tun-type gue', "You need to supply the 'tun-port' option for the 'gue' tunnel type"],
    ['-i --tun-type gre --tun-remcsum', "Illegal 'tun-remcsum' option with the 'gre' tunnel type"],
    ['-i --tun-type gre --tun-port 5', "Illegal 'tun-port' option with the 'gre' tunnel type"],
    ['-i --tun-type gue --tun-port 5 --tun-csum --tun-remcsum', "The option 'tun-remcsum' conflicts with the 'tun-csum' option in the 'gue' tunnel type"],
    ['-i --tun-type gue --tun-port 5 --tun-nocsum --tun-csum', "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gue' tunnel type"],
    ['-i --tun-type gre --tun-csum --tun-nocsum', "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gre' tunnel type"],
    ['-i --tun-type ipip --tun-csum', "Illegal 'tun-csum' option with the 'ipip' tunnel type"],
    ['-m --tun-type gue --tun-port 5', 'Tunnel options conflict with forward method'],
    ['-i --tun-type gue --tun-port 0', 'illegal tunnel port specified'],
    ['-i --tun-type gue --tun-port 65536', 'illegal tunnel port specified'],
    ['-i --tun-type foo', 'illegal tunnel type specified'],
    ['-g --tun-csum', 'Tunnel options conflict with forward method'],
    ['--tun-type gre', 'Tunnel options conflict with forward method'],
  ])('refuses %s as ipvsadm does (exit 2, nothing changed)', async (opts, message) => {
    const before = await x('-S', '-n');
    expect(await x('-a', '-t', '1.2.3.4:80', '-r', '10.0.0.20', ...opts.split(' '))).toEqual({ status: 2, stdout: '', stderr: `${message}\n` });
    expect(await x('-S', '-n')).toEqual(before);
  });

  it('edits send the whole destination: what an edit does not name goes back to the default', async () => {
    for (const line of [
      `-e ${S} -r 10.0.0.3 -i -w 5`,
      `-e ${S} -r 10.0.0.5 -i --tun-type gre --tun-csum`,
      `-e ${S} -r 10.0.0.7 -m`,
      `-e ${S} -r 10.0.0.10 -i --tun-type gue --tun-port 7000 --tun-remcsum`,
      `-e ${S} -r 10.0.0.11 -w 3`,
      `-e ${S} -r 10.0.0.4 -w 3`,
    ]) expect(await x(...line.split(' ')), line).toEqual(ok());
    expect(await x('-Ln', '--tun-info', '-t', '1.2.3.4:80')).toEqual(ok('Prot LocalAddress:Port Scheduler Flags\n' + TUN_TITLE +
      'TCP  1.2.3.4:80 wlc\n' +
      '  -> 10.0.0.1:80                  Tunnel  ipip          1      0          0         \n' +
      '  -> 10.0.0.2:80                  Tunnel  ipip          1      0          0         \n' +
      '  -> 10.0.0.3:80                  Tunnel  ipip          5      0          0         \n' +
      '  -> 10.0.0.4:80                  Route   n/a           3      0          0         \n' +
      '  -> 10.0.0.5:80                  Tunnel  gre:+c        1      0          0         \n' +
      '  -> 10.0.0.6:80                  Tunnel  gue:6083:r+c  1      0          0         \n' +
      '  -> 10.0.0.7:80                  Masq    n/a           1      0          0         \n' +
      '  -> 10.0.0.8:80                  Tunnel  gre:-c        1      0          0         \n' +
      '  -> 10.0.0.9:80                  Tunnel  gre:+c        1      0          0         \n' +
      '  -> 10.0.0.10:80                 Tunnel  gue:7000:r+c  1      0          0         \n' +
      '  -> 10.0.0.11:80                 Route   n/a           3      0          0         \n'));
  });
});
