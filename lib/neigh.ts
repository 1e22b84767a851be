// Keeps the next hop of a real server resolved. XDP cannot resolve a neighbour itself: a packet
// whose next hop has no neighbour entry is passed to the kernel (counted as no_neigh), which for
// DR means it is not forwarded. So when a real server is added, the control plane asks the kernel
// for a *managed* neighbour entry (NTF_EXT_MANAGED, Linux >= 5.16), which the kernel resolves at
// once and keeps resolved in the background. Many real servers (xvsadm -R) cost three `ip -batch`
// runs in all, not three commands each.
import { execFileSync } from 'node:child_process';

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
