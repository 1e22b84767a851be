// Keeps the next hop of a real server resolved. XDP cannot resolve a neighbour itself: a packet
// whose next hop has no neighbour entry is passed to the kernel (counted as no_neigh), which for
// DR means it is not forwarded. So when a real server is added, the control plane asks the kernel
// for a *managed* neighbour entry (NTF_EXT_MANAGED, Linux >= 5.16), which the kernel resolves at
// once and keeps resolved in the background. Many real servers (xvsadm -R) cost three `ip -batch`
// runs in all, not three commands each.
import { execFileSync } from 'node:child_process';
import { addressBytes, familyOf, formatAddress } from './address.js';

function ip(netns: string | undefined, args: string[], input?: string): string {
  try {
    return execFileSync('ip', netns ? ['-n', netns, ...args] : args, {
      encoding: 'utf8',
      input,
      stdio: ['pipe', 'pipe', 'pipe'],
      maxBuffer: 256 * 1024 * 1024,
    });
  } catch (e) {
    // -force keeps going after a failed line (no route): what the others printed still counts.
    return (e as { stdout?: string }).stdout ?? '';
  }
}

interface Route {
  dst?: string;
  dev?: string;
  gateway?: string;
  type?: string;
}

/**
 * Makes managed neighbour entries for the next hops of `addresses`; returns those it could route.
 * Addresses without a route (or routed to lo, or not unicast) are left alone.
 */
export function primeNeighbours(addresses: Iterable<string>, netns?: string): Set<string> {
  const wanted = [...new Set(addresses)];
  const primed = new Set<string>();
  if (!wanted.length) return primed;
  const routes = ip(netns, ['-j', '-force', '-batch', '-'], wanted.map((a) => `route get ${a}\n`).join(''))
    .split('\n')
    .filter((line) => line.startsWith('['))
    .flatMap((line) => JSON.parse(line) as Route[]);
  const nexthops = new Map<string, string>();
  for (const route of routes) {
    if (!route.dst || !route.dev || route.dev === 'lo' || (route.type && route.type !== 'unicast')) continue;
    primed.add(route.dst);
    nexthops.set(`${route.gateway ?? route.dst} dev ${route.dev}`, route.dev);
  }
  if (!nexthops.size) return primed;
  const permanent = new Set(
    (JSON.parse(ip(netns, ['-j', 'neigh', 'show']) || '[]') as { dst: string; dev: string; state?: string[] }[])
      .filter((n) => n.state?.includes('PERMANENT'))
      .map((n) => `${n.dst} dev ${n.dev}`),
  );
  // An administrator's static entry is left as it is.
  const replace = [...nexthops.keys()].filter((hop) => !permanent.has(hop));
  if (replace.length) ip(netns, ['-force', '-batch', '-'], replace.map((hop) => `neigh replace ${hop} managed\n`).join(''));
  return primed;
}

/** Returns false (and changes nothing) when there is no route towards `address`. */
export function primeNeighbour(address: string, netns?: string): boolean {
  return primeNeighbours([address], netns).has(address);
}

/**
 * Primes each next hop once while real servers use it. Every `ip` call costs milliseconds, and
 * large configurations share their real servers between many services (10,000 services × 10 real
 * servers drawn from 1,000 hosts would otherwise spawn 200,000 processes).
 */
export class NeighbourPrimer {
  private readonly users = new Map<string, { count: number; primed: boolean }>();
  private pending: Set<string> | undefined;

  /** `netns` names the balancer's namespace when priming happens (it may be learnt after construction). */
  constructor(private readonly netns: () => string | undefined) {}

  /** A real server starts using `address`; `prime` is false for methods that need no neighbour. */
  use(address: string, prime: boolean): void {
    const key = canonical(address);
    const user = this.users.get(key) ?? { count: 0, primed: false };
    user.count++;
    this.users.set(key, user);
    if (!prime || user.primed) return;
    if (this.pending) this.pending.add(key);
    else user.primed = primeNeighbour(address, this.netns());
  }

  /** Runs fn with priming held back, then primes everything it asked for in one batch. */
  defer<T>(fn: () => T): T {
    if (this.pending) return fn();
    const pending = new Set<string>();
    this.pending = pending;
    try {
      return fn();
    } finally {
      this.pending = undefined;
      const primed = primeNeighbours(pending, this.netns());
      for (const key of pending) {
        const user = this.users.get(key);
        if (user) user.primed = primed.has(key);
      }
    }
  }

  /** A real server stops using `address`; once none does, the next use primes it again. */
  release(address: string): void {
    const key = canonical(address);
    const user = this.users.get(key);
    if (!user) return;
    if (--user.count <= 0) this.users.delete(key);
  }
}

function canonical(address: string): string {
  const family = familyOf(address);
  return family ? formatAddress(addressBytes(address), family) : address;
}
