// Ranges of an array map handed out first-fit: each service's scheduler table and real-server list
// in sched_slots, each prefix's rules in mark_rules. A range given back stays aside until the
// next recycle() (the next configuration change), so that a packet still reading the previous
// version never sees it rewritten.

export interface Range {
  start: number;
  len: number;
}

export class RangeAllocator {
  private free: Range[];
  private pending: Range[] = [];

  constructor(readonly size: number) {
    this.free = size > 0 ? [{ start: 0, len: size }] : [];
  }

  /** A range of `len` slots (len 0: an empty range at 0), or undefined when none is left. */
  take(len: number): Range | undefined {
    if (len === 0) return { start: 0, len: 0 };
    const i = this.free.findIndex((r) => r.len >= len);
    if (i < 0) return undefined;
    const r = this.free[i]!;
    const taken = { start: r.start, len };
    if (r.len === len) this.free.splice(i, 1);
    else this.free[i] = { start: r.start + len, len: r.len - len };
    return taken;
  }

  /** Marks a range in use that was handed out before (state read back from pinned maps). */
  claim(range: Range): void {
    if (!range.len) return;
    const i = this.free.findIndex((r) => r.start <= range.start && range.start + range.len <= r.start + r.len);
    if (i < 0) throw new Error(`xvs: range ${range.start}+${range.len} is not free`);
    const r = this.free[i]!;
    const parts: Range[] = [];
    if (range.start > r.start) parts.push({ start: r.start, len: range.start - r.start });
    const end = range.start + range.len;
    if (end < r.start + r.len) parts.push({ start: end, len: r.start + r.len - end });
    this.free.splice(i, 1, ...parts);
  }

  /** Gives a range back; it becomes free at the next recycle(). */
  release(range: Range): void {
    if (range.len) this.pending.push(range);
  }

  /** Frees the ranges given back since the last recycle(). */
  recycle(): void {
    for (const r of this.pending) this.insert(r);
    this.pending = [];
  }

  private insert(range: Range): void {
    let i = this.free.findIndex((r) => r.start > range.start);
    if (i < 0) i = this.free.length;
    this.free.splice(i, 0, range);
    const prev = this.free[i - 1];
    if (prev && prev.start + prev.len === range.start) {
      prev.len += range.len;
      this.free.splice(i, 1);
      i--;
    }
    const cur = this.free[i]!;
    const next = this.free[i + 1];
    if (next && cur.start + cur.len === next.start) {
      cur.len += next.len;
      this.free.splice(i + 1, 1);
    }
  }
}
