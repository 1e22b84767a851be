// Typed wrappers around the traffic agent (lib/agents/traffic.mjs, whose header documents the
// protocol): servers that answer with their name, one-shot clients that count the names they
// reach, and sessions that hold connections open across a reconfiguration.
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { packageRoot } from './native.js';
import type { Namespace, Topology } from './topology.js';

/** Path of the agent script; it is not compiled, so it is found from the package root. */
export const trafficAgent = join(packageRoot(), 'lib', 'agents', 'traffic.mjs');

const READY_TIMEOUT_MS = 10_000;
const STDERR_KEPT = 4096;

export type Proto = 'tcp' | 'udp';

export interface ServerOptions {
  /** What the server answers; clients count answers by it. */
  name: string;
  tcp?: number[];
  udp?: number[];
  /** Listen on this address only (default: every address, see the agent's header). */
  bind?: string;
}

export interface ClientOptions {
  proto: Proto;
  host: string;
  port: number;
  /** Connections (TCP) or datagrams from distinct source ports (UDP). */
  count: number;
  /** At most this many in flight (default 16). */
  concurrency?: number;
  /** Per connection or datagram (default 2000). */
  timeoutMs?: number;
}

export interface ClientResult {
  /** How many connections or datagrams each server name answered. */
  answers: Record<string, number>;
  failures: number;
  /** The first few distinct error messages. */
  errors: string[];
}

export interface SessionOptions {
  proto: Proto;
  host: string;
  port: number;
  /** Connections (TCP) or sockets (UDP) to hold. */
  count: number;
  /** Per connection and per check (default 2000). */
  timeoutMs?: number;
}

export interface HeldConnection {
  /** The server that answered when the connection was opened, null if it never was. */
  name: string | null;
  /** TCP: the data sent came back on the same connection. UDP: the same server answered. */
  echoOk: boolean;
  error?: string;
}

function target(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function agentArgs(role: string, ...args: (string | number)[]): string[] {
  return [trafficAgent, role, ...args.map(String)];
}

/** Reads a spawned agent's stdout line by line, failing with its stderr if it exits first. */
class AgentOutput {
  private readonly lines: string[] = [];
  private waiter: (() => void) | undefined;
  private stderr = '';
  private exited: string | undefined;

  constructor(child: ChildProcess, private readonly what: string) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      this.lines.push(line);
      this.wake();
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-STDERR_KEPT);
    });
    child.once('exit', (code, signal) => {
      this.exited = signal ?? `status ${code}`;
      this.wake();
    });
  }

  async next(timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length === 0) {
      if (this.exited !== undefined) throw this.failure(`exited (${this.exited})`);
      const left = deadline - Date.now();
      if (left <= 0) throw this.failure(`gave no answer within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return this.lines.shift()!;
  }

  async nextJson<T>(timeoutMs: number): Promise<T> {
    return JSON.parse(await this.next(timeoutMs)) as T;
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }

  private failure(what: string): Error {
    const detail = this.stderr.trim();
    return new Error(`${this.what} ${what}${detail ? `: ${detail}` : ''}`);
  }
}

/**
 * Starts a server in `ns`, tracked by `topology` (destroy() stops it), and resolves once it
 * listens. The returned process can be killed to take the server down.
 */
export async function startServer(
  topology: Topology,
  ns: Namespace,
  opts: ServerOptions,
): Promise<ChildProcess> {
  const args = ['--name', opts.name];
  for (const port of opts.tcp ?? []) args.push('--tcp', String(port));
  for (const port of opts.udp ?? []) args.push('--udp', String(port));
  if (opts.bind !== undefined) args.push('--bind', opts.bind);
  const child = topology.spawn(ns, process.execPath, agentArgs('serve', ...args));
  const output = new AgentOutput(child, `server ${opts.name} in ${ns.name}`);
  const line = await output.next(READY_TIMEOUT_MS);
  if (line !== 'ready') throw new Error(`server ${opts.name} in ${ns.name} said "${line}"`);
  return child;
}

/** Runs a one-shot client in `ns` and returns which servers answered. */
export async function runClient(ns: Namespace, opts: ClientOptions): Promise<ClientResult> {
  const { stdout } = await ns.exec([
    process.execPath,
    ...agentArgs(
      'connect',
      `--${opts.proto}`, target(opts.host, opts.port),
      '--count', opts.count,
      '--concurrency', opts.concurrency ?? 16,
      '--timeout', opts.timeoutMs ?? 2000,
    ),
  ]);
  return JSON.parse(stdout) as ClientResult;
}

/** Connections held open by a client in a namespace, checked on demand. */
export class Session {
  private constructor(
    private readonly child: ChildProcess,
    private readonly output: AgentOutput,
    private readonly timeoutMs: number,
    /** Server name per connection, in order; null where the connection failed. */
    readonly names: (string | null)[],
    readonly failures: number,
    readonly errors: string[],
  ) {}

  /** Opens `count` connections from `ns`, held until close() (or the topology's destroy()). */
  static async open(topology: Topology, ns: Namespace, opts: SessionOptions): Promise<Session> {
    const timeoutMs = opts.timeoutMs ?? 2000;
    const child = topology.spawn(
      ns,
      process.execPath,
      agentArgs(
        'session',
        `--${opts.proto}`, target(opts.host, opts.port),
        '--count', opts.count,
        '--timeout', timeoutMs,
      ),
    );
    const output = new AgentOutput(child, `session client in ${ns.name}`);
    const opened = await output.nextJson<{ names: (string | null)[]; failures: number; errors: string[] }>(
      timeoutMs + READY_TIMEOUT_MS,
    );
    return new Session(child, output, timeoutMs, opened.names, opened.failures, opened.errors);
  }

  /** Sends data on every held connection and reports, per connection, whether it still works. */
  async check(): Promise<HeldConnection[]> {
    this.child.stdin!.write('check\n');
    return (await this.output.nextJson<{ held: HeldConnection[] }>(this.timeoutMs + READY_TIMEOUT_MS)).held;
  }

  /** Closes the connections gracefully and waits for the client to exit. */
  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin!.end('close\n');
    await exited;
  }
}

