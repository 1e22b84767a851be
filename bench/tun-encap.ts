// Per-packet cost of TUN encapsulation, through BPF_PROG_TEST_RUN: established packets of one
// connection per case, each run alone (repeat 1: a repeated run would re-encapsulate its own
// output) many times; the kernel's duration of each run is collected and the median reported,
// next to DR and NAT on the same setup and a non-IP frame that is passed at once (the harness's
// own overhead). Run: npx tsc -p tsconfig.json && node dist/bench/tun-encap.js
import { BENCH_NS_PREFIX } from './lab.js';
import { Balancer, type Method, type RealServerOptions, type ServiceKey } from '../lib/balancer.js';
import { withNetns } from '../lib/libbpf.js';
import { Topology } from '../lib/topology.js';
import { buildFrame } from '../test/helpers/packet.js';

const RUNS = Number(process.env.XVS_BENCH_RUNS ?? 20000);

interface Case {
  name: string;
  vip: string;
  client: string;
  real: string;
  method: Method;
  tunnel?: RealServerOptions;
}

const CASES: Case[] = [
  { name: 'DR IPv4', vip: '10.0.0.100', client: '10.2.0.5', real: '10.1.0.11', method: 'dr' },
  { name: 'NAT IPv4', vip: '10.0.0.100', client: '10.2.0.5', real: '10.1.0.11', method: 'nat' },
  { name: 'TUN IPv4 in IPv4', vip: '10.0.0.100', client: '10.2.0.5', real: '10.1.0.11', method: 'tun' },
  { name: 'DR IPv6', vip: 'fd00:100::1', client: 'fd00:2::5', real: 'fd00:1::11', method: 'dr' },
  { name: 'TUN IPv6 in IPv6', vip: 'fd00:100::1', client: 'fd00:2::5', real: 'fd00:1::11', method: 'tun' },
  { name: 'TUN IPv4 in IPv6', vip: '10.0.0.100', client: '10.2.0.5', real: 'fd00:1::11', method: 'tun' },
  { name: 'TUN IPv6 in IPv4', vip: 'fd00:100::1', client: 'fd00:2::5', real: '10.1.0.11', method: 'tun' },
  ...([
    ['GUE', { tunType: 'gue', tunPort: 6080 }],
    ['GUE csum', { tunType: 'gue', tunPort: 6080, tunChecksum: 'csum' }],
    ['GUE remcsum', { tunType: 'gue', tunPort: 6080, tunChecksum: 'remcsum' }],
    ['GRE', { tunType: 'gre' }],
    ['GRE csum', { tunType: 'gre', tunChecksum: 'csum' }],
  ] as [string, RealServerOptions][]).flatMap(([name, tunnel]): Case[] => [
    { name: `${name} IPv4 in IPv4`, vip: '10.0.0.100', client: '10.2.0.5', real: '10.1.0.11', method: 'tun', tunnel },
    { name: `${name} IPv6 in IPv6`, vip: 'fd00:100::1', client: 'fd00:2::5', real: 'fd00:1::11', method: 'tun', tunnel },
  ]),
];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  const topology = new Topology({ prefix: BENCH_NS_PREFIX });
  let lb: Balancer | undefined;
  try {
    const ns = await topology.addNamespace('lb');
    const peer = await topology.addNamespace('peer');
    await topology.link(ns, peer, { a: { name: 'reals', ipv4: '10.1.0.1/24', ipv6: 'fd00:1::1/64' } });
    const clients = await topology.link(ns, peer, { a: { name: 'clients', ipv4: '10.2.0.1/24', ipv6: 'fd00:2::1/64' } });
    await ns.enableForwarding();
    for (const [address, dev] of [['10.1.0.11', 'reals'], ['fd00:1::11', 'reals'], ['10.2.0.5', 'clients'], ['fd00:2::5', 'clients']]) {
      await ns.ip(['neigh', 'replace', address!, 'lladdr', '02:00:00:00:00:11', 'dev', dev!, 'nud', 'permanent']);
    }
    const tunnelSource = process.env.XVS_BENCH_TUNNEL_SOURCE ? { inet: '10.255.0.0/24', inet6: 'fd00:ff::/112' } : {};
    lb = Balancer.open({ netns: ns.name, maxConnections: 4096, tunnelSource });
    const program = lb.dataplane.program;
    const ctx = Buffer.alloc(24);
    ctx.writeUInt32LE(clients.a.ifindex, 12);
    const run = (frame: Buffer) => {
      ctx.writeUInt32LE(frame.length, 4);
      return withNetns(ns.name, () => program.testRun({ data: frame, ctx })).durationNs;
    };
    const measure = (frame: Buffer) => median(Array.from({ length: RUNS }, () => run(frame)));

    const rows: [string, number][] = [['non-IP frame, passed', measure(Buffer.alloc(64))]];
    CASES.forEach((c, i) => {
      const key: ServiceKey = { protocol: 'tcp', address: c.vip, port: 1000 + i };
      lb!.addService(key, { scheduler: 'rr' });
      lb!.addRealServer(key, { address: c.real, port: c.method === 'nat' ? 80 : key.port }, { method: c.method, ...c.tunnel });
      const packet = (flags: string) =>
        buildFrame({ ip: { src: c.client, dst: c.vip, df: true }, tcp: { sport: 40000, dport: key.port, flags }, payload: 'x'.repeat(64) });
      run(packet('S'));
      rows.push([`${c.name}, established`, measure(packet('A'))]);
    });
    console.log(`BPF_PROG_TEST_RUN, median of ${RUNS} single runs (ns per packet, incl. the harness's timer):`);
    for (const [name, ns] of rows) console.log(`  ${name.padEnd(40)} ${String(ns).padStart(5)}`);
  } finally {
    lb?.close();
    await topology.destroy();
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
