// A topology with a router between the client and the balancer whose link towards the client has
// a smaller MTU than the rest, for errors from the path towards the client:
//
//   client ──(1500 | 1400)── router ── lb ── r1
//   10.0.0.1       10.0.0.254   10.254.0.1/.2   10.1.0.254 / 10.1.0.1
//
// The client sends at most 1400-byte packets (its route's MTU) but announces an MSS of 1460, so
// the real server's full-sized segments are too big for the router's last hop: the router's ICMP
// "fragmentation needed" goes to the VIP, i.e. to the balancer, which must hand it to the real
// server or the connection stalls.
import { startServer } from '../../lib/traffic.js';
import { Topology, type Namespace } from '../../lib/topology.js';

export const PATH_VIP = '10.100.0.1';
export const PATH_MTU = 1400;

export interface PathLab {
  topology: Topology;
  client: Namespace;
  lb: Namespace;
  real: Namespace;
  realAddress: string;
  lbInterfaces: string[];
  destroy(): Promise<void>;
}

export async function buildPathLab(): Promise<PathLab> {
  const topology = new Topology({ prefix: 'xvs5p' });
  try {
    const client = await topology.addNamespace('client');
    const router = await topology.addNamespace('router');
    const lb = await topology.addNamespace('lb');
    const real = await topology.addNamespace('r1');
    await topology.link(client, router, {
      a: { name: 'eth0', ipv4: '10.0.0.1/24' },
      b: { name: 'client', ipv4: '10.0.0.254/24' },
    });
    await router.ip(['link', 'set', 'dev', 'client', 'mtu', String(PATH_MTU)]);
    await client.ip(['route', 'replace', `${PATH_VIP}/32`, 'via', '10.0.0.254', 'mtu', 'lock', String(PATH_MTU), 'advmss', '1460']);
    await topology.link(router, lb, {
      a: { name: 'lb', ipv4: '10.254.0.1/24' },
      b: { name: 'router', ipv4: '10.254.0.2/24' },
    });
    await router.enableForwarding();
    await router.route(`${PATH_VIP}/32`, { via: '10.254.0.2' });
    await router.route('10.1.0.0/24', { via: '10.254.0.2' });
    await topology.link(lb, real, {
      a: { name: 'r1', ipv4: '10.1.0.254/24' },
      b: { name: 'eth0', ipv4: '10.1.0.1/24' },
    });
    await lb.enableForwarding();
    await lb.route('10.0.0.0/24', { via: '10.254.0.1' });
    await real.route('default', { via: '10.1.0.254' });
    await real.acceptVip(PATH_VIP);
    await startServer(topology, real, { name: 'r1', tcp: [80, 8080] });
    return {
      topology, client, lb, real, realAddress: '10.1.0.1', lbInterfaces: ['router', 'r1'],
      async destroy() {
        await topology.destroy();
      },
    };
  } catch (e) {
    await topology.destroy();
    throw e;
  }
}
