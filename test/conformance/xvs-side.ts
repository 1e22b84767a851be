// The xvs side: the same command cases through xvsadm, and the same traffic cases on the lab
// topology built on the host (lib/topology.ts) with xvs attached to the director by xvsadm.
//
// xvsadm runs in this process (the bin's own code: a process per command would cost a second per
// command). A traffic case works on the director namespace's own table (`--netns NS`, the table
// `ip netns exec NS xvsadm` finds; test/netns-tables.test.ts drives that form through real
// `ip netns exec` processes); the command cases share one pin directory of their own.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { xvsadm as runXvsadm } from '../../lib/cli/run.js';
import { attachDecap, type DecapHandle } from '../../lib/decap.js';
import { type Namespace, Topology, uniqueSuffix } from '../../lib/topology.js';
import { LAB, type CommandCase, type Result, type TrafficCase, type TrafficResult } from './model.js';

/** The kernel's connection table has 4096 buckets; xvs sizes its table when it creates the maps. */
const ENV = { XVS_MAX_CONNECTIONS: '4096', XVS_NO_XVSD: '1' };
const DEFAULT_TIMEOUTS = ['--set', '900', '120', '300'];

/** One IPVS table on the host and how xvsadm is pointed at it. */
interface Table {
  /** Runs xvsadm against the table: in this process when it can (fast), else the bin. */
  run(args: string[], stdin?: string): Promise<Result>;
  /** Removes the table (pins, links, xvsd). */
  remove(): Promise<void>;
}

function table(netns: Namespace | undefined): Table {
  const where = netns ? ['--netns', netns.name] : [];
  const env: Record<string, string> = netns ? ENV : { ...ENV, XVS_PIN_PATH: `/sys/fs/bpf/xvs-conf-${uniqueSuffix(8)}` };
  return {
    run: (args, stdin = '') => inProcess(env, [...where, ...args], stdin),
    remove: async () => {
      const r = await inProcess(env, [...where, '--teardown'], '');
      if (r.status !== 0) throw new Error(`xvsadm --teardown: ${r.stderr}`);
    },
  };
}

async function inProcess(env: Record<string, string>, args: string[], stdin: string): Promise<Result> {
  let stdout = '';
  let stderr = '';
  const status = await runXvsadm(
    args,
    'xvsadm',
    { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), readStdin: () => stdin },
    env,
  );
  return { stdout, stderr, status };
}

/**
 * Runs every command case against one table, brought back to a fresh one's state between cases
 * (no service, default timeouts): creating the maps and loading the dataplane for each case would
 * cost a second per case. A reset that fails is an error, never a silent carry-over.
 */
export async function runCommandCases(cases: CommandCase[]): Promise<Result[][]> {
  const t = table(undefined);
  try {
    const results: Result[][] = [];
    for (const c of cases) {
      for (const reset of [['-C'], DEFAULT_TIMEOUTS]) {
        const r = await t.run(reset);
        if (r.status !== 0) throw new Error(`resetting the table before "${c.name}": ${r.stderr}`);
      }
      const out: Result[] = [];
      for (const line of c.lines) out.push(await t.run(line.args, line.stdin));
      results.push(out);
    }
    return results;
  } finally {
    await t.remove();
  }
}

const VIP = '10.100.0.1';
const VIP6 = 'fd00:100::1';
const REALS = 3;

/** lab.py's topology on the host; lab.py runs the servers and the client in it. */
export interface HostLab {
  topology: Topology;
  ns: Record<string, Namespace>;
  /** The director's interfaces, where xvs is attached. */
  lbInterfaces: string[];
  /** Detaches the real servers' decapsulators and removes the namespaces. */
  destroy(): Promise<void>;
}

/**
 * lab.py's topology on the host (lib/demo/lab.ts's addresses): client, lb (the director, VIPs on
 * lo), r1..r3 holding the VIPs for DR. Built once for every traffic case, each with an xvs of its
 * own; the client may reuse a TIME_WAIT port of an earlier case.
 */
export async function buildLab(): Promise<HostLab> {
  const topology = new Topology({ prefix: 'conf' });
  const decaps: DecapHandle[] = [];
  try {
    const client = await topology.addNamespace('client');
    const lb = await topology.addNamespace('lb');
    await topology.link(client, lb, {
      a: { name: 'eth0', ipv4: '10.0.0.1/24', ipv6: 'fd00::1/64' },
      b: { name: 'client', ipv4: '10.0.0.254/24', ipv6: 'fd00::fe/64' },
    });
    await client.route(`${VIP}/32`, { via: '10.0.0.254' });
    await client.route(`${VIP6}/128`, { via: 'fd00::fe' });
    await client.sysctl('net.ipv4.tcp_tw_reuse', 1);
    await lb.enableForwarding();
    await lb.addAddress('lo', VIP);
    await lb.addAddress('lo', VIP6);
    const ns: Record<string, Namespace> = { client, lb };
    for (let i = 1; i <= REALS; i++) {
      const r = await topology.addNamespace(`r${i}`);
      await topology.link(lb, r, {
        a: { name: `r${i}`, ipv4: `10.${i}.0.254/24`, ipv6: `fd00:${i}::fe/64` },
        b: { name: 'eth0', ipv4: `10.${i}.0.1/24`, ipv6: `fd00:${i}::1/64` },
      });
      await r.route('default', { via: `10.${i}.0.254` });
      await r.route('default', { via: `fd00:${i}::fe` });
      await r.acceptVip(VIP);
      await r.acceptVip(VIP6);
      ns[`r${i}`] = r;
      // TUN real servers: xvs's decapsulator stands in for the ipip module the host lacks.
      decaps.push(attachDecap('eth0', { netns: r.name }));
    }
    return {
      topology, ns, lbInterfaces: ['client', ...Array.from({ length: REALS }, (_, i) => `r${i + 1}`)],
      destroy: async () => {
        for (const d of decaps) d.detach();
        await topology.destroy();
      },
    };
  } catch (e) {
    for (const d of decaps) d.detach();
    await topology.destroy();
    throw e;
  }
}

/** Runs one traffic case on the lab with a fresh xvs attached to the director. */
export async function runTrafficCase(lab: HostLab, c: TrafficCase): Promise<TrafficResult> {
  const t = table(lab.ns.lb);
  try {
    for (const args of lab.lbInterfaces.map((i) => ['--attach', i])) {
      const r = await t.run(args);
      if (r.status !== 0) throw new Error(`xvsadm ${args.join(' ')}: ${r.stderr}`);
    }
    const job = {
      ns: Object.fromEntries(Object.entries(lab.ns).map(([role, n]) => [role, n.path])),
      // The final ACKs of closed connections reach the director a moment after the client is done.
      settle: 0.5,
      cases: [{ name: c.name, firstPort: c.firstPort, setup: c.setup, actions: c.actions }],
    };
    return (await driveLab(JSON.stringify(job), t))[0]!;
  } finally {
    await t.remove();
  }
}

/** Runs `lab.py traffic`, answering its xvsadm requests. */
function driveLab(job: string, t: Table): Promise<TrafficResult[]> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', ['-B', LAB, 'traffic'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    let done: TrafficResult[] | undefined;
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => (done ? resolve(done) : reject(new Error(`lab.py traffic exited with ${status}: ${stderr}`))));
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const message = JSON.parse(line) as { admin?: string[]; done?: TrafficResult[] };
      if (message.done) done = message.done;
      else if (message.admin) {
        t.run(message.admin).then(
          (r) => child.stdin.write(`${JSON.stringify(r)}\n`),
          (e: Error) => child.stdin.write(`${JSON.stringify({ stdout: '', stderr: `xvsadm crashed: ${e.message}\n`, status: -1 })}\n`),
        );
      }
    });
    child.stdin.write(`${job}\n`);
  });
}
