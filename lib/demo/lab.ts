// The demo topology, also used by the namespace tests and the benchmarks:
//
//   client ── lb ─┬─ r1      client 10.0.0.1/24, lb 10.0.0.254/24 on "client"
//                 ├─ r2      real i: 10.i.0.1/24, lb 10.i.0.254/24 on "ri"
//                 └─ r3      the VIP is routed by the client towards the lb
//
// Every real server holds the VIP on lo without answering ARP for it (direct routing), routes
// everything else through the lb (so NAT replies come back through it) and runs a traffic agent
// answering with its name on TCP 80 and 8080 and UDP 53.
//
// With `ipv6`, every link is dual-stack: client fd00::1/64, lb fd00::fe/64; real i fd00:i::1/64,
// lb fd00:i::fe/64; the IPv6 VIP fd00:100::1 is routed by the client to the lb and held on the
// reals' lo, and the reals' IPv6 default route is the lb too.
import { startServer } from '../traffic.js';
import { type Namespace, Topology } from '../topology.js';

export const VIP = '10.100.0.1';
export const CLIENT_ADDRESS = '10.0.0.1';
export const VIP6 = 'fd00:100::1';
export const CLIENT_ADDRESS6 = 'fd00::1';
export const SERVICE_PORTS = { tcp: [80, 8080], udp: [53] };

export interface RealHost {
  name: string;
  ns: Namespace;
  address: string;
  /** With `ipv6`. */
  address6?: string;
}

export interface Lab {
  topology: Topology;
  client: Namespace;
  lb: Namespace;
  /** The lb's interfaces: the client side first, then one per real server. */
  lbInterfaces: string[];
  reals: RealHost[];
  destroy(): Promise<void>;
}

export async function buildLab(opts: { reals?: number; prefix?: string; ipv6?: boolean } = {}): Promise<Lab> {
  const topology = new Topology({ prefix: opts.prefix ?? 'xvs' });
  const v6 = (text: string) => (opts.ipv6 ? text : undefined);
  try {
    const client = await topology.addNamespace('client');
    const lb = await topology.addNamespace('lb');
    await topology.link(client, lb, {
      a: { name: 'eth0', ipv4: `${CLIENT_ADDRESS}/24`, ipv6: v6(`${CLIENT_ADDRESS6}/64`) },
      b: { name: 'client', ipv4: '10.0.0.254/24', ipv6: v6('fd00::fe/64') },
    });
    await client.route(`${VIP}/32`, { via: '10.0.0.254' });
    if (opts.ipv6) await client.route(`${VIP6}/128`, { via: 'fd00::fe' });
    await lb.enableForwarding();
    const lbInterfaces = ['client'];
    const reals: RealHost[] = [];
    for (let i = 1; i <= (opts.reals ?? 3); i++) {
      const name = `r${i}`;
      const ns = await topology.addNamespace(name);
      const address = `10.${i}.0.1`;
      const address6 = v6(`fd00:${i}::1`);
      await topology.link(lb, ns, {
        a: { name, ipv4: `10.${i}.0.254/24`, ipv6: v6(`fd00:${i}::fe/64`) },
        b: { name: 'eth0', ipv4: `${address}/24`, ipv6: v6(`${address6}/64`) },
      });
      await ns.route('default', { via: `10.${i}.0.254` });
      await ns.acceptVip(VIP);
      if (opts.ipv6) {
        await ns.route('default', { via: `fd00:${i}::fe` });
        await ns.acceptVip(VIP6);
      }
      await startServer(topology, ns, { name, ...SERVICE_PORTS });
      lbInterfaces.push(name);
      reals.push({ name, ns, address, ...(address6 ? { address6 } : {}) });
    }
    return {
      topology, client, lb, lbInterfaces, reals,
      async destroy() {
        await topology.destroy();
      },
    };
  } catch (e) {
    await topology.destroy();
    throw e;
  }
}
