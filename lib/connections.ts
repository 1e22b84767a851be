// The connection table as IPVS shows it (/proc/net/ip_vs_conn, ipvsadm -c): live client-side
// connections and persistence templates. The per real server counts (ActiveConn, InActConn,
// PersistConn) are not derived from it: the dataplane keeps them exactly in dest_conns.
import { AF_INET6, formatAddress, type Family } from './address.js';
import { type Dataplane, u32 } from './dataplane.js';
import * as L from './layout.js';
import { IPPROTO_SCTP, IPPROTO_TCP, protocolOf, type Protocol } from './protocol.js';

export interface ConnectionInfo {
  /** 'ip' for the persistence templates of firewall-mark services (IPVS's IPPROTO_IP). */
  protocol: Protocol | 'ip';
  /**
   * IPVS state names ('ESTABLISHED', 'SYN_RECV', SCTP's 'C-ECHOED', ...); UDP connections show 'UDP';
   * persistence templates 'NONE', or 'ASSURED' once they controlled an established connection or a
   * UDP reply.
   */
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

/** enum xvs_sctp_state → the name ip_vs_proto_sctp.c prints, where it is not the enum's own. */
const SCTP_NAMES: Record<string, string> = {
  COOKIE_SENT: 'C-SENT', COOKIE_REPLIED: 'C-REPLIED', COOKIE_WAIT: 'C-WAIT', COOKIE_ECHOED: 'C-ECHOED',
  SHUTDOWN_SENT: 'S-SENT', SHUTDOWN_RECEIVED: 'S-RECEIVED', SHUTDOWN_ACK_SENT: 'S-ACK-SENT',
};
/** The ports of an invalidated persistence template (XVS_TPL_INVALID_PORT). */
const INVALID_TEMPLATE_PORT = 0xffff;

/** The exact counts the dataplane keeps for a real server (dest_conns). */
export function destCounts(dp: Dataplane, index: number): ConnCounts {
  const raw = dp.map('dest_conns').lookup(u32(index));
  const c = raw ? L.destConns.decode(raw) : { active: 0, inactive: 0, persist: 0 };
  return { activeConns: c.active, inactiveConns: c.inactive, persistConns: c.persist };
}

/** Connections and persistence templates (ipvsadm -c) of the real servers destOf knows. */
export function listConnections(dp: Dataplane, destOf: (index: number) => DestRef | undefined): ConnectionInfo[] {
  const now = dp.now();
  const stateNames: Record<number, Map<number, string>> = { [IPPROTO_TCP]: tcpStateNames(dp), [IPPROTO_SCTP]: sctpStateNames(dp) };
  const dirIn = dp.enumValue('xvs_dir', 'XVS_DIR_IN');
  const live = (index: number, gen: number) => {
    const d = destOf(index);
    return d && d.gen === gen ? d : undefined;
  };
  const left = (lastSeen: bigint, timeout: number) =>
    Math.max(0, Number(lastSeen + BigInt(timeout) * 1_000_000_000n - now) / 1e6);
  const familyOf = (af: number): Family => (af === AF_INET6 ? 'inet6' : 'inet');
  const assured = dp.enumValue('xvs_tpl_state', 'XVS_CTPL_S_ASSURED');
  const out: ConnectionInfo[] = [];
  for (const [kb, vb] of dp.map('conns').entries()) {
    const k = L.connKey.decode(kb);
    const protocol = protocolOf(k.proto);
    if (k.dir !== dirIn || !protocol) continue;
    const c = L.conn.decode(vb);
    const d = live(c.dest, c.destGen);
    if (!d) continue;
    const family = familyOf(k.af);
    out.push({
      protocol,
      state: protocol === 'udp' ? 'UDP' : stateNames[k.proto]!.get(c.state) ?? 'ERR!',
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
    // An invalidated template (ip_vs_check_template) shows 65535 as both ports.
    const realPort = k.dport === INVALID_TEMPLATE_PORT ? k.dport : k.dport ? d.port : 0;
    out.push({
      protocol: protocolOf(k.proto) ?? 'ip',
      state: t.state & assured ? 'ASSURED' : 'NONE',
      expiresMs: left(t.lastSeen, t.timeout),
      client: { address: formatAddress(k.saddr, family), port: 0 },
      virtual: { address: virtual, port: k.dport },
      real: { address: d.address, port: realPort },
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

/** enum xvs_sctp_state value → IPVS's name of the SCTP state (XVS_SCTP_S_COOKIE_ECHOED → C-ECHOED). */
function sctpStateNames(dp: Dataplane): Map<number, string> {
  const names = new Map<number, string>();
  for (const [name, value] of dp.enums.get('xvs_sctp_state')!) {
    const short = name.slice('XVS_SCTP_S_'.length);
    if (short !== 'LAST') names.set(value, SCTP_NAMES[short] ?? short);
  }
  return names;
}

/** The sip templates as ipvsadm -c lists them: a template with pe name and data (the Call-ID). */
function listSipTemplates(dp: Dataplane, live: (index: number, gen: number) => DestRef | undefined): ConnectionInfo[] {
  const now = dp.now();
  const out: ConnectionInfo[] = [];
  for (const [kb, vb] of dp.map('sip_templates').entries()) {
    const sk = L.sipKey.decode(kb);
    const k = L.tplKey.decode(sk.tpl);
    const t = L.template.decode(vb);
    const d = live(t.dest, t.destGen);
    if (!d) continue;
    const family: Family = k.af === AF_INET6 ? 'inet6' : 'inet';
    const left = Number(t.lastSeen + BigInt(t.timeout) * 1_000_000_000n - now) / 1e6;
    out.push({
      protocol: protocolOf(k.proto) ?? 'ip',
      state: 'NONE', // as Linux 6.1 lists sip templates
      expiresMs: Math.max(0, left),
      client: { address: formatAddress(k.saddr, family), port: 0 },
      virtual: { address: k.proto ? formatAddress(k.daddr, family) : formatAddress(k.daddr, 'inet'), port: k.dport },
      real: { address: d.address, port: k.dport ? d.port : 0 },
      template: true,
      pe: { name: 'sip', data: sk.callid.subarray(0, Math.min(sk.len, 255)).toString('latin1') },
    });
  }
  return out;
}
