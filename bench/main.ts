// npm run bench [-- --quick | --full] [--only SECTION,...] [--out DIR]
//
// Runs the benchmarks side by side in one run, shows progress on stderr, prints a table on
// stdout, and writes JSON, a text copy of the table and an SVG chart into results/ (or DIR).
// Sections: perpacket, throughput, conntable, control. Needs root (namespaces, XDP).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { packageRoot } from '../lib/native.js';
import { runConnTable } from './conntable.js';
import { runControl } from './control.js';
import { runPerPacket } from './perpacket.js';
import { PROFILES, type Profile, type ProfileName } from './profile.js';
import { Progress } from './progress.js';
import { type BenchResults, describeMachine, svgChart, textReport } from './report.js';
import { runThroughput } from './throughput.js';

const SECTIONS = ['perpacket', 'throughput', 'conntable', 'control'] as const;
type Section = (typeof SECTIONS)[number];

interface Options {
  profile: ProfileName;
  only: Section[];
  out: string;
}

const USAGE = `usage: npm run bench [-- --quick | --full] [--only ${SECTIONS.join(',')}] [--out DIR]
  --quick   a few seconds per section (the default)
  --full    the published run: ≥ 1M packets per case, up to 10M connections (several minutes)
  --smoke   tiny counts, for the test suite: proves the harness runs, measures nothing useful
  --only    run only these sections (comma-separated)
  --out     where to write the results (default: results/ in the package)`;

function parseArgs(argv: string[]): Options {
  const opts: Options = { profile: 'quick', only: [...SECTIONS], out: join(packageRoot(), 'results') };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value\n${USAGE}`);
      return v;
    };
    if (arg === '--quick' || arg === '--full' || arg === '--smoke') opts.profile = arg.slice(2) as ProfileName;
    else if (arg === '--only') {
      const names = value().split(',');
      const unknown = names.filter((n) => !(SECTIONS as readonly string[]).includes(n));
      if (unknown.length) throw new Error(`unknown section ${unknown.join(', ')}\n${USAGE}`);
      opts.only = names as Section[];
    } else if (arg === '--out') opts.out = resolve(value());
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else throw new Error(`unknown option ${arg}\n${USAGE}`);
  }
  return opts;
}

async function run(opts: Options): Promise<{ results: BenchResults; failed: boolean }> {
  const profile: Profile = PROFILES[opts.profile];
  const progress = new Progress();
  const startedAt = new Date();
  const results: BenchResults = {
    profile: profile.name,
    startedAt: startedAt.toISOString().replace(/\.\d+Z$/, 'Z'),
    seconds: 0,
    machine: describeMachine(),
    warnings: progress.warnings,
  };
  progress.step('bench', `${profile.name} profile, sections: ${opts.only.join(', ')}`);
  let failed = false;
  const section = async <T>(name: Section, fn: () => Promise<T>, store: (r: T) => void) => {
    if (!opts.only.includes(name)) return;
    try {
      store(await fn());
    } catch (e) {
      failed = true;
      progress.warn(`${name} failed: ${(e as Error).stack ?? String(e)}`);
    }
  };
  await section('perpacket', () => runPerPacket(profile, progress), (r) => (results.perPacket = r));
  await section('throughput', () => runThroughput(profile, progress), (r) => (results.throughput = r));
  await section('conntable', () => runConnTable(profile, progress), (r) => (results.connTable = r));
  await section('control', () => runControl(profile, progress), (r) => (results.control = r));
  results.seconds = progress.elapsed();
  return { results, failed };
}

function save(results: BenchResults, out: string): string[] {
  mkdirSync(out, { recursive: true });
  const stamp = results.startedAt.replace(/[-:]/g, '').replace('T', '-').replace('Z', '');
  const base = join(out, `bench-${results.profile}-${stamp}`);
  const files = [`${base}.json`, `${base}.txt`, `${base}.svg`];
  writeFileSync(files[0]!, `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(files[1]!, textReport(results));
  writeFileSync(files[2]!, svgChart(results));
  return files;
}

async function main(): Promise<void> {
  let opts: Options;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(2);
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('npm run bench needs root: it creates network namespaces and attaches XDP programs\n');
    process.exit(1);
  }
  const { results, failed } = await run(opts);
  process.stdout.write(`\n${textReport(results)}`);
  const files = save(results, opts.out);
  process.stdout.write(`\nwritten: ${files.join(', ')}\n`);
  process.exitCode = failed ? 1 : 0;
}

await main();
