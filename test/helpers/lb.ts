// A balancer namespace for BPF_PROG_TEST_RUN tests: the dataplane runs on crafted frames as if
// they arrived on one of its interfaces, and bpf_fib_lookup answers from this namespace's routes
// and (permanent) neighbours, so the expected MACs are known exactly.
import { Balancer } from '../../lib/balancer.js';
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
  neighbours: {
    '10.1.0.11': '02:00:00:00:01:11',
    '10.1.0.12': '02:00:00:00:01:12',
    '10.1.0.13': '02:00:00:00:01:13',
    '10.1.0.21': '02:00:00:00:01:21',
    '10.1.0.50': '02:00:00:00:01:50',
    '10.2.0.5': '02:00:00:00:02:05',
  } as Record<string, string>,
};

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

export interface PacketLabOptions {
  /** More permanent neighbours (address -> MAC) on the reals' segment, 10.1.0.0/24. */
  reals?: Record<string, string>;
  maxConnections?: number;
}

export async function packetLab(opts: PacketLabOptions = {}): Promise<PacketLab> {
  const topology = new Topology();
  try {
    const ns = await topology.addNamespace('pkt');
    const peer = await topology.addNamespace('peer');
    const reals = await topology.link(ns, peer, { a: { name: 'reals', ipv4: `${NET.lbReals}/24` } });
    const clients = await topology.link(ns, peer, { a: { name: 'clients', ipv4: `${NET.lbClients}/24` } });
    await ns.enableForwarding();
    for (const [addr, mac] of Object.entries({ ...NET.neighbours, ...opts.reals })) {
      const dev = addr.startsWith('10.1.') ? 'reals' : 'clients';
      await ns.ip(['neigh', 'replace', addr, 'lladdr', mac, 'dev', dev, 'nud', 'permanent']);
    }
    const lb = Balancer.open({ netns: ns.name, maxConnections: opts.maxConnections ?? 4096, maxTemplates: 4096 });
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
