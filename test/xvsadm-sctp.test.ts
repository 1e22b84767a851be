// xvsadm with SCTP services, command by command against what ipvsadm 1.31 printed on Linux 6.1's
// IPVS (a user-mode-linux guest) for the same session: -A/-a/-e/-d/-D/-E with --sctp-service,
// IPv4 and IPv6, listings, -S, --stats, errors and their exit codes, -R; then -Lnc rows of a
// connection that real SCTP packets started.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packetLab, type PacketLab } from './helpers/lb.js';
import { buildFrame } from './helpers/packet.js';
import { chunks, sctpPacket } from './helpers/sctp.js';
import { removeTestPins, testPinPath, xvsadm } from './helpers/xvsadm.js';

let pinPath: string;
let lab: PacketLab;
const x = (...args: string[]) => xvsadm(pinPath, args);

beforeAll(async () => {
  pinPath = testPinPath();
  lab = await packetLab({ pinPath });
});

afterAll(async () => {
  await lab?.destroy();
  await removeTestPins(pinPath);
});

const HEADER = 'IP Virtual Server version 1.2.1 (size=4096)\n';
const TITLE = 'Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n';
const LISTING =
  'TCP  10.9.0.100:5000 wlc\n' +
  'UDP  10.9.0.100:5000 wlc\n' +
  'SCTP 10.9.0.100:5000 rr\n' +
  '  -> 10.9.0.1:6000                Masq    2      0          0         \n' +
  '  -> 10.9.0.2:5000                Route   1      0          0         \n' +
  '  -> 10.9.0.3:5000                Tunnel  1      0          0         \n' +
  'SCTP 10.9.0.102:0 wlc persistent 60\n' +
  'SCTP [2001:db8:9::100]:5000 wlc\n' +
  '  -> [2001:db8:9::1]:6000         Masq    1      0          0         \n';
const SAVED =
  '-A -t 10.9.0.100:5000 -s wlc\n' +
  '-A -u 10.9.0.100:5000 -s wlc\n' +
  '-A --sctp-service 10.9.0.100:5000 -s rr\n' +
  '-a --sctp-service 10.9.0.100:5000 -r 10.9.0.1:6000 -m -w 2\n' +
  '-a --sctp-service 10.9.0.100:5000 -r 10.9.0.2:5000 -g -w 1\n' +
  '-a --sctp-service 10.9.0.100:5000 -r 10.9.0.3:5000 -i -w 1 --tun-type ipip\n' +
  '-A --sctp-service 10.9.0.102:0 -s wlc -p 60\n' +
  '-A --sctp-service [2001:db8:9::100]:5000 -s wlc\n' +
  '-a --sctp-service [2001:db8:9::100]:5000 -r [2001:db8:9::1]:6000 -m -w 1\n';
const STATS =
  HEADER +
  'Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  -> RemoteAddress:Port\n' +
  'TCP  10.9.0.100:5000                     0        0        0        0        0\n' +
  'UDP  10.9.0.100:5000                     0        0        0        0        0\n' +
  'SCTP 10.9.0.100:5000                     0        0        0        0        0\n' +
  '  -> 10.9.0.1:6000                       0        0        0        0        0\n' +
  '  -> 10.9.0.2:5000                       0        0        0        0        0\n' +
  'SCTP [2001:db8:9::100]:5000              0        0        0        0        0\n' +
  '  -> [2001:db8:9::1]:6000                0        0        0        0        0\n';

/** The guest's session: arguments, exit status, stdout, stderr. */
const SESSION: Array<[string, number, string, string]> = [
  ['-A --sctp-service 10.9.0.100:5000 -s rr', 0, '', ''],
  ['-a --sctp-service 10.9.0.100:5000 -r 10.9.0.1:6000 -m -w 2', 0, '', ''],
  ['-a --sctp-service 10.9.0.100:5000 -r 10.9.0.2 -g', 0, '', ''],
  ['-a --sctp-service 10.9.0.100:5000 -r 10.9.0.3 -i', 0, '', ''],
  ['-A --sctp-service [2001:db8:9::100]:5000 -s wlc', 0, '', ''],
  ['-a --sctp-service [2001:db8:9::100]:5000 -r [2001:db8:9::1]:6000 -m', 0, '', ''],
  ['-A --sctp-service 10.9.0.101:5000 -o', 2, '', 'One-Packet Scheduling is only for UDP virtual services\n'],
  ['-A --sctp-service 10.9.0.102:0 -p 60', 0, '', ''],
  ['-A --sctp-service 10.9.0.103:0', 2, '', 'Zero port specified for non-persistent service\n'],
  ['-A --sctp-service 10.9.0.104:http', 2, '', 'illegal virtual server address[:port] specified\n'],
  ['-A --sctp-service 10.9.0.104:dns', 2, '', 'illegal virtual server address[:port] specified\n'],
  ['-A --sctp-service 10.9.0.105', 2, '', 'Zero port specified for non-persistent service\n'],
  ['-A --sctp-service 10.9.0.100:5000', 255, '', 'Service already exists\n'],
  ['-A -t 10.9.0.100:5000 --sctp-service 10.9.0.100:5001', 2, '', "multiple 'service-address' options specified\n"],
  ['-A --sctp-service 10.9.0.106:5000 -u 10.9.0.106:5000', 2, '', "multiple 'service-address' options specified\n"],
  ['-A -t 10.9.0.100:5000', 0, '', ''],
  ['-A -u 10.9.0.100:5000', 0, '', ''],
  ['-Ln', 0, HEADER + TITLE + LISTING, ''],
  ['-S', 0, SAVED, ''],
  ['-Sn', 0, SAVED, ''],
  ['-Ln --sctp-service 10.9.0.100:5000', 0, TITLE + LISTING.split('\n').slice(2, 6).join('\n') + '\n', ''],
  ['-Ln --sctp-service 10.9.0.100:5001', 1, '', 'No such service\n'],
  ['-Ln -t 10.9.0.100:5000', 0, TITLE + 'TCP  10.9.0.100:5000 wlc\n', ''],
  ['-e --sctp-service 10.9.0.100:5000 -r 10.9.0.1:6000 -m -w 5', 0, '', ''],
  ['-d --sctp-service 10.9.0.100:5000 -r 10.9.0.3', 0, '', ''],
  ['-D --sctp-service 10.9.0.102:0', 0, '', ''],
  ['-D --sctp-service 10.9.0.102:0', 255, '', 'No such service\n'],
  ['-E --sctp-service 10.9.0.100:5000 -s wlc', 0, '', ''],
  ['-Ln --stats', 0, STATS, ''],
  ['-C', 0, '', ''],
];

describe('an SCTP session as ipvsadm ran it on kernel IPVS', () => {
  it.each(SESSION)('ipvsadm %s: status %i', async (args, status, stdout, stderr) => {
    expect(await x(...args.split(' '))).toEqual({ status, stdout, stderr });
  });

  it('-R takes --sctp-service lines, -S gives them back', async () => {
    const rules = '-A --sctp-service 10.9.0.100:5000 -s rr\n-a --sctp-service 10.9.0.100:5000 -r 10.9.0.1:6000 -m -w 1\n';
    expect(await xvsadm(pinPath, ['-R'], rules)).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(await x('-Sn')).toEqual({ status: 0, stdout: rules, stderr: '' });
    expect(await x('-C')).toEqual({ status: 0, stdout: '', stderr: '' });
  });
});

describe('connections', () => {
  it('-Lnc lists an SCTP connection with the kernel\'s state name and timeout', async () => {
    expect(await x('-A', '--sctp-service', '10.0.0.100:5000', '-s', 'rr')).toMatchObject({ status: 0 });
    expect(await x('-a', '--sctp-service', '10.0.0.100:5000', '-r', '10.1.0.21:6000', '-m')).toMatchObject({ status: 0 });
    const init = buildFrame({ ip: { src: '10.2.0.5', dst: '10.0.0.100', protocol: 132 }, payload: sctpPacket(40001, 5000, chunks.init()) });
    expect(lab.run(init).verdict).toBe('redirect');
    const { stdout } = await x('-L', '-n', '-c');
    // Kernel: "SCTP 00:03  INIT1       10.0.1.2:40001     10.0.1.100:5000    10.0.2.2:6000" (4 s, a moment later).
    expect(stdout).toMatch(/\nSCTP 00:0[34]  INIT1       10\.2\.0\.5:40001     10\.0\.0\.100:5000    10\.1\.0\.21:6000\n$/);
    const reply = buildFrame({ ip: { src: '10.1.0.21', dst: '10.2.0.5', protocol: 132 }, payload: sctpPacket(6000, 40001, chunks.initAck()) });
    expect(lab.run(reply, 'reals').verdict).toBe('redirect');
    expect((await x('-L', '-n', '-c')).stdout).toMatch(/\nSCTP 01:0[01]  C-SENT      10\.2\.0\.5:40001 /);
    expect(await x('-C')).toMatchObject({ status: 0 });
  });
});
