// The parse and format layers of xvsadm against ipvsadm 1.31's texts, with hand-built listings:
// here are the options the dataplane does not implement yet (persistence, -o, -b, fwmark, IPv6,
// thresholds, tunnels), which the Balancer refuses but xvsadm must still read and print right.
// End-to-end listings on the real dataplane are in xvsadm.test.ts.
import { describe, expect, it } from 'vitest';
import type { ConnectionInfo, RealServerInfo, ServiceInfo } from '../lib/balancer.js';
import { formatConnections, formatServices, largenum, msort, type Format } from '../lib/cli/format.js';
import { CliExit, parseCommand } from '../lib/cli/parse.js';
import { restoreLines } from '../lib/cli/run.js';
import { COMMANDS_V_OPTIONS, OPT_NAMES } from '../lib/cli/texts.js';
import { estimate, ratesOf, startEstimate, ZERO_ESTIMATE } from '../lib/estimator.js';

const NO_FORMAT: Format = {
  numeric: true, stats: false, rate: false, thresholds: false, persistentConn: false, nosort: false, exact: false, tunInfo: false,
};
const f = (over: Partial<Format> = {}): Format => ({ ...NO_FORMAT, ...over });
const stats = (n: bigint) => ({ conns: n, inpkts: n * 10n, outpkts: n * 9n, inbytes: n * 1000n, outbytes: n * 900n });

function real(address: string, port: number, over: Partial<RealServerInfo> = {}): RealServerInfo {
  return {
    address, port, method: 'dr', weight: 1, upperThreshold: 0, lowerThreshold: 0, activeConns: 0, inactiveConns: 0,
    persistConns: 0, stats: stats(0n), ...over,
  };
}

function service(key: ServiceInfo['key'], over: Partial<ServiceInfo> = {}): ServiceInfo {
  return { key, scheduler: 'wlc', onePacket: false, schedFlags: [], stats: stats(0n), realServers: [], ...over };
}

// Kernel order (newest first) on purpose: the listing sorts.
const SERVICES: ServiceInfo[] = [
  service({ fwmark: 8, family: 'inet6' }, { scheduler: 'rr', persistent: 360, netmask: '64' }),
  service({ fwmark: 7 }, { realServers: [real('10.1.0.7', 0, { weight: 5 })] }),
  service({ protocol: 'tcp', address: '2001:db8::1', port: 443 }, {
    scheduler: 'wrr',
    realServers: [real('2001:db8::10', 443, { weight: 3, activeConns: 12, inactiveConns: 4 })],
  }),
  service({ protocol: 'udp', address: '10.0.0.53', port: 53 }, {
    scheduler: 'rr', onePacket: true, realServers: [real('10.1.0.3', 5353, { method: 'nat' })],
  }),
  service({ protocol: 'tcp', address: '192.168.10.100', port: 80 }, {
    scheduler: 'sh',
    persistent: 300,
    netmask: '255.255.255.0',
    schedFlags: ['sh-fallback', 'sh-port'],
    stats: { conns: 123456789n, inpkts: 99999999n, outpkts: 100000000n, inbytes: 123456789012345n, outbytes: 1234567890n },
    rates: { cps: 1n, inpps: 20n, outpps: 18n, inbps: 123456789n, outbps: 5000n },
    realServers: [
      real('192.168.10.12', 80, { upperThreshold: 100, lowerThreshold: 50, activeConns: 3, inactiveConns: 7, persistConns: 2 }),
      real('192.168.10.11', 80, {
        method: 'nat', weight: 2, activeConns: 1, stats: stats(5n),
        rates: { cps: 1n, inpps: 20n, outpps: 18n, inbps: 123456789n, outbps: 5000n },
      }),
    ],
  }),
];

async function parseError(args: string[]): Promise<CliExit> {
  try {
    await parseCommand(args, 'ipvsadm');
  } catch (e) {
    if (e instanceof CliExit) return e;
    throw e;
  }
  throw new Error(`parsed: ${args.join(' ')}`);
}

describe('listings (ipvsadm -L -n and its variants)', () => {
  it('prints the default table: flags, persistence, mask, ops, fwmark and IPv6 services, sorted', async () => {
    expect(await formatServices(SERVICES, { format: f(), connTableSize: 4096 })).toBe(
      'IP Virtual Server version 1.2.1 (size=4096)\n' +
        'Prot LocalAddress:Port Scheduler Flags\n' +
        '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n' +
        'TCP  192.168.10.100:80 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0\n' +
        '  -> 192.168.10.11:80             Masq    2      1          0         \n' +
        '  -> 192.168.10.12:80             Route   1      3          7         \n' +
        'UDP  10.0.0.53:53 rr ops\n' +
        '  -> 10.1.0.3:5353                Masq    1      0          0         \n' +
        'TCP  [2001:db8::1]:443 wrr\n' +
        '  -> [2001:db8::10]:443           Route   3      12         4         \n' +
        'FWM  7 wlc\n' +
        '  -> 10.1.0.7:0                   Route   5      0          0         \n' +
        'FWM  8 IPv6 rr persistent 360 mask 64\n',
    );
  });

  it('keeps the kernel order with --nosort', async () => {
    const out = await formatServices(SERVICES, { format: f({ nosort: true }) });
    expect(out.split('\n').filter((l) => !l.startsWith(' ')).slice(1, 4)).toEqual([
      'FWM  8 IPv6 rr persistent 360 mask 64',
      'FWM  7 wlc',
      'TCP  [2001:db8::1]:443 wrr',
    ]);
    expect(out).toContain('  -> 192.168.10.12:80             Route   1      3          7         \n  -> 192.168.10.11:80');
  });

  it('prints marks from 2^31 up negative, as ipvsadm does (%d), in listings and in -S', async () => {
    const svc = [service({ fwmark: 4294967295 }), service({ fwmark: 2147483648, family: 'inet6' })];
    const listing = await formatServices(svc, { format: f() });
    expect(listing).toContain('FWM  -1 wlc\n');
    expect(listing).toContain('FWM  -2147483648 IPv6 wlc\n');
    const rules = await formatServices(svc, { format: f(), rule: true });
    expect(rules).toContain('-A -f -1 -s wlc\n');
    expect(rules).toContain('-A -f -2147483648 -6 -s wlc\n');
  });

  it('prints --stats with K/M/G/T scaling, and --exact in full', async () => {
    const svc = [SERVICES[4]!];
    expect(await formatServices(svc, { format: f({ stats: true }) })).toBe(
      'Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n' +
        '  -> RemoteAddress:Port\n' +
        'TCP  192.168.10.100:80             123456K 99999999  100000K     123T    1234M\n' +
        '  -> 192.168.10.11:80                    5       50       45     5000     4500\n' +
        '  -> 192.168.10.12:80                    0        0        0        0        0\n',
    );
    expect(await formatServices(svc, { format: f({ stats: true, exact: true }) })).toContain(
      'TCP  192.168.10.100:80            123456789 99999999 100000000 123456789012345 1234567890\n',
    );
  });

  it('prints --rate with the real-server columns ipvsadm prints unscaled', async () => {
    expect(await formatServices([SERVICES[4]!], { format: f({ rate: true }) })).toBe(
      'Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n' +
        '  -> RemoteAddress:Port\n' +
        'TCP  192.168.10.100:80                   1       20       18  123456K     5000\n' +
        '  -> 192.168.10.11:80                    1       20       18  123456K     5000\n' +
        '  -> 192.168.10.12:80                    0        0        0        0        0\n',
    );
  });

  it('prints --thresholds, --persistent-conn and --tun-info', async () => {
    const svc = [SERVICES[4]!];
    expect(await formatServices(svc, { format: f({ thresholds: true }) })).toBe(
      'Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n' +
        '  -> RemoteAddress:Port\n' +
        'TCP  192.168.10.100:80 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0\n' +
        '  -> 192.168.10.11:80             0          0          1          0         \n' +
        '  -> 192.168.10.12:80             100        50         3          7         \n',
    );
    expect(await formatServices(svc, { format: f({ persistentConn: true }) })).toBe(
      'Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn \n' +
        '  -> RemoteAddress:Port\n' +
        'TCP  192.168.10.100:80 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0\n' +
        '  -> 192.168.10.11:80             2         0           1          0         \n' +
        '  -> 192.168.10.12:80             1         2           3          7         \n',
    );
    expect(await formatServices(svc, { format: f({ tunInfo: true }) })).toBe(
      'Prot LocalAddress:Port Scheduler Flags\n' +
        '  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n' +
        'TCP  192.168.10.100:80 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0\n' +
        '  -> 192.168.10.11:80             Masq    n/a           2      1          0         \n' +
        '  -> 192.168.10.12:80             Route   n/a           1      3          7         \n',
    );
  });

  it('prints -S rules that -R reads back', async () => {
    expect(await formatServices(SERVICES, { format: f(), rule: true })).toBe(
      '-A -t 192.168.10.100:80 -s sh -p 300 -M 255.255.255.0 -b sh-fallback,sh-port\n' +
        '-a -t 192.168.10.100:80 -r 192.168.10.11:80 -m -w 2\n' +
        '-a -t 192.168.10.100:80 -r 192.168.10.12:80 -g -w 1\n' +
        '-A -u 10.0.0.53:53 -s rr -o\n' +
        '-a -u 10.0.0.53:53 -r 10.1.0.3:5353 -m -w 1\n' +
        '-A -t [2001:db8::1]:443 -s wrr\n' +
        '-a -t [2001:db8::1]:443 -r [2001:db8::10]:443 -g -w 3\n' +
        '-A -f 7 -s wlc\n' +
        '-a -f 7 -r 10.1.0.7:0 -g -w 5\n' +
        '-A -f 8 -6 -s rr -p 360 -M 64\n',
    );
  });

  it('sorts as libipvs does, int overflow of its address comparison included', () => {
    // ipvs_cmp_services subtracts u32 addresses into an int: 10.0.0.1 - 200.0.0.1 wraps positive.
    const names = (l: string[]) => msort(l, (a, b) => ((a === b ? 0 : cmp(a, b)) | 0));
    const word = (a: string) => a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
    const cmp = (a: string, b: string) => (word(a) - word(b)) | 0;
    expect(names(['10.0.0.1', '100.0.0.1', '200.0.0.1'])).toEqual(['10.0.0.1', '100.0.0.1', '200.0.0.1']);
    expect(names(['200.0.0.1', '100.0.0.1', '10.0.0.1'])).toEqual(['200.0.0.1', '10.0.0.1', '100.0.0.1']);
  });

  it('scales numbers as print_largenum', () => {
    expect(largenum(99999999n, false)).toBe(' 99999999');
    expect(largenum(100000000n, false)).toBe('  100000K');
    expect(largenum(999999999n, false)).toBe('  999999K');
    expect(largenum(1000000000n, false)).toBe('    1000M');
    expect(largenum(99999999999n, false)).toBe('   99999M');
    expect(largenum(100000000000n, false)).toBe('     100G');
    expect(largenum(100000000000000n, false)).toBe('     100T');
    expect(largenum(123n, true)).toBe('      123');
    expect(largenum(1234567890n, true)).toBe(' 1234567890');
  });

  it('prints -c entries, with the pe columns in the header under --persistent-conn', async () => {
    const conns: ConnectionInfo[] = [
      {
        protocol: 'tcp', state: 'ESTABLISHED', expiresMs: 899_500, client: { address: '10.0.0.1', port: 40000 },
        virtual: { address: '10.100.0.1', port: 80 }, real: { address: '10.1.0.1', port: 80 },
      },
      {
        protocol: 'udp', state: 'UDP', expiresMs: 299_999, client: { address: '10.0.0.1', port: 40001 },
        virtual: { address: '10.100.0.1', port: 53 }, real: { address: '10.1.0.3', port: 5353 },
      },
    ];
    expect(await formatConnections(conns, f())).toBe(
      'IPVS connection entries\n' +
        'pro expire state       source             virtual            destination\n' +
        'TCP 14:59  ESTABLISHED 10.0.0.1:40000     10.100.0.1:80      10.1.0.1:80\n' +
        'UDP 04:59  UDP         10.0.0.1:40001     10.100.0.1:53      10.1.0.3:5353\n',
    );
    expect((await formatConnections([], f({ persistentConn: true }))).split('\n')[1]).toBe(
      'pro expire state       source             virtual            destination        pe name          pe_data',
    );
  });

  it('prints a sip template\'s pe name and Call-ID under --persistent-conn only, as Linux 6.1 and ipvsadm do', async () => {
    const conns: ConnectionInfo[] = [
      {
        protocol: 'udp', state: 'NONE', expiresMs: 596_500, client: { address: '10.1.0.2', port: 0 }, template: true,
        virtual: { address: '10.1.0.100', port: 5060 }, real: { address: '10.2.0.11', port: 5060 }, pe: { name: 'sip', data: 'abc@h' },
      },
      {
        protocol: 'udp', state: 'UDP', expiresMs: 296_500, client: { address: '10.1.0.2', port: 5060 },
        virtual: { address: '10.1.0.100', port: 5060 }, real: { address: '10.2.0.11', port: 5060 },
      },
    ];
    // Byte for byte what the guest printed (ipvsadm -Lnc [--persistent-conn] | cat -A).
    expect(await formatConnections(conns, f({ persistentConn: true }))).toBe(
      'IPVS connection entries\n' +
        'pro expire state       source             virtual            destination        pe name          pe_data\n' +
        'UDP 09:56  NONE        10.1.0.2:0         10.1.0.100:5060    10.2.0.11:5060   sip                abc@h\n' +
        'UDP 04:56  UDP         10.1.0.2:5060      10.1.0.100:5060    10.2.0.11:5060\n',
    );
    expect(await formatConnections(conns, f())).toBe(
      'IPVS connection entries\n' +
        'pro expire state       source             virtual            destination\n' +
        'UDP 09:56  NONE        10.1.0.2:0         10.1.0.100:5060    10.2.0.11:5060\n' +
        'UDP 04:56  UDP         10.1.0.2:5060      10.1.0.100:5060    10.2.0.11:5060\n',
    );
  });

  it('resolves names without -n: /etc/hosts for hosts, /etc/services for ports', async () => {
    const local = [service({ protocol: 'tcp', address: '127.0.0.1', port: 80 }, { scheduler: 'rr', realServers: [real('127.0.0.1', 22)] })];
    expect(await formatServices(local, { format: f({ numeric: false }) })).toContain(
      'TCP  localhost:http rr\n  -> localhost:ssh                Route   1      0          0         \n',
    );
  });
});

describe('the command line (parse_options, generic_opt_check)', () => {
  it('has one rule per option and command', () => {
    for (const row of Object.values(COMMANDS_V_OPTIONS)) expect(row).toHaveLength(OPT_NAMES.length);
  });

  it.each([
    [['-A', '-t', '10.0.0.1:80', '-s', 'rr', '-w', '3'], 2, "Illegal 'weight' option with the 'add-service' command\n"],
    [['-a', '-t', '10.0.0.1:80'], 2, "You need to supply the 'real-server' option for the 'add-server' command\n"],
    [['-a', '-t', '10.0.0.1:80', '-r', '10.1.0.1', '-w', '2147483648'], 2, 'illegal weight specified\n'],
    [['-a', '-t', '10.0.0.1:80', '-r', '10.1.0.1', '-w', '-1'], 2, 'illegal weight specified\n'],
    [['-a', '-t', '10.0.0.1:80', '-r', '10.1.0.1', '-x', 'lots'], 2, 'illegal u_threshold specified\n'],
    [['-a', '-t', '10.0.0.1:80', '-r', '10.1.0.1', '-y', '2147483648'], 2, 'illegal l_threshold specified\n'],
    [['-A', '-t', '10.0.0.1'], 2, 'Zero port specified for non-persistent service\n'],
    [['-A', '-t', '300.1.1.1:80'], 2, 'illegal virtual server address[:port] specified\n'],
    [['-A', '-t', '10.0.0.1:65536'], 2, 'illegal virtual server address[:port] specified\n'],
    [['-A', '-t', '[2001:db8::1]'], 2, 'illegal virtual server address[:port] specified\n'],
    [['-a', '-t', '10.0.0.1:80', '-r', '10.1.0.1:nosuchport'], 2, 'illegal real server address[:port] specified\n'],
    [['-A', '-t', '10.0.0.1:80', '-p', '0'], 2, "invalid timeout value `0' specified\n"],
    [['-A', '-t', '10.0.0.1:80', '-p', '2678401'], 2, "invalid timeout value `2678401' specified\n"],
    [['-A', '-t', '10.0.0.1:80', '-p', '60', '-M', 'a.b'], 2, 'illegal virtual server persistent mask specified\n'],
    [['--set', '900', '120'], 2, '--set option requires 3 timeout values\n'],
    [['--set', '900', '120', 'x'], 2, "invalid timeout value `x' specified\n"],
    [['--set', '900', '120', '2678401'], 2, "invalid timeout value `2678401' specified\n"],
    [['-L', 'extra'], 2, 'unexpected argument extra\n'],
    [['-L', '-c', '-t', '10.0.0.1:80'], 2, "The option 'service-address' conflicts with the 'connection' option in the 'list' command\n"],
    [['-L', '--stats', '-c'], 2, 'options conflicts in the list command\n'],
    [['-L', '-s', 'rr'], 2, "Illegal 'scheduler' option with the 'list' command\n"],
    [['-A', '-t', '10.0.0.1:80', '-s', 'rr', '-b', 'sh-port'], 2, "incompatible scheduler flag `sh-port'\n"],
    [['-A', '-t', '10.0.0.1:80', '-b', 'nosuch'], 2, "invalid scheduler flag `nosuch'\n"],
    [['-A', '-t', '10.0.0.1:80', '-o'], 2, 'One-Packet Scheduling is only for UDP virtual services\n'],
    [['-A', '-6', '-f', '1'], 2, '-6 used before -f\n\n'],
    [['-A', '-f', '0'], 2, "invalid fwmark value `0' specified\n"],
    [['-A', '-t', '10.0.0.1:80', '-t', '10.0.0.2:80'], 2, "multiple 'service-address' options specified\n"],
    [['-A', '-t', '10.0.0.1:80', '-D'], 2, "invalid option `-D'\n"],
    [['-a', '-t', '10.0.0.1:80', '-r', '[2001:db8::2]:80', '-m'], 2, 'Different address family is allowed only for tunneling servers\n'],
    [['-a', '-t', '10.0.0.1:80', '-r', '10.1.0.1', '--tun-type', 'gre'], 2, 'Tunnel options conflict with forward method\n'],
    [['-a', '-t', '10.0.0.1:80', '-r', '10.1.0.1', '-i', '--tun-type', 'gue'], 2, "You need to supply the 'tun-port' option for the 'gue' tunnel type\n"],
    [['-a', '-t', '10.0.0.1:80', '-r', '10.1.0.1', '-i', '--tun-type', 'vxlan'], 2, 'illegal tunnel type specified\n'],
    [['--start-daemon', 'primary'], 2, 'illegal start-daemon parameter specified\n'],
    [['-L', '--xdp-mode', 'native'], 2, "Illegal 'xdp-mode' option with the 'list' command\n"],
    [['--attach', 'eth0', '-n'], 2, "Illegal 'numeric' option with the 'attach' command\n"],
    [['-n', '-L'], 255, "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n"],
    [['--nosuch'], 255, "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n"],
    [['-L', '--nosuch'], 255, '--nosuch: unknown option\n'],
    [['-L', '-nq'], 255, '-nq: unknown option\n'],
    [['-L', '-t'], 255, '-t: missing argument\n'],
    [['-L', '--stats=yes'], 255, '--stats=yes: option does not take an argument\n'],
  ])('ipvsadm %j exits %i with its message', async (args, status, stderr) => {
    const e = await parseError(args);
    expect({ status: e.status, stderr: e.stderr }).toEqual({ status, stderr });
  });

  it('reads options as popt does: clusters, attached and optional arguments, names', async () => {
    const a = await parseCommand(['-at', '10.0.0.1:http', '-r10.1.0.1:8080', '-mw=3', '-x', '100'], 'ipvsadm');
    expect([a.cmd, a.svc.address, a.svc.port, a.dest.address, a.dest.port, a.dest.method, a.dest.weight, a.dest.uThreshold])
      .toEqual(['adddest', '10.0.0.1', 80, '10.1.0.1', 8080, 'nat', 3, 100]);
    const dr = await parseCommand(['-a', '-t', '10.0.0.1:80', '-r', '10.1.0.1:8080'], 'ipvsadm');
    expect(dr.dest.port).toBe(80); // gatewaying keeps the virtual port
    const p = await parseCommand(['-A', '-t', '10.0.0.1:0', '-p', '-s', 'sh', '-b', 'flag-1,sh-port'], 'ipvsadm');
    expect([p.svc.persistent, p.svc.timeout, p.svc.schedFlags]).toEqual([true, 360, ['sh-fallback', 'sh-port']]);
    const v6 = await parseCommand(['-E', '--tcp-service=[2001:DB8::1]:443', '--persistent', '600', '-M', '64'], 'ipvsadm');
    expect([v6.cmd, v6.svc.address, v6.svc.port, v6.svc.timeout, v6.svc.netmask, v6.svc.scheduler]).toEqual(['edit', '2001:db8::1', 443, 600, '64', 'wlc']);
    const aton = await parseCommand(['-D', '-u', '10.1:53'], 'ipvsadm');
    expect(aton.svc.address).toBe('10.0.0.1');
    const list = await parseCommand(['-Ln', '--stats', '--exact', '--sort'], 'ipvsadm');
    expect([list.cmd, list.format.numeric, list.format.stats, list.format.exact]).toEqual(['list', true, true, true]);
  });

  it('prints help and version on stdout with status 0', async () => {
    const help = await parseError(['-h']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^xvsadm v\S+ \(xvs: IPVS on XDP; ipvsadm v1\.31 syntax and formats, IPVS v1\.2\.1\)\nUsage:\n  ipvsadm -A\|E virtual-service/);
    expect(help.stdout).toContain('  --add-service     -A        add virtual service with options\n');
    const version = await parseError(['--version']);
    expect([version.status, version.stdout]).toEqual([0, help.stdout.split('\n')[0] + '\n']);
  });

  it('splits -R input as config_stream does: words, no comments, the word ipvsadm skipped', () => {
    expect(restoreLines('ipvsadm -A -t 10.0.0.1:80\n\n  -a\t-t 10.0.0.1:80 -r 10.1.0.1\r\n')).toEqual([
      ['-A', '-t', '10.0.0.1:80'],
      ['-a', '-t', '10.0.0.1:80', '-r', '10.1.0.1'],
    ]);
  });
});

describe('the rate estimator (ip_vs_est.c)', () => {
  it('averages with W = 1/4 in the kernel scaling and reads back rounded', () => {
    const at = (n: bigint) => ({ conns: n, inpkts: 10n * n, outpkts: 0n, inbytes: 400n * n, outbytes: 0n });
    let e = estimate(ZERO_ESTIMATE, at(0n));
    expect(ratesOf(e)).toEqual({ cps: 0n, inpps: 0n, outpps: 0n, inbps: 0n, outbps: 0n });
    e = estimate(e, at(100n)); // 100 connections in 2 s: 50/s, a quarter of it after one tick, rounded down
    expect(e.cps).toBe((100n << 9n) >> 2n);
    expect(ratesOf(e)).toEqual({ cps: 12n, inpps: 125n, outpps: 0n, inbps: 5000n, outbps: 0n });
    for (let i = 2n; i < 40n; i++) e = estimate(e, at(100n * i)); // steady 50 conns/s
    expect(ratesOf(e)).toEqual({ cps: 50n, inpps: 500n, outpps: 0n, inbps: 20000n, outbps: 0n });
    expect(ratesOf(estimate(startEstimate(at(3900n)), at(3900n))).cps).toBe(0n); // a restart forgets the past
    e = estimate(e, at(3900n)); // traffic stops: 3/4 of the average is left (51197 -> 38397, read as 37.99)
    expect(ratesOf(e).cps).toBe(37n);
  });
});
