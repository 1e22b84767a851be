// The sip persistence engine (--pe sip) frame by frame through BPF_PROG_TEST_RUN, with the
// dataplane's clock frozen: the Call-ID search against what Linux 6.1's ip_vs_pe_sip answered for
// the same 70 payloads (test/fixtures/sip-callid-linux61.json, recorded in a user-mode Linux
// guest by scripts/uml-sip/record.sh), templates per call and per client, drops, bounds, listing
// and expiry.
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ServiceKey, ServiceOptions } from '../lib/balancer.js';
import { NET, packetLab, type PacketLab } from './helpers/lb.js';
import { buildFrame, parseFrame } from './helpers/packet.js';
import { TestClock } from './helpers/clock.js';
import { recount } from './helpers/recount.js';

const VIP = '10.0.0.100';
const R1 = '10.1.0.11';
const R2 = '10.1.0.12';
const REAL_BY_MAC = new Map(Object.entries(NET.neighbours).filter(([a]) => !a.includes(':')).map(([a, m]) => [m, a]));
const sip: ServiceKey = { protocol: 'udp', address: VIP, port: 5060 };

interface KernelCase {
  name: string;
  payload: string;
  /** The template's pe_data Linux 6.1 showed, hex; null: the datagram was dropped. */
  callid: string | null;
}
const KERNEL: KernelCase[] = JSON.parse(readFileSync(new URL('./fixtures/sip-callid-linux61.json', import.meta.url), 'utf8'));

let lab: PacketLab;
const clock = new TestClock(() => lab.lb);
const at = (seconds: number) => clock.at(seconds);
const advance = (seconds: number) => clock.advance(seconds);
let nextPort = 20000;



function message(callid: string, method = 'INVITE'): string {
  return `${method} sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.2.0.5\r\nCall-ID: ${callid}\r\nCSeq: 1 ${method}\r\n\r\n`;
}

/** Sends one datagram to the sip service; the real server it went to, or the verdict. */
function send(payload: string | Uint8Array, opts: { src?: string; sport?: number; key?: ServiceKey } = {}): string {
  const key = (opts.key ?? sip) as { address: string; port: number };
  const v6 = key.address.includes(':');
  const frame = buildFrame({
    ip: { src: opts.src ?? (v6 ? '2001:db8::5' : '10.2.0.5'), dst: key.address },
    udp: { sport: opts.sport ?? nextPort++, dport: key.port },
    payload,
  });
  const { verdict, out } = lab.run(frame);
  if (verdict !== 'redirect' && verdict !== 'tx') return verdict;
  return REAL_BY_MAC.get(parseFrame(out).dstMac) ?? 'unknown real';
}

function service(opts: ServiceOptions, key: ServiceKey = sip, reals = [R1, R2]): void {
  lab.lb.addService(key, { scheduler: 'rr', persistent: 600, pe: 'sip', ...opts });
  for (const r of reals) lab.lb.addRealServer(key, { address: r });
}

function sipTemplates() {
  return lab.lb.connections().filter((c) => c.pe);
}

function reason(name: string): bigint {
  return lab.lb.reasons()[name]!;
}

beforeAll(async () => {
  lab = await packetLab({ maxConnections: 256 });
  // Room for datagrams beyond the search window (the FIB checks the egress MTU).
  for (const dev of ['reals', 'clients']) await lab.ns.ip(['link', 'set', dev, 'mtu', '9000']);
});

afterAll(async () => {
  await lab?.destroy();
});

beforeEach(() => {
  at(7000);
  lab.lb.clear();
  lab.lb.expire();
  lab.lb.zero();
  lab.lb.dataplane.writeTimeouts({ XVS_UDP_S_NORMAL: 300 });
});

afterEach(() => {
  const { fromEntries, counters } = recount(lab.lb);
  expect(counters).toEqual(fromEntries);
});

describe('the Call-ID search, as Linux 6.1 answered', () => {
  it('finds the Call-ID the kernel found, and drops the datagrams it dropped, in all 70 recorded payloads', () => {
    const differences: string[] = [];
    for (const c of KERNEL) {
      lab.lb.clear();
      lab.lb.expire();
      service({ onePacket: true }, sip, [R1]);
      const before = reason('drop_sip_no_callid');
      const verdict = send(Buffer.from(c.payload, 'hex'));
      const dropped = reason('drop_sip_no_callid') - before === 1n && verdict === 'drop';
      const got = sipTemplates().map((t) => Buffer.from(t.pe!.data, 'latin1').toString('hex'));
      const want = c.callid === null ? [] : [c.callid];
      if (JSON.stringify(got) !== JSON.stringify(want) || dropped !== (c.callid === null)) {
        differences.push(`${c.name}: kernel ${c.callid ?? 'drop'}, xvs ${got[0] ?? verdict}`);
      }
    }
    expect(differences).toEqual([]);
    expect(KERNEL).toHaveLength(70);
  });
});

describe('templates by call', () => {
  it('places every datagram by its call with -o: two calls of one client on two servers, each kept', () => {
    service({ onePacket: true });
    const a = send(message('call-a@host'), { sport: 5060 });
    const b = send(message('call-b@host'), { sport: 5060 });
    expect(new Set([a, b])).toEqual(new Set([R1, R2]));
    for (let i = 0; i < 3; i++) {
      expect(send(message('call-b@host', 'ACK'), { sport: 5060 })).toBe(b);
      expect(send(message('call-a@host', 'BYE'), { sport: 5060 })).toBe(a);
    }
    expect(sipTemplates().map((t) => t.pe!.data).sort()).toEqual(['call-a@host', 'call-b@host']);
    expect(lab.lb.list()[0]!.realServers.map((r) => r.persistConns)).toEqual([1, 1]);
  });

  it('without -o lets a datagram of a live connection follow its connection, as the kernel does', () => {
    service({});
    const a = send(message('first'), { sport: 5060 });
    expect(send(message('second'), { sport: 5060 })).toBe(a); // same 5-tuple: the connection decides
    const b = send(message('second'), { sport: 5061 }); // new connection: the call's template is made now
    expect(b).not.toBe(a);
    expect(send(message('first'), { sport: 5062 })).toBe(a);
    expect(send(message('second'), { sport: 5063 })).toBe(b);
  });

  it('keys templates by the client address & netmask too: one call from two clients', () => {
    service({ onePacket: true });
    const x = send(message('shared'), { src: '10.2.0.5' });
    const y = send(message('shared'), { src: '10.2.0.6' });
    expect(y).not.toBe(x); // ip_vs_sip_ct_match compares the client address: two templates
    expect(sipTemplates().map((t) => t.client.address).sort()).toEqual(['10.2.0.5', '10.2.0.6']);

    lab.lb.clear();
    service({ onePacket: true, netmask: '255.255.255.0' });
    const p = send(message('shared'), { src: '10.2.0.5' });
    expect(send(message('shared'), { src: '10.2.0.6' })).toBe(p);
    expect(send(message('other'), { src: '10.2.0.6' })).not.toBe(p);
    expect(sipTemplates().map((t) => t.client.address)).toEqual(['10.2.0.0', '10.2.0.0']);
  });

  it('never mixes two calls whose Call-IDs differ in one byte or in length', () => {
    service({ onePacket: true });
    const long = 'x'.repeat(254);
    const a = send(message(`${long}a`));
    expect(send(message(`${long}b`))).not.toBe(a);
    expect(send(message(long))).toBe(a); // rr: third call goes to the first server again
    expect(send(message(`${long}b`))).not.toBe(a);
    expect(sipTemplates()).toHaveLength(3);
  });

  it('works for IPv6 services', () => {
    const v6: ServiceKey = { protocol: 'udp', address: 'fd00:100::1', port: 5060 };
    service({ onePacket: true }, v6, ['fd00:1::11', 'fd00:1::12']);
    const a = send(message('v6call'), { key: v6 });
    const b = send(message('v6other'), { key: v6 });
    expect(a).not.toBe('drop');
    expect(send(message('v6call'), { key: v6 })).toBe(a);
    expect(send(message('v6other'), { key: v6 })).toBe(b);
    expect(sipTemplates()[0]).toMatchObject({ client: { address: '2001:db8::5' }, virtual: { address: 'fd00:100::1' } });
  });
});

describe('datagrams the engine cannot place', () => {
  it('drops a datagram without Call-ID, counted, leaving no connection and no counters', () => {
    service({});
    const before = reason('drop_sip_no_callid');
    expect(send('OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n\r\n')).toBe('drop');
    expect(send('')).toBe('drop');
    expect(reason('drop_sip_no_callid') - before).toBe(2n);
    expect(lab.lb.connections()).toEqual([]);
    expect(lab.lb.list()[0]!.stats.conns).toBe(0n);
  });

  it('drops TCP to a persistent sip service (the engine is UDP only and the kernel drops)', () => {
    const tcp: ServiceKey = { protocol: 'tcp', address: VIP, port: 5060 };
    service({}, tcp, [R1]);
    const { verdict } = lab.run(buildFrame({ ip: { src: '10.2.0.5', dst: VIP }, tcp: { sport: 40000, dport: 5060, flags: 'S' } }));
    expect(verdict).toBe('drop');
    expect(lab.lb.connections()).toEqual([]);
  });

  it('ignores the engine on a service without persistence, as the kernel does', () => {
    service({ persistent: 0 });
    expect(send('no call id here')).not.toBe('drop');
    expect(sipTemplates()).toEqual([]);
  });

  it('passes a truncated datagram untouched as malformed, before any search', () => {
    service({});
    const before = reason('pass_malformed');
    const frame = buildFrame({ ip: { src: '10.2.0.5', dst: VIP }, udp: { sport: 1234, dport: 5060 }, payload: message('cut'), truncate: 20 });
    expect(lab.run(frame).verdict).toBe('pass');
    expect(reason('pass_malformed') - before).toBe(1n);
  });

  it('searches the first 2048 bytes of payload: deeper Call-IDs are dropped as unparsed, never guessed', () => {
    service({ onePacket: true });
    const pad = (n: number) => `X-Pad: ${'p'.repeat(n)}\r\n`;
    const head = 'INVITE sip:bob@example.com SIP/2.0\r\n';
    const shallow = `${head}${pad(1900)}Call-ID: shallow\r\n\r\n`;
    const deep = `${head}${pad(2100)}Call-ID: deep\r\n\r\n`;
    expect(shallow.length).toBeLessThan(2048);
    expect(send(shallow)).not.toBe('drop');
    const before = reason('drop_sip_unparsed');
    expect(send(deep)).toBe('drop');
    expect(reason('drop_sip_unparsed') - before).toBe(1n);
    // A Call-ID ending exactly at the window's edge: whether CR/LF follows is beyond it.
    const edge = `${head}${pad(2048 - head.length - 9 - 'Call-ID: '.length - 6)}Call-ID: ${'e'.repeat(6)}`;
    expect(edge.length).toBe(2048);
    expect(send(`${edge}\r\n\r\n`)).toBe('drop');
    expect(reason('drop_sip_unparsed') - before).toBe(2n);
    expect(send(`${head}Call-ID: early\r\n${pad(2500)}\r\n`)).not.toBe('drop');
  });

  it('survives mutated payloads: every datagram is placed by a found Call-ID or dropped and counted', () => {
    service({ onePacket: true }, sip, [R1]);
    let seed = 12345;
    const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    const alphabet = Buffer.from('\r\n \t:@iI-x!,;\xc0\x00');
    let placed = 0;
    for (let i = 0; i < 300; i++) {
      const bytes = Buffer.from(KERNEL[i % KERNEL.length]!.payload, 'hex');
      for (let j = 0; j < 4 && bytes.length; j++) {
        bytes[Math.floor(rand() * bytes.length)] = rand() < 0.7 ? alphabet[Math.floor(rand() * alphabet.length)]! : Math.floor(rand() * 256);
      }
      const r = send(bytes);
      if (r !== 'drop') placed++;
      expect([R1, 'drop']).toContain(r);
    }
    expect(placed).toBeGreaterThan(0);
    const dropped = reason('drop_sip_no_callid') + reason('drop_sip_unparsed');
    expect(dropped).toBeGreaterThanOrEqual(BigInt(300 - placed));
  });
});

describe('template life and listing', () => {
  it('lists a template with its Call-ID, lives -p seconds, re-armed while it controls a connection', () => {
    service({ persistent: 10 }, sip, [R1]);
    lab.lb.dataplane.writeTimeouts({ XVS_UDP_S_NORMAL: 30 });
    send(message('life@h'), { sport: 5060 });
    const [t] = sipTemplates();
    expect(t).toMatchObject({
      protocol: 'udp', state: 'NONE', template: true, expiresMs: 10_000,
      client: { address: '10.2.0.5', port: 0 }, virtual: { address: VIP, port: 5060 }, real: { address: R1, port: 5060 },
      pe: { name: 'sip', data: 'life@h' },
    });
    expect(lab.lb.list()[0]!.realServers[0]).toMatchObject({ persistConns: 1, inactiveConns: 1 });
    advance(12); // the template's time came while its connection lives: re-armed
    expect(sipTemplates()).toHaveLength(1);
    advance(20); // the connection ended at 31 s
    expect(lab.lb.list()[0]!.realServers[0]).toMatchObject({ persistConns: 1, inactiveConns: 0 });
    advance(70);
    expect(sipTemplates()).toEqual([]);
    expect(lab.lb.list()[0]!.realServers[0]).toMatchObject({ persistConns: 0, inactiveConns: 0 });
  });

  it('ends a template with the -o datagrams after -p seconds', () => {
    service({ persistent: 5, onePacket: true }, sip, [R1]);
    send(message('short'));
    advance(4);
    expect(sipTemplates()).toHaveLength(1);
    advance(3);
    expect(sipTemplates()).toEqual([]);
  });

  it('voids the template of a removed server: the call is scheduled anew', () => {
    service({ onePacket: true });
    const first = send(message('moving'));
    lab.lb.deleteRealServer(sip, { address: first });
    const other = first === R1 ? R2 : R1;
    expect(send(message('moving'))).toBe(other);
    expect(sipTemplates().map((t) => t.real.address)).toEqual([other]);
  });
});
