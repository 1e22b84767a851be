// ipvsadm's command line (parse_options and the checks of process_options in ipvsadm.c), option
// for option, with its messages and exit codes: a mistake throws CliExit before anything changes.
import { isIPv6 } from 'node:net';
import { ADDRESS_BITS, addressBytes, familyOf, formatAddress } from '../address.js';
import type { MarkRule } from '../mark.js';
import type { TunnelChecksum, TunnelType } from '../tuntype.js';
import { hostToAddress, inetAton, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, serviceToPort, strIsDigit, stringToNumber } from './names.js';
import { Popt, type OptionDef } from './popt.js';
import {
  CMD_NAMES, COMMANDS_V_OPTIONS, type Cmd, DEFAULT_PERSISTENT_TIMEOUT, DEFAULT_SCHEDULER, MAX_TIMEOUT, msg, type Opt,
  OPT_NAMES, TUNNEL_OPTS, TUNNEL_TYPES_V_OPTIONS, tryHelp, usage, versionLine, xvs,
} from './texts.js';

export const AF_INET = 2;
export const AF_INET6 = 10;

/** An ipvsadm exit: what to print and the status. */
export class CliExit extends Error {
  constructor(
    readonly status: number,
    readonly stderr = '',
    readonly stdout = '',
  ) {
    super(stderr || stdout || `exit ${status}`);
  }
}

/** fail(): the message and a newline on stderr, exit status 2. */
export const fail = (message: string) => new CliExit(2, `${message}\n`);

export type ExtCmd = 'attach' | 'detach' | 'teardown' | 'addmarkrule' | 'delmarkrule' | 'listmarkrules' | 'sysctl';

export type Method = 'dr' | 'nat' | 'tun';

export interface VirtualService {
  af: number;
  protocol: number;
  address: string;
  port: number;
  fwmark: number;
  persistent: boolean;
  onePacket: boolean;
  /** Persistence timeout, seconds. */
  timeout: number;
  /** IPv4: dotted mask; IPv6: prefix length. */
  netmask: string;
  scheduler: string;
  pe: string;
  /** Scheduler flag names as ipvsadm prints them for the scheduler (sh-fallback, flag-3, ...). */
  schedFlags: string[];
}

export interface Destination {
  af: number;
  address: string;
  port: number;
  method: Method;
  weight: number;
  uThreshold: number;
  lThreshold: number;
  tunType: TunnelType;
  tunPort: number;
  tunChecksum: TunnelChecksum;
}

export interface Command {
  cmd: Cmd | ExtCmd;
  options: Set<Opt>;
  /** FMT_* flags of ipvsadm. */
  format: { numeric: boolean; stats: boolean; rate: boolean; thresholds: boolean; persistentConn: boolean; nosort: boolean; exact: boolean; tunInfo: boolean };
  svc: VirtualService;
  dest: Destination;
  timeouts: { tcp: number; tcpfin: number; udp: number };
  daemonState: 'master' | 'backup' | undefined;
  ifname: string;
  xdpMode: 'native' | 'generic';
  netns: string | undefined;
  /** --add-mark-rule / --del-mark-rule. */
  markRule: MarkRule | undefined;
  /** --sysctl NAME[=VALUE]: net.ipv4.vs.NAME of kernel IPVS, set when a value is given. */
  sysctl: { name: string; value: number | undefined } | undefined;
}

const TABLE: OptionDef[] = [
  ['add-service', 'A', 'none', 'A'], ['edit-service', 'E', 'none', 'E'], ['delete-service', 'D', 'none', 'D'],
  ['clear', 'C', 'none', 'C'], ['list', 'L', 'none', 'L'], ['list', 'l', 'none', 'L'], ['zero', 'Z', 'none', 'Z'],
  ['add-server', 'a', 'none', 'a'], ['edit-server', 'e', 'none', 'e'], ['delete-server', 'd', 'none', 'd'],
  ['set', undefined, 'none', 'set'], ['help', 'h', 'none', 'h'], ['version', 'v', 'none', 'v'],
  ['restore', 'R', 'none', 'R'], ['save', 'S', 'none', 'S'], ['start-daemon', undefined, 'required', 'start-daemon'],
  ['stop-daemon', undefined, 'required', 'stop-daemon'], ['tcp-service', 't', 'required', 't'],
  ['udp-service', 'u', 'required', 'u'], ['sctp-service', undefined, 'required', 'sctp'],
  ['fwmark-service', 'f', 'required', 'f'], ['scheduler', 's', 'required', 's'], ['persistent', 'p', 'optional', 'p'],
  ['netmask', 'M', 'required', 'M'], ['real-server', 'r', 'required', 'r'], ['masquerading', 'm', 'none', 'm'],
  ['ipip', 'i', 'none', 'i'], ['gatewaying', 'g', 'none', 'g'], ['weight', 'w', 'required', 'w'],
  ['u-threshold', 'x', 'required', 'x'], ['l-threshold', 'y', 'required', 'y'], ['numeric', 'n', 'none', 'n'],
  ['connection', 'c', 'none', 'c'], ['mcast-interface', undefined, 'required', 'mcast-interface'],
  ['syncid', undefined, 'required', 'syncid'], ['timeout', undefined, 'none', 'timeout'],
  ['daemon', undefined, 'none', 'daemon'], ['stats', undefined, 'none', 'stats'], ['rate', undefined, 'none', 'rate'],
  ['thresholds', undefined, 'none', 'thresholds'], ['persistent-conn', undefined, 'none', 'persistent-conn'],
  ['nosort', undefined, 'none', 'nosort'], ['sort', undefined, 'none', 'sort'], ['exact', 'X', 'none', 'X'],
  ['ipv6', '6', 'none', '6'], ['ops', 'o', 'none', 'o'], ['pe', undefined, 'required', 'pe'],
  ['sched-flags', 'b', 'required', 'b'], ['mcast-group', undefined, 'required', 'mcast-group'],
  ['mcast-port', undefined, 'required', 'mcast-port'], ['mcast-ttl', undefined, 'required', 'mcast-ttl'],
  ['sync-maxlen', undefined, 'required', 'sync-maxlen'], ['tun-info', undefined, 'none', 'tun-info'],
  ['tun-type', undefined, 'required', 'tun-type'], ['tun-port', undefined, 'required', 'tun-port'],
  ['tun-nocsum', undefined, 'none', 'tun-nocsum'], ['tun-csum', undefined, 'none', 'tun-csum'],
  ['tun-remcsum', undefined, 'none', 'tun-remcsum'],
  // xvs extensions
  ['attach', undefined, 'required', 'attach'], ['detach', undefined, 'required', 'detach'],
  ['teardown', undefined, 'none', 'teardown'], ['xdp-mode', undefined, 'required', 'xdp-mode'],
  ['netns', undefined, 'required', 'netns'], ['add-mark-rule', undefined, 'required', 'add-mark-rule'],
  ['del-mark-rule', undefined, 'required', 'del-mark-rule'], ['list-mark-rules', undefined, 'none', 'list-mark-rules'],
  ['sysctl', undefined, 'required', 'sysctl'],
].map(([long, short, arg, tag]) => ({ long, short, arg, tag }) as OptionDef);

const COMMAND_TAGS: Record<string, Cmd | ExtCmd> = {
  A: 'add', E: 'edit', D: 'del', a: 'adddest', e: 'editdest', d: 'deldest', C: 'flush', L: 'list', Z: 'zero',
  set: 'timeout', R: 'restore', S: 'save', 'start-daemon': 'startdaemon', 'stop-daemon': 'stopdaemon',
  attach: 'attach', detach: 'detach', teardown: 'teardown', 'add-mark-rule': 'addmarkrule',
  'del-mark-rule': 'delmarkrule', 'list-mark-rules': 'listmarkrules', sysctl: 'sysctl',
};

const EXT_NAMES: Record<ExtCmd, string> = {
  attach: 'attach', detach: 'detach', teardown: 'teardown', addmarkrule: 'add-mark-rule',
  delmarkrule: 'del-mark-rule', listmarkrules: 'list-mark-rules', sysctl: 'sysctl',
};

const isExtCmd = (cmd: Cmd | ExtCmd): cmd is ExtCmd => cmd in EXT_NAMES;

const SERVICE_ADDR = 1;
const SERVICE_PORT = 2;

/** IP_VS_SVC_F_SCHED1..3 bits by flag name; sh/mh names alias the generic ones. */
const SCHED_FLAG_BITS: Record<string, [bit: number, scheduler?: string]> = {
  'flag-1': [1], 'flag-2': [2], 'flag-3': [4],
  'sh-fallback': [1, 'sh'], 'sh-port': [2, 'sh'], 'mh-fallback': [1, 'mh'], 'mh-port': [2, 'mh'],
};

/** The names print_sched_flags shows for a scheduler's flag bits. */
export function schedFlagNames(scheduler: string, bits: number): string[] {
  const named = scheduler === 'sh' || scheduler === 'mh';
  const names = named ? [`${scheduler}-fallback`, `${scheduler}-port`] : ['flag-1', 'flag-2', 'flag-3'];
  return names.filter((_, i) => bits & (1 << i));
}

export function schedFlagBits(flags: readonly string[]): number {
  return flags.reduce((bits, f) => bits | (SCHED_FLAG_BITS[f]?.[0] ?? 0), 0);
}

function newCommand(): Command {
  return {
    cmd: 'list',
    options: new Set(),
    format: { numeric: false, stats: false, rate: false, thresholds: false, persistentConn: false, nosort: false, exact: false, tunInfo: false },
    svc: {
      af: 0, protocol: 0, address: '', port: 0, fwmark: 0, persistent: false, onePacket: false, timeout: 0,
      netmask: '255.255.255.255', scheduler: '', pe: '', schedFlags: [],
    },
    dest: { af: 0, address: '', port: 0, method: 'dr', weight: 1, uThreshold: 0, lThreshold: 0, tunType: 'ipip', tunPort: 0, tunChecksum: 'nocsum' },
    timeouts: { tcp: 0, tcpfin: 0, udp: 0 },
    daemonState: undefined,
    ifname: '',
    xdpMode: 'native',
    netns: undefined,
    markRule: undefined,
    sysctl: undefined,
  };
}

/** --sysctl NAME[=VALUE]: NAME with or without net.ipv4.vs., VALUE a number. */
function parseSysctl(text: string): { name: string; value: number | undefined } {
  const m = /^(?:net\.ipv4\.vs\.)?([a-z_]+)(?:=(\d+))?$/.exec(text);
  if (!m) throw new CliExit(2, `illegal sysctl \`${text}' specified (NAME or NAME=VALUE)\n`);
  return { name: m[1]!, value: m[2] === undefined ? undefined : Number(m[2]) };
}

/** inet_pton(AF_INET6): node's check without zone ids, which glibc refuses. */
function isInet6(s: string): boolean {
  return isIPv6(s) && !s.includes('%');
}

/** parse_service: address (name or number), optional :port (name or number), IPv6 in brackets. */
async function parseService(
  text: string,
  target: { af: number; address: string; port: number; protocol: number },
): Promise<number> {
  if (strIsDigit(text)) return 0;
  let buf = text;
  let portText: string | undefined;
  if (buf.startsWith('[')) {
    buf = buf.slice(1);
    const close = buf.indexOf(']');
    if (close < 0 || buf[close + 1] !== ':') return 0;
    portText = buf.slice(close + 2);
    buf = buf.slice(0, close);
  }
  if (isInet6(buf)) {
    target.address = formatAddress(addressBytes(buf), 'inet6');
    target.af = AF_INET6;
  } else {
    // ipvsadm looks for the port again here, so a bracketed IPv4 address loses its port.
    const colon = buf.lastIndexOf(':');
    portText = colon < 0 ? undefined : buf.slice(colon + 1);
    if (colon >= 0) buf = buf.slice(0, colon);
    const address = inetAton(buf) ?? (await hostToAddress(buf));
    if (!address) return 0;
    target.address = address;
    target.af = AF_INET;
  }
  if (portText === undefined) return SERVICE_ADDR;
  const port = stringToNumber(portText, 0, 65535) ?? serviceToPort(portText, target.protocol);
  if (port === undefined) return 0;
  target.port = port;
  return SERVICE_ADDR | SERVICE_PORT;
}

function atoi(s: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?\d+)/.exec(s);
  return m ? parseInt(m[1]!, 10) : 0;
}

function parseTimeout(text: string | undefined, min: number, max: number): number {
  if (text === undefined) return DEFAULT_PERSISTENT_TIMEOUT;
  const n = stringToNumber(text, min, max);
  if (n === undefined) throw fail(msg.invalidTimeout(text));
  return n;
}

function parseFwmark(text: string): number {
  const n = stringToNumber(text, 1, 0xffffffff);
  if (n === undefined) throw fail(msg.invalidFwmark(text));
  return n;
}

function parseSchedFlags(scheduler: string, arg: string): string[] {
  const sched = scheduler || DEFAULT_SCHEDULER;
  let bits = 0;
  const flags = arg.split(',').filter((f) => f !== '');
  if (!flags.length) throw fail(msg.invalidSchedFlag(arg));
  for (const flag of flags) {
    const known = SCHED_FLAG_BITS[flag];
    if (!known) throw fail(msg.invalidSchedFlag(flag));
    if (known[1] && known[1] !== sched) throw fail(msg.incompatibleSchedFlag(flag));
    bits |= known[0];
  }
  if (sched === 'sh' || sched === 'mh') return [...schedFlagNames(sched, bits), ...(bits & 4 ? ['flag-3'] : [])];
  return schedFlagNames(sched, bits);
}

/**
 * A mark rule as --add-mark-rule/--del-mark-rule take it and --list-mark-rules prints it:
 * PREFIX[,tcp|udp][,PORT|LO-HI]=MARK (numeric addresses; a plain address is a /32 or /128).
 */
export function parseMarkRule(text: string): MarkRule {
  const bad = (why: string) => fail(xvs.illegalMarkRule(text, why));
  const eq = text.lastIndexOf('=');
  if (eq < 0) throw bad('no =MARK');
  const markText = text.slice(eq + 1);
  const mark = /^\d+$/.test(markText) ? stringToNumber(markText, 1, 0xffffffff) : undefined;
  if (mark === undefined) throw bad(`firewall mark ${markText || '(none)'} is not 1..4294967295`);
  const [destination = '', ...fields] = text.slice(0, eq).split(',');
  const [address = '', lenText, ...more] = destination.split('/');
  const family = familyOf(address);
  if (!family || more.length) throw bad(`${destination || '(none)'} is not a numeric address or prefix`);
  if (lenText !== undefined && (!/^\d+$/.test(lenText) || Number(lenText) > ADDRESS_BITS[family])) {
    throw bad(`prefix length /${lenText} is not 0..${ADDRESS_BITS[family]}`);
  }
  const rule: MarkRule = { destination, mark };
  if (fields[0] === 'tcp' || fields[0] === 'udp') rule.protocol = fields.shift() as 'tcp' | 'udp';
  if (fields.length) {
    const portText = fields.shift()!;
    const m = /^(\d+)(?:-(\d+))?$/.exec(portText);
    const [lo, hi] = m ? [Number(m[1]), Number(m[2] ?? m[1])] : [NaN, NaN];
    if (!(lo <= hi && hi <= 65535)) throw bad(`${portText} is not tcp, udp, a port or a port range LO-HI`);
    rule.ports = lo === hi ? lo : [lo, hi];
  }
  if (fields.length) throw bad(`unexpected ,${fields.join(',')}`);
  return rule;
}

/** A mark rule in the syntax parseMarkRule reads; all ports (0-65535) are left out. */
export function formatMarkRule(rule: MarkRule): string {
  const [lo, hi] = rule.ports === undefined ? [0, 65535] : typeof rule.ports === 'number' ? [rule.ports, rule.ports] : rule.ports;
  const ports = lo === 0 && hi === 65535 ? '' : lo === hi ? `,${lo}` : `,${lo}-${hi}`;
  return `${rule.destination}${rule.protocol ? `,${rule.protocol}` : ''}${ports}=${rule.mark}`;
}

function isMulticast4(a: string): boolean {
  const first = Number(a.split('.')[0]);
  return first >= 224 && first <= 239;
}

class Parser {
  readonly ce = newCommand();
  private schedFlagsArg = '';
  private extOptions: string[] = [];

  setOption(opt: Opt): void {
    if (this.ce.options.has(opt)) throw fail(msg.multipleOptions(opt));
    this.ce.options.add(opt);
  }

  /** One option after the command; `word` is the command-line word it came from. */
  async option(tag: string, arg: string | undefined, word: string): Promise<void> {
    const { ce } = this;
    switch (tag) {
      case 't':
      case 'u':
      case 'sctp': {
        this.setOption('service-address');
        ce.svc.protocol = tag === 't' ? IPPROTO_TCP : tag === 'u' ? IPPROTO_UDP : IPPROTO_SCTP;
        const parsed = await parseService(arg!, ce.svc);
        if (ce.svc.af === AF_INET6) ce.svc.netmask = '128';
        if (!(parsed & SERVICE_ADDR)) throw fail(msg.illegalService);
        return;
      }
      case 'f':
        this.setOption('service-address');
        ce.svc.af = AF_INET;
        ce.svc.protocol = IPPROTO_TCP;
        ce.svc.fwmark = parseFwmark(arg!);
        return;
      case 's':
        this.setOption('scheduler');
        ce.svc.scheduler = arg!.slice(0, 15);
        return;
      case 'p':
        this.setOption('persistent');
        ce.svc.persistent = true;
        ce.svc.timeout = parseTimeout(arg, 1, MAX_TIMEOUT);
        return;
      case 'M':
        this.setOption('netmask');
        if (ce.svc.af !== AF_INET6) {
          const mask = inetAton(arg!) ?? (await hostToAddress(arg!));
          if (!mask) throw fail(msg.illegalMask);
          ce.svc.netmask = mask;
        } else {
          const bits = atoi(arg!);
          if (bits < 1 || bits > 128) throw fail(msg.illegalV6Mask);
          ce.svc.netmask = String(bits);
        }
        return;
      case 'r': {
        this.setOption('real-server');
        const t = { af: ce.svc.af, address: ce.svc.address, port: ce.svc.port, protocol: ce.svc.protocol };
        const parsed = await parseService(arg!, t);
        Object.assign(ce.dest, { af: t.af, address: t.address, port: t.port });
        if (!(parsed & SERVICE_ADDR)) throw fail(msg.illegalReal);
        if (parsed === SERVICE_ADDR) ce.dest.port = ce.svc.port;
        return;
      }
      case 'i':
      case 'g':
      case 'm':
        this.setOption('forwarding-method');
        ce.dest.method = tag === 'i' ? 'tun' : tag === 'g' ? 'dr' : 'nat';
        return;
      case 'w':
        this.setOption('weight');
        ce.dest.weight = this.number(arg!, 0, 0x7fffffff, msg.illegalWeight);
        return;
      case 'x':
        this.setOption('u-threshold');
        ce.dest.uThreshold = this.number(arg!, 0, 0x7fffffff, msg.illegalUThreshold);
        return;
      case 'y':
        this.setOption('l-threshold');
        ce.dest.lThreshold = this.number(arg!, 0, 0x7fffffff, msg.illegalLThreshold);
        return;
      case 'c':
        return this.setOption('connection');
      case 'n':
        this.setOption('numeric');
        ce.format.numeric = true;
        return;
      case 'mcast-interface':
        return this.setOption('mcast-interface');
      case 'syncid':
        this.setOption('syncid');
        this.number(arg!, 0, 255, msg.illegalSyncid);
        return;
      case 'timeout':
        return this.setOption('timeout');
      case 'daemon':
        return this.setOption('daemon');
      case 'stats':
      case 'rate':
      case 'thresholds':
      case 'persistent-conn':
      case 'nosort':
      case 'tun-info': {
        this.setOption(tag);
        const flag = { stats: 'stats', rate: 'rate', thresholds: 'thresholds', 'persistent-conn': 'persistentConn', nosort: 'nosort', 'tun-info': 'tunInfo' } as const;
        ce.format[flag[tag]] = true;
        return;
      }
      case 'sort':
        return;
      case 'X':
        this.setOption('exact');
        ce.format.exact = true;
        return;
      case '6':
        if (!ce.svc.fwmark) throw fail(msg.sixBeforeF);
        ce.svc.af = AF_INET6;
        ce.svc.netmask = '128';
        return;
      case 'o':
        this.setOption('ops');
        ce.svc.onePacket = true;
        return;
      case 'pe':
        this.setOption('pe');
        ce.svc.pe = arg!.slice(0, 32);
        return;
      case 'b':
        this.setOption('sched-flags');
        this.schedFlagsArg = arg!.slice(0, 127);
        return;
      case 'mcast-group':
        this.setOption('mcast-group');
        if (arg!.includes(':')) {
          if (!isInet6(arg!) || !formatAddress(addressBytes(arg!), 'inet6').startsWith('ff')) {
            throw fail(msg.invalidMcastGroup('IPv6', arg!));
          }
        } else if (!inetAton(arg!) || !isMulticast4(inetAton(arg!)!)) {
          throw fail(msg.invalidMcastGroup('IPv4', arg!));
        }
        return;
      case 'mcast-port':
        this.setOption('mcast-port');
        this.number(arg!, 1, 65535, msg.illegalMcastPort);
        return;
      case 'mcast-ttl':
        this.setOption('mcast-ttl');
        this.number(arg!, 1, 255, msg.illegalMcastTtl);
        return;
      case 'sync-maxlen':
        this.setOption('sync-maxlen');
        this.number(arg!, 1, 65535 - 20 - 8, msg.illegalSyncMaxlen);
        return;
      case 'tun-type':
        this.setOption('tun-type');
        if (arg !== 'ipip' && arg !== 'gue' && arg !== 'gre') throw fail(msg.illegalTunType);
        ce.dest.tunType = arg;
        return;
      case 'tun-port':
        this.setOption('tun-port');
        ce.dest.tunPort = this.number(arg!, 1, 65535, msg.illegalTunPort);
        return;
      case 'tun-nocsum':
      case 'tun-csum':
      case 'tun-remcsum':
        ce.dest.tunChecksum = tag === 'tun-csum' ? 'csum' : tag === 'tun-remcsum' ? 'remcsum' : 'nocsum';
        return this.setOption(tag);
      case 'xdp-mode':
        if (arg !== 'native' && arg !== 'generic') throw fail(xvs.illegalXdpMode);
        ce.xdpMode = arg;
        this.extOptions.push(tag);
        return;
      case 'netns':
        ce.netns = arg;
        this.extOptions.push(tag);
        return;
      default:
        throw fail(msg.invalidOption(word));
    }
  }

  private number(text: string, min: number, max: number, message: string): number {
    const n = stringToNumber(text, min, max);
    if (n === undefined) throw fail(message);
    return n;
  }

  /** After the options: --set's values, leftover words, scheduler flags. */
  finish(popt: Popt): void {
    const { ce } = this;
    if (ce.cmd === 'timeout') {
      const [a, b, c] = [popt.nextArg(), popt.nextArg(), popt.nextArg()];
      if (a === undefined || b === undefined || c === undefined) throw fail(msg.setNeedsThree);
      ce.timeouts = { tcp: parseTimeout(a, 0, MAX_TIMEOUT), tcpfin: parseTimeout(b, 0, MAX_TIMEOUT), udp: parseTimeout(c, 0, MAX_TIMEOUT) };
    }
    const extra = popt.nextArg();
    if (extra !== undefined) throw fail(msg.unexpectedArgument(extra));
    if (this.schedFlagsArg) ce.svc.schedFlags = parseSchedFlags(ce.svc.scheduler, this.schedFlagsArg);
  }

  /** generic_opt_check and the checks process_options makes before acting. */
  check(): void {
    const { ce } = this;
    if (isExtCmd(ce.cmd)) return this.checkExtension(ce.cmd);
    const name = CMD_NAMES[ce.cmd];
    for (const ext of this.extOptions) throw fail(xvs.extensionOption(ext, name));
    checkRules(COMMANDS_V_OPTIONS[ce.cmd], OPT_NAMES, ce.options, {
      need: (o) => msg.needOption(o, name),
      illegal: (o) => msg.illegalOption(o, name),
      conflicts: (o, last) => msg.conflicts(o, last, name),
    });
    if (ce.cmd === 'add' || ce.cmd === 'edit') {
      if (!ce.svc.fwmark && !ce.svc.port && !ce.svc.persistent) throw fail(msg.zeroPort);
      if (ce.svc.onePacket && !ce.svc.fwmark && ce.svc.protocol !== IPPROTO_UDP) throw fail(msg.onePacketUdp);
      if (!ce.svc.scheduler) ce.svc.scheduler = DEFAULT_SCHEDULER;
    }
    if (ce.cmd === 'adddest' || ce.cmd === 'editdest') this.checkDestination();
    if (ce.cmd === 'list') {
      const o = ce.options;
      const any = (...names: Opt[]) => names.some((n) => o.has(n));
      if ((any('connection', 'timeout', 'daemon') && any('stats', 'rate', 'thresholds')) || (any('timeout', 'daemon') && o.has('persistent-conn'))) {
        throw fail(msg.listConflicts);
      }
    }
  }

  private checkDestination(): void {
    const { ce } = this;
    if (!ce.svc.fwmark && (ce.dest.method === 'tun' || ce.dest.method === 'dr')) ce.dest.port = ce.svc.port;
    if (ce.dest.af !== ce.svc.af && ce.dest.method !== 'tun') throw fail(msg.familyTunnelOnly);
    const tunnelOptions = TUNNEL_OPTS.some((o) => ce.options.has(o)) || ce.options.has('tun-type');
    if (tunnelOptions && ce.dest.method !== 'tun') throw fail(msg.tunnelConflictsMethod);
    const type = ce.dest.tunType;
    checkRules(TUNNEL_TYPES_V_OPTIONS[type]!, TUNNEL_OPTS, ce.options, {
      need: (o) => msg.needTunnelOption(o, type),
      illegal: (o) => msg.illegalTunnelOption(o, type),
      conflicts: (o, last) => msg.tunnelConflicts(o, last, type),
    });
  }

  private checkExtension(cmd: ExtCmd): void {
    const first = OPT_NAMES.find((o) => this.ce.options.has(o));
    if (first) throw fail(xvs.extensionOption(first, EXT_NAMES[cmd]));
    for (const ext of this.extOptions) {
      if (cmd !== 'attach') throw fail(xvs.extensionOption(ext, EXT_NAMES[cmd]));
    }
  }
}

/**
 * generic_opt_check and tunnel_opt_check: per option of `opts`, a rule of `row`: '+' compulsory,
 * 'x' illegal, '1' exclusive (one at most), ' ' optional. The first broken rule fails.
 */
function checkRules(
  row: string,
  opts: readonly Opt[],
  given: ReadonlySet<Opt>,
  words: { need(o: Opt): string; illegal(o: Opt): string; conflicts(o: Opt, last: Opt): string },
): void {
  let last: Opt | undefined;
  opts.forEach((opt, j) => {
    if (!given.has(opt)) {
      if (row[j] === '+') throw fail(words.need(opt));
      return;
    }
    if (row[j] === 'x') throw fail(words.illegal(opt));
    if (row[j] === '1') {
      if (last) throw fail(words.conflicts(opt, last));
      last = opt;
    }
  });
}

/**
 * Parses one ipvsadm command line (argv without the program name). Throws CliExit for -h, -v and
 * every mistake.
 */
export async function parseCommand(argv: readonly string[], program: string): Promise<Command> {
  const popt = new Popt(argv, TABLE);
  const p = new Parser();
  const first = popt.nextOption();
  if (first.kind !== 'option') throw new CliExit(255, tryHelp(program));
  const tag = first.def.tag;
  if (tag === 'h') throw new CliExit(0, '', usage(program));
  if (tag === 'v') throw new CliExit(0, '', versionLine());
  const cmd = COMMAND_TAGS[tag];
  if (!cmd) throw new CliExit(255, tryHelp(program));
  p.ce.cmd = cmd;
  if (cmd === 'startdaemon' || cmd === 'stopdaemon') {
    if (first.arg !== 'master' && first.arg !== 'backup') {
      throw fail(cmd === 'startdaemon' ? msg.illegalStartDaemon : msg.illegalStopDaemon);
    }
    p.ce.daemonState = first.arg;
  }
  if (cmd === 'attach' || cmd === 'detach') p.ce.ifname = first.arg!;
  if (cmd === 'addmarkrule' || cmd === 'delmarkrule') p.ce.markRule = parseMarkRule(first.arg!);
  if (cmd === 'sysctl') p.ce.sysctl = parseSysctl(first.arg!);
  for (;;) {
    const r = popt.nextOption();
    if (r.kind === 'end') break;
    if (r.kind === 'error') throw new CliExit(255, `${r.bad}: ${r.error}\n`);
    // ipvsadm's option loop has no case for a second command: it is an invalid option there.
    if (COMMAND_TAGS[r.def.tag] || r.def.tag === 'h' || r.def.tag === 'v') throw fail(msg.invalidOption(popt.word));
    await p.option(r.def.tag, r.arg, popt.word);
  }
  p.finish(popt);
  p.check();
  return p.ce;
}
