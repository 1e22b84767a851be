// The connection table as IPVS shows it (/proc/net/ip_vs_conn, ipvsadm -c) and the per real
// server connection counts derived from it: a TCP connection is active only while ESTABLISHED,
// every other TCP state and every UDP connection counts as inactive.
import { AF_INET6, formatAddress } from './address.js';
import type { Protocol } from './balancer.js';
import type { Dataplane } from './dataplane.js';
import * as L from './layout.js';

export interface ConnectionInfo {
  protocol: Protocol;
  /** IPVS state name: ESTABLISHED, SYN_RECV, ... for TCP, UDP for UDP. */
  state: string;
  /** Time left before the connection expires. */
  expiresMs: number;
  client: { address: string; port: number };
  virtual: { address: string; port: number };
  real: { address: string; port: number };
  /** Persistence template (none yet: templates come with persistence). */
  template?: boolean;
}

export interface ConnCounts {
  activeConns: number;
  inactiveConns: number;
  persistConns: number;
}

/** What a connection needs to know of its real server: the entry must still be this one. */
export interface DestRef {
  gen: number;
  address: string;
  port: number;
}

const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const NS_PER_MS = 1_000_000n;

/** Live client-side connections of the table with their real servers, and counts per dests index. */
export function scanConnections(
  dp: Dataplane,
  destOf: (index: number) => DestRef | undefined,
): { connections: ConnectionInfo[]; counts: Map<number, ConnCounts> } {
  const stateNames = tcpStateNames(dp);
  const established = dp.enumValue('xvs_conn_state', 'XVS_TCP_S_ESTABLISHED');
  const dirIn = dp.enumValue('xvs_dir', 'XVS_DIR_IN');
  const connections: ConnectionInfo[] = [];
  const counts = new Map<number, ConnCounts>();
  const now = process.hrtime.bigint();
  for (const [k, v] of dp.map('conns').entries()) {
    const key = L.connKey.decode(k);
    if (key.dir !== dirIn || (key.proto !== IPPROTO_TCP && key.proto !== IPPROTO_UDP)) continue;
    const c = L.conn.decode(v);
    const left = c.lastSeen + BigInt(c.timeout) * 1_000_000_000n - now;
    const dest = destOf(c.dest);
    if (left <= 0n || !dest || dest.gen !== c.destGen) continue;
    const protocol: Protocol = key.proto === IPPROTO_TCP ? 'tcp' : 'udp';
    const family = key.af === AF_INET6 ? 'inet6' : 'inet';
    connections.push({
      protocol,
      state: protocol === 'udp' ? 'UDP' : stateNames.get(c.state) ?? 'ERR!',
      expiresMs: Number(left / NS_PER_MS),
      client: { address: formatAddress(key.saddr, family), port: key.sport },
      virtual: { address: formatAddress(key.daddr, family), port: key.dport },
      real: { address: dest.address, port: dest.port },
    });
    const n = counts.get(c.dest) ?? { activeConns: 0, inactiveConns: 0, persistConns: 0 };
    if (protocol === 'tcp' && c.state === established) n.activeConns++;
    else n.inactiveConns++;
    counts.set(c.dest, n);
  }
  return { connections, counts };
}

/** enum xvs_conn_state value → IPVS's name of the TCP state (XVS_TCP_S_SYN_RECV → SYN_RECV). */
function tcpStateNames(dp: Dataplane): Map<number, string> {
  const names = new Map<number, string>();
  for (const [name, value] of dp.enums.get('xvs_conn_state')!) {
    if (name.startsWith('XVS_TCP_S_') && name !== 'XVS_TCP_S_LAST') names.set(value, name.slice('XVS_TCP_S_'.length));
  }
  return names;
}
