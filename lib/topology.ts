// Network namespace topologies for the demo, the tests and the benchmarks.
//
// A Topology owns the namespaces it creates, the veth pairs between them (which live and die with
// their namespaces) and the processes it spawns inside them. destroy() undoes all of it; a
// process-wide registry does the same synchronously when the process exits, is interrupted or
// crashes, so that no run leaves namespaces behind.
//
// Facts about veth that shape link(): a frame redirected (XDP_REDIRECT/XDP_TX) into a veth is only
// delivered if the peer has an XDP program or GRO on, and veth leaves TCP/UDP checksums unfinished
// unless TX checksum offload is off. link() therefore turns GRO on and TX offload off on both ends.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Linux limit on interface names (IFNAMSIZ - 1). */
const MAX_IFNAME = 15;
/** How long a spawned process gets to exit after SIGTERM before it is killed. */
const TERM_GRACE_MS = 1000;

/** A short random id (base36) that keeps names of concurrent runs apart. */
export function uniqueSuffix(length = 6): string {
  const value = randomBytes(8).readBigUInt64BE();
  return value.toString(36).padStart(length, '0').slice(-length);
}

export interface ExecResult {
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Kill the command and reject after this many milliseconds. */
  timeoutMs?: number;
}

/** Runs a command and rejects with an Error naming the command and quoting its stderr. */
async function run(file: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  try {
    const { stdout, stderr } = await execFileAsync(file, args, {
      timeout: opts.timeoutMs ?? 0,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { stdout, stderr };
  } catch (err) {
    const e = err as Error & { stderr?: string };
    const detail = e.stderr?.trim() || e.message;
    throw new Error(`${[file, ...args].join(' ')}: ${detail}`, { cause: err });
  }
}

function isIpv6(address: string): boolean {
  return address.includes(':');
}

/** Adds the host prefix (/32 or /128) to an address given without one. */
function withPrefix(address: string): string {
  if (address.includes('/')) return address;
  return `${address}/${isIpv6(address) ? 128 : 32}`;
}

function withoutPrefix(cidr: string): string {
  return cidr.split('/')[0]!;
}

export interface RouteNextHop {
  /** Gateway address. */
  via?: string;
  /** Output interface (alone: the destination is on-link). */
  dev?: string;
  /** Preferred source address for locally generated packets. */
  src?: string;
}

/** A network namespace created by a Topology, with helpers to configure it. */
export class Namespace {
  /** The bind-mount that names the namespace, usable with setns(2). */
  readonly path: string;
  private readonly interfaces = new Set<string>();

  constructor(
    readonly name: string,
    readonly role: string,
  ) {
    this.path = `/run/netns/${name}`;
  }

  /** Runs a command inside the namespace; rejects with its stderr when it fails. */
  exec(args: string[], opts?: ExecOptions): Promise<ExecResult> {
    return run('ip', ['netns', 'exec', this.name, ...args], opts);
  }

  /** Runs `ip ARGS` against this namespace. */
  ip(args: string[]): Promise<ExecResult> {
    return run('ip', ['-n', this.name, ...args]);
  }

  async sysctl(key: string, value: string | number): Promise<void> {
    await this.exec(['sysctl', '-q', '-w', `${key}=${value}`]);
  }

  /** Adds an address (CIDR; a bare address gets the host prefix) to an interface. */
  async addAddress(dev: string, cidr: string): Promise<void> {
    const address = withPrefix(cidr);
    // Without nodad an IPv6 address stays tentative for a second and cannot be bound or used.
    await this.ip(['addr', 'add', address, 'dev', dev, ...(isIpv6(address) ? ['nodad'] : [])]);
  }

  /** Adds or replaces a route; the family follows the destination or the gateway. */
  async route(dst: string, next: RouteNextHop): Promise<void> {
    const family = isIpv6(dst) || (next.via !== undefined && isIpv6(next.via)) ? ['-6'] : [];
    const args = [...family, 'route', 'replace', dst];
    if (next.via !== undefined) args.push('via', next.via);
    if (next.dev !== undefined) args.push('dev', next.dev);
    if (next.src !== undefined) args.push('src', next.src);
    await this.ip(args);
  }

  /** Lets the namespace route packets between its interfaces (bpf_fib_lookup needs it too). */
  async enableForwarding(): Promise<void> {
    await this.sysctl('net.ipv4.ip_forward', 1);
    await this.sysctl('net.ipv6.conf.all.forwarding', 1);
  }

  /**
   * Prepares a direct-routing (or tunnel) real server: it accepts packets for the VIP, held on
   * `lo`, without answering ARP for it, which would steal the VIP from the balancer.
   */
  async acceptVip(vip: string): Promise<void> {
    await this.addAddress('lo', vip);
    if (isIpv6(vip)) return;
    // The kernel applies max(all, interface) for both settings; `default` covers later interfaces.
    for (const scope of ['all', 'default', ...this.interfaces]) {
      await this.sysctl(`net.ipv4.conf.${scope}.arp_ignore`, 1);
      await this.sysctl(`net.ipv4.conf.${scope}.arp_announce`, 2);
    }
  }

  /** Claims an interface name in this namespace, or picks the first free `ethN`. */
  reserveInterface(name?: string): string {
    let chosen = name;
    for (let n = 0; chosen === undefined; n++) {
      if (!this.interfaces.has(`eth${n}`)) chosen = `eth${n}`;
    }
    if (chosen.length > MAX_IFNAME) {
      throw new Error(`interface name "${chosen}" is longer than ${MAX_IFNAME} characters`);
    }
    if (this.interfaces.has(chosen)) {
      throw new Error(`interface "${chosen}" already exists in namespace ${this.name}`);
    }
    this.interfaces.add(chosen);
    return chosen;
  }
}

export interface LinkEndOptions {
  /** Interface name (at most 15 characters); default: the first free `ethN` of the namespace. */
  name?: string;
  /** MAC address; default: a random one chosen by the kernel. */
  mac?: string;
  /** IPv4 address in CIDR form, e.g. `10.0.0.1/24`. */
  ipv4?: string;
  /** IPv6 address in CIDR form, e.g. `fd00::1/64`. */
  ipv6?: string;
}

export interface LinkOptions {
  a?: LinkEndOptions;
  b?: LinkEndOptions;
  mtu?: number;
}

/** One end of a veth pair, as configured (addresses without their prefix). */
export interface LinkEnd {
  ns: Namespace;
  dev: string;
  ifindex: number;
  mac: string;
  ipv4?: string;
  ipv6?: string;
}

export interface Link {
  a: LinkEnd;
  b: LinkEnd;
}

export interface TopologyOptions {
  /** First part of every namespace name; default `xvs`. */
  prefix?: string;
}

/** Namespaces, veth pairs and processes that are created together and destroyed together. */
export class Topology {
  /** The random part of every name this topology creates. */
  readonly id = uniqueSuffix();
  private readonly prefix: string;
  private readonly namespaces: Namespace[] = [];
  private readonly processes = new Set<ChildProcess>();
  private readonly processErrors: Error[] = [];
  private destroyed = false;
  private readonly unregister: () => void;

  constructor(opts: TopologyOptions = {}) {
    this.prefix = opts.prefix ?? 'xvs';
    this.unregister = onExit(() => this.destroySync());
  }

  /** Creates a namespace named `<prefix>-<role>-<id>` with `lo` up. */
  async addNamespace(role: string): Promise<Namespace> {
    this.assertLive();
    if (!/^[a-z][a-z0-9]{0,15}$/i.test(role)) {
      throw new Error(`namespace role "${role}" must be 1-16 letters or digits`);
    }
    if (this.namespaces.some((ns) => ns.role === role)) {
      throw new Error(`namespace role "${role}" already exists in this topology`);
    }
    const ns = new Namespace(`${this.prefix}-${role}-${this.id}`, role);
    await run('ip', ['netns', 'add', ns.name]);
    this.namespaces.push(ns);
    await ns.ip(['link', 'set', 'lo', 'up']);
    return ns;
  }

  /** Connects two namespaces with a veth pair, configured and up on both ends. */
  async link(a: Namespace, b: Namespace, opts: LinkOptions = {}): Promise<Link> {
    this.assertLive();
    const aOpts = opts.a ?? {};
    const bOpts = opts.b ?? {};
    const aDev = a.reserveInterface(aOpts.name);
    const bDev = b.reserveInterface(bOpts.name);
    // Created directly inside the namespaces: nothing ever appears in (or leaks into) the caller's.
    await run('ip', [
      'link', 'add', aDev, 'netns', a.name, ...macArgs(aOpts.mac), ...mtuArgs(opts.mtu),
      'type', 'veth',
      'peer', 'name', bDev, 'netns', b.name, ...macArgs(bOpts.mac), ...mtuArgs(opts.mtu),
    ]);
    return {
      a: await configureEnd(a, aDev, aOpts),
      b: await configureEnd(b, bDev, bOpts),
    };
  }

  /**
   * Starts a long-running process inside a namespace; destroy() stops it. Its stdio are pipes
   * that the caller must consume (or the process may block on a full pipe).
   */
  spawn(ns: Namespace, command: string, args: string[] = []): ChildProcess {
    this.assertLive();
    const child = spawn('ip', ['netns', 'exec', ns.name, command, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.processes.add(child);
    child.on('error', (err) => this.processErrors.push(err));
    child.on('exit', () => this.processes.delete(child));
    return child;
  }

  /**
   * Stops every spawned process (SIGTERM, then SIGKILL) and deletes every namespace, which removes
   * their interfaces. Never throws: returns the errors met on the way (empty when all went well).
   * Calling it again does nothing.
   */
  async destroy(): Promise<Error[]> {
    if (this.destroyed) return [];
    this.destroyed = true;
    this.unregister();
    const errors = [...this.processErrors];
    await Promise.all([...this.processes].map((child) => stopProcess(child)));
    for (const ns of [...this.namespaces].reverse()) {
      try {
        await killRemaining(ns.name);
        await run('ip', ['netns', 'del', ns.name]);
      } catch (err) {
        errors.push(err as Error);
      }
    }
    return errors;
  }

  /** The exit-path variant of destroy(): synchronous, no grace period. */
  private destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const child of this.processes) child.kill('SIGKILL');
    for (const ns of [...this.namespaces].reverse()) {
      try {
        killRemainingSync(ns.name);
        execFileSync('ip', ['netns', 'del', ns.name], { stdio: 'ignore' });
      } catch {
        // Exiting: nobody is left to report to, and the remaining namespaces still deserve a try.
      }
    }
  }

  private assertLive(): void {
    if (this.destroyed) throw new Error(`topology ${this.id} is already destroyed`);
  }
}

function macArgs(mac: string | undefined): string[] {
  return mac === undefined ? [] : ['address', mac];
}

function mtuArgs(mtu: number | undefined): string[] {
  return mtu === undefined ? [] : ['mtu', String(mtu)];
}

async function configureEnd(ns: Namespace, dev: string, opts: LinkEndOptions): Promise<LinkEnd> {
  if (opts.ipv4 !== undefined) await ns.addAddress(dev, opts.ipv4);
  if (opts.ipv6 !== undefined) await ns.addAddress(dev, opts.ipv6);
  await ns.ip(['link', 'set', dev, 'up']);
  // Checksums finished in software, so XDP-forwarded frames arrive valid. GRO only after the
  // link is up: veth starts the NAPI that receives redirected frames when GRO is switched on
  // while the device is up; switched on before, redirected frames are silently dropped.
  await ns.exec(['ethtool', '-K', dev, 'tx', 'off', 'gro', 'on']);
  const [info] = JSON.parse((await ns.ip(['-j', 'link', 'show', 'dev', dev])).stdout) as [
    { ifindex: number; address: string },
  ];
  const end: LinkEnd = { ns, dev, ifindex: info.ifindex, mac: info.address };
  if (opts.ipv4 !== undefined) end.ipv4 = withoutPrefix(opts.ipv4);
  if (opts.ipv6 !== undefined) end.ipv6 = withoutPrefix(opts.ipv6);
  return end;
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (hasExited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (hasExited(child)) return;
  child.kill('SIGTERM');
  if (await waitForExit(child, TERM_GRACE_MS)) return;
  child.kill('SIGKILL');
  await waitForExit(child, TERM_GRACE_MS);
}

function parsePids(text: string): number[] {
  return text.split('\n').filter(Boolean).map(Number);
}

function killPids(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

// Processes still inside a namespace (not spawned through the topology, e.g. an abandoned exec)
// would keep it, and its interfaces, alive after `ip netns del`.
async function killRemaining(nsName: string): Promise<void> {
  killPids(parsePids((await run('ip', ['netns', 'pids', nsName])).stdout));
}

function killRemainingSync(nsName: string): void {
  killPids(parsePids(execFileSync('ip', ['netns', 'pids', nsName], { encoding: 'utf8' })));
}

// ---- Process-wide cleanup registry ----

const exitHooks = new Set<() => void>();
let exitHandlersInstalled = false;

/**
 * Registers a synchronous hook run once when the process exits: normally, through process.exit(),
 * after an uncaught exception (Node emits 'exit' then too), or on SIGINT/SIGTERM/SIGHUP. Hooks run
 * newest first. Returns a function that unregisters the hook.
 */
export function onExit(hook: () => void): () => void {
  installExitHandlers();
  exitHooks.add(hook);
  return () => exitHooks.delete(hook);
}

function runExitHooks(): void {
  const hooks = [...exitHooks].reverse();
  exitHooks.clear();
  for (const hook of hooks) {
    try {
      hook();
    } catch {
      // One failing hook must not keep the others from cleaning up.
    }
  }
}

function installExitHandlers(): void {
  if (exitHandlersInstalled) return;
  exitHandlersInstalled = true;
  process.once('exit', runExitHooks);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      runExitHooks();
      // If the program handles the signal itself, let it decide; otherwise die of the signal as
      // if we had never caught it (the once-listener is already removed, so the default applies).
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}
