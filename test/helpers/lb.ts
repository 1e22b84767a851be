// A balancer namespace for BPF_PROG_TEST_RUN tests: the dataplane runs on crafted frames as if
// they arrived on one of its interfaces, and bpf_fib_lookup answers from this namespace's routes
// and (permanent) neighbours, so the expected MACs are known exactly.
import { Balancer, type BalancerOptions, type Method, type ServiceInfo, type ServiceKey } from '../../lib/balancer.js';
import { XDP_PASS, XDP_TX, XDP_REDIRECT, XDP_DROP, withNetns } from '../../lib/libbpf.js';
import { Topology, type Namespace } from '../../lib/topology.js';

export const VERDICT: Record<number, string> = {
  [XDP_DROP]: 'drop',
  [XDP_PASS]: 'pass',
  [XDP_TX]: 'tx',
  [XDP_REDIRECT]: 'redirect',
};

/** MACs and addresses of the packet-test namespace. */
export const NET = {
  /** The real servers' segment, on the balancer's `reals` interface. */
  realsPrefix: '10.1.0.0/24',
  lbReals: '10.1.0.1',
  /** The clients' segment, on the balancer's `clients` interface. */
  clientsPrefix: '10.2.0.0/24',
  lbClients: '10.2.0.1',
  /** The same segments in IPv6. */
  realsPrefix6: 'fd00:1::/64',
  lbReals6: 'fd00:1::1',
  clientsPrefix6: 'fd00:2::/64',
  lbClients6: 'fd00:2::1',
  /** Networks beyond the router 10.1.0.50 / fd00:1::50 on the reals' segment. */
  remote: '10.9.0.0/24',
  remote6: 'fd00:9::/64',
  neighbours: {
    '10.1.0.11': '02:00:00:00:01:11',
    '10.1.0.12': '02:00:00:00:01:12',
    '10.1.0.13': '02:00:00:00:01:13',
    '10.1.0.21': '02:00:00:00:01:21',
    '10.1.0.50': '02:00:00:00:01:50',
    '10.2.0.5': '02:00:00:00:02:05',
    'fd00:1::11': '02:00:00:00:01:11',
    'fd00:1::12': '02:00:00:00:01:12',
    'fd00:1::21': '02:00:00:00:01:21',
    'fd00:1::50': '02:00:00:00:01:50',
    'fd00:2::5': '02:00:00:00:02:05',
  } as Record<string, string>,
};

/** Addresses of the packet tests: virtual addresses (on no interface) and a client. */
export const ADDR = {
  vip: '10.0.0.100',
  vip6: 'fd00:100::1',
  client: '10.2.0.5',
  client6: 'fd00:2::5',
  clientMac: NET.neighbours['10.2.0.5']!,
  /** The destination MAC of frames from the client (any: test runs do not check it). */
  lbMac: '02:00:00:00:00:aa',
};

/** A real server for addService(): address, method, and port when it differs from the service's. */
export type RealSpec = [address: string, method: Method, port?: number];

/** Adds a round-robin service with its real servers; returns its key. */
export function addService(lb: Balancer, key: ServiceKey, reals: RealSpec[]): ServiceKey {
  lb.addService(key, { scheduler: 'rr' });
  for (const [address, method, port] of reals) lb.addRealServer(key, { address, port }, { method });
  return key;
}

export interface PacketLab {
  topology: Topology;
  ns: Namespace;
  lb: Balancer;
  realsIf: { ifindex: number; mac: string };
  clientsIf: { ifindex: number; mac: string };
  /** Runs one frame through the dataplane as if received on `ingress`. */
  run(frame: Buffer, ingress?: 'reals' | 'clients'): { verdict: string; out: Buffer };
  destroy(): Promise<void>;
}

export interface PacketLabOptions extends Partial<BalancerOptions> {
  /** More permanent neighbours (address -> MAC) on the reals' segment, 10.1.0.0/24. */
  reals?: Record<string, string>;
}

export async function packetLab(opts: PacketLabOptions = {}): Promise<PacketLab> {
  const { reals: moreReals, ...balancerOpts } = opts;
  const topology = new Topology();
  try {
    const ns = await topology.addNamespace('pkt');
    const peer = await topology.addNamespace('peer');
    const reals = await topology.link(ns, peer, {
      a: { name: 'reals', ipv4: `${NET.lbReals}/24`, ipv6: `${NET.lbReals6}/64` },
    });
    const clients = await topology.link(ns, peer, {
      a: { name: 'clients', ipv4: `${NET.lbClients}/24`, ipv6: `${NET.lbClients6}/64` },
    });
    await ns.enableForwarding();
    for (const [addr, mac] of Object.entries({ ...NET.neighbours, ...moreReals })) {
      const dev = addr.startsWith('10.1.') || addr.startsWith('fd00:1:') ? 'reals' : 'clients';
      await ns.ip(['neigh', 'replace', addr, 'lladdr', mac, 'dev', dev, 'nud', 'permanent']);
    }
    await ns.route(NET.remote, { via: '10.1.0.50' });
    await ns.route(NET.remote6, { via: 'fd00:1::50' });
    const lb = Balancer.open({ netns: ns.name, maxConnections: 4096, maxTemplates: 4096, ...balancerOpts });
    // Removing a real server or service ends its connections at once, so that each test starts
    // afresh after lb.clear(); tests of the destination trash turn it off.
    lb.setSysctls({ expire_nodest_conn: 1 });
    const program = lb.dataplane.program;
    const run = (frame: Buffer, ingress: 'reals' | 'clients' = 'clients') => {
      const ctx = Buffer.alloc(24);
      ctx.writeUInt32LE(frame.length, 4); // data_end
      ctx.writeUInt32LE((ingress === 'reals' ? reals.a : clients.a).ifindex, 12);
      const r = withNetns(ns.name, () => program.testRun({ data: frame, ctx }));
      return { verdict: VERDICT[r.retval] ?? `retval ${r.retval}`, out: r.data };
    };
    return {
      topology,
      ns,
      lb,
      realsIf: { ifindex: reals.a.ifindex, mac: reals.a.mac },
      clientsIf: { ifindex: clients.a.ifindex, mac: clients.a.mac },
      run,
      async destroy() {
        lb.close();
        await topology.destroy();
      },
    };
  } catch (e) {
    await topology.destroy();
    throw e;
  }
}

/** The listing of the address service on `port` (and `address`, when given). */
export function listedService(lb: Balancer, port: number, address?: string): ServiceInfo & { key: { address: string; port: number } } {
  const found = lb.list().find((s) => 'port' in s.key && s.key.port === port && (address === undefined || s.key.address === address));
  if (!found) throw new Error(`no service on port ${port}${address ? ` of ${address}` : ''} in the listing`);
  return found as ServiceInfo & { key: { address: string; port: number } };
}
