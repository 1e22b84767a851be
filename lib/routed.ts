// DR and TUN replies that cross the balancer (bpf/xvs_routed.h): IPVS counts them and runs the
// TCP state table on them. The dataplane looks for them only while some service has a DR or TUN
// real server, and then only among packets from the services' virtual addresses (the vips map),
// unless a firewall-mark service has one: its virtual addresses are not listed anywhere.
import type { Dataplane } from './dataplane.js';

export interface RoutedService {
  key: object;
  dests: readonly { method: 'dr' | 'nat' | 'tun' }[];
}

export function writeRoutedReplyFlags(dp: Dataplane, services: Iterable<RoutedService>): void {
  let routed = false;
  let mark = false;
  for (const svc of services) {
    if (!svc.dests.some((d) => d.method !== 'nat')) continue;
    if ('fwmark' in svc.key) mark = true;
    else routed = true;
  }
  dp.writeConfigFlag('XVS_CFG_F_ROUTED', routed);
  dp.writeConfigFlag('XVS_CFG_F_ROUTED_MARK', mark);
}
