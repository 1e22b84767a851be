// What a run produces: the machine it ran on, a text table for the terminal, the JSON of every
// number, and an SVG chart of the main ones.
import { execFileSync } from 'node:child_process';
import { cpus, hostname, release, totalmem } from 'node:os';
import type { ConnTableResult } from './conntable.js';
import type { ControlResult } from './control.js';
import type { PerPacketResult } from './perpacket.js';
import type { ProfileName } from './profile.js';
import type { ThroughputResult } from './throughput.js';

export interface Machine {
  hostname: string;
  cpuModel: string;
  cpus: number;
  kernel: string;
  memoryGiB: number;
  node: string;
  /** The xvs commit measured, with "+changes" when the tree had uncommitted changes. */
  commit: string;
}

export interface BenchResults {
  profile: ProfileName;
  startedAt: string;
  seconds: number;
  machine: Machine;
  perPacket?: PerPacketResult;
  throughput?: ThroughputResult;
  connTable?: ConnTableResult;
  control?: ControlResult;
  warnings: string[];
}

function git(args: string[]): string | undefined {
  try {
    return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

export function describeMachine(): Machine {
  const commit = git(['rev-parse', '--short', 'HEAD']);
  const dirty = git(['status', '--porcelain', '--untracked-files=no']);
  return {
    hostname: hostname(),
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    cpus: cpus().length,
    kernel: release(),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    commit: commit ? `${commit}${dirty ? '+changes' : ''}` : 'unknown',
  };
}

// --- text ----------------------------------------------------------------------------------

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const fixed = (n: number | undefined, digits: number) => (n === undefined || Number.isNaN(n) ? '–' : n.toFixed(digits));
const pct = (n: number | undefined) => (n === undefined ? '–' : `${(n * 100).toFixed(n && n < 0.01 ? 3 : 1)}%`);

/** align: one letter per column, l (left) or r (right). */
function table(headers: string[], rows: string[][], align: string): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    `  ${cells.map((c, i) => (align[i] === 'l' ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')}`.trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

function perPacketText(r: PerPacketResult): string {
  const rows = [
    ['empty XDP program, run directly', int(r.emptyDirectNs), '–', 'XDP_PASS'],
    ...r.rows.map((x) => [x.name, int(x.ns), x.key === 'harness' ? '–' : int(x.overEmptyNs), x.path]),
  ];
  return [
    `Per-packet cost — BPF_PROG_TEST_RUN, ${int(r.repeat)} packets × ${r.trials} runs (median), ` +
      `established cases cycle over ${int(r.flows)} flows, new connections are all distinct flows`,
    table(['case', 'ns/packet', 'over empty', 'path (xvs counters or verdict)'], rows, 'lrrl'),
    `  Connection-table entries per connection, counted: DR ${fixed(r.entriesPerConnection.dr, 2)}, ` +
      `NAT ${fixed(r.entriesPerConnection.nat, 2)}.`,
  ].join('\n');
}

function throughputText(r: ThroughputResult): string {
  const rows = r.rows.map((x) =>
    x.status === 'absent'
      ? [x.name, 'absent', '', '', '', '', x.note ?? '']
      : [
          x.name, fixed(x.mpps, 2), x.key === 'ceiling' ? '–' : fixed(x.ratio, 3), fixed(x.stageNs, 0),
          fixed(x.sentMpps, 2), pct(x.loss?.total), x.note ?? '',
        ],
  );
  return [
    `Throughput through namespaces — one CPU, ${r.reals} real servers, ${int(r.flows)} flows, ` +
      `${r.trials} × ${r.seconds} s (median), 64-byte frames counted at the real servers`,
    table(['contender', 'Mpps', 'vs (a)', 'stage ns', 'offered', 'loss', 'note'], rows, 'lrrrrrl'),
    '  stage ns: 1000/Mpps − 1000/(harness ceiling Mpps), the balancer stage\'s time per frame.',
  ].join('\n');
}

function connTableText(r: ConnTableResult): string {
  const rows = r.sizes.map((x) =>
    x.status === 'skipped'
      ? [int(x.connections), int(x.slots), '–', '–', '–', '–', x.note ?? '']
      : [
          int(x.connections), int(x.slots), int(x.ns!), int(x.overEmptyNs!),
          int(x.bytesPerSlot!), fixed(x.prefillPerSecond! / 1e6, 2), x.path ?? '',
        ],
  );
  const f = r.full;
  return [
    `Connection table — established DR path with live connections, ${int(r.repeat)} packets × ${r.trials} runs (median)`,
    table(['connections', 'slots', 'ns/packet', 'over empty', 'bytes/slot', 'prefill M/s', 'path'], rows, 'rrrrrrl'),
    '  bytes/slot: the conns map\'s fdinfo memlock per slot; a connection takes the entries counted above (NAT: its reply\'s too).',
    `  Full table, ${int(f.slots)} slots: a new connection costs ${int(f.withRoom.ns)} ns (${fixed(f.withRoom.mcps, 2)} M/s) ` +
      `with room, ${int(f.whenFull.ns)} ns (${fixed(f.whenFull.mcps, 2)} M/s) when full. A flood of ${int(f.flood)} new ` +
      `connections evicted ${int(f.evicted)} of ${int(f.established)} established ones (${pct(f.evictedShare)}); ` +
      `${int(f.dropped)} new connections dropped: a full table refuses new connections until the sweeper frees room, ` +
      `so that the connection counts stay exact.`,
  ].join('\n');
}

function controlText(r: ControlResult): string {
  const a = r.addServices;
  const w = r.weightChange;
  const run = (x: ControlResult['weightChange']['steady']) =>
    `${fixed(x.mpps, 2)} Mpps, loss ${pct(x.loss.total)} (rings ${pct(x.loss.inputRing + x.loss.outputRing)}, other ${pct(x.loss.other)}), xvs: ${x.xvs}`;
  return [
    'Control plane',
    `  ${int(a.services)} services × ${a.realsPerService} real servers (${a.scheduler}, ${int(a.realPool)} distinct real ` +
      `addresses) through the API: ${fixed(a.seconds, 2)} s — ${fixed(a.perServiceUs, 0)} µs per service, ` +
      `${fixed(a.perRealServerUs, 0)} µs per real server on average (first use of an address ` +
      `${fixed(a.firstUseUs, 0)} µs, later uses ${fixed(a.reuseUs, 0)} µs); clear() ${fixed(a.clearSeconds, 2)} s`,
    `  Weight of 1 of ${w.reals} real servers changed every ${w.everyMs} ms (${w.weights.join(' ↔ ')}) under a flood of new ` +
      `connections, ${w.seconds} s:`,
    `    steady:   ${run(w.steady)}`,
    `    changing: ${run(w.changing)}; ${w.changes} changes; share of the changed server ` +
      `${pct(w.changing.perReal[0])} (steady ${pct(w.steady.perReal[0])})`,
  ].join('\n');
}

export function textReport(r: BenchResults): string {
  const m = r.machine;
  const parts = [
    `xvs benchmarks — ${r.profile} profile — ${r.startedAt} — ${fixed(r.seconds, 0)} s`,
    `machine: ${m.cpuModel}, ${m.cpus} CPUs, Linux ${m.kernel}, ${m.memoryGiB} GiB, Node ${m.node}, xvs ${m.commit}`,
  ];
  if (r.perPacket) parts.push(perPacketText(r.perPacket));
  if (r.throughput) parts.push(throughputText(r.throughput));
  if (r.connTable) parts.push(connTableText(r.connTable));
  if (r.control) parts.push(controlText(r.control));
  if (r.warnings.length) parts.push(['Warnings', ...r.warnings.map((w) => `  ${w}`)].join('\n'));
  return `${parts.join('\n\n')}\n`;
}

// --- SVG -----------------------------------------------------------------------------------

interface Bar {
  label: string;
  value: number;
  /** Text after the bar; default: the value. */
  text?: string;
  highlight?: boolean;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const WIDTH = 960;
const LABEL_W = 380;
const BAR_H = 18;
const GAP = 6;

function panel(title: string, bars: Bar[], y: number): { svg: string; height: number } {
  const max = Math.max(...bars.map((b) => b.value), 1e-9);
  const span = WIDTH - LABEL_W - 130;
  const out = [`<text x="10" y="${y + 18}" class="title">${esc(title)}</text>`];
  bars.forEach((b, i) => {
    const top = y + 30 + i * (BAR_H + GAP);
    const w = Math.max(1, (b.value / max) * span);
    out.push(
      `<text x="${LABEL_W - 8}" y="${top + 13}" class="label" text-anchor="end">${esc(b.label)}</text>`,
      `<rect x="${LABEL_W}" y="${top}" width="${w.toFixed(1)}" height="${BAR_H}" class="${b.highlight ? 'hi' : 'bar'}"/>`,
      `<text x="${(LABEL_W + w + 6).toFixed(1)}" y="${top + 13}" class="value">${esc(b.text ?? String(b.value))}</text>`,
    );
  });
  return { svg: out.join('\n'), height: 40 + bars.length * (BAR_H + GAP) };
}

export function svgChart(r: BenchResults): string {
  const panels: { title: string; bars: Bar[] }[] = [];
  if (r.perPacket) {
    const p = r.perPacket;
    panels.push({
      title: 'Per-packet cost, ns (BPF_PROG_TEST_RUN, generator included)',
      bars: [
        { label: 'empty XDP program, run directly', value: p.emptyDirectNs },
        ...p.rows.map((x) => ({ label: x.name, value: x.ns, highlight: x.key.startsWith('xvs') })),
      ],
    });
  }
  if (r.throughput) {
    panels.push({
      title: 'Throughput at the real servers, Mpps (one CPU)',
      bars: r.throughput.rows
        .filter((x) => x.mpps !== undefined)
        .map((x) => ({
          label: x.name,
          value: x.mpps!,
          text: `${x.mpps!.toFixed(2)}${x.ratio !== undefined && x.key !== 'ceiling' ? `  (${(x.ratio * 100).toFixed(0)}% of a)` : ''}`,
          highlight: x.key.startsWith('b') || x.key === 'c',
        })),
    });
  }
  if (r.connTable) {
    panels.push({
      title: 'Established DR path by live connections, ns per packet',
      bars: r.connTable.sizes
        .filter((x) => x.ns !== undefined)
        .map((x) => ({ label: `${int(x.connections)} connections`, value: x.ns!, highlight: true })),
    });
  }
  const parts: string[] = [];
  let y = 40;
  for (const p of panels) {
    const { svg, height } = panel(p.title, p.bars, y);
    parts.push(svg);
    y += height + 10;
  }
  const m = r.machine;
  const header = `xvs benchmarks (${r.profile}) — ${m.cpuModel}, ${m.cpus} CPUs, Linux ${m.kernel} — ${r.startedAt}`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y + 10}" viewBox="0 0 ${WIDTH} ${y + 10}" font-family="sans-serif">`,
    '<style>.title{font-size:15px;font-weight:bold}.label{font-size:12px}.value{font-size:12px}' +
      '.bar{fill:#9aa5b1}.hi{fill:#2f6fb3}</style>',
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="22" font-size="13">${esc(header)}</text>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
