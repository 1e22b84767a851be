// The decapsulation program for real servers of TUN services (bpf/xvs_decap.bpf.c): it removes the
// outer headers of IP-in-IP, GUE (UDP to the given ports) and GRE packets in XDP and passes the
// inner packet to the stack, so that a real server needs none of the ipip, ip6_tunnel, fou and
// ip_gre modules. attachDecap() loads a copy
// of the program and attaches it to one interface; the handle detaches and frees it.
import { join } from 'node:path';
import { addressBytes, afNumber, parsePrefix } from './address.js';
import { readEnumCounters } from './dataplane.js';
import { errors } from './errors.js';
import * as L from './layout.js';
import { BpfObject, type BpfMap, type BpfProgram, type BtfEnumValue, type XdpMode } from './libbpf.js';
import { packageRoot } from './native.js';

export interface DecapOptions {
  /**
   * Outer source prefixes allowed to tunnel to this server (CIDR or address, IPv4 or IPv6), e.g.
   * the balancer's tunnel source prefix. Packets from other sources are dropped. Default: any.
   */
  sources?: string[];
  /**
   * UDP destination ports whose packets are GUE (the balancer's --tun-port for this server). Default:
   * none, and GUE packets are passed untouched. GRE (version 0, no key) is always taken.
   */
  guePorts?: number[];
  /** Path of the compiled object; defaults to the package's build/bpf/xvs_decap.bpf.o. */
  objectPath?: string;
}

export interface DecapAttachOptions {
  /** Network namespace (name under /run/netns) of the interface. */
  netns?: string;
  /** native (driver) XDP, the default, or generic (skb) XDP. */
  mode?: XdpMode;
}

export interface DecapHandle {
  readonly ifname: string;
  /** Packets by what the program did with them: ok, pass_not_tunnel, drop_source, ... */
  stats(): Record<string, bigint>;
  /** Detaches the program and frees it. */
  detach(): void;
}

const MAX_SOURCES = 1024;
const MAX_GUE_PORTS = 64;

function be16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

/** A loaded decapsulation program, not attached yet. */
export class Decap {
  readonly program: BpfProgram;
  private readonly object: BpfObject;
  private readonly statsMap: BpfMap;
  private readonly reasons: BtfEnumValue[];

  constructor(opts: DecapOptions = {}) {
    const sources = (opts.sources ?? []).map(sourceKey);
    if (sources.length > MAX_SOURCES) throw errors.invalid(`at most ${MAX_SOURCES} tunnel source prefixes`);
    const ports = opts.guePorts ?? [];
    if (ports.length > MAX_GUE_PORTS) throw errors.invalid(`at most ${MAX_GUE_PORTS} GUE ports`);
    for (const port of ports) {
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw errors.invalid(`illegal GUE port: ${port}`);
    }
    const obj = BpfObject.open(opts.objectPath ?? join(packageRoot(), 'build', 'bpf', 'xvs_decap.bpf.o'));
    try {
      const problems = L.layoutMismatches((name) => obj.btfStruct(name), L.DECAP_CODECS);
      if (problems.length) throw new Error(`xvs: decap map layouts disagree with BTF:\n  ${problems.join('\n  ')}`);
      const reasons = obj.btfEnum('xvs_decap_reason');
      if (!reasons) throw new Error("xvs: enum xvs_decap_reason is not in the decap object's BTF");
      this.reasons = reasons;
      obj.setGlobals('.rodata', { filter_sources: sources.length > 0 });
      obj.load();
      const allowed = obj.map('decap_sources');
      for (const key of sources) allowed.update(key, Buffer.from([1]));
      allowed.close();
      const gue = obj.map('decap_gue_ports');
      for (const port of ports) gue.update(be16(port), Buffer.from([1]));
      gue.close();
    } catch (e) {
      obj.close();
      throw e;
    }
    this.object = obj;
    this.program = obj.program('xvs_decap');
    this.statsMap = obj.map('decap_stats');
  }

  stats(): Record<string, bigint> {
    return readEnumCounters(this.statsMap, this.reasons.map(({ name, value }) => [name, value]), 'XVS_DECAP_');
  }

  /** Attaches to an interface; the handle's detach() also frees this program. */
  attach(ifname: string, opts: DecapAttachOptions = {}): DecapHandle {
    const link = this.program.attachXdp(ifname, { mode: opts.mode ?? 'native', netns: opts.netns });
    return {
      ifname,
      stats: () => this.stats(),
      detach: () => {
        link.detach();
        link.close();
        this.close();
      },
    };
  }

  close(): void {
    this.statsMap.close();
    this.program.close();
    this.object.close();
  }
}

/** Loads the decapsulation program and attaches it to an interface of a real server. */
export function attachDecap(ifname: string, opts: DecapOptions & DecapAttachOptions = {}): DecapHandle {
  const decap = new Decap(opts);
  try {
    return decap.attach(ifname, opts);
  } catch (e) {
    decap.close();
    throw e;
  }
}

/** The LPM trie key of a prefix: af and padding (32 bits) come first in the matched bits. */
function sourceKey(text: string): Buffer {
  const prefix = parsePrefix(text);
  if (!prefix) throw errors.invalid(`illegal tunnel source prefix: ${text}`);
  return L.decapSrcKey.encode({
    prefixlen: 32 + prefix.length, af: afNumber(prefix.family), addr: addressBytes(prefix.address),
  });
}
