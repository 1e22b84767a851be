// DR and TUN replies that cross the balancer (bpf/xvs_routed.h): IPVS counts them and runs the
// TCP state table on them. The dataplane looks for them only while some service has a DR or TUN
// real server, and then only among packets from the services' virtual addresses (the vips map),
// unless a firewall-mark service has one: its virtual addresses are not listed anywhere.
import type { Dataplane } from './dataplane.js';

export interface RoutedService {
  key: object;
  dests: readonly { method: 'dr' | 'nat' | 'tun' }[];
}

interface RoutedFlags {
  routed: boolean;
  mark: boolean;
}

/** What each dataplane's config holds, so that a restore of many real servers (called after
 * each) writes only when a flag changes. */
const written = new WeakMap<Dataplane, RoutedFlags>();

function routedFlags(services: Iterable<RoutedService>): RoutedFlags {
  const flags = { routed: false, mark: false };
  for (const svc of services) {
    const which = 'fwmark' in svc.key ? 'mark' : 'routed';
    if (flags[which] || !svc.dests.some((d) => d.method !== 'nat')) continue;
    flags[which] = true;
    if (flags.routed && flags.mark) break;
  }
  return flags;
}

export function writeRoutedReplyFlags(dp: Dataplane, services: Iterable<RoutedService>): void {
  const flags = routedFlags(services);
  const before = written.get(dp);
  if (before?.routed === flags.routed && before.mark === flags.mark) return;
  dp.writeConfigFlag('XVS_CFG_F_ROUTED', flags.routed);
  dp.writeConfigFlag('XVS_CFG_F_ROUTED_MARK', flags.mark);
  written.set(dp, flags);
}
