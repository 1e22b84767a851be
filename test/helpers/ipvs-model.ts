// A reference model of IPVS's connection handling, written from the kernel's sources
// (ip_vs_core.c, ip_vs_conn.c, ip_vs_proto_tcp.c, ip_vs_ctl.c) independently of the dataplane:
// connections and their TCP states, ActiveConn/InActConn/PersistConn, the overload flag and its
// thresholds, persistence templates, one-packet scheduling, timeouts and expiry, with each
// scheduler's own model (lib/sched/<name>.ts) making the choices. Time is the dataplane's frozen
// clock: expiry happens when the control plane sweeps, as xvs does it, and the harness sweeps once
// per simulated second (a packet also ends its own expired connection; templates end only in
// sweeps, the kernel's timer being the sweep).
import { SCHEDULERS, type ModelDest, type SchedChange, type SchedModel } from '../../lib/sched/index.js';
import type { LocalityModel } from '../../lib/sched/lblc.js';

const NS = 1_000_000_000n;
/** XVS_LAST_SEEN_GRANULE_NS: the dataplane rewrites last_seen at most this often. */
const GRANULE = 1n << 27n;
const TEMPLATE_REARM = 60;
const FTP_PORT = 21;

export const DEFAULT_TIMEOUTS: Record<string, number> = {
  NONE: 2, ESTABLISHED: 900, SYN_SENT: 120, SYN_RECV: 60, FIN_WAIT: 120, TIME_WAIT: 120, CLOSE: 10,
  CLOSE_WAIT: 60, LAST_ACK: 30, LISTEN: 120, SYNACK: 120, UDP: 300,
};

// ip_vs_proto_tcp.c: tcp_states (INPUT), tcp_states_dos is not used; INPUT_ONLY for DR/TUN.
const S = ['NONE', 'ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT', 'TIME_WAIT', 'CLOSE', 'CLOSE_WAIT', 'LAST_ACK', 'LISTEN', 'SYNACK'];
const row = (names: string) => names.split(' ').map((n) => S.indexOf({ NO: 'NONE', ES: 'ESTABLISHED', SS: 'SYN_SENT', SR: 'SYN_RECV', FW: 'FIN_WAIT', TW: 'TIME_WAIT', CL: 'CLOSE', CW: 'CLOSE_WAIT', LA: 'LAST_ACK', LI: 'LISTEN', SA: 'SYNACK' }[n]!));
const TCP_TABLES: Record<'input' | 'inputOnly', number[][]> = {
  //                    sNO sES sSS sSR sFW sTW sCL sCW sLA sLI sSA
  input: [
    row('SR ES ES SR SR SR SR SR SR SR SR'), // syn
    row('CL CW SS TW TW TW CL CW LA LI TW'), // fin
    row('CL ES SS ES FW TW CL CW CL LI ES'), // ack
    row('CL CL CL SR CL CL CL CL LA LI SR'), // rst
  ],
  inputOnly: [
    row('SR ES ES SR SR SR SR SR SR SR SR'),
    row('CL FW SS TW FW TW CL CW LA LI TW'),
    row('CL ES SS ES FW TW CL CW CL LI ES'),
    row('CL CL CL SR CL CL CL CL LA LI CL'),
  ],
};

function tcpEvent(flags: string): number {
  if (flags.includes('R')) return 3;
  if (flags.includes('S')) return 0;
  if (flags.includes('F')) return 1;
  if (flags.includes('A')) return 2;
  return -1;
}

export interface ModelReal {
  id: number;
  address: string;
  port: number;
  method: 'dr' | 'nat';
  weight: number;
  lastWeight: number;
  upper: number;
  lower: number;
  active: number;
  inactive: number;
  persist: number;
  overloaded: boolean;
  removed: boolean;
}

export interface ModelServiceSpec {
  scheduler: string;
  protocol: 'tcp' | 'udp';
  /** Virtual address and port, or a firewall mark (then packets of any address match). */
  address?: string;
  port?: number;
  fwmark?: number;
  persistent?: number;
  netmask?: string;
  onePacket?: boolean;
  flags?: number;
}

interface ModelService extends Required<Omit<ModelServiceSpec, 'address' | 'fwmark'>> {
  address?: string;
  fwmark?: number;
  reals: ModelReal[];
  sched: SchedModel;
}

interface Template {
  key: string;
  real: ModelReal;
  lastSeen: bigint;
  timeout: number;
  nControl: number;
  id: number;
}

interface Conn {
  real: ModelReal;
  state: number;
  counted: 'active' | 'inactive' | 'none';
  lastSeen: bigint;
  timeout: number;
  method: 'dr' | 'nat';
  udp: boolean;
  ctl?: { key: string; id: number };
}

export interface ModelPacket {
  protocol: 'tcp' | 'udp';
  saddr: string;
  sport: number;
  daddr: string;
  dport: number;
  /** TCP flags as letters: 'S', 'A', 'PA', 'FA', 'R'. */
  flags?: string;
  /** twos: the dataplane's random draws for this packet. */
  draws?: [number, number];
}

export type ModelVerdict = { verdict: 'fwd'; real: ModelReal } | { verdict: 'pass' | 'drop' };

export const ipNum = (a: string) => a.split('.').reduce((n, o) => ((n << 8) | Number(o)) >>> 0, 0);

export class IpvsModel {
  now = 0n;
  timeouts = { ...DEFAULT_TIMEOUTS };
  private readonly service: ModelService;
  private readonly conns = new Map<string, Conn>();
  private readonly templates = new Map<string, Template>();
  private nextId = 1;
  /** Real servers deleted from the service: the destination trash. */
  private readonly trash: ModelReal[] = [];
  private nextTemplateId = 1;

  constructor(spec: ModelServiceSpec, nowSeconds: number) {
    this.now = BigInt(nowSeconds) * NS;
    this.service = {
      port: 0, persistent: 0, netmask: '255.255.255.255', onePacket: false, flags: 0, ...spec, reals: [],
      sched: SCHEDULERS[spec.scheduler]!.model(),
    };
    this.changed({ kind: 'init' });
  }

  get reals(): readonly ModelReal[] {
    return this.service.reals;
  }

  get protocol(): 'tcp' | 'udp' {
    return this.service.protocol;
  }

  get seconds(): number {
    return Number(this.now / NS);
  }

  addReal(r: { address: string; port?: number; method?: 'dr' | 'nat'; weight?: number; upper?: number; lower?: number }): ModelReal {
    const port = r.port ?? this.service.port;
    const trashed = this.trash.findIndex((t) => t.address === r.address && t.port === port);
    if (trashed >= 0) return this.restoreReal(this.trash.splice(trashed, 1)[0]!, r);
    const real: ModelReal = {
      id: this.nextId++, address: r.address, port: r.port ?? this.service.port, method: r.method ?? 'dr',
      weight: r.weight ?? 1, lastWeight: r.weight ?? 1, upper: r.upper ?? 0, lower: r.lower ?? 0,
      active: 0, inactive: 0, persist: 0, overloaded: false, removed: false,
    };
    this.service.reals.unshift(real);
    this.changed({ kind: 'add', index: real.id });
    return real;
  }

  /** __ip_vs_update_dest: last_weight keeps the last non-zero weight; a raised or removed upper threshold clears the overload flag. */
  editReal(real: ModelReal, e: { weight?: number; upper?: number; lower?: number }): void {
    const upper = e.upper ?? real.upper;
    if (e.weight !== undefined) {
      real.weight = e.weight;
      if (e.weight !== 0) real.lastWeight = e.weight;
    }
    if (upper === 0 || upper > real.upper) real.overloaded = false;
    real.upper = upper;
    real.lower = e.lower ?? real.lower;
    this.changed({ kind: 'update', index: real.id });
  }

  /**
   * The real server goes to the destination trash; with expire_nodest_conn (which the harness
   * sets) its connections and their templates end at once (ip_vs_expire_nodest_conn_flush).
   */
  deleteReal(real: ModelReal): void {
    for (const [key, c] of [...this.conns]) if (c.real === real) this.endConn(key, c);
    for (const t of [...this.templates.values()]) {
      if (t.real !== real) continue;
      this.unbind(real, 'persist');
      this.templates.delete(t.key);
    }
    const list = this.service.reals;
    const at = list.indexOf(real);
    list.splice(at, 1);
    real.removed = true;
    this.trash.push(real);
    this.changed({ kind: 'delete', index: real.id, successor: list[at]?.id });
  }

  /** ip_vs_trash_get_dest: the same real server comes back (schedulers' caches know it again). */
  private restoreReal(real: ModelReal, r: { method?: 'dr' | 'nat'; weight?: number; upper?: number; lower?: number }): ModelReal {
    const upper = r.upper ?? 0;
    if (upper === 0 || upper > real.upper) real.overloaded = false;
    Object.assign(real, {
      method: r.method ?? 'dr', weight: r.weight ?? 1, lastWeight: r.weight ?? 1, upper, lower: r.lower ?? 0, removed: false,
    });
    this.service.reals.unshift(real);
    this.changed({ kind: 'add', index: real.id });
    return real;
  }

  counts(): Map<string, { active: number; inactive: number; persist: number }> {
    return new Map(this.service.reals.map((r) => [r.address, { active: r.active, inactive: r.inactive, persist: r.persist }]));
  }

  /** The model's clock jumps to `seconds`, sweeping once per second on the way, as the harness does. */
  advanceTo(seconds: number): void {
    for (let t = this.seconds + 1; t <= seconds; t++) {
      this.now = BigInt(t) * NS;
      this.sweep();
    }
  }

  /** One packet from a client (ip_vs_in). */
  packet(p: ModelPacket): ModelVerdict {
    const key = `${p.protocol}|${p.saddr}:${p.sport}|${p.daddr}:${p.dport}`;
    const c = this.conns.get(key);
    const flags = p.flags ?? '';
    if (c) {
      const gone = c.real.removed;
      if (!gone && !this.expired(c.lastSeen, c.timeout) && !this.reused(c, p)) {
        this.touch(c, flags);
        return { verdict: 'fwd', real: c.real };
      }
      // With expire_nodest_conn a packet of a removed server's connection ends it and goes on
      // as a packet without connection (ip_vs_in_hook): a SYN is scheduled, others are passed.
      this.endConn(key, c);
    }
    if (!this.matches(p)) return { verdict: 'pass' };
    if (!this.mayStart(p)) return { verdict: 'pass' };
    return this.newConn(key, p);
  }

  // --- connections --------------------------------------------------------------------------

  private matches(p: ModelPacket): boolean {
    const s = this.service;
    if (s.fwmark !== undefined) return true;
    return p.protocol === s.protocol && p.daddr === s.address && (s.port === 0 || p.dport === s.port);
  }

  private mayStart(p: ModelPacket): boolean {
    if (p.protocol === 'udp') return true;
    const f = p.flags ?? '';
    return f.includes('S') && !f.includes('R');
  }

  /** is_new_conn_expected with conn_reuse_mode 1. */
  private reused(c: Conn, p: ModelPacket): boolean {
    const f = p.flags ?? '';
    return !c.udp && f.includes('S') && !f.includes('A') && !c.ctl && (S[c.state] === 'TIME_WAIT' || S[c.state] === 'CLOSE');
  }

  private expired(lastSeen: bigint, timeout: number): boolean {
    return this.now > lastSeen + BigInt(timeout) * NS + GRANULE;
  }

  private newConn(key: string, p: ModelPacket): ModelVerdict {
    const s = this.service;
    let tpl: Template | undefined;
    let real: ModelReal | undefined;
    if (s.persistent) {
      tpl = this.templateFor(p);
      real = tpl?.real;
    } else {
      real = this.schedule(p);
    }
    if (!real) return { verdict: 'pass' };
    if (s.onePacket && p.protocol === 'udp') {
      this.bind(real, 'inactive');
      this.unbind(real, 'inactive');
      return { verdict: 'fwd', real };
    }
    const c: Conn = {
      real, state: 0, counted: 'inactive', lastSeen: this.now, timeout: 0, method: real.method, udp: p.protocol === 'udp',
      ...(tpl ? { ctl: { key: tpl.key, id: tpl.id } } : {}),
    };
    if (tpl) tpl.nControl++;
    this.bind(real, 'inactive');
    this.conns.set(key, c);
    this.touch(c, p.flags ?? '');
    return { verdict: 'fwd', real };
  }

  private touch(c: Conn, flags: string): void {
    let state = c.state;
    if (!c.udp) {
      const ev = tcpEvent(flags);
      state = ev < 0 ? S.indexOf('CLOSE') : TCP_TABLES[c.method === 'nat' ? 'input' : 'inputOnly'][ev]![c.state]!;
    }
    if (state !== c.state) {
      const wasEstablished = S[c.state] === 'ESTABLISHED';
      const established = S[state] === 'ESTABLISHED';
      c.state = state;
      if (wasEstablished !== established && c.counted !== 'none') {
        const from = c.counted;
        const to = established ? 'active' : 'inactive';
        if (from !== to) {
          c.real[from]--;
          c.real[to]++;
          c.counted = to;
        }
      }
    }
    c.timeout = c.udp ? this.timeouts.UDP! : this.timeouts[S[state]!]!;
    if (this.now - c.lastSeen >= GRANULE) c.lastSeen = this.now;
  }

  private endConn(key: string, c: Conn): void {
    if (c.counted !== 'none' && !c.real.removed) this.unbind(c.real, c.counted);
    c.counted = 'none';
    if (c.ctl) {
      const t = this.templates.get(c.ctl.key);
      if (t && t.id === c.ctl.id) t.nControl--;
    }
    this.conns.delete(key);
  }

  // --- counts and the overload flag (ip_vs_bind_dest, ip_vs_unbind_dest) ---------------------

  private bind(r: ModelReal, counter: 'active' | 'inactive' | 'persist'): void {
    r[counter]++;
    if (r.upper && r.active + r.inactive >= r.upper) r.overloaded = true;
  }

  private unbind(r: ModelReal, counter: 'active' | 'inactive' | 'persist'): void {
    r[counter]--;
    if (!r.overloaded) return;
    const total = r.active + r.inactive;
    if (r.lower ? total < r.lower : r.upper ? total * 4 < r.upper * 3 : true) r.overloaded = false;
  }

  // --- persistence (ip_vs_sched_persist) ------------------------------------------------------

  private templateFor(p: ModelPacket): Template | undefined {
    const s = this.service;
    const masked = (ipNum(p.saddr) & ipNum(s.netmask)) >>> 0;
    const vport = s.fwmark !== undefined ? 0 : p.dport === s.port && s.port !== FTP_PORT ? p.dport : 0;
    const vaddr = s.fwmark !== undefined ? `fwm${s.fwmark}` : p.daddr;
    const proto = s.fwmark !== undefined ? 'ip' : p.protocol;
    const key = `${proto}|${masked}|${vaddr}:${vport}`;
    const t = this.templates.get(key);
    if (t && !t.real.removed) {
      t.lastSeen = this.now;
      return t;
    }
    if (t) this.templates.delete(key);
    const real = this.schedule(p);
    if (!real) return undefined;
    const fresh: Template = { key, real, lastSeen: this.now, timeout: s.persistent, nControl: 0, id: this.nextTemplateId++ };
    this.templates.set(key, fresh);
    this.bind(real, 'persist');
    return fresh;
  }

  /**
   * The sweep's verdict on a template: void ones end, those whose time came end unless they still
   * control connections (ip_vs_conn_expire), in which case they wait again 60 s at a time.
   */
  private sweepTemplate(t: Template): void {
    if (t.real.removed) {
      this.templates.delete(t.key);
      return;
    }
    if (!this.expired(t.lastSeen, t.timeout)) return;
    if (t.nControl) {
      const due = t.lastSeen + BigInt(t.timeout) * NS;
      const step = BigInt(TEMPLATE_REARM) * NS;
      t.lastSeen = due + ((this.now - GRANULE - due) / step) * step;
      t.timeout = TEMPLATE_REARM;
      return;
    }
    this.unbind(t.real, 'persist');
    this.templates.delete(t.key);
  }

  // --- scheduling and expiry ------------------------------------------------------------------

  private view(): ModelDest[] {
    return this.service.reals.map((r) => ({
      index: r.id, weight: r.weight, lastWeight: r.lastWeight, addr: ipNum(r.address), port: r.port,
      active: r.active, inactive: r.inactive, overloaded: r.overloaded,
    }));
  }

  private changed(change: SchedChange): void {
    this.service.sched.changed(this.view(), change, this.seconds);
  }

  private schedule(p: ModelPacket): ModelReal | undefined {
    const id = this.service.sched.schedule(this.view(), {
      saddr: ipNum(p.saddr), daddr: ipNum(p.daddr), sport: p.sport, dport: p.dport, flags: this.service.flags,
      now: this.seconds, ...(p.draws ? { draws: p.draws } : {}),
    });
    return this.service.reals.find((r) => r.id === id);
  }

  /** What one run of the sweeper ends: connections first, then templates, then lblc(r) timers. */
  private sweep(): void {
    for (const [key, c] of [...this.conns]) {
      if (c.real.removed || this.expired(c.lastSeen, c.timeout)) this.endConn(key, c);
    }
    for (const t of [...this.templates.values()]) this.sweepTemplate(t);
    (this.service.sched as Partial<LocalityModel>).expire?.(this.seconds);
  }
}
