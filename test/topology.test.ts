// The test helpers themselves: namespace topologies, the traffic agent, and the packet builder.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import ts from 'typescript';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Topology, type Namespace } from '../lib/topology.js';
import { Session, runClient, startServer } from '../lib/traffic.js';
import {
  buildFrame,
  checksum,
  ipv4,
  ipv6,
  mac,
  onesComplementSum,
  parseFrame,
  verifyChecksums,
  type FrameSpec,
} from './helpers/packet.js';

function namespaces(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.split(' ')[0]!)
    .filter(Boolean);
}

// Frames captured with an AF_PACKET socket on a veth with TX checksum offload off, so the kernel
// computed every checksum: they are the independent reference for the builder.
const captured = {
  udp4: '020000000002020000000001080045000025b4ef4000401171d60a0000010a0000029c40003500111feb68656c6c6f20787673',
  udp6:
    '02000000000202000000000186dd6001db3800101140fd000000000000000000000000000001fd000000000000000000000000' +
    '0000029c4114e900109a7668656c6c6f207636',
  tcpRst: '02000000000102000000000208004500002800004000400626ce0a0000020a00000100519c4200000000dd1808735014000019af0000',
  tcpSynWithOptions:
    '02000000000202000000000108004500003ce39e40004006431b0a0000010a0000029c420051dd18087200000000a002faf0858a' +
    '0000020405b40402080a5405dd5b000000000103030a',
};

const hex = (frame: Buffer) => frame.toString('hex');
const bytes = (text: string) => Buffer.from(text, 'hex');

describe('packet helpers', () => {
  it('computes the RFC 1071 example sum', () => {
    // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
    const data = bytes('0001f203f4f5f6f7');
    expect(onesComplementSum(data).toString(16)).toBe('ddf2');
    expect(checksum(data).toString(16)).toBe('220d');
  });

  it('parses address text', () => {
    expect([...mac('02:00:00:00:00:0a')]).toEqual([2, 0, 0, 0, 0, 10]);
    expect([...ipv4('10.0.0.1')]).toEqual([10, 0, 0, 1]);
    expect(hex(ipv6('fd00::1'))).toBe('fd000000000000000000000000000001');
    expect(hex(ipv6('::ffff:10.0.0.1'))).toBe('00000000000000000000ffff0a000001');
    expect(() => ipv4('10.0.0.256')).toThrow(/not an IPv4/);
  });

  it('builds the exact bytes the kernel sent', () => {
    expect(
      hex(
        buildFrame({
          ip: { src: '10.0.0.1', dst: '10.0.0.2', id: 0xb4ef, df: true },
          udp: { sport: 40000, dport: 53 },
          payload: 'hello xvs',
        }),
      ),
    ).toBe(captured.udp4);
    expect(
      hex(
        buildFrame({
          ip: { src: 'fd00::1', dst: 'fd00::2', flowLabel: 0x1db38 },
          udp: { sport: 40001, dport: 5353 },
          payload: 'hello v6',
        }),
      ),
    ).toBe(captured.udp6);
    expect(
      hex(
        buildFrame({
          dstMac: '02:00:00:00:00:01',
          srcMac: '02:00:00:00:00:02',
          ip: { src: '10.0.0.2', dst: '10.0.0.1', df: true },
          tcp: { sport: 81, dport: 40002, seq: 0, ack: 0xdd180873, flags: 'RA', window: 0 },
        }),
      ),
    ).toBe(captured.tcpRst);
  });

  it('parses and verifies frames the kernel sent', () => {
    for (const frame of Object.values(captured)) {
      expect(verifyChecksums(bytes(frame))).toEqual({ ipOk: true, l4Ok: true });
    }
    const syn = parseFrame(bytes(captured.tcpSynWithOptions));
    expect(syn).toMatchObject({
      dstMac: '02:00:00:00:00:02',
      srcMac: '02:00:00:00:00:01',
      ip: { version: 4, src: '10.0.0.1', dst: '10.0.0.2', ttl: 64, id: 0xe39e, df: true, checksum: 0x431b },
      tcp: { sport: 40002, dport: 81, seq: 0xdd180872, flags: 'S', dataOffset: 10, checksum: 0x858a },
    });
    expect(syn.payload.length).toBe(0);
    const udp6 = parseFrame(bytes(captured.udp6));
    expect(udp6).toMatchObject({
      ip: { version: 6, src: 'fd00::1', dst: 'fd00::2', ttl: 64, flowLabel: 0x1db38 },
      udp: { sport: 40001, dport: 5353, length: 16 },
    });
    expect(udp6.payload.toString()).toBe('hello v6');
  });

  it('sums a correctly checksummed IPv4 header to 0xffff', () => {
    const frame = buildFrame({ ip: { src: '192.0.2.1', dst: '198.51.100.7', id: 4242, ttl: 3 }, udp: { sport: 1, dport: 2 } });
    expect(onesComplementSum(frame.subarray(14, 34))).toBe(0xffff);
  });

  it('round-trips VLAN tags, IPv4 options and tunnels', () => {
    const spec: FrameSpec = {
      vlan: { id: 100, pcp: 5 },
      tunnel: { src: '192.0.2.1', dst: '192.0.2.2', ttl: 9 },
      ip: { src: '10.0.0.1', dst: '10.0.0.100', options: Buffer.from([1, 1, 1, 0]) },
      tcp: { sport: 1234, dport: 80, seq: 7, flags: 'PA' },
      payload: 'GET /',
    };
    const frame = buildFrame(spec);
    expect(verifyChecksums(frame)).toEqual({ ipOk: true, l4Ok: true });
    const parsed = parseFrame(frame);
    expect(parsed).toMatchObject({
      vlan: { id: 100, pcp: 5 },
      ethertype: 0x0800,
      ip: { version: 4, src: '192.0.2.1', dst: '192.0.2.2', protocol: 4, ttl: 9 },
      inner: { ip: { src: '10.0.0.1', dst: '10.0.0.100', ihl: 6 }, tcp: { sport: 1234, dport: 80, seq: 7, flags: 'AP' } },
    });
    expect(parsed.payload.toString()).toBe('GET /');

    const v6inv6 = buildFrame({ tunnel: { src: 'fd00::a', dst: 'fd00::b' }, ip: { src: 'fd01::1', dst: 'fd01::2' }, udp: { sport: 5, dport: 6 } });
    expect(parseFrame(v6inv6)).toMatchObject({ ip: { protocol: 41 }, inner: { ip: { src: 'fd01::1' }, udp: { dport: 6 } } });
    expect(verifyChecksums(v6inv6)).toEqual({ ipOk: true, l4Ok: true });
  });

  it('spoils checksums and lengths on request', () => {
    const base: FrameSpec = { ip: { src: '10.0.0.1', dst: '10.0.0.2' }, tcp: { sport: 1, dport: 2, flags: 'S' }, payload: 'abcd' };
    expect(verifyChecksums(buildFrame({ ...base, corrupt: { ip: true } }))).toEqual({ ipOk: false, l4Ok: true });
    expect(verifyChecksums(buildFrame({ ...base, corrupt: { l4: true } }))).toEqual({ ipOk: true, l4Ok: false });
    const truncated = buildFrame({ ...base, truncate: 3 });
    expect(truncated.length).toBe(buildFrame(base).length - 3);
    expect(verifyChecksums(truncated)).toEqual({ ipOk: true, l4Ok: false });
    expect(parseFrame(truncated).payload.toString()).toBe('a');
  });

  it('treats UDP checksum 0 as absent over IPv4 only', () => {
    const udp = { sport: 53, dport: 53, zeroChecksum: true };
    const v4 = buildFrame({ ip: { src: '10.0.0.1', dst: '10.0.0.2' }, udp, payload: 'x' });
    const v6 = buildFrame({ ip: { src: 'fd00::1', dst: 'fd00::2' }, udp, payload: 'x' });
    expect(parseFrame(v4).udp?.checksum).toBe(0);
    expect(verifyChecksums(v4).l4Ok).toBe(true);
    expect(verifyChecksums(v6).l4Ok).toBe(false);
  });
});

describe('Topology and the traffic agent', () => {
  let topo: Topology;
  let failedTestNamespaces: string[] = [];

  beforeEach(() => {
    topo = new Topology();
  });

  afterEach(async () => {
    expect(await topo.destroy()).toEqual([]);
  });

  async function clientAndServer(): Promise<{ client: Namespace; server: Namespace; agent: ChildProcess }> {
    const client = await topo.addNamespace('client');
    const server = await topo.addNamespace('server');
    await topo.link(client, server, {
      a: { ipv4: '10.1.0.1/24', ipv6: 'fd01::1/64' },
      b: { ipv4: '10.1.0.2/24', ipv6: 'fd01::2/64', mac: '02:00:00:00:01:02' },
    });
    const agent = await startServer(topo, server, { name: 'real1', tcp: [8080], udp: [5353] });
    return { client, server, agent };
  }

  it('links namespaces with veths ready for XDP redirects', async () => {
    const a = await topo.addNamespace('a');
    const b = await topo.addNamespace('b');
    const link = await topo.link(a, b, { a: { name: 'to-b', ipv4: '10.2.0.1/30' }, b: { mac: '02:00:00:00:00:0b' } });
    expect(link.a).toMatchObject({ dev: 'to-b', ipv4: '10.2.0.1' });
    expect(link.a.mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    expect(link.b).toMatchObject({ dev: 'eth0', mac: '02:00:00:00:00:0b' });
    expect(a.name).toBe(`xvs-a-${topo.id}`);
    const features = (await b.exec(['ethtool', '-k', 'eth0'])).stdout;
    expect(features).toMatch(/^tx-checksumming: off/m);
    expect(features).toMatch(/^generic-receive-offload: on/m);
    await expect(a.exec(['false'])).rejects.toThrow(/ip netns exec xvs-a-/);
  });

  it('serves TCP and UDP over IPv4 and IPv6', async () => {
    const { client } = await clientAndServer();
    for (const host of ['10.1.0.2', 'fd01::2']) {
      for (const proto of ['tcp', 'udp'] as const) {
        const port = proto === 'tcp' ? 8080 : 5353;
        const result = await runClient(client, { proto, host, port, count: 20, concurrency: 5 });
        expect(result, `${proto} ${host}`).toEqual({ answers: { real1: 20 }, failures: 0, errors: [] });
      }
    }
  });

  it('answers UDP from the VIP held on lo, as a direct-routing real server must', async () => {
    const client = await topo.addNamespace('client');
    const real = await topo.addNamespace('real');
    await topo.link(client, real, { a: { ipv4: '10.3.0.1/24' }, b: { ipv4: '10.3.0.2/24' } });
    await real.acceptVip('10.3.1.100');
    await client.route('10.3.1.100/32', { via: '10.3.0.2' });
    await startServer(topo, real, { name: 'dr', tcp: [80], udp: [53] });
    expect(await runClient(client, { proto: 'udp', host: '10.3.1.100', port: 53, count: 3 })).toMatchObject({ answers: { dr: 3 } });
    expect(await runClient(client, { proto: 'tcp', host: '10.3.1.100', port: 80, count: 3 })).toMatchObject({ answers: { dr: 3 } });
    expect((await real.exec(['sysctl', '-n', 'net.ipv4.conf.all.arp_ignore'])).stdout.trim()).toBe('1');
  });

  it('reports failures instead of answers when nothing listens', async () => {
    const { client } = await clientAndServer();
    const result = await runClient(client, { proto: 'tcp', host: '10.1.0.2', port: 9, count: 3 });
    expect(result.failures).toBe(3);
    expect(result.errors[0]).toMatch(/ECONNREFUSED/);
  });

  it('holds connections in a session and notices when their server goes away', async () => {
    const { client, agent } = await clientAndServer();
    const session = await Session.open(topo, client, { proto: 'tcp', host: '10.1.0.2', port: 8080, count: 4 });
    expect(session.names).toEqual(['real1', 'real1', 'real1', 'real1']);
    expect(await session.check()).toEqual(Array(4).fill({ name: 'real1', echoOk: true }));
    const udp = await Session.open(topo, client, { proto: 'udp', host: 'fd01::2', port: 5353, count: 2 });
    expect(await udp.check()).toEqual(Array(2).fill({ name: 'real1', echoOk: true }));

    const stopped = new Promise((resolve) => agent.once('exit', resolve));
    agent.kill();
    await stopped;
    const held = await session.check();
    expect(held.every((h) => !h.echoOk && h.error !== undefined)).toBe(true);
    await session.close();
    await udp.close();
  });

  it.fails('a failing test (expected to fail here)', async () => {
    const { server } = await clientAndServer();
    failedTestNamespaces = [server.name];
    throw new Error('deliberate failure');
  });

  it('cleans up after a failing test', () => {
    expect(failedTestNamespaces).toHaveLength(1);
    expect(namespaces()).not.toContain(failedTestNamespaces[0]);
  });

  it('destroys idempotently, stopping spawned processes', async () => {
    const ns = await topo.addNamespace('x');
    const sleeper = topo.spawn(ns, 'sleep', ['1000']);
    const exited = new Promise((resolve) => sleeper.once('exit', (_code, signal) => resolve(signal)));
    expect(await topo.destroy()).toEqual([]);
    expect(await exited).toBe('SIGTERM');
    expect(namespaces()).not.toContain(ns.name);
    expect(await topo.destroy()).toEqual([]);
    await expect(topo.addNamespace('y')).rejects.toThrow(/already destroyed/);
  });
});

describe('exit registry', () => {
  // A separate Node process uses the topology module (transpiled on the fly) and then dies.
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'xvs-topology-'));
    const source = readFileSync(new URL('../lib/topology.ts', import.meta.url), 'utf8');
    const { outputText } = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    });
    writeFileSync(join(dir, 'topology.mjs'), outputText);
    writeFileSync(
      join(dir, 'main.mjs'),
      `import { Topology } from './topology.mjs';
       const topo = new Topology();
       const ns = await topo.addNamespace('exit');
       topo.spawn(ns, 'sleep', ['1000']);
       console.log(ns.name);
       if (process.argv[2] === 'throw') setTimeout(() => { throw new Error('boom'); }, 10);
       else setInterval(() => {}, 1000);`,
    );
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function runUntilExit(mode: 'signal' | 'throw'): Promise<{ nsName: string; code: number | null; signal: string | null }> {
    const child = spawn(process.execPath, [join(dir, 'main.mjs'), mode], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<[number | null, string | null]>((resolve) => child.once('exit', (code, signal) => resolve([code, signal])));
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const nsName = (await lines.next()).value as string;
    expect(namespaces()).toContain(nsName);
    if (mode === 'signal') child.kill('SIGINT');
    const [code, signal] = await exited;
    return { nsName, code, signal };
  }

  it('deletes namespaces when the process is interrupted', async () => {
    const { nsName, signal } = await runUntilExit('signal');
    expect(signal).toBe('SIGINT');
    expect(namespaces()).not.toContain(nsName);
  });

  it('deletes namespaces when the process dies of an uncaught exception', async () => {
    const { nsName, code } = await runUntilExit('throw');
    expect(code).toBe(1);
    expect(namespaces()).not.toContain(nsName);
  });
});
