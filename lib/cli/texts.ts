// Every text xvsadm prints the way ipvsadm 1.31 prints it (ipvsadm.c, libipvs/libipvs.c), in one
// place: usage, messages of the option parser, ipvs_strerror's table, headers and row formats'
// fixed parts. xvs's own additions (the extension commands, the daemon) are marked as such.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../native.js';

/** IPVS version whose behaviour and output formats xvs reproduces. */
export const IPVS_VERSION = '1.2.1';
export const DEFAULT_SCHEDULER = 'wlc';
export const DEFAULT_TUNNEL_TYPE = 'ipip';
/** ipvsadm's MAX_TIMEOUT: 31 days. */
export const MAX_TIMEOUT = 86400 * 31;
/** IPVS_SVC_PERSISTENT_TIMEOUT: -p without a value. */
export const DEFAULT_PERSISTENT_TIMEOUT = 360;
const SCHEDULER_LIST = 'rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh';
const PE_LIST = 'sip';

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** The version line (ipvsadm -v), naming xvs. */
export function versionLine(): string {
  return `xvsadm v${packageVersion()} (xvs: IPVS on XDP; ipvsadm v1.31 syntax and formats, IPVS v${IPVS_VERSION})\n`;
}

export function tryHelp(program: string): string {
  return `Try \`${program} -h' or '${program} --help' for more information.\n`;
}

export function usage(p: string): string {
  return (
    versionLine() +
    'Usage:\n' +
    `  ${p} -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]\n` +
    `  ${p} -D virtual-service\n` +
    `  ${p} -C\n` +
    `  ${p} -R\n` +
    `  ${p} -S [-n]\n` +
    `  ${p} -a|e virtual-service -r server-address [options]\n` +
    `  ${p} -d virtual-service -r server-address\n` +
    `  ${p} -L|l [virtual-service] [options]\n` +
    `  ${p} -Z [virtual-service]\n` +
    `  ${p} --set tcp tcpfin udp\n` +
    `  ${p} --start-daemon {master|backup} [daemon-options]\n` +
    `  ${p} --stop-daemon {master|backup}\n` +
    `  ${p} -h\n\n` +
    'Commands:\n' +
    'Either long or short options are allowed.\n' +
    '  --add-service     -A        add virtual service with options\n' +
    '  --edit-service    -E        edit virtual service with options\n' +
    '  --delete-service  -D        delete virtual service\n' +
    '  --clear           -C        clear the whole table\n' +
    '  --restore         -R        restore rules from stdin\n' +
    '  --save            -S        save rules to stdout\n' +
    '  --add-server      -a        add real server with options\n' +
    '  --edit-server     -e        edit real server with options\n' +
    '  --delete-server   -d        delete real server\n' +
    '  --list            -L|-l     list the table\n' +
    '  --zero            -Z        zero counters in a service or all services\n' +
    '  --set tcp tcpfin udp        set connection timeout values\n' +
    '  --start-daemon              start connection sync daemon\n' +
    '  --stop-daemon               stop connection sync daemon\n' +
    '  --help            -h        display this help message\n\n' +
    'virtual-service:\n' +
    '  --tcp-service|-t  service-address   service-address is host[:port]\n' +
    '  --udp-service|-u  service-address   service-address is host[:port]\n' +
    '  --sctp-service    service-address   service-address is host[:port]\n' +
    '  --fwmark-service|-f fwmark          fwmark is an integer greater than zero\n' +
    '\n' +
    'Options:\n' +
    '  --ipv6         -6                   fwmark entry uses IPv6\n' +
    `  --scheduler    -s scheduler         one of ${SCHEDULER_LIST},\n` +
    `                                      the default scheduler is ${DEFAULT_SCHEDULER}.\n` +
    `  --pe            engine              alternate persistence engine may be ${PE_LIST},\n` +
    '                                      not set by default.\n' +
    '  --persistent   -p [timeout]         persistent service\n' +
    '  --netmask      -M netmask           persistent granularity mask\n' +
    '  --real-server  -r server-address    server-address is host (and port)\n' +
    '  --gatewaying   -g                   gatewaying (direct routing) (default)\n' +
    '  --ipip         -i                   ipip encapsulation (tunneling)\n' +
    '  --masquerading -m                   masquerading (NAT)\n' +
    '  --tun-type      type                one of ipip|gue|gre,\n' +
    `                                      the default tunnel type is ${DEFAULT_TUNNEL_TYPE}.\n` +
    '  --tun-port      port                tunnel destination port\n' +
    '  --tun-nocsum                        tunnel encapsulation without checksum\n' +
    '  --tun-csum                          tunnel encapsulation with checksum\n' +
    '  --tun-remcsum                       tunnel encapsulation with remote checksum\n' +
    '  --weight       -w weight            capacity of real server\n' +
    '  --u-threshold  -x uthreshold        upper threshold of connections\n' +
    '  --l-threshold  -y lthreshold        lower threshold of connections\n' +
    '  --connection   -c                   output of current IPVS connections\n' +
    '  --timeout                           output of timeout (tcp tcpfin udp)\n' +
    '  --daemon                            output of daemon information\n' +
    '  --stats                             output of statistics information\n' +
    '  --rate                              output of rate information\n' +
    '  --exact                             expand numbers (display exact values)\n' +
    '  --thresholds                        output of thresholds information\n' +
    '  --persistent-conn                   output of persistent connection info\n' +
    '  --tun-info                          output of tunnel information\n' +
    '  --nosort                            disable sorting output of service/server entries\n' +
    '  --sort                              does nothing, for backwards compatibility\n' +
    '  --ops          -o                   one-packet scheduling\n' +
    '  --numeric      -n                   numeric output of addresses and ports\n' +
    '  --sched-flags  -b flags             scheduler flags (comma-separated)\n' +
    'Daemon Options:\n' +
    '  --syncid sid                        syncid for connection sync (default=255)\n' +
    '  --sync-maxlen length                Max sync message length (default=1472)\n' +
    '  --mcast-interface interface         multicast interface for connection sync\n' +
    '  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)\n' +
    '  --mcast-port port                   UDP port (default=8848)\n' +
    '  --mcast-ttl ttl                     Multicast TTL (default=1)\n' +
    '\n' +
    'xvs extensions:\n' +
    `  ${p} --attach interface [--xdp-mode native|generic] [--netns name]\n` +
    `  ${p} --detach interface\n` +
    `  ${p} --teardown\n` +
    `  ${p} --add-mark-rule|--del-mark-rule prefix[,tcp|udp][,port|lo-hi]=mark\n` +
    `  ${p} --list-mark-rules\n` +
    `  ${p} --sysctl name[=value]\n` +
    '  --attach       interface            attach the dataplane (XDP) to an interface; starts xvsd\n' +
    '  --detach       interface            detach the dataplane from an interface\n' +
    '  --teardown                          detach everywhere, stop xvsd, remove every pin\n' +
    '  --add-mark-rule rule                add a firewall-mark rule: packets to the prefix (protocol,\n' +
    '                                      destination ports) get the mark, for -f services\n' +
    '  --del-mark-rule rule                delete a firewall-mark rule\n' +
    '  --list-mark-rules                   list the firewall-mark rules, longest prefix first\n' +
    '  --sysctl       name[=value]         show or set net.ipv4.vs.expire_nodest_conn or\n' +
    '                                      expire_quiescent_template (0 or 1)\n' +
    '  --xdp-mode     native|generic       XDP attach mode (default native)\n' +
    '  --netns        name                 network namespace of the interfaces (/run/netns/name)\n' +
    '  --pin-path     directory            bpffs directory of the balancer (default /sys/fs/bpf/xvs,\n' +
    '                                      or $XVS_PIN_PATH); any command\n' +
    '  --version      -v                   show the xvs version\n'
  );
}

// --- the option parser (ipvsadm.c) ----------------------------------------------------------

export const CMD_NAMES = {
  add: 'add-service',
  edit: 'edit-service',
  del: 'delete-service',
  flush: 'flush',
  list: 'list',
  adddest: 'add-server',
  deldest: 'delete-server',
  editdest: 'edit-server',
  timeout: 'set',
  startdaemon: 'start-daemon',
  stopdaemon: 'stop-daemon',
  restore: 'restore',
  save: 'save',
  zero: 'zero',
} as const;

export type Cmd = keyof typeof CMD_NAMES;

/** optnames[], in ipvsadm's bit order: generic_opt_check walks them in this order. */
export const OPT_NAMES = [
  'numeric', 'connection', 'service-address', 'scheduler', 'persistent', 'netmask', 'real-server',
  'forwarding-method', 'weight', 'u-threshold', 'l-threshold', 'mcast-interface', 'timeout', 'daemon', 'stats',
  'rate', 'thresholds', 'persistent-conn', 'nosort', 'syncid', 'exact', 'ops', 'pe', 'sched-flags', 'mcast-group',
  'mcast-port', 'mcast-ttl', 'sync-maxlen', 'tun-info', 'tun-type', 'tun-port', 'tun-nocsum', 'tun-csum',
  'tun-remcsum',
] as const;

export type Opt = (typeof OPT_NAMES)[number];

/**
 * commands_v_options: per command, one character per option of OPT_NAMES:
 * '+' compulsory, 'x' illegal, '1' exclusive (only one '1' option may be given), ' ' optional.
 */
export const COMMANDS_V_OPTIONS: Record<Cmd, string> = {
  //        -n -c svc -s -p -M -r fwd -w -x -y mc tot dmn st rt thr pc srt sid ex ops pe -b grp port ttl size tinf type tprt nocs csum remc
  add:         'xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx',
  edit:        'xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx',
  del:         'xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
  flush:       'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
  list:        ' 11xxxxxxxxx11       xxxxxxx xxxxx',
  adddest:     'xx+xxx+    xxxxxxxxxxxxxxxxxx     ',
  deldest:     'xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx',
  editdest:    'xx+xxx+    xxxxxxxxxxxxxxxxxx     ',
  timeout:     'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
  startdaemon: 'xxxxxxxxxxx xxxxxxx xxxx    xxxxxx',
  stopdaemon:  'xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxx',
  restore:     'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
  save:        ' xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
  zero:        'xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
};

/** tunnel_types_v_options: tun-port, tun-nocsum, tun-csum, tun-remcsum per tunnel type. */
export const TUNNEL_TYPES_V_OPTIONS: Record<string, string> = { ipip: 'xxxx', gue: '+111', gre: 'x11x' };
export const TUNNEL_OPTS: Opt[] = ['tun-port', 'tun-nocsum', 'tun-csum', 'tun-remcsum'];

export const msg = {
  multipleOptions: (o: string) => `multiple '${o}' options specified`,
  needOption: (o: string, c: string) => `You need to supply the '${o}' option for the '${c}' command`,
  illegalOption: (o: string, c: string) => `Illegal '${o}' option with the '${c}' command`,
  conflicts: (o: string, last: string, c: string) => `The option '${o}' conflicts with the '${last}' option in the '${c}' command`,
  needTunnelOption: (o: string, t: string) => `You need to supply the '${o}' option for the '${t}' tunnel type`,
  illegalTunnelOption: (o: string, t: string) => `Illegal '${o}' option with the '${t}' tunnel type`,
  tunnelConflicts: (o: string, last: string, t: string) =>
    `The option '${o}' conflicts with the '${last}' option in the '${t}' tunnel type`,
  illegalService: 'illegal virtual server address[:port] specified',
  illegalReal: 'illegal real server address[:port] specified',
  illegalMask: 'illegal virtual server persistent mask specified',
  illegalV6Mask: 'illegal ipv6 netmask specified',
  illegalWeight: 'illegal weight specified',
  illegalUThreshold: 'illegal u_threshold specified',
  illegalLThreshold: 'illegal l_threshold specified',
  illegalSyncid: 'illegal syncid specified',
  illegalStartDaemon: 'illegal start-daemon parameter specified',
  illegalStopDaemon: 'illegal start_daemon specified',
  illegalMcastPort: 'illegal mcast-port specified',
  illegalMcastTtl: 'illegal mcast-ttl specified',
  illegalSyncMaxlen: 'illegal sync-maxlen specified',
  illegalTunType: 'illegal tunnel type specified',
  illegalTunPort: 'illegal tunnel port specified',
  invalidMcastGroup: (family: 'IPv4' | 'IPv6', a: string) => `invalid ${family} mcast-group \`${a}'`,
  sixBeforeF: '-6 used before -f\n',
  invalidTimeout: (v: string) => `invalid timeout value \`${v}' specified`,
  invalidFwmark: (v: string) => `invalid fwmark value \`${v}' specified`,
  incompatibleSchedFlag: (f: string) => `incompatible scheduler flag \`${f}'`,
  invalidSchedFlag: (f: string) => `invalid scheduler flag \`${f}'`,
  invalidOption: (o: string) => `invalid option \`${o}'`,
  setNeedsThree: '--set option requires 3 timeout values',
  unexpectedArgument: (a: string) => `unexpected argument ${a}`,
  zeroPort: 'Zero port specified for non-persistent service',
  onePacketUdp: 'One-Packet Scheduling is only for UDP virtual services',
  familyTunnelOnly: 'Different address family is allowed only for tunneling servers',
  tunnelConflictsMethod: 'Tunnel options conflict with forward method',
  listConflicts: 'options conflicts in the list command',
  /** popt's poptStrerror texts. */
  poptMissingArgument: 'missing argument',
  poptUnknownOption: 'unknown option',
  poptUnwantedArgument: 'option does not take an argument',
};

// --- errors of the "kernel" (libipvs's ipvs_strerror) ----------------------------------------

/** ipvs_strerror's table: the message for an errno returned by an operation. */
const STRERROR_BY_CMD: Partial<Record<Cmd | 'getservice', Record<string, string>>> = {
  add: { EEXIST: 'Service already exists', ENOENT: 'Scheduler or persistence engine not found' },
  edit: { ESRCH: 'No such service', ENOENT: 'Scheduler or persistence engine not found' },
  del: { ESRCH: 'No such service' },
  zero: { ESRCH: 'No such service' },
  adddest: { ESRCH: 'Service not defined', EEXIST: 'Destination already exists' },
  editdest: { ESRCH: 'Service not defined', ENOENT: 'No such destination' },
  deldest: { ESRCH: 'Service not defined', ENOENT: 'No such destination' },
  startdaemon: { EEXIST: 'Daemon has already run' },
  stopdaemon: { ESRCH: 'No daemon is running' },
  getservice: { ESRCH: 'No such service' },
};

const STRERROR_ANY: Record<string, string> = {
  EPERM: 'Permission denied (you must be root)',
  EINVAL: 'Invalid operation.  Possibly wrong module version, address not unicast, ...',
  ENOPROTOOPT: 'Protocol not available',
  ENOMEM: 'Memory allocation problem',
  EAFNOSUPPORT: 'Operation not supported with specified address family',
  EMSGSIZE: 'Module is wrong version',
  /** strerror(ERANGE), which ipvs_strerror falls back to. */
  ERANGE: 'Numerical result out of range',
};

/**
 * What ipvsadm prints for an operation that failed with `code`. xvs's own refusals (features not
 * built yet, a full table, a busy lock) keep their own, more precise, message.
 */
export function strerror(cmd: Cmd | 'getservice', code: string, ownMessage: string): string {
  return STRERROR_BY_CMD[cmd]?.[code] ?? STRERROR_ANY[code] ?? ownMessage;
}

// --- listings ----------------------------------------------------------------------------------

export const LIST_HEADER = (connTableSize: number) => `IP Virtual Server version ${IPVS_VERSION} (size=${connTableSize})\n`;
export const TITLE_DEFAULT = 'Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n';
export const TITLE_TUN_INFO =
  'Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n';
export const TITLE_STATS_COLUMNS = ['Conns', 'InPkts', 'OutPkts', 'InBytes', 'OutBytes'];
export const TITLE_RATE_COLUMNS = ['CPS', 'InPPS', 'OutPPS', 'InBPS', 'OutBPS'];
export const TITLE_THRESHOLDS_COLUMNS = ['Uthreshold', 'Lthreshold', 'ActiveConn', 'InActConn'];
export const TITLE_PERSISTENT_COLUMNS = ['Weight', 'PersistConn', 'ActiveConn', 'InActConn'];
export const CONN_HEADER = 'IPVS connection entries\n';
export const CONN_COLUMNS = ['state', 'source', 'virtual', 'destination'];
export const CONN_PE_COLUMNS = ['pe name', 'pe_data'];
export const FORWARD_NAMES = { dr: 'Route', nat: 'Masq', tun: 'Tunnel' } as const;
export const FORWARD_SWITCHES = { dr: '-g', nat: '-m', tun: '-i' } as const;
export const NOT_APPLICABLE = 'n/a';
export const timeoutLine = (tcp: number, tcpfin: number, udp: number) => `Timeout (tcp tcpfin udp): ${tcp} ${tcpfin} ${udp}\n`;

// --- xvs's own messages -----------------------------------------------------------------------

export const xvs = {
  syncDaemon:
    'connection synchronisation (--start-daemon/--stop-daemon) is not implemented in xvs yet: it is a later feature',
  noRateDaemon: (pinPath: string) =>
    `rates are estimated by xvsd, which is not running for ${pinPath}: start it (xvsd --pin-path ${pinPath}, ` +
    'the xvsd.service unit, or xvsadm --attach) and list again after 2 seconds',
  cannotInit: (reason: string) =>
    `Can't initialize xvs: ${reason}\nAre you sure that you are root and that a BPF filesystem is mounted at /sys/fs/bpf?`,
  illegalXdpMode: 'illegal xdp-mode specified (native or generic)',
  extensionOption: (o: string, c: string) => `Illegal '${o}' option with the '${c}' command`,
  notAttached: (ifname: string) => `xvs is not attached to ${ifname}`,
  illegalMarkRule: (text: string, why: string) =>
    `illegal mark rule ${text}: ${why} (syntax: prefix[,tcp|udp][,port|lo-hi]=mark)`,
};
