// How long `xvsadm -R` takes for 10,000 lines (1,000 services x 9 real servers), with real servers
// shared between services and with every real server distinct, and what the batch of map writes
// saves against one commit per command. Run: npx tsc -p tsconfig.json && node dist/bench/xvsadm-restore.js
import { BENCH_NS_PREFIX } from './lab.js';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Balancer } from '../lib/balancer.js';
import { packageRoot } from '../lib/native.js';
import { removePins } from '../lib/store.js';
import { Topology, uniqueSuffix } from '../lib/topology.js';

const SERVICES = 1000;
const REALS = 9;
const BIN = join(packageRoot(), 'dist', 'lib', 'cli', 'xvsadm.js');

function rules(distinctReals: boolean): string[] {
  const lines: string[] = [];
  for (let s = 0; s < SERVICES; s++) {
    const vip = `10.200.${s >> 8}.${s & 255}`;
    lines.push(`-A -t ${vip}:80 -s wrr`);
    for (let r = 0; r < REALS; r++) {
      const n = (distinctReals ? s * REALS + r : r) + 1;
      lines.push(`-a -t ${vip}:80 -r 10.1.${n >> 8}.${n & 255}:80 -g -w ${r + 1}`);
    }
  }
  return lines;
}

function timed<T>(fn: () => T): [T, number] {
  const t = process.hrtime.bigint();
  const r = fn();
  return [r, Number(process.hrtime.bigint() - t) / 1e6];
}

function xvsadm(pinPath: string, args: string[], input = ''): string {
  return execFileSync(process.execPath, [BIN, ...args], { input, env: { ...process.env, XVS_PIN_PATH: pinPath }, maxBuffer: 1 << 26 }).toString();
}

async function main(): Promise<void> {
  const topology = new Topology({ prefix: BENCH_NS_PREFIX });
  const pinPath = `/sys/fs/bpf/xvs-bench-${uniqueSuffix()}`;
  try {
    // The balancer's namespace routes 10.1.0.0/16 to its real servers: every -a primes a neighbour.
    const lb = await topology.addNamespace('lb');
    const peer = await topology.addNamespace('reals');
    await topology.link(lb, peer, { a: { name: 'reals', ipv4: '10.1.255.254/16' } });
    Balancer.open({ pinPath, netns: lb.name }).close();
    for (const distinct of [false, true]) {
      const lines = rules(distinct);
      xvsadm(pinPath, ['-C']);
      const [, ms] = timed(() => xvsadm(pinPath, ['-R'], lines.join('\n') + '\n'));
      const [saved, saveMs] = timed(() => xvsadm(pinPath, ['-S', '-n']));
      const [, listMs] = timed(() => xvsadm(pinPath, ['-L', '-n']));
      if (saved !== lines.join('\n') + '\n') throw new Error('-S does not give back what -R read');
      console.log(
        `xvsadm -R, ${lines.length} lines, ${distinct ? 'every real server distinct' : `${REALS} real servers shared`}: ` +
          `${ms.toFixed(0)} ms; -S -n ${saveMs.toFixed(0)} ms; -L -n ${listMs.toFixed(0)} ms`,
      );
    }
    // The same commands in this process: one transaction (one batch) against one per command.
    const key = (s: number) => ({ protocol: 'tcp' as const, address: `10.200.${s >> 8}.${s & 255}`, port: 80 });
    const apply = (b: Balancer, s: number, r: number) =>
      r < 0 ? b.addService(key(s), { scheduler: 'wrr' }) : b.addRealServer(key(s), { address: `10.1.0.${r + 1}` }, { weight: r + 1 });
    const steps = Array.from({ length: SERVICES }, (_, s) => Array.from({ length: REALS + 1 }, (_, r) => [s, r - 1] as const)).flat();
    // One commit per command pays one `ip` run per step of neighbour priming for each real
    // server, which dominates: measured on the first 1,000 commands only.
    for (const [batched, count] of [[true, steps.length], [false, 1000]] as const) {
      const b = Balancer.open({ pinPath });
      b.transaction(() => b.clear());
      const some = steps.slice(0, count);
      const [, ms] = timed(() =>
        batched ? b.transaction(() => some.forEach(([s, r]) => apply(b, s, r))) : some.forEach(([s, r]) => b.transaction(() => apply(b, s, r))),
      );
      const how = batched ? 'one transaction' : 'one transaction per command';
      console.log(`API, ${count} commands, ${how}: ${ms.toFixed(0)} ms (${(ms / count).toFixed(3)} ms per command)`);
      b.close();
    }
  } finally {
    removePins(pinPath);
    await topology.destroy();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
