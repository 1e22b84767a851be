// Keeps the next hop of a real server resolved. XDP cannot resolve a neighbour itself: a packet
// whose next hop has no neighbour entry is passed to the kernel (counted as no_neigh), which for
// DR means it is not forwarded. So when a real server is added, the control plane asks the kernel
// for a *managed* neighbour entry (NTF_EXT_MANAGED, Linux >= 5.16), which the kernel resolves at
// once and keeps resolved in the background.
import { execFileSync } from 'node:child_process';
import { addressBytes, familyOf, formatAddress } from './address.js';

function ip(netns: string | undefined, args: string[]): string {
  return execFileSync('ip', netns ? ['-n', netns, ...args] : args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Returns false (and changes nothing) when there is no route towards `address`. */
export function primeNeighbour(address: string, netns?: string): boolean {
  try {
    const [route] = JSON.parse(ip(netns, ['-j', 'route', 'get', address])) as { dev?: string; gateway?: string; type?: string }[];
    if (!route?.dev || (route.type && route.type !== 'unicast')) return false;
    if (route.dev === 'lo') return false;
    const nexthop = route.gateway ?? address;
    const [entry] = JSON.parse(ip(netns, ['-j', 'neigh', 'show', nexthop, 'dev', route.dev]) || '[]') as {
      state?: string[];
    }[];
    // An administrator's static entry is left as it is.
    if (!entry?.state?.includes('PERMANENT')) ip(netns, ['neigh', 'replace', nexthop, 'dev', route.dev, 'managed']);
    return true;
  } catch {
    return false;
  }
}

/**
 * Primes each next hop once while real servers use it. Every `ip` call costs milliseconds, and
 * large configurations share their real servers between many services (10,000 services × 10 real
 * servers drawn from 1,000 hosts would otherwise spawn 200,000 processes).
 */
export class NeighbourPrimer {
  private readonly users = new Map<string, { count: number; primed: boolean }>();

  constructor(private readonly netns?: string) {}

  /** A real server starts using `address`; `prime` is false for methods that need no neighbour. */
  use(address: string, prime: boolean): void {
    const key = canonical(address);
    const user = this.users.get(key) ?? { count: 0, primed: false };
    user.count++;
    if (prime && !user.primed) user.primed = primeNeighbour(address, this.netns);
    this.users.set(key, user);
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
