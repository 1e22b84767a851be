// Progress lines on stderr while the benchmarks run (stdout is kept for the result table), and
// the warnings a run collects: a number measured on the wrong path must not pass unnoticed.

export class Progress {
  private readonly started = process.hrtime.bigint();
  readonly warnings: string[] = [];

  constructor(private readonly write: (line: string) => void = (line) => process.stderr.write(`${line}\n`)) {}

  /** Seconds since the run started. */
  elapsed(): number {
    return Number(process.hrtime.bigint() - this.started) / 1e9;
  }

  step(section: string, what: string): void {
    const t = this.elapsed();
    const stamp = `${String(Math.floor(t / 60)).padStart(2, '0')}:${(t % 60).toFixed(1).padStart(4, '0')}`;
    this.write(`[${stamp}] ${section}: ${what}`);
  }

  warn(message: string): void {
    this.warnings.push(message);
    this.write(`  warning: ${message}`);
  }
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** "fwd_redirect 100%" or "fwd_redirect 97.1%, pass_no_conn 2.9%": where the packets went. */
export function describeReasons(reasons: Record<string, bigint>): { text: string; shares: Record<string, number> } {
  const total = Object.values(reasons).reduce((s, n) => s + n, 0n);
  const shares: Record<string, number> = {};
  if (total === 0n) return { text: 'no packets counted', shares };
  const parts = Object.entries(reasons)
    .filter(([, n]) => n > 0n)
    .sort((a, b) => (a[1] > b[1] ? -1 : 1))
    .map(([name, n]) => {
      shares[name] = Number(n) / Number(total);
      return `${name} ${+(shares[name]! * 100).toFixed(shares[name] === 1 ? 0 : 2)}%`;
    });
  return { text: parts.join(', '), shares };
}
