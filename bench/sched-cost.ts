// What scheduling costs per packet, measured with BPF_PROG_TEST_RUN (ns per packet, as the kernel
// times the program): new connections of the lc family at 10, 100 and 1,000 real servers, the
// established path under different schedulers, and the sweeper over 1M connections.
//
//   npx tsc -p tsconfig.json && node dist/bench/sched-cost.js
//
// New connections are measured two ways: one-packet UDP (each datagram is scheduled, counted and
// forwarded, nothing stored; repeat=N on one frame) and TCP SYNs of fresh 5-tuples (one run per
// frame: scheduling plus storing the connection). Real servers sit behind one gateway, so that
// bpf_fib_lookup resolves them all with one neighbour entry. Numbers vary with the machine; do not
// compare runs across machines.
import { Balancer, type ServiceKey } from '../lib/balancer.js';
import * as L from '../lib/layout.js';
import { withNetns } from '../lib/libbpf.js';
import { Topology } from '../lib/topology.js';

const VIP = '10.0.0.100';
const CLIENTS_IF = 'clients';
const REPEAT = 20_000;
const SYNS = 2_000;
const SIZES = [10, 100, 1000];
const LC_FAMILY = ['lc', 'wlc', 'sed', 'nq', 'fo', 'ovf', 'twos', 'rr'];
const SWEEP_CONNS = 1 << 20;

function ipBytes(a: string): number[] {
  return a.split('.').map(Number);
}

/** Ethernet + IPv4 + TCP or UDP, checksums left zero (the dataplane does not check them). */
function frame(proto: 'tcp' | 'udp', src: string, sport: number, dport: number, tcpFlags = 0x02): Buffer {
  const l4 = proto === 'tcp' ? 20 : 8;
  const b = Buffer.alloc(14 + 20 + l4 + 4);
  b.writeUInt16BE(0x0800, 12);
  b[14] = 0x45;
  b.writeUInt16BE(20 + l4 + 4, 16);
  b[22] = 64;
  b[23] = proto === 'tcp' ? 6 : 17;
  Buffer.from(ipBytes(src)).copy(b, 26);
  Buffer.from(ipBytes(VIP)).copy(b, 30);
  b.writeUInt16BE(sport, 34);
  b.writeUInt16BE(dport, 36);
  if (proto === 'tcp') {
    b[46] = 0x50;
    b[47] = tcpFlags;
  } else {
    b.writeUInt16BE(8 + 4, 38);
  }
  return b;
}

class Bench {
  private sport = 1024;
  private client = 0;

  constructor(private readonly lb: Balancer, private readonly netns: string, private readonly ifindex: number) {}

  run(data: Buffer, repeat = 1): { retval: number; ns: number } {
    const ctx = Buffer.alloc(24);
    ctx.writeUInt32LE(data.length, 4);
    ctx.writeUInt32LE(this.ifindex, 12);
    const r = withNetns(this.netns, () => this.lb.dataplane.program.testRun({ data, ctx, repeat }));
    return { retval: r.retval, ns: r.durationNs };
  }

  /** A fresh client 5-tuple. */
  next(): { src: string; sport: number } {
    if (this.sport >= 65000) {
      this.sport = 1024;
      this.client++;
    }
    return { src: `10.2.${(this.client >> 8) & 255}.${this.client & 255}`, sport: this.sport++ };
  }

  onePacket(): number {
    const { src, sport } = this.next();
    return this.run(frame('udp', src, sport, 53), REPEAT).ns;
  }

  syns(): number {
    let total = 0;
    for (let i = 0; i < SYNS; i++) {
      const { src, sport } = this.next();
      total += this.run(frame('tcp', src, sport, 80)).ns;
    }
    return total / SYNS;
  }

  established(): number {
    const { src, sport } = this.next();
    this.run(frame('tcp', src, sport, 80));
    this.run(frame('tcp', src, sport, 80, 0x10));
    return this.run(frame('tcp', src, sport, 80, 0x10), REPEAT * 5).ns;
  }
}

function row(cells: (string | number)[]): string {
  return cells.map((c, i) => String(typeof c === 'number' ? Math.round(c) : c).padStart(i ? 9 : 12)).join(' ');
}

async function main(): Promise<void> {
  const topo = new Topology({ prefix: 'xvsb' });
  let lb: Balancer | undefined;
  try {
    const ns = await topo.addNamespace('lb');
    const peer = await topo.addNamespace('peer');
    const link = await topo.link(ns, peer, { a: { name: CLIENTS_IF, ipv4: '10.9.0.1/24' } });
    await ns.enableForwarding();
    await ns.ip(['neigh', 'replace', '10.9.0.2', 'lladdr', '02:00:00:00:09:02', 'dev', CLIENTS_IF, 'nud', 'permanent']);
    await ns.route('10.1.0.0/16', { via: '10.9.0.2' });
    lb = Balancer.open({ netns: ns.name, maxConnections: SWEEP_CONNS + 65536 });
    const bench = new Bench(lb, ns.name, link.a.ifindex);
    const web: ServiceKey = { protocol: 'tcp', address: VIP, port: 80 };
    const dns: ServiceKey = { protocol: 'udp', address: VIP, port: 53 };
    lb.addService(web, { scheduler: 'wlc' });
    lb.addService(dns, { scheduler: 'wlc', onePacket: true });

    console.log('New connection, ns per packet (one-packet UDP datagram / TCP SYN of a new 5-tuple):');
    console.log(row(['reals', ...LC_FAMILY.flatMap((s) => [`${s} udp`, `${s} syn`])]));
    let added = 0;
    for (const size of SIZES) {
      for (; added < size; added++) {
        const address = `10.1.${added >> 7}.${(added & 127) + 1}`;
        lb.addRealServer(web, { address });
        lb.addRealServer(dns, { address, port: 53 });
      }
      const cells: number[] = [];
      for (const scheduler of LC_FAMILY) {
        lb.editService(web, { scheduler });
        lb.editService(dns, { scheduler });
        cells.push(bench.onePacket(), bench.syns());
      }
      console.log(row([size, ...cells]));
      lb.expire();
    }

    console.log(`\nEstablished path at ${added} reals, ns per packet (ACK of a live connection):`);
    const established: (string | number)[] = [];
    for (const scheduler of ['rr', 'wlc', 'lc', 'sh', 'mh', 'lblcr', 'twos']) {
      lb.editService(web, { scheduler });
      established.push(scheduler, bench.established());
    }
    console.log(established.join('  '));

    console.log(`\nSweeper over ${SWEEP_CONNS} connections (ms):`);
    sweepBench(lb, bench);
  } finally {
    lb?.close();
    await topo.destroy();
  }
}

/** Fills the table with copies of one live connection, then sweeps it live and all expired. */
function sweepBench(lb: Balancer, bench: Bench): void {
  const dp = lb.dataplane;
  lb.editService({ protocol: 'tcp', address: VIP, port: 80 }, { scheduler: 'rr' });
  lb.setTimeouts({ tcp: 900 });
  const { src, sport } = bench.next();
  bench.run(frame('tcp', src, sport, 80));
  const conns = dp.map('conns');
  const [proto] = [...conns.entries()].filter(([k]) => L.connKey.decode(k).sport === sport).map(([, v]) => v);
  const model = L.conn.decode(proto!);
  const counts = dp.map('dest_conns');
  const index = Buffer.alloc(4);
  index.writeUInt32LE(model.dest);
  const batch = 65536;
  for (let done = 0; done < SWEEP_CONNS; done += batch) {
    const keys = Array.from({ length: batch }, (_, i) => L.connKey.encode({
      saddr: Buffer.from([10, 3, ((done + i) >> 16) & 255, ((done + i) >> 8) & 255]),
      daddr: Buffer.from(ipBytes(VIP)),
      sport: (done + i) & 255,
      dport: 80,
      proto: 6,
      af: 2,
    }));
    conns.updateBatch(keys, keys.map(() => proto!));
  }
  const c = L.destConns.decode(counts.lookup(index)!);
  counts.update(index, L.destConns.encode({ ...c, inactive: c.inactive + SWEEP_CONNS }));

  const timed = () => {
    const t = process.hrtime.bigint();
    const r = dp.sweep();
    return { ms: Number(process.hrtime.bigint() - t) / 1e6, ended: r.connsEnded };
  };
  const live = timed();
  console.log(`  nothing to end:  ${live.ms.toFixed(1)} ms (ended ${live.ended})`);
  dp.setClock(dp.now() + 1000n * 1_000_000_000n);
  const all = timed();
  console.log(`  all expired:     ${all.ms.toFixed(1)} ms (ended ${all.ended})`);
  const after = L.destConns.decode(counts.lookup(index)!);
  console.log(`  counts after: active ${after.active} inactive ${after.inactive} persist ${after.persist}`);
  dp.setClock(0n);
  const empty = timed();
  console.log(`  empty table:     ${empty.ms.toFixed(1)} ms`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exitCode = 1;
});
