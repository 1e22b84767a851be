// The benchmark's namespaces.
//
// PacketLab: one balancer namespace for BPF_PROG_TEST_RUN. Frames are run through a program as if
// they arrived on `clients` or `reals`; bpf_fib_lookup answers from this namespace's routes and
// permanent neighbours: real server i is 10.1.x.y (i = 256x + y) on-link on `reals`, clients are
// 10.128.0.0/10 behind a gateway on `clients`.
//
// ThroughputLab: frames travel through veths between namespaces, all on the CPU that sends them:
//
//   client ──── lb ──┬── r1     client 10.0.0.1/24 (eth0), lb 10.0.0.254/24 (client)
//    (generator)     ├── r2     real i: 10.i.0.1/24 (eth0), lb 10.i.0.254/24 (ri)
//                    └── ...    the real servers' eth0 carry a counting sink that drops
//
// Neighbours are permanent on the lb (a sink answers no ARP), and clients (10.128.0.0/10) are
// routed back towards the client namespace.
import { execFileSync } from 'node:child_process';
import { Topology, type Namespace } from '../lib/topology.js';
import { CLIENTS_PREFIX } from './frames.js';

/** Namespace prefix of every benchmark topology (a test gives its run a unique one). */
export const BENCH_NS_PREFIX = process.env.XVS_BENCH_NS_PREFIX ?? 'xvsbench';

export const VIP = '10.100.0.1';

function ipBatch(ns: Namespace, commands: string[]): void {
  if (commands.length === 0) return;
  execFileSync('ip', ['-n', ns.name, '-batch', '-'], { input: `${commands.join('\n')}\n`, stdio: ['pipe', 'ignore', 'pipe'] });
}

/** Real server i (1-based) of the packet lab. */
export function packetLabReal(i: number): { address: string; mac: string } {
  const hi = i >> 8;
  const lo = i & 255;
  const hex = (n: number) => n.toString(16).padStart(2, '0');
  return { address: `10.1.${hi}.${lo}`, mac: `02:00:00:01:${hex(hi)}:${hex(lo)}` };
}

export const PACKET_LAB_GATEWAY_MAC = '02:00:00:00:02:02';

export interface PacketLab {
  ns: Namespace;
  clients: { ifindex: number; mac: string };
  reals: { ifindex: number; mac: string };
  destroy(): Promise<void>;
}

/** maxReals: how many real server addresses get a neighbour entry. */
export async function packetLab(maxReals: number): Promise<PacketLab> {
  if (maxReals > 65000) throw new Error('packet lab: at most 65000 real servers');
  const topology = new Topology({ prefix: BENCH_NS_PREFIX });
  try {
    const ns = await topology.addNamespace('pkt');
    const peer = await topology.addNamespace('peer');
    const reals = await topology.link(ns, peer, { a: { name: 'reals', ipv4: '10.1.255.254/16' } });
    const clients = await topology.link(ns, peer, { a: { name: 'clients', ipv4: '10.2.0.1/24' } });
    await ns.enableForwarding();
    const neighbours = [`neigh replace 10.2.0.2 lladdr ${PACKET_LAB_GATEWAY_MAC} dev clients nud permanent`];
    for (let i = 1; i <= maxReals; i++) {
      const r = packetLabReal(i);
      neighbours.push(`neigh replace ${r.address} lladdr ${r.mac} dev reals nud permanent`);
    }
    ipBatch(ns, neighbours);
    await ns.route(CLIENTS_PREFIX, { via: '10.2.0.2' });
    return {
      ns,
      clients: { ifindex: clients.a.ifindex, mac: clients.a.mac },
      reals: { ifindex: reals.a.ifindex, mac: reals.a.mac },
      destroy: async () => void (await topology.destroy()),
    };
  } catch (e) {
    await topology.destroy();
    throw e;
  }
}

export interface LabReal {
  name: string;
  ns: Namespace;
  address: string;
  mac: string;
  /** The lb's interface towards it. */
  lbIf: { name: string; ifindex: number; mac: string };
}

export interface ThroughputLab {
  topology: Topology;
  client: Namespace;
  lb: Namespace;
  /** The client's eth0 (where the generator transmits) and the lb's interface facing it. */
  clientIf: { ifindex: number; mac: string };
  lbClientIf: { name: string; ifindex: number; mac: string };
  reals: LabReal[];
  destroy(): Promise<void>;
}

export async function throughputLab(realCount: number): Promise<ThroughputLab> {
  const topology = new Topology({ prefix: BENCH_NS_PREFIX });
  try {
    const client = await topology.addNamespace('client');
    const lb = await topology.addNamespace('lb');
    const front = await topology.link(client, lb, {
      a: { name: 'eth0', ipv4: '10.0.0.1/24' },
      b: { name: 'client', ipv4: '10.0.0.254/24' },
    });
    await lb.enableForwarding();
    // Kernel-stack balancers (nftables) would drop what strict reverse-path filtering rejects.
    for (const scope of ['all', 'default', 'client']) await lb.sysctl(`net.ipv4.conf.${scope}.rp_filter`, 0);
    const neighbours = [`neigh replace 10.0.0.1 lladdr ${front.a.mac} dev client nud permanent`];
    const reals: LabReal[] = [];
    for (let i = 1; i <= realCount; i++) {
      const name = `r${i}`;
      const ns = await topology.addNamespace(name);
      const link = await topology.link(lb, ns, {
        a: { name, ipv4: `10.${i}.0.254/24` },
        b: { name: 'eth0', ipv4: `10.${i}.0.1/24` },
      });
      neighbours.push(`neigh replace 10.${i}.0.1 lladdr ${link.b.mac} dev ${name} nud permanent`);
      reals.push({
        name, ns, address: `10.${i}.0.1`, mac: link.b.mac,
        lbIf: { name, ifindex: link.a.ifindex, mac: link.a.mac },
      });
    }
    ipBatch(lb, neighbours);
    await lb.route(CLIENTS_PREFIX, { via: '10.0.0.1' });
    return {
      topology, client, lb, reals,
      clientIf: { ifindex: front.a.ifindex, mac: front.a.mac },
      lbClientIf: { name: 'client', ifindex: front.b.ifindex, mac: front.b.mac },
      destroy: async () => void (await topology.destroy()),
    };
  } catch (e) {
    await topology.destroy();
    throw e;
  }
}
