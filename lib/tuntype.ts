// The tunnel of a TUN (-i) real server, kept per real server as IPVS keeps it (ip_vs_dest's
// tun_type, tun_port, tun_flags): plain IP-in-IP, GUE (UDP to a port) or GRE, with or without an
// outer checksum, GUE also with remote checksum offload. bpf/xvs_tun.h builds the headers.
import { errors } from './errors.js';

export type TunnelType = 'ipip' | 'gue' | 'gre';
/** ipvsadm --tun-nocsum, --tun-csum, --tun-remcsum (gue only). */
export type TunnelChecksum = 'nocsum' | 'csum' | 'remcsum';

export interface TunnelSettings {
  tunType: TunnelType;
  /** gue: the UDP destination port (1-65535); 0 for the others. */
  tunPort: number;
  tunChecksum: TunnelChecksum;
}

export const DEFAULT_TUNNEL: TunnelSettings = { tunType: 'ipip', tunPort: 0, tunChecksum: 'nocsum' };

/** enum xvs_tun_type and enum xvs_tun_flags (the kernel's values). */
export const TUN_TYPE_ENUM: Record<TunnelType, string> = { ipip: 'XVS_TUN_IPIP', gue: 'XVS_TUN_GUE', gre: 'XVS_TUN_GRE' };
export const TUN_FLAG_ENUM: Record<Exclude<TunnelChecksum, 'nocsum'>, string> = {
  csum: 'XVS_TUN_F_CSUM', remcsum: 'XVS_TUN_F_REMCSUM',
};

/**
 * The tunnel a real server gets: `given` over `current` (an edit keeps what it does not name), the
 * default for any method but tun. Fails with ipvsadm's words where its option rules would.
 */
export function checkTunnel(
  method: string,
  given: Partial<TunnelSettings>,
  current: TunnelSettings = DEFAULT_TUNNEL,
): TunnelSettings {
  const named = given.tunType !== undefined || given.tunPort !== undefined || given.tunChecksum !== undefined;
  if (method !== 'tun') {
    if (named && !(given.tunType === 'ipip' && !given.tunPort && (given.tunChecksum ?? 'nocsum') === 'nocsum')) {
      throw errors.invalid('Tunnel options conflict with forward method');
    }
    return DEFAULT_TUNNEL;
  }
  const type = given.tunType ?? current.tunType;
  if (type !== 'ipip' && type !== 'gue' && type !== 'gre') throw errors.invalid('illegal tunnel type specified');
  // A new type starts from the defaults, so that an old type's port or checksum does not linger.
  const base = type === current.tunType ? current : DEFAULT_TUNNEL;
  const port = given.tunPort ?? base.tunPort;
  const checksum = given.tunChecksum ?? base.tunChecksum;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw errors.invalid('illegal tunnel port specified');
  if (checksum !== 'nocsum' && checksum !== 'csum' && checksum !== 'remcsum') {
    throw errors.invalid(`illegal tunnel checksum ${String(checksum)}`);
  }
  if (type === 'gue' && port === 0) throw errors.invalid("You need to supply the 'tun-port' option for the 'gue' tunnel type");
  if (type !== 'gue' && port !== 0) throw errors.invalid(`Illegal 'tun-port' option with the '${type}' tunnel type`);
  if (type === 'ipip' && checksum !== 'nocsum') throw errors.invalid(`Illegal 'tun-${checksum}' option with the 'ipip' tunnel type`);
  if (type === 'gre' && checksum === 'remcsum') throw errors.invalid("Illegal 'tun-remcsum' option with the 'gre' tunnel type");
  return { tunType: type, tunPort: port, tunChecksum: checksum };
}

/** The dests map's tun_flags for a checksum setting. */
export function tunnelFlags(checksum: TunnelChecksum, enumValue: (name: string) => number): number {
  return checksum === 'nocsum' ? 0 : enumValue(TUN_FLAG_ENUM[checksum]);
}

/** The setting back from the dests map's tun_type, tun_port and tun_flags. */
export function storedTunnel(
  type: number, port: number, flags: number, enumValue: (e: string, name: string) => number,
): TunnelSettings {
  const types = Object.entries(TUN_TYPE_ENUM) as [TunnelType, string][];
  const tunType = types.find(([, e]) => enumValue('xvs_tun_type', e) === type)?.[0] ?? 'ipip';
  const tunChecksum = flags & enumValue('xvs_tun_flags', TUN_FLAG_ENUM.remcsum)
    ? 'remcsum'
    : flags & enumValue('xvs_tun_flags', TUN_FLAG_ENUM.csum) ? 'csum' : 'nocsum';
  return { tunType, tunPort: port, tunChecksum };
}

/** ipvsadm's TunnelInfo column (print_tunnel_info): ipip, gue:PORT:-c|+c|r+c, gre:-c|+c. */
export function tunnelInfo(t: TunnelSettings): string {
  const c = t.tunChecksum === 'remcsum' ? 'r+c' : t.tunChecksum === 'csum' ? '+c' : '-c';
  if (t.tunType === 'gue') return `gue:${t.tunPort}:${c}`;
  if (t.tunType === 'gre') return `gre:${c}`;
  return 'ipip';
}

/** ipvsadm -S's tunnel options of a TUN real server. */
export function tunnelRule(t: TunnelSettings): string {
  if (t.tunType === 'ipip') return ' --tun-type ipip';
  const port = t.tunType === 'gue' ? ` --tun-port ${t.tunPort}` : '';
  return ` --tun-type ${t.tunType}${port} --tun-${t.tunChecksum}`;
}
