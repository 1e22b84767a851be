// Connection state as IPVS keeps it, frame by frame through BPF_PROG_TEST_RUN with the dataplane's
// clock frozen: ActiveConn/InActConn through a TCP connection's life, timeouts and expiry,
// thresholds and the overload flag, weight 0, removed real servers, a full connection table,
// persistence templates, one-packet scheduling and connection reuse. After each test the shared
// counters must equal a recount of the table's entries.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ServiceKey } from '../lib/balancer.js';
import { XvsError } from '../lib/errors.js';
import { NET, packetLab, type PacketLab } from './helpers/lb.js';
import { buildFrame, parseFrame } from './helpers/packet.js';
import { TestClock } from './helpers/clock.js';
import { recount } from './helpers/recount.js';

const VIP = '10.0.0.100';
const R1 = '10.1.0.11';
const R2 = '10.1.0.12';
const R3 = '10.1.0.13';
// IPv4 neighbours only: the IPv6 real servers share their MACs.
const REAL_BY_MAC = new Map(Object.entries(NET.neighbours).filter(([a]) => !a.includes(':')).map(([a, m]) => [m, a]));
const web: ServiceKey = { protocol: 'tcp', address: VIP, port: 80 };
const dns: ServiceKey = { protocol: 'udp', address: VIP, port: 53 };

let lab: PacketLab;
const clock = new TestClock(() => lab.lb);
const at = (seconds: number) => clock.at(seconds);
const advance = (seconds: number) => clock.advance(seconds);
let nextPort = 10000;



interface Sent {
  verdict: string;
  /** The real server it went to, by MAC (DR) or by rewritten address (NAT). */
  real?: string;
}

function tcp(sport: number, flags: string, opts: { src?: string; dst?: string; dport?: number } = {}): Sent {
  return send(buildFrame({
    ip: { src: opts.src ?? '10.2.0.5', dst: opts.dst ?? VIP },
    tcp: { sport, dport: opts.dport ?? 80, flags, seq: 1 },
  }), opts.dst ?? VIP);
}

function udp(sport: number, opts: { src?: string; dport?: number } = {}): Sent {
  return send(buildFrame({ ip: { src: opts.src ?? '10.2.0.5', dst: VIP }, udp: { sport, dport: opts.dport ?? 53 }, payload: 'q' }), VIP);
}

function send(frame: Buffer, dst: string): Sent {
  const { verdict, out } = lab.run(frame);
  if (verdict !== 'redirect' && verdict !== 'tx') return { verdict };
  const f = parseFrame(out);
  return { verdict, real: f.ip && f.ip.dst !== dst ? f.ip.dst : REAL_BY_MAC.get(f.dstMac) };
}

/** A client's connection: SYN, then ACK (ESTABLISHED). Returns the real server. */
function connect(src = '10.2.0.5', dport = 80): { sport: number; real: string | undefined } {
  const sport = nextPort++;
  const first = tcp(sport, 'S', { src, dport });
  tcp(sport, 'A', { src, dport });
  return { sport, real: first.real };
}

function counts(key: ServiceKey = web): Record<string, [number, number, number]> {
  const info = lab.lb.list().find((s) => JSON.stringify(s.key) === JSON.stringify(key))!;
  return Object.fromEntries(info.realServers.map((r) => [r.address, [r.activeConns, r.inactiveConns, r.persistConns]]));
}

beforeAll(async () => {
  lab = await packetLab({ maxConnections: 64 });
});

afterAll(async () => {
  await lab?.destroy();
});

beforeEach(() => {
  at(5000);
  lab.lb.clear();
  lab.lb.expire();
  lab.lb.zero();
  lab.lb.dataplane.writeTimeouts({ XVS_TCP_S_ESTABLISHED: 900, XVS_TCP_S_FIN_WAIT: 120, XVS_UDP_S_NORMAL: 300 });
});

afterEach(() => {
  const { fromEntries, counters } = recount(lab.lb);
  expect(counters).toEqual(fromEntries);
});

describe('connection counts and states', () => {
  it('counts a DR connection inactive until ESTABLISHED, active while it is, inactive after FIN', () => {
    lab.lb.addService(web, { scheduler: 'rr' });
    lab.lb.addRealServer(web, { address: R1 });
    const sport = nextPort++;
    expect(tcp(sport, 'S').real).toBe(R1);
    expect(counts()).toEqual({ [R1]: [0, 1, 0] });
    expect(lab.lb.connections()).toMatchObject([{ protocol: 'tcp', state: 'SYN_RECV', expiresMs: 60_000 }]);
    tcp(sport, 'A');
    expect(counts()).toEqual({ [R1]: [1, 0, 0] });
    expect(lab.lb.connections()).toMatchObject([{ state: 'ESTABLISHED', expiresMs: 900_000 }]);
    tcp(sport, 'FA');
    expect(counts()).toEqual({ [R1]: [0, 1, 0] });
    expect(lab.lb.connections()).toMatchObject([{ state: 'FIN_WAIT', expiresMs: 120_000 }]);
  });

  it('ends a connection after its state\'s timeout, uncounting it once', () => {
    lab.lb.addService(web, { scheduler: 'rr' });
    lab.lb.addRealServer(web, { address: R1 });
    lab.lb.setTimeouts({ tcp: 5 });
    connect();
    advance(5);
    expect(counts()).toEqual({ [R1]: [1, 0, 0] });
    advance(1);
    expect(counts()).toEqual({ [R1]: [0, 0, 0] });
    expect(lab.lb.connections()).toEqual([]);
  });

  it('ends an expired connection on its next packet too, and a data packet then starts nothing', () => {
    lab.lb.addService(web, { scheduler: 'rr' });
    lab.lb.addRealServer(web, { address: R1 });
    lab.lb.setTimeouts({ tcp: 5 });
    const { sport } = connect();
    at(clock.seconds + 10);
    expect(tcp(sport, 'A').verdict).toBe('pass');
    expect(counts()).toEqual({ [R1]: [0, 0, 0] });
    expect(lab.lb.reasons().pass_no_conn).toBe(1n);
  });

  it('keeps UDP connections inactive for the udp timeout', () => {
    lab.lb.addService(dns, { scheduler: 'rr' });
    lab.lb.addRealServer(dns, { address: R1 });
    lab.lb.setTimeouts({ udp: 3 });
    udp(nextPort);
    udp(nextPort);
    expect(counts(dns)).toEqual({ [R1]: [0, 1, 0] });
    expect(lab.lb.connections()).toMatchObject([{ protocol: 'udp', state: 'UDP', expiresMs: 3000 }]);
    advance(4);
    expect(counts(dns)).toEqual({ [R1]: [0, 0, 0] });
  });

  it('follows a NAT connection\'s replies (INPUT and OUTPUT tables) to ESTABLISHED', () => {
    lab.lb.addService(web, { scheduler: 'rr' });
    lab.lb.addRealServer(web, { address: '10.1.0.21', port: 8080 }, { method: 'nat' });
    const sport = nextPort++;
    expect(tcp(sport, 'S').real).toBe('10.1.0.21');
    const reply = lab.run(buildFrame({ ip: { src: '10.1.0.21', dst: '10.2.0.5' }, tcp: { sport: 8080, dport: sport, flags: 'SA' } }), 'reals');
    expect(parseFrame(reply.out).ip).toMatchObject({ src: VIP });
    expect(counts()).toEqual({ '10.1.0.21': [0, 1, 0] });
    tcp(sport, 'A');
    expect(counts()).toEqual({ '10.1.0.21': [1, 0, 0] });
  });

  it('schedules a new SYN on a finished connection afresh (conn_reuse_mode 1)', () => {
    lab.lb.addService(web, { scheduler: 'rr' });
    lab.lb.addRealServer(web, { address: R1 });
    lab.lb.addRealServer(web, { address: R2 });
    const sport = nextPort++;
    const first = tcp(sport, 'S').real;
    tcp(sport, 'A');
    tcp(sport, 'FA');
    tcp(sport, 'A'); // FIN_WAIT -> TIME_WAIT needs the peer; an RST closes it
    tcp(sport, 'R');
    expect(lab.lb.connections()).toMatchObject([{ state: 'CLOSE' }]);
    expect(first).toBe(R2);
    expect(tcp(sport, 'S').real).toBe(R1);
    expect(counts()).toEqual({ [R2]: [0, 0, 0], [R1]: [0, 1, 0] });
  });
});

describe('thresholds, weight 0 and removed real servers', () => {
  // fo sends everything to the heaviest server that is not overloaded: the flag shows directly.
  function overloadable(upperThreshold: number, lowerThreshold = 0): void {
    lab.lb.addService(web, { scheduler: 'fo' });
    lab.lb.addRealServer(web, { address: R2 }, { weight: 1 });
    lab.lb.addRealServer(web, { address: R1 }, { weight: 100, upperThreshold, lowerThreshold });
  }

  /** Ends a connection: an RST moves it to CLOSE (still counted), its 10 s timeout ends it. */
  function end(sport: number): void {
    tcp(sport, 'R');
    advance(11);
  }

  it('flags a server overloaded at its upper threshold and clears the flag below 3/4 of it', () => {
    overloadable(4);
    const conns = Array.from({ length: 4 }, () => connect());
    expect(conns.map((c) => c.real)).toEqual([R1, R1, R1, R1]);
    expect(connect().real).toBe(R2); // 4 >= 4
    end(conns[0]!.sport);
    expect(connect().real).toBe(R2); // 3 * 4 < 4 * 3 is false: still overloaded
    end(conns[1]!.sport);
    expect(connect().real).toBe(R1); // 2 * 4 < 12
  });

  it('clears the flag only below the lower threshold when there is one', () => {
    overloadable(3, 1);
    const conns = Array.from({ length: 3 }, () => connect());
    expect(connect().real).toBe(R2);
    end(conns[0]!.sport);
    end(conns[1]!.sport);
    expect(connect().real).toBe(R2); // 1 < 1 is false
    end(conns[2]!.sport);
    expect(connect().real).toBe(R1);
  });

  it('clears the flag when the upper threshold is raised or removed (__ip_vs_update_dest)', () => {
    overloadable(2);
    connect();
    connect();
    expect(connect().real).toBe(R2);
    lab.lb.editRealServer(web, { address: R1 }, { upperThreshold: 1 });
    expect(connect().real).toBe(R2); // lowered: the flag stays
    lab.lb.editRealServer(web, { address: R1 }, { upperThreshold: 0 });
    expect(connect().real).toBe(R1);
  });

  it('drains a server set to weight 0: its connections go on, new ones go elsewhere, none when all are 0', () => {
    lab.lb.addService(web, { scheduler: 'wlc' });
    lab.lb.addRealServer(web, { address: R1 });
    const { sport } = connect();
    lab.lb.addRealServer(web, { address: R2 });
    lab.lb.editRealServer(web, { address: R1 }, { weight: 0 });
    expect(tcp(sport, 'PA').real).toBe(R1);
    expect(connect().real).toBe(R2);
    lab.lb.editRealServer(web, { address: R2 }, { weight: 0 });
    expect(tcp(nextPort++, 'S').verdict).toBe('pass');
    expect(lab.lb.reasons().pass_no_dest).toBe(1n);
    expect(tcp(sport, 'PA').real).toBe(R1);
  });

  it('with expire_nodest_conn, ends the connections of a removed server at once (test/trash.test.ts: without)', () => {
    lab.lb.addService(web, { scheduler: 'rr' });
    lab.lb.addRealServer(web, { address: R1 });
    lab.lb.addRealServer(web, { address: R2 });
    const a = connect();
    const b = connect();
    const onR1 = a.real === R1 ? a : b;
    lab.lb.deleteRealServer(web, { address: R1 });
    expect(lab.lb.connections().map((c) => c.real.address)).toEqual([R2]);
    expect(tcp(onR1.sport, 'PA').verdict).toBe('pass'); // no connection: ip_vs_in_hook accepts it
    expect(lab.lb.reasons().pass_no_conn).toBe(1n);
    expect(tcp(onR1.sport, 'S').real).toBe(R2); // a SYN starts over
    expect(lab.lb.connections().map((c) => c.real.address)).toEqual([R2, R2]);
    expect(counts()).toEqual({ [R2]: [1, 1, 0] });
  });
});

describe('a full connection table', () => {
  it('refuses new connections (dropped and counted), keeps the counts exact, takes them again once swept', () => {
    lab.lb.addService(web, { scheduler: 'rr' });
    lab.lb.addRealServer(web, { address: R1 });
    lab.lb.setTimeouts({ tcp: 3 });
    const stored: number[] = [];
    for (let i = 0; i < 70; i++) {
      const sport = nextPort++;
      if (tcp(sport, 'S').verdict === 'redirect') stored.push(sport);
    }
    expect(stored).toHaveLength(64);
    expect(lab.lb.reasons().drop_conn_full).toBe(6n);
    expect(counts()).toEqual({ [R1]: [0, 64, 0] });
    for (const sport of stored) expect(tcp(sport, 'A').real).toBe(R1);
    expect(counts()).toEqual({ [R1]: [64, 0, 0] });
    advance(5);
    expect(counts()).toEqual({ [R1]: [0, 0, 0] });
    expect(connect().real).toBe(R1);
  });
});

describe('persistence', () => {
  it('sends a client\'s connections to one server through a template counted as PersistConn', () => {
    lab.lb.addService(web, { scheduler: 'rr', persistent: 60, netmask: '255.255.255.0' });
    for (const r of [R1, R2, R3]) lab.lb.addRealServer(web, { address: r });
    const a = connect('10.2.0.5');
    const b = connect('10.2.0.77'); // same /24: same template
    const c = connect('10.2.1.5');
    expect(b.real).toBe(a.real);
    expect(c.real).not.toBe(a.real);
    expect(lab.lb.connections().filter((x) => x.template)).toHaveLength(2);
    const t = lab.lb.connections().find((x) => x.template && x.real.address === a.real)!;
    expect(t).toMatchObject({ client: { address: '10.2.0.0', port: 0 }, virtual: { address: VIP, port: 80 }, state: 'ASSURED', expiresMs: 60_000 });
    expect(counts()[a.real!]).toEqual([2, 0, 1]);
  });

  it('lets a template outlive its timeout while it controls connections, then ends it', () => {
    lab.lb.addService(web, { scheduler: 'rr', persistent: 10 });
    lab.lb.addRealServer(web, { address: R1 });
    lab.lb.setTimeouts({ tcp: 30 });
    connect();
    advance(12);
    expect(counts()).toEqual({ [R1]: [1, 0, 1] });
    advance(20); // the connection ends at 31 s; the template, re-armed at 11 s, at 71 s
    expect(counts()).toEqual({ [R1]: [0, 0, 1] });
    advance(40);
    expect(counts()).toEqual({ [R1]: [0, 0, 0] });
  });

  it('covers all ports of a port-0 service with one template', () => {
    const any: ServiceKey = { protocol: 'tcp', address: VIP, port: 0 };
    lab.lb.addService(any, { scheduler: 'rr', persistent: 30 });
    for (const r of [R1, R2]) lab.lb.addRealServer(any, { address: r, port: 0 });
    const first = connect('10.2.0.5', 443).real;
    expect(connect('10.2.0.5', 22).real).toBe(first);
    expect(connect('10.2.0.6', 22).real).not.toBe(first);
    expect(lab.lb.connections().find((x) => x.template)!.virtual.port).toBe(0);
  });

  it('voids a template whose server was removed: the client is scheduled anew', () => {
    lab.lb.addService(web, { scheduler: 'rr', persistent: 300 });
    lab.lb.addRealServer(web, { address: R1 });
    lab.lb.addRealServer(web, { address: R2 });
    const first = connect().real!;
    lab.lb.deleteRealServer(web, { address: first });
    const other = first === R1 ? R2 : R1;
    expect(connect().real).toBe(other);
    expect(counts()).toEqual({ [other]: [1, 0, 1] });
  });

  it('keeps a template valid for a server drained to weight 0 (expire_quiescent_template off)', () => {
    lab.lb.addService(web, { scheduler: 'rr', persistent: 300 });
    lab.lb.addRealServer(web, { address: R1 });
    lab.lb.addRealServer(web, { address: R2 });
    const first = connect().real!;
    lab.lb.editRealServer(web, { address: first }, { weight: 0 });
    expect(connect().real).toBe(first);
    expect(connect('10.2.9.9').real).not.toBe(first);
  });

  it('shares a firewall-mark service\'s template across virtual addresses and ports', () => {
    lab.lb.addMarkRule({ destination: '10.0.0.0/24', mark: 9 });
    try {
      const fwm: ServiceKey = { fwmark: 9 };
      lab.lb.addService(fwm, { scheduler: 'rr', persistent: 30 });
      for (const r of [R1, R2, R3]) lab.lb.addRealServer(fwm, { address: r });
      const first = tcp(nextPort++, 'S', { dst: '10.0.0.7', dport: 80 }).real;
      expect(tcp(nextPort++, 'S', { dst: '10.0.0.8', dport: 25 }).real).toBe(first);
      expect(lab.lb.connections().find((x) => x.template)).toMatchObject({ protocol: 'ip', virtual: { address: '0.0.0.9', port: 0 } });
    } finally {
      lab.lb.clear();
      lab.lb.deleteMarkRule({ destination: '10.0.0.0/24', mark: 9 });
    }
  });
});

describe('one-packet scheduling (-o)', () => {
  it('schedules every datagram on its own and keeps no connection', () => {
    lab.lb.addService(dns, { scheduler: 'rr', onePacket: true });
    lab.lb.addRealServer(dns, { address: R1 });
    lab.lb.addRealServer(dns, { address: R2 });
    const sport = nextPort++;
    const reals = [udp(sport), udp(sport), udp(sport), udp(sport)].map((s) => s.real);
    expect(reals).toEqual([R2, R1, R2, R1]);
    expect(lab.lb.connections()).toEqual([]);
    expect(counts(dns)).toEqual({ [R2]: [0, 0, 0], [R1]: [0, 0, 0] });
    expect(lab.lb.list()[0]!.stats.conns).toBe(4n);
  });

  it('still sees each datagram come and go on the overload flag (lower threshold keeps it set)', () => {
    lab.lb.addService(dns, { scheduler: 'fo' });
    lab.lb.addRealServer(dns, { address: R2 }, { weight: 1 });
    lab.lb.addRealServer(dns, { address: R1 }, { weight: 100, upperThreshold: 2, lowerThreshold: 1 });
    udp(nextPort++);
    lab.lb.editService(dns, { onePacket: true });
    expect(udp(nextPort++).real).toBe(R1); // 2 >= 2 on bind: overloaded; 1 < 1 is false on unbind
    expect(udp(nextPort++).real).toBe(R2);
  });
});

describe('configuration errors change nothing', () => {
  const cases: [string, () => void, string][] = [
    ['a port-0 service that is not persistent', () => lab.lb.addService({ protocol: 'tcp', address: VIP, port: 0 }), 'Zero port specified for non-persistent service'],
    ['a persistence timeout out of range', () => lab.lb.addService(web, { persistent: 2678401 }), "invalid timeout value `2678401' specified"],
    ['one-packet scheduling on TCP', () => lab.lb.addService(web, { onePacket: true }), 'One-Packet Scheduling is only for UDP virtual services'],
    ['an sh flag on another scheduler', () => lab.lb.addService(web, { scheduler: 'wlc', schedFlags: ['sh-port'] }), "incompatible scheduler flag `sh-port'"],
    ['an unknown flag', () => lab.lb.addService(web, { scheduler: 'sh', schedFlags: ['sh-fast'] }), "invalid scheduler flag `sh-fast'"],
    ['an unknown scheduler', () => lab.lb.addService(web, { scheduler: 'xyz' }), 'Scheduler not found: xyz'],
    ['a netmask that is no address', () => lab.lb.addService(web, { persistent: 10, netmask: '/24' }), "invalid netmask `/24' specified"],
    ['firewall mark 0', () => lab.lb.addService({ fwmark: 0 }), 'illegal firewall mark: 0'],
  ];
  it.each(cases)('%s', (_name, act, message) => {
    expect(act).toThrow(message);
    expect(lab.lb.list()).toEqual([]);
  });

  it('refuses a lower threshold above the upper one, and keeps the server as it was', () => {
    lab.lb.addService(web);
    lab.lb.addRealServer(web, { address: R1 }, { upperThreshold: 5 });
    expect(() => lab.lb.editRealServer(web, { address: R1 }, { lowerThreshold: 6 })).toThrow(XvsError);
    expect(lab.lb.list()[0]!.realServers[0]).toMatchObject({ upperThreshold: 5, lowerThreshold: 0 });
  });
});
