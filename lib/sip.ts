// The sip persistence engine (--pe sip, as the kernel's ip_vs_pe_sip): on a persistent UDP
// service, templates are keyed by the SIP Call-ID as well (bpf/xvs_sip.h searches it per
// datagram), so the datagrams of one call go to one real server. This module holds the control
// plane's side: the engine's name and service flag (lib/connections.ts lists its templates).
import type { Dataplane } from './dataplane.js';
import { XvsError } from './errors.js';

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
