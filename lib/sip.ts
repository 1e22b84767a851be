// The sip persistence engine (--pe sip, as the kernel's ip_vs_pe_sip): on a persistent UDP
// service, templates are keyed by the SIP Call-ID as well (bpf/xvs_sip.h searches it per
// datagram), so the datagrams of one call go to one real server. This module holds the control
// plane's side: the engine's name and service flag, and the listing of its templates.
import { AF_INET6, formatAddress, type Family } from './address.js';
import type { ConnectionInfo, DestRef } from './connections.js';
import type { Dataplane } from './dataplane.js';
import { XvsError } from './errors.js';
import * as L from './layout.js';

/** The persistence engines xvs has (the kernel's list with ip_vs_pe_sip loaded). */
export const PERSISTENCE_ENGINES = ['sip'] as const;

/** '' (none) or a known engine; anything else is refused as the kernel refuses it (ENOENT). */
export function checkPersistenceEngine(name: string): void {
  if (name !== '' && !(PERSISTENCE_ENGINES as readonly string[]).includes(name)) {
    throw new XvsError('ENOENT', `Persistence engine not found: ${name}`);
  }
}

/** The service flags of an engine. */
export function peFlags(dp: Dataplane, pe: string): number {
  return pe === 'sip' ? dp.enumValue('xvs_svc_flags', 'XVS_SVC_F_PE_SIP') : 0;
}

/** The engine a stored service's flags name ('' for none). */
export function peOfFlags(dp: Dataplane, flags: number): string {
  return flags & dp.enumValue('xvs_svc_flags', 'XVS_SVC_F_PE_SIP') ? 'sip' : '';
}

const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;

/** The sip templates as ipvsadm -c lists them: a template with pe name and data (the Call-ID). */
export function listSipTemplates(dp: Dataplane, live: (index: number, gen: number) => DestRef | undefined): ConnectionInfo[] {
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
      protocol: k.proto === IPPROTO_TCP ? 'tcp' : k.proto === IPPROTO_UDP ? 'udp' : 'ip',
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
