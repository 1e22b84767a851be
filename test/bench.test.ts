// The benchmark harness (npm run bench), smoke-tested with tiny counts: its generator writes the
// frames it claims to (checked by the independent parser of helpers/packet.ts), and a whole run
// produces its table, JSON and chart with every packet on the path it is meant to measure. No
// timing is asserted: this machine is shared and has 2 CPUs.
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { type FrameSpec, flowTuple, frameTemplate, TCP_ACK, TCP_SYN } from '../bench/frames.js';
import { Driver, EmptyProgram, type TrafficSpec } from '../bench/programs.js';
import type { BenchResults } from '../bench/report.js';
import { packageRoot } from '../lib/native.js';
import { parseFrame, verifyChecksums } from './helpers/packet.js';

const run = promisify(execFile);

// Addresses whose 16-bit halves carry when summed, and ports near the top of their range.
const SPACE = { addrBase: '10.255.255.200', portBase: 65_000, portsPerAddr: 500 };
const MACS = { srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02' };

/** The frame the generator writes for flow number `f`. */
function generated(spec: FrameSpec, f: number): Buffer {
  const empty = new EmptyProgram();
  const traffic: TrafficSpec = { template: frameTemplate(spec), space: SPACE, flows: 0, start: f };
  const driver = new Driver(traffic, empty.program);
  try {
    const r = driver.run(1);
    expect(r.verdict).toBe(2); // the empty program's XDP_PASS: the tail call happened
    return r.frame;
  } finally {
    driver.close();
    empty.close();
  }
}

describe('bench generator', () => {
  const flows = [0, 1, 499, 500, 12_345, 1_000_000];

  it('writes a valid TCP frame per flow: client as source, both checksums right', () => {
    const server = { address: '10.100.0.1', port: 80 };
    for (const f of flows) {
      const frame = generated({ ...MACS, proto: 'tcp', tcpFlags: TCP_SYN, server }, f);
      const client = flowTuple(SPACE, f);
      const p = parseFrame(frame);
      expect(frame.length).toBe(64);
      expect(p).toMatchObject({ ...MACS, ip: { src: client.address, dst: server.address, ttl: 64 } });
      expect(p.tcp).toMatchObject({ sport: client.port, dport: 80, flags: 'S' });
      expect(verifyChecksums(frame)).toEqual({ ipOk: true, l4Ok: true });
    }
  });

  it('writes replies with the client as destination, and UDP', () => {
    const server = { address: '10.1.0.1', port: 53 };
    for (const f of flows) {
      const client = flowTuple(SPACE, f);
      const reply = parseFrame(generated({ ...MACS, proto: 'tcp', tcpFlags: TCP_ACK, server, clientIsDst: true }, f));
      expect(reply.ip).toMatchObject({ src: server.address, dst: client.address });
      expect(reply.tcp).toMatchObject({ sport: 53, dport: client.port, flags: 'A' });
      const udp = generated({ ...MACS, proto: 'udp', server }, f);
      expect(parseFrame(udp).udp).toMatchObject({ sport: client.port, dport: 53 });
      expect(verifyChecksums(udp)).toEqual({ ipOk: true, l4Ok: true });
    }
  });
});

describe('npm run bench --smoke', () => {
  it('runs every section and writes the table, JSON and SVG, each packet on its intended path', async () => {
    const root = packageRoot();
    const out = mkdtempSync(join(tmpdir(), 'xvs-bench-'));
    const prefix = `xvsbench${Math.random().toString(36).slice(2, 8)}`;
    try {
      execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: root, stdio: 'pipe' });
      const { stdout } = await run(process.execPath, [join(root, 'dist', 'bench', 'main.js'), '--smoke', '--out', out], {
        cwd: root,
        maxBuffer: 16 * 1024 * 1024,
        env: { ...process.env, XVS_BENCH_NS_PREFIX: prefix },
        // Ended (SIGTERM: it removes its namespaces) before the test's own timeout gives up on it.
        timeout: 170_000,
      });
      for (const heading of ['Per-packet cost', 'Throughput through namespaces', 'Connection table', 'Control plane']) {
        expect(stdout).toContain(heading);
      }
      const files = readdirSync(out);
      const json = files.find((f) => f.endsWith('.json'));
      expect(files.filter((f) => /\.(json|txt|svg)$/.test(f))).toHaveLength(3);
      const results = JSON.parse(readFileSync(join(out, json!), 'utf8')) as BenchResults;
      expect(results.machine.cpus).toBeGreaterThan(0);
      expect(results.machine.kernel).toMatch(/^\d+\.\d+/);

      const pp = results.perPacket!;
      for (const row of pp.rows.filter((r) => r.key.startsWith('xvs-'))) {
        expect(row.path, row.name).toMatch(row.key === 'xvs-no-service' ? /^pass_no_service 100%/ : /^fwd_redirect 100%/);
      }
      expect(pp.rows.map((r) => r.key)).toContain('xvs-new-wrr-10');
      expect(pp.entriesPerConnection).toEqual({ dr: 1, nat: 2 });

      const tp = results.throughput!;
      expect(tp.rows.map((r) => r.key)).toEqual(['ceiling', 'a', 'a-fib', 'b', 'b-new', 'c', 'd', 'e']);
      for (const row of tp.rows.filter((r) => r.status === 'measured')) {
        expect(row.mpps, row.name).toBeGreaterThan(0); // frames arrived, addressed right
      }
      const ipvs = tp.rows.find((r) => r.key === 'e')!;
      if (ipvs.status === 'absent') expect(ipvs.note).toMatch(/^absent: /);

      const ct = results.connTable!;
      expect(ct.sizes[0]).toMatchObject({ status: 'measured', path: 'fwd_redirect 100%' });
      // A full table evicts nothing (exact counts): it refuses the new connections.
      expect(ct.full.evicted).toBe(0);
      expect(ct.full.dropped).toBeGreaterThan(0);

      const cp = results.control!;
      expect(cp.addServices.services).toBe(10);
      expect(cp.weightChange.changes).toBeGreaterThan(0);
      expect(results.warnings.filter((w) => /expected every packet|failed/.test(w))).toEqual([]);
      expect(readFileSync(join(out, files.find((f) => f.endsWith('.svg'))!), 'utf8')).toMatch(/^<svg /);
      expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(`${prefix}-`);
    } finally {
      rmSync(out, { recursive: true, force: true });
      // Whatever a bench killed half-way left behind (a failing run must not leave namespaces).
      for (const ns of execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n')) {
        const name = ns.split(' ')[0]!;
        if (name.startsWith(`${prefix}-`)) execFileSync('ip', ['netns', 'del', name]);
      }
    }
  }, 180_000);
});
