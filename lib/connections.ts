// The connection table as IPVS shows it (/proc/net/ip_vs_conn, ipvsadm -c): live client-side
// connections and persistence templates. The per real server counts (ActiveConn, InActConn,
// PersistConn) are not derived from it: the dataplane keeps them exactly in dest_conns.
import { AF_INET6, formatAddress, type Family } from './address.js';
import type { Protocol } from './balancer.js';
import { type Dataplane, u32 } from './dataplane.js';
import * as L from './layout.js';
import { listSipTemplates } from './sip.js';

export interface ConnectionInfo {
  /** 'ip' for the persistence templates of firewall-mark services (IPVS's IPPROTO_IP). */
  protocol: Protocol | 'ip';
  /** IPVS state names ('ESTABLISHED', 'SYN_RECV', ...); UDP connections show 'UDP'. */
  state: string;
  /** Time left before expiry. */
  expiresMs: number;
  client: { address: string; port: number };
  /** For a firewall-mark template, the mark as an address (IPVS shows it so), port 0. */
  virtual: { address: string; port: number };
  real: { address: string; port: number };
  /** A persistence template (ipvsadm -c lists them too). */
  template?: boolean;
  /** A template of a persistence engine: its name and data (sip: the Call-ID, Latin-1). */
  pe?: { name: string; data: string };
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

/** The exact counts the dataplane keeps for a real server (dest_conns). */
export function destCounts(dp: Dataplane, index: number): ConnCounts {
  const raw = dp.map('dest_conns').lookup(u32(index));
  const c = raw ? L.destConns.decode(raw) : { active: 0, inactive: 0, persist: 0 };
  return { activeConns: c.active, inactiveConns: c.inactive, persistConns: c.persist };
}

/** Connections and persistence templates (ipvsadm -c), those of removed real servers excepted. */
export function listConnections(dp: Dataplane, destOf: (index: number) => DestRef | undefined): ConnectionInfo[] {
  const now = dp.now();
  const stateNames = tcpStateNames(dp);
  const dirIn = dp.enumValue('xvs_dir', 'XVS_DIR_IN');
  const live = (index: number, gen: number) => {
    const d = destOf(index);
    return d && d.gen === gen ? d : undefined;
  };
  const left = (lastSeen: bigint, timeout: number) =>
    Math.max(0, Number(lastSeen + BigInt(timeout) * 1_000_000_000n - now) / 1e6);
  const familyOf = (af: number): Family => (af === AF_INET6 ? 'inet6' : 'inet');
  const out: ConnectionInfo[] = [];
  for (const [kb, vb] of dp.map('conns').entries()) {
    const k = L.connKey.decode(kb);
    if (k.dir !== dirIn || (k.proto !== IPPROTO_TCP && k.proto !== IPPROTO_UDP)) continue;
    const c = L.conn.decode(vb);
    const d = live(c.dest, c.destGen);
    if (!d) continue;
    const family = familyOf(k.af);
    out.push({
      protocol: k.proto === IPPROTO_TCP ? 'tcp' : 'udp',
      state: k.proto === IPPROTO_TCP ? stateNames.get(c.state) ?? 'ERR!' : 'UDP',
      expiresMs: left(c.lastSeen, c.timeout),
      client: { address: formatAddress(k.saddr, family), port: k.sport },
      virtual: { address: formatAddress(k.daddr, family), port: k.dport },
      real: { address: d.address, port: c.rport },
    });
  }
  for (const [kb, vb] of dp.map('templates').entries()) {
    const k = L.tplKey.decode(kb);
    const t = L.template.decode(vb);
    const d = live(t.dest, t.destGen);
    if (!d) continue;
    const family = familyOf(k.af);
    // A firewall-mark template holds the mark (network order) where the address would be.
    const virtual = k.proto ? formatAddress(k.daddr, family) : formatAddress(k.daddr, 'inet');
    out.push({
      protocol: k.proto === IPPROTO_TCP ? 'tcp' : k.proto === IPPROTO_UDP ? 'udp' : 'ip',
      state: k.proto === IPPROTO_UDP ? 'UDP' : 'NONE',
      expiresMs: left(t.lastSeen, t.timeout),
      client: { address: formatAddress(k.saddr, family), port: 0 },
      virtual: { address: virtual, port: k.dport },
      real: { address: d.address, port: k.dport ? d.port : 0 },
      template: true,
    });
  }
  out.push(...listSipTemplates(dp, live));
  return out;
}

/** enum xvs_conn_state value → IPVS's name of the TCP state (XVS_TCP_S_SYN_RECV → SYN_RECV). */
function tcpStateNames(dp: Dataplane): Map<number, string> {
  const names = new Map<number, string>();
  for (const [name, value] of dp.enums.get('xvs_conn_state')!) {
    if (name.startsWith('XVS_TCP_S_') && name !== 'XVS_TCP_S_LAST') names.set(value, name.slice('XVS_TCP_S_'.length));
  }
  return names;
}
