// xvs's firewall-mark classifier (bpf/xvs_mark.h): rules ⟨family, destination prefix, protocol,
// destination port range⟩ -> mark, for firewall-mark services (ipvsadm -f). XDP runs before
// netfilter, so marks set by iptables (-j MARK) do not exist yet when xvs sees a packet; these
// rules are xvs's own and only xvs sees the marks. The longest matching prefix wins; rules of the
// same prefix are tried in the order they were added; when none matches, shorter prefixes are
// tried.
import { ADDRESS_BITS, addressBytes, afNumber, familyOf, formatAddress, type Family } from './address.js';
import { type Dataplane, u32 } from './dataplane.js';
import { errors, XvsError } from './errors.js';
import * as L from './layout.js';
import { RangeAllocator, type Range } from './ranges.js';

export interface MarkRule {
  /** Destination address or prefix: '10.0.0.0/24', '10.0.0.1' (a /32). */
  destination: string;
  /** Any protocol when left out. */
  protocol?: 'tcp' | 'udp';
  /** Destination port or inclusive range; any when left out. */
  ports?: number | [number, number];
  /** 1 .. 2^32 - 1. */
  mark: number;
}

const PROTO: Record<string, number> = { tcp: 6, udp: 17 };
/** Rules of one prefix (XVS_MARK_RULES_MAX). */
const RULES_PER_PREFIX = 16;

interface Rule {
  proto: number;
  lo: number;
  hi: number;
  mark: number;
}

interface Prefix {
  family: Family;
  addr: Buffer;
  len: number;
  rules: Rule[];
  range: Range;
}

export class MarkClassifier {
  private readonly prefixes = new Map<string, Prefix>();
  private ranges: RangeAllocator;

  constructor(private readonly dp: Dataplane) {
    this.ranges = new RangeAllocator(dp.map('mark_rules').maxEntries);
  }

  /** Takes over the rules held in the maps (a balancer whose maps are pinned, reopened). */
  reload(): void {
    this.prefixes.clear();
    this.ranges = new RangeAllocator(this.dp.map('mark_rules').maxEntries);
    const rules = this.dp.map('mark_rules');
    for (const [k, v] of this.dp.map('mark_prefixes').entries()) {
      const key = L.markKey.decode(k);
      const pv = L.markPrefix.decode(v);
      const family: Family = key.af === afNumber('inet6') ? 'inet6' : 'inet';
      const range = { start: pv.first, len: pv.count };
      this.ranges.claim(range);
      const list: Rule[] = [];
      for (let i = 0; i < pv.count; i++) {
        const r = L.markRule.decode(rules.lookup(u32(pv.first + i))!);
        list.push({ proto: r.proto, lo: r.portLo, hi: r.portHi, mark: r.mark });
      }
      const addr = Buffer.alloc(16);
      key.addr.copy(addr, 0, 0, family === 'inet6' ? 16 : 4);
      const prefix: Prefix = { family, addr, len: key.prefixlen - 8, rules: list, range };
      this.prefixes.set(this.keyOf(prefix), prefix);
    }
  }

  add(rule: MarkRule): void {
    const { prefix, r } = this.parse(rule);
    const known = this.prefixes.get(this.keyOf(prefix));
    if (known?.rules.some((x) => sameRule(x, r))) throw new XvsError('EEXIST', 'Mark rule already exists');
    if ((known?.rules.length ?? 0) >= RULES_PER_PREFIX) {
      throw errors.full(`Memory allocation problem: more than ${RULES_PER_PREFIX} mark rules for ${rule.destination}`);
    }
    this.write(known ?? prefix, [...(known?.rules ?? []), r]);
  }

  delete(rule: MarkRule): void {
    const { prefix, r } = this.parse(rule);
    const known = this.prefixes.get(this.keyOf(prefix));
    if (!known?.rules.some((x) => sameRule(x, r))) throw new XvsError('ENOENT', 'No such mark rule');
    this.write(known, known.rules.filter((x) => !sameRule(x, r)));
  }

  list(): MarkRule[] {
    return [...this.prefixes.values()].flatMap((p) =>
      p.rules.map((r) => ({
        destination: `${formatAddress(p.addr, p.family)}/${p.len}`,
        ...(r.proto ? { protocol: r.proto === 6 ? ('tcp' as const) : ('udp' as const) } : {}),
        ports: [r.lo, r.hi] as [number, number],
        mark: r.mark,
      })),
    );
  }

  private write(prefix: Prefix, rules: Rule[]): void {
    this.ranges.recycle();
    const key = L.markKey.encode({ prefixlen: 8 + prefix.len, af: afNumber(prefix.family), addr: prefix.addr });
    const prefixes = this.dp.map('mark_prefixes');
    if (!rules.length) {
      prefixes.delete(key);
      this.ranges.release(prefix.range);
      this.prefixes.delete(this.keyOf(prefix));
    } else {
      const range = this.ranges.take(rules.length);
      if (!range) throw errors.full('Memory allocation problem: too many mark rules');
      this.dp.map('mark_rules').updateBatch(
        rules.map((_, i) => u32(range.start + i)),
        rules.map((r) => L.markRule.encode({ mark: r.mark, portLo: r.lo, portHi: r.hi, proto: r.proto })),
      );
      prefixes.update(key, L.markPrefix.encode({ prefixlen: 8 + prefix.len, first: range.start, count: rules.length }));
      this.ranges.release(prefix.range);
      this.prefixes.set(this.keyOf(prefix), { ...prefix, rules, range });
    }
    this.dp.writeConfigFlag('XVS_CFG_F_MARK_RULES', this.prefixes.size > 0);
  }

  private parse(rule: MarkRule): { prefix: Prefix; r: Rule } {
    const [address = '', lenText] = rule.destination.split('/');
    const family = familyOf(address);
    if (!family) throw errors.invalid(`illegal mark rule destination: ${rule.destination}`);
    const bits = ADDRESS_BITS[family];
    const len = lenText === undefined ? bits : Number(lenText);
    if (!/^\d+$/.test(lenText ?? String(bits)) || len > bits) throw errors.invalid(`illegal prefix length in ${rule.destination}`);
    if (!Number.isInteger(rule.mark) || rule.mark < 1 || rule.mark > 0xffffffff) {
      throw errors.invalid(`illegal firewall mark: ${rule.mark}`);
    }
    if (rule.protocol !== undefined && !(rule.protocol in PROTO)) {
      throw errors.invalid(`unknown protocol ${String(rule.protocol)}: use tcp or udp`);
    }
    const [lo, hi] = rule.ports === undefined ? [0, 65535] : typeof rule.ports === 'number' ? [rule.ports, rule.ports] : rule.ports;
    if (![lo, hi].every((p) => Number.isInteger(p) && p >= 0 && p <= 65535) || lo > hi) {
      throw errors.invalid(`illegal port range in mark rule: ${String(rule.ports)}`);
    }
    const addr = addressBytes(address);
    for (let bit = len; bit < bits; bit++) addr[bit >> 3] = addr[bit >> 3]! & ~(0x80 >> (bit & 7));
    return {
      prefix: { family, addr, len, rules: [], range: { start: 0, len: 0 } },
      r: { proto: rule.protocol ? PROTO[rule.protocol]! : 0, lo, hi, mark: rule.mark },
    };
  }

  private keyOf(p: Prefix): string {
    return `${p.family}|${formatAddress(p.addr, p.family)}/${p.len}`;
  }
}

function sameRule(a: Rule, b: Rule): boolean {
  return a.proto === b.proto && a.lo === b.lo && a.hi === b.hi && a.mark === b.mark;
}

