// Compares what the kernel and xvs did, command by command and connection by connection, and
// decides each case: it matches, differs only where deliberate.ts allows, is pending (a feature of
// pending.ts it needs has not landed, so it must still differ), or differs.
import { DELIBERATE } from './deliberate.js';
import type { AdminResult, Case, Result, Step, TrafficResult } from './model.js';
import { PENDING } from './pending.js';

export type Verdict = 'match' | 'deliberate' | 'pending' | 'differ' | 'pending-matches' | 'broken';

export interface Item {
  /** The command line, or the traffic action, compared. */
  what: string;
  kernel: string;
  xvs: string;
  outcome: 'match' | 'deliberate' | 'differ';
  reason?: string;
}

export interface Report {
  name: string;
  verdict: Verdict;
  items: Item[];
  /** Why a case proves nothing (verdict 'broken'). */
  broken?: string;
}

/** The program name is argv[0]'s: ipvsadm prints its own, xvsadm its own. */
function programName(text: string): string {
  return text.replace(/(^ {2}|Try `|or '|^)xvsadm(?=[ :])/gm, '$1ipvsadm');
}

/** -Lnc: expiry times masked, rows sorted (the kernel lists its hash table's order, xvs its own). */
function connectionListing(text: string): string {
  const lines = text.split('\n');
  const rows = lines.slice(2).filter(Boolean).map((l) => l.replace(/^(\S+\s+)\d\d:\d\d/, '$1--:--'));
  return [...lines.slice(0, 2), ...rows.sort(), ''].join('\n');
}

function isConnectionListing(args: string[]): boolean {
  return args.some((a) => a === '-c' || a === '--connection' || (/^-[a-zA-Z]*c[a-zA-Z]*$/.test(a) && a.includes('L')));
}

function show(r: Result, args: string[], xvs: boolean): string {
  const norm = (t: string) => (xvs ? programName(t) : t);
  const out = isConnectionListing(args) && r.status === 0 ? connectionListing(r.stdout) : r.stdout;
  return `exit ${r.status}\n--- stdout\n${norm(out)}--- stderr\n${norm(r.stderr)}`;
}

/** `session`: this command's arguments and those of the commands before it in its case. */
function item(what: string, session: string[], kernel: string, xvs: string): Item {
  if (kernel === xvs) return { what, kernel, xvs, outcome: 'match' };
  const rule = DELIBERATE.find((d) => session.some((args) => d.when.test(args)));
  return rule ? { what, kernel, xvs, outcome: 'deliberate', reason: rule.reason } : { what, kernel, xvs, outcome: 'differ' };
}

/** Compares the commands of one case in order; a deliberate difference covers what follows from it. */
class Session {
  readonly items: Item[] = [];
  private readonly history: string[] = [];

  command(args: string[], stdin: string | undefined, kernel: Result, xvs: Result): void {
    this.history.push(args.join(' '));
    const what = `ipvsadm ${args.join(' ')}${stdin ? ` <<< ${JSON.stringify(stdin)}` : ''}`;
    this.items.push(item(what, this.history, show(kernel, args, false), show(xvs, args, true)));
  }

  admins(kernel: AdminResult[], xvs: AdminResult[]): void {
    kernel.forEach((k, i) => this.command(k.args, undefined, k, xvs[i]!));
  }

  step(label: string, kernel: Step, xvs: Step): void {
    if ('names' in kernel && 'names' in xvs) this.items.push(item(label, this.history, kernel.names.join('\n'), xvs.names.join('\n')));
    else if ('results' in kernel && 'results' in xvs) this.admins(kernel.results, xvs.results);
  }
}

export function compareCommands(c: Case & { kind: 'command' }, kernel: Result[], xvs: Result[]): Report {
  const s = new Session();
  c.lines.forEach((line, i) => s.command(line.args, line.stdin, kernel[i]!, xvs[i]!));
  return verdict(c, s.items);
}

export function compareTraffic(c: Case & { kind: 'traffic' }, kernel: TrafficResult, xvs: TrafficResult): Report {
  const s = new Session();
  s.admins(kernel.setup, xvs.setup);
  c.actions.forEach((a, i) => {
    const label = 'host' in a ? `${a.do} ${a.host}:${a.port} x${a.n}: who answered each` : a.do;
    s.step(label, kernel.steps[i]!, xvs.steps[i]!);
  });
  const broken = brokenTraffic(kernel);
  return broken ? { name: c.name, verdict: 'broken', items: s.items, broken } : verdict(c, s.items);
}

/** A traffic case whose configuration the kernel refused, or through which no client got an answer, proves nothing. */
function brokenTraffic(kernel: TrafficResult): string | undefined {
  const refused = kernel.setup.find((r) => r.status !== 0);
  if (refused) return `the kernel refused the case's configuration: ipvsadm ${refused.args.join(' ')}: ${refused.stderr.trim()}`;
  const names = kernel.steps.flatMap((s) => ('names' in s ? s.names : []));
  if (names.length && names.every((n) => n === null || n.startsWith('error:'))) {
    return `no client got an answer through the kernel (${names[0]}): the case or the lab is wrong`;
  }
  return undefined;
}

function verdict(c: Case, items: Item[]): Report {
  const differs = items.some((i) => i.outcome === 'differ');
  const pending = c.feature !== undefined && c.feature in PENDING;
  let v: Verdict;
  if (pending) v = differs ? 'pending' : 'pending-matches';
  else if (differs) v = 'differ';
  else v = items.some((i) => i.outcome === 'deliberate') ? 'deliberate' : 'match';
  return { name: c.name, verdict: v, items };
}

/** The differences of a report, kernel first, as a failing test shows them. */
export function describeDifferences(r: Report): string {
  return r.items
    .filter((i) => i.outcome === 'differ')
    .map((i) => `${i.what}\n=== kernel\n${i.kernel}\n=== xvs\n${i.xvs}`)
    .join('\n\n');
}
