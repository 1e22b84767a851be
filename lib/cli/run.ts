// xvsadm's command runner: parses a command line (or, for -R, every line of stdin), opens the
// pinned balancer, executes the commands in one transaction (one lock, one batch of map writes)
// and prints what ipvsadm prints, returning ipvsadm's exit status.
import { addressBytes, familyOf } from '../address.js';
import { Balancer, type MarkRule, type ServiceInfo, type ServiceKey, type ServiceOptions } from '../balancer.js';
import { runningDaemon, startDaemon, stopDaemon } from '../daemon.js';
import { errors, XvsError } from '../errors.js';
import { DEFAULT_PIN_PATH, hasPins } from '../store.js';
import { formatConnections, formatServices } from './format.js';
import { IPPROTO_SCTP, IPPROTO_UDP } from './names.js';
import { AF_INET6, CliExit, type Command, fail, formatMarkRule, parseCommand } from './parse.js';
import { type Cmd, strerror, timeoutLine, tryHelp, xvs } from './texts.js';

export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
  /** All of stdin (for -R). */
  readStdin(): string;
}

export type Env = Record<string, string | undefined>;

/** What a command printed, in order; listings are formatted (names resolved) after the transaction. */
type Output = { stream: 'stdout' | 'stderr'; text: string | Promise<string> };

/** xvs's own commands: their errors keep xvs's words, ipvs_strerror has none for them. */
const EXTENSIONS = new Set<Command['cmd']>(['attach', 'detach', 'teardown', 'addmarkrule', 'delmarkrule', 'listmarkrules']);

const MUTATING = new Set<Command['cmd']>(['add', 'edit', 'del', 'flush', 'adddest', 'editdest', 'deldest', 'timeout', 'zero', 'attach', 'detach', 'addmarkrule', 'delmarkrule']);

/** --pin-path DIR / --pin-path=DIR, allowed anywhere before "--"; taken out before ipvsadm's parsing. */
function takePinPath(argv: readonly string[], env: Env): { pinPath: string; rest: string[] } {
  let pinPath = env.XVS_PIN_PATH || DEFAULT_PIN_PATH;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    if (a === '--pin-path' && i + 1 < argv.length) pinPath = argv[++i]!;
    else if (a.startsWith('--pin-path=')) pinPath = a.slice('--pin-path='.length);
    else rest.push(a);
  }
  return { pinPath, rest };
}

/** config_stream_read: whitespace-separated words per line; the word "ipvsadm" (or "xvsadm") is skipped. */
export function restoreLines(text: string): string[][] {
  return text
    .split('\n')
    .map((line) => line.split(/[ \t\r]+/).filter((w) => w !== '' && w !== 'ipvsadm' && w !== 'xvsadm'))
    .filter((words) => words.length > 0);
}

function serviceKey(c: Command): ServiceKey {
  const s = c.svc;
  if (s.fwmark) return { fwmark: s.fwmark, family: s.af === AF_INET6 ? 'inet6' : 'inet' };
  return { protocol: s.protocol === IPPROTO_UDP ? 'udp' : 'tcp', address: s.address, port: s.port };
}

/** What ipvsadm sends for -A/-E: everything, defaults included (-E replaces the whole service). */
function serviceOptions(c: Command): ServiceOptions {
  return {
    scheduler: c.svc.scheduler,
    persistent: c.svc.persistent ? c.svc.timeout : 0,
    netmask: c.svc.netmask,
    onePacket: c.svc.onePacket,
    schedFlags: c.svc.schedFlags,
  };
}

function sameService(info: ServiceInfo, key: ServiceKey): boolean {
  const k = info.key;
  if ('fwmark' in k || 'fwmark' in key) {
    return 'fwmark' in k && 'fwmark' in key && k.fwmark === key.fwmark && (k.family ?? 'inet') === (key.family ?? 'inet');
  }
  return k.protocol === key.protocol && k.port === key.port && addressBytes(k.address).equals(addressBytes(key.address));
}

/** --list-mark-rules: one rule per line as --add-mark-rule takes it, in the order the classifier
 * tries them: IPv4 first, longest prefix first, then by address; a prefix's rules in their order. */
function listMarkRules(rules: MarkRule[]): string {
  const split = (r: MarkRule) => {
    const [address = '', len = ''] = r.destination.split('/');
    return { family: familyOf(address) === 'inet6' ? 1 : 0, len: Number(len), bytes: addressBytes(address) };
  };
  const sorted = rules
    .map((r, i) => ({ r, i, ...split(r) }))
    .sort((a, b) => a.family - b.family || b.len - a.len || Buffer.compare(a.bytes, b.bytes) || a.i - b.i);
  return sorted.map(({ r }) => `${formatMarkRule(r)}\n`).join('');
}

class Runner {
  readonly outputs: Output[] = [];
  /** Set by --attach: xvsd is started once the attachment is committed. */
  wantDaemon = false;

  constructor(
    private readonly b: Balancer,
    private readonly pinPath: string,
  ) {}

  /** Runs one command: 0, or 255 when the operation failed (its message printed). */
  execute(c: Command, program: string): number {
    const b = this.b;
    const key = () => serviceKey(c);
    switch (c.cmd) {
      case 'list':
        this.list(c);
        return 0;
      case 'save':
        this.print(formatServices(b.list(), { format: c.format, rule: true }));
        return 0;
      case 'restore':
        throw new CliExit(255, tryHelp(program));
      case 'flush':
        return this.op(c, () => b.clear());
      case 'add':
        return this.op(c, () => b.addService(key(), serviceOptions(c)));
      case 'edit':
        return this.op(c, () => b.editService(key(), serviceOptions(c)));
      case 'del':
        return this.op(c, () => b.deleteService(key()));
      case 'zero':
        return this.op(c, () => (c.options.has('service-address') ? b.zero(key()) : b.zero()));
      case 'adddest':
      case 'editdest': {
        const real = { address: c.dest.address, port: c.dest.port };
        const opts = { method: c.dest.method, weight: c.dest.weight, upperThreshold: c.dest.uThreshold, lowerThreshold: c.dest.lThreshold };
        return this.op(c, () => (c.cmd === 'adddest' ? b.addRealServer(key(), real, opts) : b.editRealServer(key(), real, opts)));
      }
      case 'deldest':
        return this.op(c, () => b.deleteRealServer(key(), { address: c.dest.address, port: c.dest.port }));
      case 'timeout':
        return this.op(c, () => b.setTimeouts(c.timeouts));
      case 'startdaemon':
      case 'stopdaemon':
        this.error(xvs.syncDaemon);
        return 255;
      case 'attach':
        return this.op(c, () => {
          if (c.netns && c.netns !== b.namespace) {
            throw errors.invalid(`the balancer pinned at ${this.pinPath} lives in network namespace ${b.namespace ?? '(none)'}`);
          }
          b.attach(c.ifname, { mode: c.xdpMode });
          this.wantDaemon = true;
        });
      case 'detach':
        return this.op(c, () => b.detach(c.ifname));
      case 'teardown':
        throw new CliExit(255, tryHelp(program));
      case 'addmarkrule':
        return this.op(c, () => b.addMarkRule(c.markRule!));
      case 'delmarkrule':
        return this.op(c, () => b.deleteMarkRule(c.markRule!));
      case 'listmarkrules':
        this.print(listMarkRules(b.markRules()));
        return 0;
    }
  }

  private list(c: Command): void {
    const b = this.b;
    const o = c.options;
    if (o.has('connection')) return this.print(formatConnections(b.connections(), c.format));
    if (o.has('timeout')) {
      const t = b.timeouts();
      return this.print(timeoutLine(t.tcp, t.tcpfin, t.udp));
    }
    // --daemon: connection synchronisation daemons, of which xvs runs none yet.
    if (o.has('daemon')) return;
    if (c.format.rate && !runningDaemon(b.dataplane)) throw new CliExit(1, `${xvs.noRateDaemon(this.pinPath)}\n`);
    const services = b.list({ rates: c.format.rate });
    if (o.has('service-address')) {
      const found = services.find((s) => sameService(s, serviceKey(c)));
      if (!found) throw new CliExit(1, `${strerror('getservice', 'ESRCH', '')}\n`);
      return this.print(formatServices([found], { format: c.format }));
    }
    this.print(formatServices(services, { format: c.format, connTableSize: b.dataplane.map('conns').maxEntries }));
  }

  /** An operation of the "kernel": its failure is printed as ipvs_strerror words it, status 255. */
  private op(c: Command, fn: () => void): number {
    try {
      if (c.svc.protocol === IPPROTO_SCTP) throw errors.unsupported('SCTP services (--sctp-service) are not supported');
      // The kernel knows one engine, sip; for any other name it answers as for an unknown scheduler.
      if (c.svc.pe && c.svc.pe !== 'sip') throw new XvsError('ENOENT', `persistence engine not found: ${c.svc.pe}`);
      if (c.svc.pe) throw errors.unsupported('persistence engines (--pe) are not supported');
      fn();
      return 0;
    } catch (e) {
      if (e instanceof XvsError && !EXTENSIONS.has(c.cmd)) this.error(strerror(c.cmd as Cmd, e.code, e.message));
      else if (e instanceof Error) this.error(e.message);
      else throw e;
      return 255;
    }
  }

  private print(text: string | Promise<string>): void {
    this.outputs.push({ stream: 'stdout', text });
  }

  error(text: string): void {
    this.outputs.push({ stream: 'stderr', text: `${text}\n` });
  }
}

async function emit(outputs: Output[], io: Io): Promise<void> {
  for (const o of outputs) {
    const text = await o.text;
    if (o.stream === 'stdout') io.stdout(text);
    else io.stderr(text);
  }
}

function exitWith(e: CliExit, io: Io): number {
  if (e.stdout) io.stdout(e.stdout);
  if (e.stderr) io.stderr(e.stderr);
  return e.status;
}

/** Parses a command line, or for -R every line of stdin, up to the first that makes ipvsadm exit. */
async function parseAll(argv: string[], program: string, io: Io): Promise<{ commands: Command[]; exit?: CliExit }> {
  const top = argv.length ? await parseCommand(argv, program) : await parseCommand(['-L'], program);
  if (top.cmd !== 'restore') return { commands: [top] };
  const commands: Command[] = [];
  for (const words of restoreLines(io.readStdin())) {
    try {
      commands.push(await parseCommand(words, program));
    } catch (e) {
      if (e instanceof CliExit) return { commands, exit: e };
      throw e;
    }
  }
  return { commands };
}

/** Runs xvsadm with argv (without the program name); returns the exit status. */
export async function xvsadm(argv: readonly string[], program: string, io: Io, env: Env = process.env): Promise<number> {
  const { pinPath, rest } = takePinPath(argv, env);
  let parsed: { commands: Command[]; exit?: CliExit };
  try {
    parsed = await parseAll(rest, program, io);
  } catch (e) {
    if (e instanceof CliExit) return exitWith(e, io);
    throw e;
  }
  const { commands } = parsed;
  if (commands[0]?.cmd === 'teardown') return teardown(pinPath);

  let b: Balancer;
  try {
    const attach = commands.find((c) => c.cmd === 'attach');
    const maxConnections = env.XVS_MAX_CONNECTIONS ? Number(env.XVS_MAX_CONNECTIONS) : undefined;
    b = Balancer.open({ pinPath, netns: attach?.netns, maxConnections });
  } catch (e) {
    return exitWith(fail(xvs.cannotInit((e as Error).message)), io);
  }
  try {
    const runner = new Runner(b, pinPath);
    let status = 0;
    let exit = parsed.exit;
    const run = () => {
      for (const c of commands) {
        try {
          status = runner.execute(c, program);
        } catch (e) {
          if (!(e instanceof CliExit)) throw e;
          exit = e;
          return;
        }
      }
    };
    if (commands.some((c) => MUTATING.has(c.cmd))) b.transaction(run);
    else run();
    await emit(runner.outputs, io);
    if (runner.wantDaemon && !env.XVS_NO_XVSD) {
      try {
        await startDaemon(b.dataplane, pinPath);
      } catch (e) {
        io.stderr(`${program}: attached, but ${(e as Error).message}\n`);
      }
    }
    return exit ? exitWith(exit, io) : status;
  } finally {
    b.close();
  }
}

/** --teardown: stops xvsd, detaches every pinned link and removes the pins. */
async function teardown(pinPath: string): Promise<number> {
  if (!hasPins(pinPath)) return 0;
  const b = Balancer.open({ pinPath });
  await stopDaemon(b.dataplane);
  b.destroy();
  return 0;
}
