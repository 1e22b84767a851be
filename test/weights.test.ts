// Weights over the whole range ipvsadm 1.31 and the kernel take (0..2147483647, INT_MAX): accepted,
// listed and saved as ipvsadm prints them (print_service_entry's %-6d, -S's "-w %d"), refused past
// it with ipvsadm's words (all three checked against ipvsadm 1.31 and Linux 6.1 in the UML guest).
// The schedulers' choices with such weights are checked against the models in schedulers.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTestPins, testPinPath, xvsadm, type Result } from './helpers/xvsadm.js';

const VIP = '10.0.0.100';
const HEADER = 'IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n';
let pinPath: string;
const x = (...args: string[]) => xvsadm(pinPath, args);
const ok = (stdout = ''): Result => ({ status: 0, stdout, stderr: '' });

beforeAll(() => {
  pinPath = testPinPath();
});

afterAll(async () => {
  await removeTestPins(pinPath);
});

describe('weights up to 2147483647', () => {
  it('are accepted, listed and saved as ipvsadm prints them', async () => {
    expect(await x('-A', '-t', `${VIP}:80`, '-s', 'wlc')).toEqual(ok());
    expect(await x('-a', '-t', `${VIP}:80`, '-r', '10.1.0.1', '-g', '-w', '2147483647')).toEqual(ok());
    expect(await x('-a', '-t', `${VIP}:80`, '-r', '10.1.0.2', '-g', '-w', '65536')).toEqual(ok());
    expect(await x('-e', '-t', `${VIP}:80`, '-r', '10.1.0.2', '-g', '-w', '2147483646')).toEqual(ok());
    expect(await x('-Ln')).toEqual(ok(
      `${HEADER}TCP  ${VIP}:80 wlc\n` +
        '  -> 10.1.0.1:80                  Route   2147483647 0          0         \n' +
        '  -> 10.1.0.2:80                  Route   2147483646 0          0         \n',
    ));
    expect((await x('-S', '-n')).stdout).toBe(
      `-A -t ${VIP}:80 -s wlc\n-a -t ${VIP}:80 -r 10.1.0.1:80 -g -w 2147483647\n-a -t ${VIP}:80 -r 10.1.0.2:80 -g -w 2147483646\n`,
    );
  });

  it.each(['2147483648', '-1', '99999999999'])('refuses -w %s with ipvsadm\'s error', async (w) => {
    expect(await x('-a', '-t', `${VIP}:80`, '-r', '10.1.0.3', '-g', '-w', w)).toEqual({ status: 2, stdout: '', stderr: 'illegal weight specified\n' });
  });

  it('keeps wrr with weights whose period is billions (no table: the dataplane steps cw)', async () => {
    expect(await x('-A', '-t', `${VIP}:81`, '-s', 'wrr')).toEqual(ok());
    expect(await x('-a', '-t', `${VIP}:81`, '-r', '10.1.0.1', '-g', '-w', '2147483647')).toEqual(ok());
    expect(await x('-a', '-t', `${VIP}:81`, '-r', '10.1.0.2', '-g', '-w', '1')).toEqual(ok());
    expect(await x('-E', '-t', `${VIP}:80`, '-s', 'wrr')).toEqual(ok());
    expect((await x('-S', '-n')).stdout).toBe(
      `-A -t ${VIP}:80 -s wrr\n-a -t ${VIP}:80 -r 10.1.0.1:80 -g -w 2147483647\n-a -t ${VIP}:80 -r 10.1.0.2:80 -g -w 2147483646\n` +
        `-A -t ${VIP}:81 -s wrr\n-a -t ${VIP}:81 -r 10.1.0.1:81 -g -w 2147483647\n-a -t ${VIP}:81 -r 10.1.0.2:81 -g -w 1\n`,
    );
  });

  it('lists --persistent-conn weights as ipvsadm does', async () => {
    const { stdout } = await x('-L', '-n', '--persistent-conn', '-t', `${VIP}:80`);
    expect(stdout.split('\n').slice(3).join('\n')).toBe(
      '  -> 10.1.0.1:80                  2147483647 0           0          0         \n' +
        '  -> 10.1.0.2:80                  2147483646 0           0          0         \n',
    );
  });
});
