// The destination trash and persistence templates as kernel IPVS 6.1 keeps them (checked in a
// user-mode Linux guest): a deleted real server's connections stay listed and counted until they
// expire, their packets dropped; re-adding the server brings them back with its counts and
// counters; the trash is freed by the kernel's 60 s timer once nothing refers to a server for a
// period; templates become ASSURED, are invalidated (ports 65535) when found void.
// Frame by frame through BPF_PROG_TEST_RUN with the dataplane's clock frozen; after each test the
// shared counters must equal a recount of the table's entries, the trash's included.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ServiceKey } from '../lib/balancer.js';
import { NET, packetLab, type PacketLab } from './helpers/lb.js';
import { buildFrame, parseFrame } from './helpers/packet.js';
import { TestClock } from './helpers/clock.js';
import { recount } from './helpers/recount.js';

const VIP = '10.0.0.100';
const CLIENT = '10.2.0.5';
const R1 = '10.1.0.11';
const R2 = '10.1.0.12';
const REAL_BY_MAC = new Map(Object.entries(NET.neighbours).filter(([a]) => !a.includes(':')).map(([a, m]) => [m, a]));
const web: ServiceKey = { protocol: 'tcp', address: VIP, port: 80 };
const dns: ServiceKey = { protocol: 'udp', address: VIP, port: 53 };

let lab: PacketLab;
const clock = new TestClock(() => lab.lb);
const at = (seconds: number) => clock.at(seconds);
const advance = (seconds: number) => clock.advance(seconds);
let nextPort = 20000;



interface Sent {
  verdict: string;
  real?: string;
  /** A NAT reply's rewritten source. */
  src?: string;
}

function send(frame: Buffer, ingress: 'clients' | 'reals' = 'clients'): Sent {
  const { verdict, out } = lab.run(frame, ingress);
  if (verdict !== 'redirect' && verdict !== 'tx') return { verdict };
  const f = parseFrame(out);
  return { verdict, real: f.ip && f.ip.dst !== VIP && ingress === 'clients' ? f.ip.dst : REAL_BY_MAC.get(f.dstMac), src: f.ip?.src };
}

function tcp(sport: number, flags: string, src = CLIENT): Sent {
  return send(buildFrame({ ip: { src, dst: VIP }, tcp: { sport, dport: 80, flags, seq: 1 }, payload: flags.includes('P') ? 'data' : '' }));
}

/** A NAT real server's reply to a client's port. */
function reply(real: string, sport: number, flags: string, dport = 80): Sent {
  return send(buildFrame({ ip: { src: real, dst: CLIENT }, tcp: { sport: dport, dport: sport, flags, seq: 9 } }), 'reals');
}

function udp(sport: number): Sent {
  return send(buildFrame({ ip: { src: CLIENT, dst: VIP }, udp: { sport, dport: 53 }, payload: 'q' }));
}

function connect(src = CLIENT): { sport: number; real: string } {
  const sport = nextPort++;
  const first = tcp(sport, 'S', src);
  tcp(sport, 'A', src);
  return { sport, real: first.real! };
}

function service(key: ServiceKey = web) {
  return lab.lb.list().find((s) => JSON.stringify(s.key) === JSON.stringify(key));
}

function real(address: string, key: ServiceKey = web) {
  return service(key)?.realServers.find((r) => r.address === address);
}

function listed(key: ServiceKey = web) {
  return lab.lb.connections().filter((c) => c.virtual.port === ('port' in key ? key.port : 0) || c.template);
}

beforeAll(async () => {
  lab = await packetLab({ maxConnections: 256 });
});

afterAll(async () => {
  await lab?.destroy();
});

let base = 0;

beforeEach(() => {
  // A clean slate: what earlier tests left in the trash ends, then the trash timer frees it (the
  // clock only moves forward, as the timer's does).
  lab.lb.setSysctls({ expire_nodest_conn: 1, expire_quiescent_template: 0 });
  base += 100_000;
  at(base);
  lab.lb.clear();
  advance(200);
  at(base + 1000);
  lab.lb.zero();
  lab.lb.setSysctls({ expire_nodest_conn: 0 });
  lab.lb.dataplane.writeTimeouts({ XVS_TCP_S_ESTABLISHED: 900, XVS_TCP_S_FIN_WAIT: 120, XVS_UDP_S_NORMAL: 300 });
});

afterEach(() => {
  const { fromEntries, counters } = recount(lab.lb);
  expect(counters).toEqual(fromEntries);
});

describe('a real server deleted with -d', () => {
  it('keeps its connections listed and counted, drops their packets without refreshing them', () => {
    lab.lb.addService(web, { scheduler: 'rr' });
    lab.lb.addRealServer(web, { address: R1 });
    lab.lb.addRealServer(web, { address: R2 });
    const a = connect();
    const b = connect();
    const held = a.real === R1 ? a : b;
    lab.lb.deleteRealServer(web, { address: R1 });
    expect(real(R1)).toBeUndefined();
    expect(listed().map((c) => [c.client.port, c.real.address, c.state])).toContainEqual([held.sport, R1, 'ESTABLISHED']);
    advance(7);
    expect(tcp(held.sport, 'PA').verdict).toBe('drop');
    expect(tcp(held.sport, 'S').verdict).toBe('drop'); // an ESTABLISHED connection is not reused
    expect(lab.lb.reasons().drop_dest_gone).toBe(2n);
    const conn = listed().find((c) => c.client.port === held.sport)!;
    expect(conn).toMatchObject({ state: 'ESTABLISHED', expiresMs: 893_000 }); // not refreshed
    expect(service()!.stats.inpkts).toBe(4n); // dropped packets are not counted
  });

  it('comes back with its connections, counts and counters when added again; its packets flow again', () => {
    lab.lb.addService(web, { scheduler: 'rr' });
    lab.lb.addRealServer(web, { address: R1 });
    const { sport } = connect();
    tcp(sport, 'PA');
    lab.lb.deleteRealServer(web, { address: R1 });
    expect(tcp(sport, 'PA').verdict).toBe('drop');
    lab.lb.addRealServer(web, { address: R1 }, { weight: 3, upperThreshold: 10, lowerThreshold: 5 });
    expect(real(R1)).toMatchObject({ weight: 3, upperThreshold: 10, activeConns: 1, inactiveConns: 0 });
    expect(real(R1)!.stats).toMatchObject({ conns: 1n, inpkts: 3n });
    expect(tcp(sport, 'PA').real).toBe(R1);
    expect(real(R1)!.stats).toMatchObject({ conns: 1n, inpkts: 4n });
    expect(service()!.stats).toMatchObject({ conns: 1n, inpkts: 4n });
  });

  it('lets a new SYN reuse its connection in TIME_WAIT or CLOSE: scheduled to another server', () => {
    lab.lb.addService(web, { scheduler: 'rr' });
    lab.lb.addRealServer(web, { address: R1 });
    const { sport } = connect();
    tcp(sport, 'R'); // CLOSE
    lab.lb.addRealServer(web, { address: R2 });
    lab.lb.deleteRealServer(web, { address: R1 });
    expect(tcp(sport, 'S').real).toBe(R2);
    expect(listed().map((c) => [c.client.port, c.real.address, c.state])).toEqual([[sport, R2, 'SYN_RECV']]);
    expect(real(R2)).toMatchObject({ activeConns: 0, inactiveConns: 1 });
  });

  it('keeps counting its connections as they change state and end by their own time', () => {
    lab.lb.setTimeouts({ tcp: 30 });
    lab.lb.addService(web, { scheduler: 'rr' });
    lab.lb.addRealServer(web, { address: R1, port: 8080 }, { method: 'nat' });
    const { sport } = connect();
    lab.lb.deleteRealServer(web, { address: R1, port: 8080 });
    // The real server's reply still reaches the client (ip_vs_out), uncounted, and moves the state.
    expect(reply(R1, sport, 'FA', 8080)).toMatchObject({ verdict: 'redirect', src: VIP });
    expect(listed()).toMatchObject([{ state: 'FIN_WAIT', expiresMs: 120_000 }]);
    expect(service()!.stats.outpkts).toBe(0n);
    lab.lb.addRealServer(web, { address: R1, port: 8080 }, { method: 'nat' });
    expect(real(R1)).toMatchObject({ activeConns: 0, inactiveConns: 1 });
    lab.lb.deleteRealServer(web, { address: R1, port: 8080 });
    advance(121);
    expect(listed()).toEqual([]);
    lab.lb.addRealServer(web, { address: R1, port: 8080 }, { method: 'nat' });
    expect(real(R1)).toMatchObject({ activeConns: 0, inactiveConns: 0 });
    expect(real(R1)!.stats.conns).toBe(1n); // still the same real server: not freed yet
  });
});

describe('a service deleted with -D or -C', () => {
  it('leaves its real servers\' connections listed; re-created, they come back with zeroed counters', () => {
    lab.lb.addService(web, { scheduler: 'rr' });
    lab.lb.addRealServer(web, { address: R1 });
    lab.lb.addRealServer(web, { address: R2 });
    const a = connect();
    connect();
    tcp(a.sport, 'PA');
    lab.lb.clear();
    expect(listed().map((c) => c.state)).toEqual(['ESTABLISHED', 'ESTABLISHED']);
    expect(tcp(a.sport, 'PA').verdict).toBe('drop');
    lab.lb.addService(web, { scheduler: 'rr' });
    lab.lb.addRealServer(web, { address: R1 });
    lab.lb.addRealServer(web, { address: R2 });
    expect(real(a.real)).toMatchObject({ activeConns: 1, inactiveConns: 0 });
    expect(real(a.real)!.stats.conns).toBe(0n);
    expect(tcp(a.sport, 'PA').real).toBe(a.real);
    // The new service counts the connection's packets, not its connection.
    expect(service()!.stats).toMatchObject({ conns: 0n, inpkts: 1n });
    expect(real(a.real)!.stats).toMatchObject({ conns: 0n, inpkts: 1n });
  });

  it('does not give a real server back to another service', () => {
    lab.lb.addService(web, { scheduler: 'rr' });
    lab.lb.addRealServer(web, { address: R1 });
    connect();
    lab.lb.deleteService(web);
    const other: ServiceKey = { ...web, port: 81 };
    lab.lb.addService(other, { scheduler: 'rr' });
    lab.lb.addRealServer(other, { address: R1, port: 81 });
    expect(real(R1, other)).toMatchObject({ activeConns: 0, inactiveConns: 0 });
    lab.lb.deleteService(other);
  });
});

describe('the trash timer', () => {
  it('frees a real server 120 to 180 s after nothing refers to it, ticking every 60 s', () => {
    lab.lb.setTimeouts({ tcp: 10 });
    lab.lb.addService(web, { scheduler: 'rr' });
    for (const r of [R1, R2]) lab.lb.addRealServer(web, { address: r });
    const a = connect();
    const b = connect();
    expect(new Set([a.real, b.real])).toEqual(new Set([R1, R2]));
    lab.lb.deleteRealServer(web, { address: R1 }); // the timer starts: ticks at +60, +120, +180
    lab.lb.deleteRealServer(web, { address: R2 });
    expect(advance(59)).toBe(0);
    expect(listed()).toEqual([]); // both connections ended at +10
    expect(advance(1)).toBe(0); // +60: idle noted
    expect(advance(60)).toBe(0); // +120: not yet a period
    lab.lb.addRealServer(web, { address: R1 });
    expect(real(R1)!.stats.conns).toBe(1n); // still the trashed one
    lab.lb.deleteRealServer(web, { address: R1 }); // idle again from the next tick
    expect(advance(60)).toBe(1); // +180: R2 freed, R1 noted idle
    expect(advance(120)).toBe(1); // +300: R1 freed
    lab.lb.addRealServer(web, { address: R2 });
    expect(real(R2)!.stats.conns).toBe(0n); // a new real server
  });

  it('keeps a real server that a template still refers to', () => {
    lab.lb.setTimeouts({ tcp: 5 });
    lab.lb.addService(web, { scheduler: 'rr', persistent: 300 });
    lab.lb.addRealServer(web, { address: R1 });
    connect();
    lab.lb.deleteRealServer(web, { address: R1 });
    expect(advance(240)).toBe(0);
    expect(listed().map((c) => c.template)).toEqual([true]);
    expect(advance(61 + 180)).toBe(1); // the template ends at +300, R1 is freed by +480
  });
});

describe('expire_nodest_conn', () => {
  it('ends the connections and templates of a deleted real server at once; a SYN is scheduled afresh', () => {
    lab.lb.setSysctls({ expire_nodest_conn: 1 });
    expect(lab.lb.sysctls()).toEqual({ expire_nodest_conn: 1, expire_quiescent_template: 0 });
    lab.lb.addService(web, { scheduler: 'rr', persistent: 60 });
    lab.lb.addRealServer(web, { address: R1 });
    lab.lb.addRealServer(web, { address: R2 });
    const a = connect();
    lab.lb.deleteRealServer(web, { address: a.real });
    expect(listed()).toEqual([]);
    expect(tcp(a.sport, 'PA').verdict).toBe('pass');
    expect(tcp(a.sport, 'S').real).not.toBe(a.real);
  });

  it('is refused unless 0 or 1', () => {
    expect(() => lab.lb.setSysctls({ expire_nodest_conn: 2 })).toThrow(/invalid value/);
    expect(() => lab.lb.setSysctls({ nope: 1 } as never)).toThrow(/unknown sysctl/);
    expect(lab.lb.sysctls().expire_nodest_conn).toBe(0);
  });
});

describe('persistence templates', () => {
  it('turn ASSURED once a TCP connection they control is established', () => {
    lab.lb.addService(web, { scheduler: 'rr', persistent: 60 });
    lab.lb.addRealServer(web, { address: R1 });
    const sport = nextPort++;
    tcp(sport, 'S');
    expect(listed().find((c) => c.template)!.state).toBe('NONE');
    tcp(sport, 'A');
    expect(listed().find((c) => c.template)!.state).toBe('ASSURED');
  });

  it('of UDP: NONE, ASSURED once a NAT real server replied', () => {
    lab.lb.addService(dns, { scheduler: 'rr', persistent: 60 });
    lab.lb.addRealServer(dns, { address: R1 }, { method: 'nat' });
    const sport = nextPort++;
    udp(sport);
    expect(listed(dns).find((c) => c.template)!.state).toBe('NONE');
    const r = send(buildFrame({ ip: { src: R1, dst: CLIENT }, udp: { sport: 53, dport: sport }, payload: 'a' }), 'reals');
    expect(r.src).toBe(VIP);
    expect(listed(dns).find((c) => c.template)!.state).toBe('ASSURED');
  });

  it('stay listed with a deleted server; the client\'s next connection invalidates it (ports 65535)', () => {
    lab.lb.addService(web, { scheduler: 'rr', persistent: 60 });
    lab.lb.addRealServer(web, { address: R1 });
    lab.lb.addRealServer(web, { address: R2 });
    const a = connect();
    lab.lb.deleteRealServer(web, { address: a.real });
    advance(5);
    const tpl = () => listed().filter((c) => c.template).map((c) => [c.virtual.port, c.real.address, c.real.port, c.state, c.expiresMs]);
    expect(tpl()).toEqual([[80, a.real, 80, 'ASSURED', 55_000]]);
    const b = connect();
    expect(b.real).not.toBe(a.real);
    expect(tpl()).toEqual(expect.arrayContaining([
      [65535, a.real, 65535, 'ASSURED', 55_000], // its timer goes on
      [80, b.real, 80, 'ASSURED', 60_000],
    ]));
    lab.lb.addRealServer(web, { address: a.real });
    expect(real(a.real)).toMatchObject({ activeConns: 1, persistConns: 1 });
    expect(connect().real).toBe(b.real); // the invalidated template sends nobody anywhere
    advance(56);
    expect(real(a.real)).toMatchObject({ persistConns: 1 }); // it still controls a connection: re-armed
  });

  it('of a server drained to weight 0 are void with expire_quiescent_template', () => {
    lab.lb.setSysctls({ expire_quiescent_template: 1 });
    lab.lb.addService(web, { scheduler: 'rr', persistent: 60 });
    lab.lb.addRealServer(web, { address: R1 });
    lab.lb.addRealServer(web, { address: R2 });
    const a = connect();
    lab.lb.editRealServer(web, { address: a.real }, { weight: 0 });
    expect(connect().real).not.toBe(a.real);
    expect(real(a.real)).toMatchObject({ activeConns: 1, persistConns: 1 });
    expect(listed().filter((c) => c.template).map((c) => c.virtual.port).sort((x, y) => x - y)).toEqual([80, 65535]);
  });
});
