// SCTP services through BPF_PROG_TEST_RUN with the dataplane's clock frozen: which packets start a
// connection, the state sequences of ip_vs_proto_sctp.c (each one as Linux 6.1's IPVS went through
// it in a user-mode-linux guest for the same packets), ActiveConn/InActConn, timeouts and expiry,
// DR/TUN/NAT forwarding, NAT replies, the CRC32c after NAT's port rewrite (checked against a full
// CRC of the packet that left), malformed packets, and ICMP errors of SCTP connections.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ServiceKey } from '../lib/balancer.js';
import { packageRoot } from '../lib/native.js';
import { formatConnections } from '../lib/cli/format.js';
import { ADDR, NET, packetLab, type PacketLab } from './helpers/lb.js';
import { buildFrame, parseFrame } from './helpers/packet.js';
import { TestClock } from './helpers/clock.js';
import { recount } from './helpers/recount.js';
import { CHUNK, chunk, chunks, crc32c, parseSctp, sctpPacket, type ChunkName } from './helpers/sctp.js';

const { vip: VIP, vip6: VIP6, client: CLIENT, client6: CLIENT6 } = ADDR;
const NAT_REAL = '10.1.0.21';
const NAT_REAL6 = 'fd00:1::21';
const DR_REAL = '10.1.0.11';
const TUN_REAL = '10.1.0.12';
const SAME_PORT_REAL = '10.1.0.13';
const IPPROTO_SCTP = 132;

const nat: ServiceKey = { protocol: 'sctp', address: VIP, port: 5000 };
const dr: ServiceKey = { protocol: 'sctp', address: VIP, port: 5001 };
const tun: ServiceKey = { protocol: 'sctp', address: VIP, port: 5002 };
const samePort: ServiceKey = { protocol: 'sctp', address: VIP, port: 5003 };
const nat6: ServiceKey = { protocol: 'sctp', address: VIP6, port: 5000 };

let lab: PacketLab;
const clock = new TestClock(() => lab.lb);
const at = (seconds: number) => clock.at(seconds);
const advance = (seconds: number) => clock.advance(seconds);
let nextPort = 20000;



interface Sent {
  verdict: string;
  out: Buffer;
  /** The SCTP packet that left, when one did. */
  sctp?: Buffer;
  ip?: { src: string; dst: string };
}

function frameOf(src: string, dst: string, sctp: Buffer, ipExtra: { mf?: boolean } = {}): Buffer {
  return buildFrame({ ip: { src, dst, protocol: IPPROTO_SCTP, ...ipExtra }, payload: sctp });
}

function run(frame: Buffer, ingress: 'clients' | 'reals' = 'clients'): Sent {
  const { verdict, out } = lab.run(frame, ingress);
  if (verdict !== 'tx' && verdict !== 'redirect') return { verdict, out };
  const f = parseFrame(out);
  const packet = f.inner ?? f;
  return { verdict, out, sctp: packet.payload, ip: { src: packet.ip!.src, dst: packet.ip!.dst } };
}

/** A packet of `chunks` from the client's port to `svc`. */
function fromClient(svc: ServiceKey & { address: string; port: number }, sport: number, body: Buffer): Sent {
  const src = svc.address.includes(':') ? CLIENT6 : CLIENT;
  return run(frameOf(src, svc.address, sctpPacket(sport, svc.port, body)));
}

/** A packet from a NAT real server to the client's port. */
function fromReal(real: string, rport: number, cport: number, body: Buffer): Sent {
  const client = real.includes(':') ? CLIENT6 : CLIENT;
  return run(frameOf(real, client, sctpPacket(rport, cport, body)), 'reals');
}

function conn(sport: number) {
  return lab.lb.connections().find((c) => c.protocol === 'sctp' && c.client.port === sport && !c.template);
}

function counts(key: ServiceKey): [number, number] {
  const info = lab.lb.list().find((s) => JSON.stringify(s.key) === JSON.stringify(key))!;
  const r = info.realServers[0]!;
  return [r.activeConns, r.inactiveConns];
}

beforeAll(async () => {
  lab = await packetLab();
});

afterAll(async () => {
  await lab?.destroy();
});

beforeEach(() => {
  at(7000);
  lab.lb.clear();
  lab.lb.expire();
  lab.lb.zero();
  for (const [key, real, method, port] of [
    [nat, NAT_REAL, 'nat', 6000], [dr, DR_REAL, 'dr', 5001], [tun, TUN_REAL, 'tun', 5002],
    [samePort, SAME_PORT_REAL, 'nat', 5003], [nat6, NAT_REAL6, 'nat', 6000],
  ] as const) {
    lab.lb.addService(key, { scheduler: 'rr' });
    lab.lb.addRealServer(key, { address: real, port }, { method });
  }
});

afterEach(() => {
  const { fromEntries, counters } = recount(lab.lb);
  expect(counters).toEqual(fromEntries);
});

describe('CRC32c', () => {
  it('the helper gives the check value of RFC 9260 appendix B test data and iSCSI', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(32))).toBe(0x8a9136aa);
  });

  it('the dataplane\'s tables of powers are what their generator writes', () => {
    const root = packageRoot();
    const generated = execFileSync(process.execPath, [join(root, 'scripts', 'gen-crc32c-tables.mjs')], { encoding: 'utf8' });
    expect(readFileSync(join(root, 'bpf', 'xvs_crc32c_tables.h'), 'utf8')).toBe(generated);
  });
});

/** One step of a sequence: who sends which chunk, and the state the kernel showed after it. */
type Step = [from: 'C' | 'S', chunk: ChunkName | 'cookieEchoAbort', state: string | null];

const bodyOf = (name: Step[1]) =>
  name === 'cookieEchoAbort' ? Buffer.concat([chunks.cookieEcho(), chunks.abort()]) : chunks[name]();

/** Sends the steps on one association (NAT replies from the real server) and checks each state. */
function playNat(steps: Step[], sport = nextPort++): void {
  steps.forEach(([from, name, state], i) => {
    const sent = from === 'C' ? fromClient(nat as never, sport, bodyOf(name)) : fromReal(NAT_REAL, 6000, sport, bodyOf(name));
    expect({ step: i, name, state: conn(sport)?.state ?? null }).toEqual({ step: i, name, state });
    if (state) {
      expect(sent.verdict).toBe('redirect');
      expect(parseSctp(sent.sctp!).crcOk).toBe(true);
    }
  });
}

function playDr(key: ServiceKey, steps: Step[], sport = nextPort++): void {
  steps.forEach(([, name, state], i) => {
    fromClient(key as never, sport, bodyOf(name));
    expect({ step: i, name, state: conn(sport)?.state ?? null }).toEqual({ step: i, name, state });
  });
}

describe('state sequences as Linux 6.1 IPVS went through them', () => {
  it('NAT: a whole association, ESTABLISHED counted active, CLOSED inactive', () => {
    const sport = nextPort++;
    playNat([
      ['C', 'data', null],
      ['C', 'abort', null],
      ['C', 'init', 'INIT1'],
      ['S', 'initAck', 'C-SENT'],
      ['C', 'cookieEcho', 'C-REPLIED'],
      ['S', 'cookieAck', 'ESTABLISHED'],
    ], sport);
    expect(counts(nat)).toEqual([1, 0]);
    playNat([
      ['C', 'data', 'ESTABLISHED'],
      ['S', 'sack', 'ESTABLISHED'],
      ['C', 'heartbeat', 'ESTABLISHED'],
      ['S', 'heartbeatAck', 'ESTABLISHED'],
      ['C', 'shutdown', 'S-RECEIVED'],
      ['S', 'shutdownAck', 'S-ACK-SENT'],
      ['C', 'shutdownComplete', 'CLOSED'],
    ], sport);
    expect(counts(nat)).toEqual([0, 1]);
    const svc = lab.lb.list().find((s) => JSON.stringify(s.key) === JSON.stringify(nat))!;
    expect(svc.stats).toMatchObject({ conns: 1n, inpkts: 6n, outpkts: 5n });
  });

  it('NAT: the server rejects the INIT with ABORT (REJECTED), COOKIE ECHO bundled with ABORT closes', () => {
    playNat([['C', 'init', 'INIT1'], ['S', 'abort', 'REJECTED']]);
    playNat([['C', 'init', 'INIT1'], ['S', 'initAck', 'C-SENT'], ['C', 'cookieEchoAbort', 'CLOSED']]);
    playNat([['C', 'init', 'INIT1'], ['C', 'init', 'INIT'], ['C', 'init', 'INIT'], ['S', 'error', 'CLOSED'], ['S', 'shutdown', 'CLOSED']]);
  });

  it('NAT: the server shuts down', () => {
    playNat([
      ['C', 'init', 'INIT1'], ['S', 'initAck', 'C-SENT'], ['C', 'cookieEcho', 'C-REPLIED'], ['S', 'cookieAck', 'ESTABLISHED'],
      ['S', 'shutdown', 'S-SENT'], ['C', 'shutdownAck', 'CLOSED'], ['S', 'shutdownComplete', 'CLOSED'],
    ]);
  });

  it('DR and TUN see only the client: COOKIE ECHO establishes (INPUT_ONLY)', () => {
    for (const key of [dr, tun]) {
      const sport = nextPort++;
      playDr(key, [['C', 'init', 'INIT1'], ['C', 'cookieEcho', 'ESTABLISHED'], ['C', 'data', 'ESTABLISHED']], sport);
      expect(counts(key)).toEqual([1, 0]);
      playDr(key, [['C', 'sack', 'ESTABLISHED'], ['C', 'shutdown', 'S-RECEIVED'], ['C', 'shutdownComplete', 'CLOSED']], sport);
      expect(counts(key)).toEqual([0, 1]);
      playDr(key, [['C', 'init', 'INIT1'], ['C', 'abort', 'CLOSED']]);
      playDr(key, [['C', 'init', 'INIT1'], ['C', 'cookieEcho', 'ESTABLISHED'], ['C', 'shutdownAck', 'CLOSED'], ['C', 'shutdownComplete', 'CLOSED']]);
    }
  });

  it('an INIT on a CLOSED connection starts a new one; chunk types past 14 count as DATA', () => {
    const sport = nextPort++;
    playNat([['C', 'init', 'INIT1'], ['S', 'initAck', 'C-SENT'], ['C', 'cookieEcho', 'C-REPLIED'], ['S', 'cookieAck', 'ESTABLISHED']], sport);
    fromClient(nat as never, sport, chunk(CHUNK.AUTH, Buffer.alloc(8)));
    expect(conn(sport)?.state).toBe('ESTABLISHED');
    playNat([['C', 'abort', 'CLOSED'], ['C', 'init', 'INIT1']], sport);
    const svc = lab.lb.list().find((s) => JSON.stringify(s.key) === JSON.stringify(nat))!;
    expect(svc.stats.conns).toBe(2n);
    expect(counts(nat)).toEqual([0, 1]);
  });
});

describe('timeouts', () => {
  it('each state waits as sctp_timeouts says; INIT1 ends after 4 s, ESTABLISHED lasts 900 s', () => {
    const sport = nextPort++;
    const expected: Array<[Step, number]> = [
      [['C', 'init', 'INIT1'], 4], [['S', 'initAck', 'C-SENT'], 61], [['C', 'cookieEcho', 'C-REPLIED'], 61],
      [['S', 'cookieAck', 'ESTABLISHED'], 900], [['C', 'shutdown', 'S-RECEIVED'], 61],
      [['S', 'shutdownAck', 'S-ACK-SENT'], 61], [['C', 'shutdownComplete', 'CLOSED'], 61],
    ];
    for (const [step, seconds] of expected) {
      playNat([step], sport);
      expect(conn(sport)!.expiresMs).toBe(seconds * 1000);
    }
    const other = nextPort++;
    playNat([['C', 'init', 'INIT1']], other);
    advance(4);
    expect(conn(other)).toBeDefined();
    advance(2);
    expect(conn(other)).toBeUndefined();
    expect(counts(nat)).toEqual([0, 1]);
    playNat([['C', 'init', 'INIT1'], ['S', 'abort', 'REJECTED']], other);
    expect(conn(other)!.expiresMs).toBe(4000);
  });
});

describe('forwarding', () => {
  it('DR keeps the packet, TUN encapsulates it whole', () => {
    const packet = sctpPacket(nextPort++, 5001, chunks.init());
    const d = run(frameOf(CLIENT, VIP, packet));
    expect(d.verdict).toBe('redirect');
    expect(parseFrame(d.out).dstMac).toBe(NET.neighbours[DR_REAL]);
    expect(d.sctp!.equals(packet)).toBe(true);
    const tpacket = sctpPacket(nextPort++, 5002, chunks.init());
    const t = run(frameOf(CLIENT, VIP, tpacket));
    expect(t.verdict).toBe('redirect');
    expect(parseFrame(t.out).ip).toMatchObject({ dst: TUN_REAL });
    expect(t.sctp!.equals(tpacket)).toBe(true);
  });

  it('NAT rewrites address and port both ways, the CRC32c right after each', () => {
    for (const [key, real, client] of [[nat, NAT_REAL, CLIENT], [nat6, NAT_REAL6, CLIENT6]] as const) {
      const sport = nextPort++;
      const init = sctpPacket(sport, 5000, chunks.init(), { vtag: 0 });
      const req = run(frameOf(client, key.address as string, init));
      expect(req.ip).toEqual({ src: client, dst: real });
      const expectedReq = sctpPacket(sport, 6000, chunks.init(), { vtag: 0 });
      expect(req.sctp!.toString('hex')).toBe(expectedReq.toString('hex'));
      const reply = fromReal(real, 6000, sport, chunks.initAck());
      expect(reply.ip).toEqual({ src: key.address, dst: client });
      expect(reply.sctp!.toString('hex')).toBe(sctpPacket(5000, sport, chunks.initAck()).toString('hex'));
    }
  });

  it('NAT to the same port leaves the SCTP packet as it was', () => {
    const packet = sctpPacket(nextPort++, 5003, chunks.init());
    const sent = run(frameOf(CLIENT, VIP, packet));
    expect(sent.ip).toEqual({ src: CLIENT, dst: SAME_PORT_REAL });
    expect(sent.sctp!.equals(packet)).toBe(true);
  });

  it('a wrong CRC32c stays exactly as wrong: NAT neither repairs nor hides it', () => {
    const sport = nextPort++;
    const sent = run(frameOf(CLIENT, VIP, sctpPacket(sport, 5000, chunks.init(), { badCrc: true })));
    expect(sent.sctp!.toString('hex')).toBe(sctpPacket(sport, 6000, chunks.init(), { badCrc: true }).toString('hex'));
  });

  it('the CRC32c is right after NAT for SCTP lengths from 16 bytes to beyond the MTU, many port pairs', async () => {
    // Every length up to 300 (every low byte, the first table's index), then every 11th to the
    // Ethernet MTU (the second table's), and around its steps further on.
    const lengths = [
      ...Array.from({ length: 285 }, (_, i) => 16 + i), ...Array.from({ length: 108 }, (_, i) => 301 + 11 * i),
      1479, 1480, 2047, 2048, 2049, 2559, 2560, 3000, 3333,
    ];
    const pairs = [[1, 2], [5000, 6000], [0xffff, 1], [0x1234, 0xedcb], [80, 0x8000], [0xabcd, 0xabcc]];
    let seed = 7;
    const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 16) & 0xff;
    for (const [i, [vport, rport]] of pairs.entries()) {
      const key: ServiceKey = { protocol: 'sctp', address: `10.0.0.${150 + i}`, port: vport! };
      lab.lb.addService(key, { scheduler: 'rr' });
      lab.lb.addRealServer(key, { address: NAT_REAL, port: rport! }, { method: 'nat' });
    }
    // Room for the lengths past the Ethernet MTU (xvs does not fragment).
    await lab.ns.ip(['link', 'set', 'reals', 'mtu', '4000']);
    await lab.ns.ip(['link', 'set', 'clients', 'mtu', '4000']);
    let checked = 0;
    for (const [n, length] of lengths.entries()) {
      const i = n % pairs.length;
      const [vport, rport] = pairs[i]!;
      const sport = 1024 + n;
      // An INIT (or only its header), then bytes that are no chunk: the CRC covers them all the same.
      const head = length >= 32 ? chunks.init() : chunk(CHUNK.INIT);
      const body = Buffer.concat([head, Buffer.from(Array.from({ length: length - 12 - head.length }, random))]);
      const packet = sctpPacket(sport, vport!, body);
      expect(packet.length).toBe(length);
      const sent = run(frameOf(CLIENT, `10.0.0.${150 + i}`, packet));
      expect({ length, verdict: sent.verdict }).toEqual({ length, verdict: 'redirect' });
      const out = parseSctp(sent.sctp!);
      expect({ length, dport: out.dport, crcOk: out.crcOk }).toEqual({ length, dport: rport, crcOk: true });
      const reply = fromReal(NAT_REAL, rport!, sport, body);
      expect({ length, sport: parseSctp(reply.sctp!).sport, crcOk: parseSctp(reply.sctp!).crcOk }).toEqual({ length, sport: vport, crcOk: true });
      checked++;
    }
    expect(checked).toBe(lengths.length);
    await lab.ns.ip(['link', 'set', 'reals', 'mtu', '1500']);
    await lab.ns.ip(['link', 'set', 'clients', 'mtu', '1500']);
  });
});

describe('packets that start nothing, malformed packets', () => {
  it('only an INIT starts a connection', () => {
    for (const name of ['data', 'abort', 'initAck', 'cookieEcho', 'cookieAck', 'heartbeat', 'shutdown', 'shutdownComplete', 'error'] as const) {
      const sport = nextPort++;
      expect(fromClient(nat as never, sport, chunks[name]()).verdict).toBe('pass');
      expect(conn(sport)).toBeUndefined();
    }
    expect(lab.lb.reasons().pass_no_conn).toBe(9n);
  });

  it('a header without chunk, a chunk shorter than its header or longer than the packet: passed as malformed', () => {
    const base = sctpPacket(nextPort++, 5000, chunks.init());
    const cases = [
      base.subarray(0, 12),
      base.subarray(0, 15),
      (() => { const b = Buffer.from(base); b.writeUInt16BE(3, 14); return b; })(),
      (() => { const b = Buffer.from(base); b.writeUInt16BE(base.length - 12 + 1, 14); return b; })(),
    ];
    for (const packet of cases) expect(run(frameOf(CLIENT, VIP, packet)).verdict).toBe('pass');
    expect(lab.lb.reasons().pass_malformed).toBe(BigInt(cases.length));
    // The chunk exactly as long as the packet is fine.
    const exact = Buffer.from(base);
    exact.writeUInt16BE(base.length - 12, 14);
    expect(run(frameOf(CLIENT, VIP, exact)).verdict).toBe('redirect');
  });

  it('an IP frame cut short of what its header claims is malformed; a fragmented SCTP packet is passed', () => {
    const frame = frameOf(CLIENT, VIP, sctpPacket(nextPort++, 5000, chunks.init()));
    expect(lab.run(frame.subarray(0, frame.length - 2)).verdict).toBe('pass');
    expect(lab.lb.reasons().pass_malformed).toBe(1n);
    expect(run(frameOf(CLIENT, VIP, sctpPacket(nextPort++, 5000, chunks.init()), { mf: true })).verdict).toBe('pass');
    expect(lab.lb.reasons().pass_fragment).toBe(1n);
    expect(lab.lb.connections().filter((c) => c.protocol === 'sctp')).toEqual([]);
  });

  it('the ABORT after a COOKIE ECHO is found only inside the packet', () => {
    const sport = nextPort++;
    playNat([['C', 'init', 'INIT1'], ['S', 'initAck', 'C-SENT']], sport);
    // The COOKIE ECHO claims 4 bytes more, which puts the next chunk past the end: the ABORT is
    // not read.
    const echo = chunks.cookieEcho();
    echo.writeUInt16BE(echo.length + 4, 2);
    const packet = Buffer.concat([echo, chunks.abort()]);
    fromClient(nat as never, sport, packet);
    expect(conn(sport)?.state).toBe('C-REPLIED');
  });
});

describe('ICMP errors of SCTP connections', () => {
  it('port unreachable from a NAT real server goes to the client, the quote translated back', () => {
    const sport = nextPort++;
    const request = frameOf(CLIENT, VIP, sctpPacket(sport, 5000, chunks.init()));
    const natted = lab.run(request).out;
    const error = buildFrame({
      srcMac: NET.neighbours[NAT_REAL], ip: { src: NAT_REAL, dst: CLIENT },
      icmp: { type: 3, code: 3 }, payload: natted.subarray(14, 14 + 20 + 16),
    });
    const { verdict, out } = lab.run(error, 'reals');
    expect(verdict).toBe('redirect');
    const f = parseFrame(out);
    expect(f.ip).toMatchObject({ src: VIP, dst: CLIENT });
    const quote = f.icmp!.quoted!;
    expect(quote.ip).toMatchObject({ src: CLIENT, dst: VIP });
    expect(quote.payload.readUInt16BE(0)).toBe(sport);
    expect(quote.payload.readUInt16BE(2)).toBe(5000);
  });
});

describe('listing', () => {
  it('ipvsadm -Lnc shows SCTP rows with the kernel\'s state names', async () => {
    const sport = nextPort++;
    playNat([['C', 'init', 'INIT1'], ['S', 'initAck', 'C-SENT']], sport);
    const text = await formatConnections(lab.lb.connections().filter((c) => c.client.port === sport), { numeric: true } as never);
    expect(text.split('\n').slice(2).join('\n')).toBe(`SCTP 01:01  C-SENT      ${CLIENT}:${sport}     ${VIP}:5000    ${NAT_REAL}:6000\n`);
  });
});
