// What a conformance case is, the one-line builders cases.ts uses, and what each side returns.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { packageRoot } from '../../lib/native.js';

/** The traffic both sides run (see its header), and the guest's own work. */
export const LAB = join(packageRoot(), 'test', 'conformance', 'lab.py');
export const GUEST = join(packageRoot(), 'test', 'conformance', 'guest.py');

/** One command line: ipvsadm's arguments, and stdin (for -R). */
export interface Line {
  args: string[];
  stdin?: string;
}

export interface Result {
  stdout: string;
  stderr: string;
  status: number;
}

export interface CommandCase {
  kind: 'command';
  name: string;
  lines: Line[];
  /** A feature of pending.ts this case needs. */
  feature?: string;
}

export type Action =
  | { do: 'tcp'; host: string; port: number; n: number; hold?: number }
  | { do: 'udp'; host: string; port: number; n: number }
  | { do: 'close' }
  | { do: 'snapshot' }
  | { do: 'sleep'; seconds: number }
  | { do: 'admin'; commands: string[][] };

export interface TrafficCase {
  kind: 'traffic';
  name: string;
  /** The client's first source port (from the name: the same on both sides, whatever the order). */
  firstPort: number;
  /** Command lines run before any traffic. */
  setup: string[][];
  actions: Action[];
  feature?: string;
}

export type Case = CommandCase | TrafficCase;

/** What the guest is given (both kinds: it runs them all in one boot). */
export interface Job {
  commands: { lines: Line[] }[];
  traffic: TrafficJob[];
}

/** A traffic case as lab.py takes it; the client's source ports count up from firstPort. */
export interface TrafficJob {
  name: string;
  firstPort: number;
  setup: string[][];
  actions: Action[];
}

export type AdminResult = Result & { args: string[] };

export type Step =
  | { do: 'tcp' | 'udp'; names: (string | null)[] }
  | { do: 'admin' | 'snapshot'; results: AdminResult[] }
  | { do: 'close' | 'sleep' };

export interface TrafficResult {
  name: string;
  setup: AdminResult[];
  steps: Step[];
}

const words = (line: string): string[] => line.trim().split(/\s+/).filter(Boolean);

/** `-R` with these lines on stdin. */
export function restore(...lines: string[]): Line {
  return { args: ['-R'], stdin: lines.map((l) => `${l}\n`).join('') };
}

/** A command case: a session of ipvsadm command lines against a fresh table. */
export function cmd(name: string, ...lines: (string | Line)[]): CommandCase {
  return { kind: 'command', name, lines: lines.map((l) => (typeof l === 'string' ? { args: words(l) } : l)) };
}

function target(text: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  if (!m) throw new Error(`traffic target must be HOST:PORT or [HOST]:PORT, got "${text}"`);
  return { host: m[1]!, port: Number(m[2]) };
}

/**
 * Traffic actions, separated by `;`:
 *   tcp HOST:PORT N [hold K]  N connections one after the other, the first K held open
 *   udp HOST:PORT N           N datagrams, each from a new source port
 *   close                     closes the held connections
 *   adm ARGS                  an ipvsadm command, its result compared
 *   sleep S                   waits S seconds
 *   snap                      waits for the counters, then compares -Ln, --stats --exact,
 *                             --persistent-conn, --thresholds and -Lnc (expiry masked)
 */
function parseActions(text: string): Action[] {
  return text.split(';').map((part) => {
    const [verb, ...rest] = words(part);
    switch (verb) {
      case 'tcp':
      case 'udp': {
        const hold = rest[2] === 'hold' ? Number(rest[3]) : 0;
        const base = { ...target(rest[0] ?? ''), n: Number(rest[1] ?? 1) };
        return verb === 'tcp' ? { do: 'tcp', ...base, hold } : { do: 'udp', ...base };
      }
      case 'close':
        return { do: 'close' };
      case 'snap':
        return { do: 'snapshot' };
      case 'sleep':
        return { do: 'sleep', seconds: Number(rest[0]) };
      case 'adm':
        return { do: 'admin', commands: [rest] };
      default:
        throw new Error(`unknown traffic action "${part.trim()}"`);
    }
  });
}

/** 400 blocks of 100 source ports from 20000, one per case name. */
function firstPort(name: string): number {
  return 20000 + (createHash('sha256').update(name).digest().readUInt32BE(0) % 400) * 100;
}

/** A traffic case: `config` (command lines separated by `;`) on the lab topology, then `actions`. */
export function traffic(name: string, config: string, actions: string): TrafficCase {
  const setup = config.split(';').map(words).filter((w) => w.length);
  return { kind: 'traffic', name, firstPort: firstPort(name), setup, actions: parseActions(actions) };
}

/** Tags a case with a feature of pending.ts. */
export function needs<C extends Case>(feature: string, c: C): C {
  return { ...c, feature };
}
