// The dataplane's clock in packet tests: set it, or move it on second by second with the sweeper
// running every second, as xvsd would (deterministic expiry).
import type { Balancer } from '../../lib/balancer.js';

const S = 1_000_000_000n;

export class TestClock {
  /** Nanoseconds on the dataplane's clock. */
  now = 0n;

  constructor(private readonly lb: () => Balancer) {}

  at(seconds: number): void {
    this.now = BigInt(seconds) * S;
    this.lb().dataplane.setClock(this.now);
  }

  /** Moves the clock on by `seconds`, sweeping every second; returns the trashed real servers freed. */
  advance(seconds: number): number {
    let freed = 0;
    for (let i = 0; i < seconds; i++) {
      this.now += S;
      this.lb().dataplane.setClock(this.now);
      freed += this.lb().expire().trashFreed;
    }
    return freed;
  }

  get seconds(): number {
    return Number(this.now / S);
  }
}
