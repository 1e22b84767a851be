// Codecs for the dataplane's map keys and values. The layouts are those of bpf/xvs_structs.h;
// checkLayouts() compares every codec with the object's BTF, so a field moved in C fails loudly
// at load instead of silently corrupting maps.

type FieldKind = 'u8' | 'u16' | 'u32' | 'u64' | 'be16' | 'addr' | 'u32x16' | 'cstr64' | 'connKey' | 'xvs_tpl_key' | 'xvs_svc_key'
  | 'callid';

interface FieldSpec<K extends FieldKind = FieldKind> {
  readonly offset: number;
  readonly kind: K;
}

type Value<K extends FieldKind> = K extends 'u64'
  ? bigint
  : K extends 'addr' | 'connKey' | 'xvs_tpl_key' | 'xvs_svc_key' | 'callid'
    ? Buffer
    : K extends 'u32x16'
      ? number[]
      : K extends 'cstr64'
        ? string
        : number;

export type Decoded<S extends Record<string, FieldSpec>> = { [F in keyof S]: Value<S[F]['kind']> };

// A nested struct (xvs_tpl_key, connKey) travels as its encoded bytes; its own codec checks its layout.
const SIZES: Record<FieldKind, number> = {
  u8: 1, u16: 2, u32: 4, u64: 8, be16: 2, addr: 16, u32x16: 64, cstr64: 64, connKey: 40, xvs_tpl_key: 36, xvs_svc_key: 24,
  callid: 256,
};

export class StructCodec<S extends Record<string, FieldSpec>> {
  constructor(
    readonly cName: string,
    readonly size: number,
    readonly fields: S,
  ) {}

  /** Encodes a record; fields left out are zero. */
  encode(value: Partial<Decoded<S>>): Buffer {
    const buf = Buffer.alloc(this.size);
    for (const [name, spec] of Object.entries(this.fields)) {
      const v = (value as Record<string, unknown>)[name];
      if (v !== undefined) write(buf, spec, v);
    }
    return buf;
  }

  decode(buf: Buffer): Decoded<S> {
    const out: Record<string, unknown> = {};
    for (const [name, spec] of Object.entries(this.fields)) out[name] = read(buf, spec);
    return out as Decoded<S>;
  }
}

function write(buf: Buffer, { offset, kind }: FieldSpec, v: unknown): void {
  switch (kind) {
    case 'u8': buf.writeUInt8(v as number, offset); break;
    case 'u16': buf.writeUInt16LE(v as number, offset); break;
    case 'be16': buf.writeUInt16BE(v as number, offset); break;
    case 'u32': buf.writeUInt32LE(v as number, offset); break;
    case 'u64': buf.writeBigUInt64LE(v as bigint, offset); break;
    case 'addr': (v as Buffer).copy(buf, offset, 0, 16); break;
    case 'connKey': (v as Buffer).copy(buf, offset, 0, 40); break;
    case 'xvs_tpl_key': (v as Buffer).copy(buf, offset, 0, SIZES.xvs_tpl_key); break;
    case 'xvs_svc_key': (v as Buffer).copy(buf, offset, 0, SIZES.xvs_svc_key); break;
    case 'callid': (v as Buffer).copy(buf, offset, 0, SIZES.callid); break;
    case 'u32x16': (v as number[]).forEach((n, i) => buf.writeUInt32LE(n, offset + 4 * i)); break;
    case 'cstr64': buf.write((v as string).slice(0, 63), offset, 'utf8'); break;
  }
}

function read(buf: Buffer, { offset, kind }: FieldSpec): unknown {
  switch (kind) {
    case 'u8': return buf.readUInt8(offset);
    case 'u16': return buf.readUInt16LE(offset);
    case 'be16': return buf.readUInt16BE(offset);
    case 'u32': return buf.readUInt32LE(offset);
    case 'u64': return buf.readBigUInt64LE(offset);
    case 'addr': return Buffer.from(buf.subarray(offset, offset + 16));
    case 'connKey': return Buffer.from(buf.subarray(offset, offset + 40));
    case 'xvs_tpl_key': return Buffer.from(buf.subarray(offset, offset + SIZES.xvs_tpl_key));
    case 'xvs_svc_key': return Buffer.from(buf.subarray(offset, offset + SIZES.xvs_svc_key));
    case 'callid': return Buffer.from(buf.subarray(offset, offset + SIZES.callid));
    case 'u32x16': return Array.from({ length: 16 }, (_, i) => buf.readUInt32LE(offset + 4 * i));
    case 'cstr64': {
      const bytes = buf.subarray(offset, offset + 64);
      const end = bytes.indexOf(0);
      return bytes.subarray(0, end < 0 ? 64 : end).toString('utf8');
    }
  }
}

const f = <K extends FieldKind>(offset: number, kind: K): FieldSpec<K> => ({ offset, kind });

export const svcKey = new StructCodec('xvs_svc_key', 24, {
  addr: f(0, 'addr'), port: f(16, 'be16'), proto: f(18, 'u8'), af: f(19, 'u8'), fwmark: f(20, 'u32'),
});

export const service = new StructCodec('xvs_service', 32, {
  id: f(0, 'u32'), flags: f(4, 'u32'), sched: f(8, 'u32'), timeout: f(12, 'u32'),
  netmask: f(16, 'u32'), schedFlags: f(20, 'u32'), fwmark: f(24, 'u32'), port: f(28, 'be16'),
});

export const dest = new StructCodec('xvs_dest', 60, {
  addr: f(0, 'addr'), port: f(16, 'be16'), af: f(18, 'u8'), method: f(19, 'u8'), svc: f(20, 'u32'),
  gen: f(24, 'u32'), flags: f(28, 'u32'), weight: f(32, 'u32'), uThreshold: f(36, 'u32'),
  lThreshold: f(40, 'u32'), threshGen: f(44, 'u32'), lastWeight: f(48, 'u32'),
  tunType: f(52, 'u8'), tunFlags: f(53, 'u8'), tunPort: f(54, 'be16'), listOrder: f(56, 'u32'),
});

export const destConns = new StructCodec('xvs_dest_conns', 16, {
  active: f(0, 'u32'), inactive: f(4, 'u32'), persist: f(8, 'u32'), overload: f(12, 'u32'),
});

export const stats = new StructCodec('xvs_stats', 40, {
  conns: f(0, 'u64'), inpkts: f(8, 'u64'), outpkts: f(16, 'u64'), inbytes: f(24, 'u64'),
  outbytes: f(32, 'u64'),
});

/** Counters of a service or real server (xvs_stats), summed over CPUs. */
export type Stats = Decoded<typeof stats.fields>;

export const connKey = new StructCodec('xvs_conn_key', 40, {
  saddr: f(0, 'addr'), daddr: f(16, 'addr'), sport: f(32, 'be16'), dport: f(34, 'be16'),
  proto: f(36, 'u8'), af: f(37, 'u8'), dir: f(38, 'u8'),
});

export const tplKey = new StructCodec('xvs_tpl_key', 36, {
  saddr: f(0, 'addr'), daddr: f(16, 'addr'), dport: f(32, 'be16'), proto: f(34, 'u8'), af: f(35, 'u8'),
});

export const conn = new StructCodec('xvs_conn', 104, {
  lastSeen: f(0, 'u64'), tplId: f(8, 'u64'), svc: f(16, 'u32'), dest: f(20, 'u32'), destGen: f(24, 'u32'),
  timeout: f(28, 'u32'), vaddr: f(32, 'addr'), vport: f(48, 'be16'), state: f(50, 'u8'),
  method: f(51, 'u8'), flags: f(52, 'u32'), counted: f(56, 'u32'), rport: f(60, 'be16'),
  ctl: f(64, 'xvs_tpl_key'),
});

/** sip_templates' key (--pe sip): a template key and the Call-ID's bytes (len of the 256). */
export const sipKey = new StructCodec('xvs_sip_key', 296, {
  tpl: f(0, 'xvs_tpl_key'), len: f(36, 'u32'), callid: f(40, 'callid'),
});

export const template = new StructCodec('xvs_template', 48, {
  lastSeen: f(0, 'u64'), id: f(8, 'u64'), referenced: f(16, 'u64'), svc: f(24, 'u32'), dest: f(28, 'u32'),
  destGen: f(32, 'u32'), timeout: f(36, 'u32'), counted: f(40, 'u32'), state: f(44, 'u32'),
});

export const schedState = new StructCodec('xvs_sched_state', 40, {
  cursor: f(0, 'u64'), table: f(8, 'u32'), tableLen: f(12, 'u32'), dests: f(16, 'u32'),
  ndests: f(20, 'u32'), start: f(24, 'u32'), atHead: f(28, 'u32'), wrrDi: f(32, 'u32'), wrrMw: f(36, 'u32'),
});

export const schedSlot = new StructCodec('xvs_sched_slot', 16, {
  dest: f(0, 'u32'), resume: f(4, 'u32'), weight: f(8, 'u32'), threshGen: f(12, 'u32'),
});

export const lblcKey = new StructCodec('xvs_lblc_key', 20, { addr: f(0, 'addr'), svc: f(16, 'u32') });

export const lblcEntry = new StructCodec('xvs_lblc_entry', 16, {
  lastuse: f(0, 'u64'), dest: f(8, 'u32'), destGen: f(12, 'u32'),
});

export const lblcrEntry = new StructCodec('xvs_lblcr_entry', 152, {
  lastuse: f(0, 'u64'), lastmod: f(8, 'u64'), size: f(16, 'u32'), dest: f(24, 'u32x16'),
  destGen: f(88, 'u32x16'),
});

export const realKey = new StructCodec('xvs_real_key', 20, {
  addr: f(0, 'addr'), port: f(16, 'be16'), proto: f(18, 'u8'), af: f(19, 'u8'),
});

export const markKey = new StructCodec('xvs_mark_key', 24, {
  prefixlen: f(0, 'u32'), af: f(4, 'u8'), addr: f(5, 'addr'),
});

// Control-plane state (bpf/xvs_ctl.h): never read by the XDP program.
export const ctl = new StructCodec('xvs_ctl', 104, {
  destGen: f(0, 'u32'), version: f(4, 'u32'), daemonPid: f(8, 'u32'), destHigh: f(12, 'u32'), daemonTickNs: f(16, 'u64'),
  netns: f(24, 'cstr64'), netnsCookie: f(88, 'u64'), trashTimerNs: f(96, 'u64'),
});

/** A real server in the destination trash (bpf/xvs_trash.h). */
export const destTrash = new StructCodec('xvs_dest_trash', 40, {
  svc: f(0, 'xvs_svc_key'), idleSince: f(24, 'u64'), orphaned: f(32, 'u32'),
});

export const schedCtl = new StructCodec('xvs_sched_ctl', 16, { start: f(0, 'u32'), last: f(4, 'u32'), cw: f(8, 'u32') });

export const ctlLock = new StructCodec('xvs_ctl_lock', 16, { pid: f(0, 'u32'), sinceNs: f(8, 'u64') });

export const estKey = new StructCodec('xvs_est_key', 8, { kind: f(0, 'u32'), index: f(4, 'u32') });

export const est = new StructCodec('xvs_est', 80, {
  lastConns: f(0, 'u64'), lastInpkts: f(8, 'u64'), lastOutpkts: f(16, 'u64'), lastInbytes: f(24, 'u64'),
  lastOutbytes: f(32, 'u64'), cps: f(40, 'u64'), inpps: f(48, 'u64'), outpps: f(56, 'u64'), inbps: f(64, 'u64'),
  outbps: f(72, 'u64'),
});

export const tunSource = new StructCodec('xvs_tun_source', 32, { addr: f(0, 'addr'), hostmask: f(16, 'addr') });

export const tunSrcCache = new StructCodec('xvs_tun_src_cache', 32, {
  src: f(0, 'addr'), expires: f(16, 'u64'), destGen: f(24, 'u32'),
});

export const fragKey = new StructCodec('xvs_frag_key', 40, {
  saddr: f(0, 'addr'), daddr: f(16, 'addr'), id: f(32, 'u32'), proto: f(36, 'u8'), af: f(37, 'u8'),
});

export const frag = new StructCodec('xvs_frag', 48, { created: f(0, 'u64'), conn: f(8, 'connKey') });

export const vipKey = new StructCodec('xvs_vip_key', 20, { addr: f(0, 'addr'), af: f(16, 'u8') });

/** The key of xvs_decap.bpf.c's decap_sources LPM trie. */
export const decapSrcKey = new StructCodec('xvs_decap_src_key', 24, {
  prefixlen: f(0, 'u32'), af: f(4, 'u8'), addr: f(8, 'addr'),
});

export const markPrefix = new StructCodec('xvs_mark_prefix', 12, {
  prefixlen: f(0, 'u32'), first: f(4, 'u32'), count: f(8, 'u32'),
});

export const markRule = new StructCodec('xvs_mark_rule', 12, {
  mark: f(0, 'u32'), portLo: f(4, 'u16'), portHi: f(6, 'u16'), proto: f(8, 'u8'),
});

export const twosDraws = new StructCodec('xvs_twos_draws', 16, {
  r1: f(0, 'u32'), r2: f(4, 'u32'), r1Hi: f(8, 'u32'), r2Hi: f(12, 'u32'),
});

export const sweep = new StructCodec('xvs_sweep', 32, {
  connsEnded: f(0, 'u64'), templatesEnded: f(8, 'u64'), templatesRearmed: f(16, 'u64'),
  repliesEnded: f(24, 'u64'),
});

export const config = new StructCodec('xvs_config', 80, {
  timeout: f(0, 'u32x16'), flags: f(64, 'u32'), clockNs: f(72, 'u64'),
});

type AnyCodec = StructCodec<Record<string, FieldSpec>>;

export const ALL_CODECS: AnyCodec[] = [
  svcKey, service, dest, destConns, stats, connKey, tplKey, conn, template, schedState, schedSlot,
  lblcKey, lblcEntry, lblcrEntry, realKey, markKey, markPrefix, markRule, twosDraws, sweep, config,
  ctl, schedCtl, ctlLock, estKey, est, tunSource, tunSrcCache, fragKey, frag, vipKey, destTrash,
  sipKey,
];

/** The codecs of xvs_decap.bpf.o. */
export const DECAP_CODECS: AnyCodec[] = [decapSrcKey];

export interface BtfStructView {
  size: number;
  members: { name: string; offsetBits: number; size: number }[];
}

/** Names what differs between the codecs and the C structs described by BTF; empty when none. */
export function layoutMismatches(btf: (cName: string) => BtfStructView | null, codecs = ALL_CODECS): string[] {
  const problems: string[] = [];
  for (const codec of codecs) {
    const s = btf(codec.cName);
    if (!s) {
      problems.push(`struct ${codec.cName}: not in BTF`);
      continue;
    }
    if (s.size !== codec.size) problems.push(`struct ${codec.cName}: size ${s.size}, codec ${codec.size}`);
    const members = new Map(s.members.map((m) => [snake(m.name), m]));
    for (const [name, spec] of Object.entries<FieldSpec>(codec.fields)) {
      const m = members.get(snake(name));
      if (!m) {
        problems.push(`${codec.cName}.${snake(name)}: not in BTF`);
      } else if (m.offsetBits !== spec.offset * 8 || m.size !== SIZES[spec.kind]) {
        problems.push(
          `${codec.cName}.${m.name}: offset ${m.offsetBits / 8} size ${m.size}, ` +
            `codec offset ${spec.offset} size ${SIZES[spec.kind]}`,
        );
      }
    }
    const covered = new Set(Object.keys(codec.fields).map(snake));
    for (const m of s.members) {
      if (!covered.has(m.name) && m.name !== 'pad') problems.push(`${codec.cName}.${m.name}: missing from codec`);
    }
  }
  return problems;
}

function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}
