// One table per network namespace, as IPVS keeps one per netns: which pinned balancer a command
// means, and how it reaches the BPF filesystem from inside `ip netns exec`.
//
// Layout on the bpffs (host view): /sys/fs/bpf/xvs is the table of the namespace that has no name
// under /run/netns (the host's); /sys/fs/bpf/xvs-netns/NAME is the table of the namespace NAME
// (--netns may also give an nsfs path, e.g. /proc/PID/ns/net: its table is named after the path).
// `ip netns exec NAME xvsadm …` (found by comparing /proc/self/ns/net with /run/netns/*) and
// `xvsadm --netns NAME …` from the host therefore meet in the same table. An explicit --pin-path
// or XVS_PIN_PATH overrides all of this (--netns then only says where the interfaces are).
//
// `ip netns exec` gives its command a private mount namespace with a fresh /sys, so /sys/fs/bpf is
// not the bpffs there. Every xvs entry point in the host's mount namespace keeps a bind mount of
// it at /run/xvs/bpffs, which `ip netns exec` copies; when that does not exist yet, the bpffs is
// reached through the nearest ancestor process in another mount namespace (the shell that ran
// `ip netns exec`), which also gets the bind mount made for later commands.
//
// A table records its namespace's cookie (SO_NETNS_COOKIE, never reused in a boot, unlike the
// namespace's inode): a namespace deleted and made again under the same name finds a stale table,
// which is removed, and xvsd ends with the namespace its table belongs to.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import type { Dataplane } from './dataplane.js';
import { errors } from './errors.js';
import * as L from './layout.js';
import { BpfMap, netnsCookie, netnsPath } from './libbpf.js';
import { pidAlive } from './pid.js';
import { hasPins, isBpffs, NETNS_TABLES, readCtl, removePins } from './store.js';

export const BPFFS = '/sys/fs/bpf';
/** Where xvs keeps a bind mount of the host's bpffs that `ip netns exec` copies. */
export const BPFFS_BIND = '/run/xvs/bpffs';
const HOST_TABLE = 'xvs';

/** The table a command works on. */
export interface Table {
  /** Where this process reaches its pins. */
  pinPath: string;
  /** The namespace whose interfaces the table attaches (a name under /run/netns). */
  netns?: string;
  /** The namespace the table belongs to; undefined for an explicit pin path (not checked). */
  cookie?: bigint;
  /** The namespace has no name (the host's table). */
  unnamed?: boolean;
  /** Set when the bpffs is only reachable through another process's mount namespace (xvsd starts there). */
  via?: { pid: number; pinPath: string };
}

/** The bind mount, under a lock so that processes starting together make it once. */
const BIND = ['flock', `${dirname(BPFFS_BIND)}/lock`, 'sh', '-c', `mountpoint -q ${BPFFS_BIND} || mount --bind ${BPFFS} ${BPFFS_BIND}`];

/** Makes the bind mount at /run/xvs/bpffs when this mount namespace has the bpffs and it lacks it. */
export function ensureBpffsBind(): void {
  if (!isBpffs(BPFFS) || isBpffs(BPFFS_BIND)) return;
  try {
    mkdirSync(BPFFS_BIND, { recursive: true });
    execFileSync(BIND[0]!, BIND.slice(1), { stdio: 'ignore' });
  } catch {
    // Not fatal here: a later `ip netns exec` falls back to its parent's mount namespace.
  }
}

/** The parent pid of a process, from /proc/PID/stat (the field after the command name). */
function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

/** The nearest ancestor in another mount namespace that has the bpffs at /sys/fs/bpf. */
function hostMountAncestor(): number | undefined {
  const own = readlinkSync('/proc/self/ns/mnt');
  for (let pid = process.ppid; pid > 1; ) {
    try {
      if (readlinkSync(`/proc/${pid}/ns/mnt`) !== own && isBpffs(`/proc/${pid}/root${BPFFS}`)) return pid;
      pid = parentOf(pid);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** Where this process reaches the host's bpffs. */
function reachBpffs(): { root: string; via?: number } {
  if (isBpffs(BPFFS)) {
    ensureBpffsBind();
    return { root: BPFFS };
  }
  if (isBpffs(BPFFS_BIND)) return { root: BPFFS_BIND };
  const pid = hostMountAncestor();
  if (pid === undefined) {
    throw errors.invalid(
      `${BPFFS} is not on a BPF filesystem and ${BPFFS_BIND} is missing: run any xvsadm command outside ` +
        `\`ip netns exec\` once (it keeps a bind mount of ${BPFFS} at ${BPFFS_BIND}), or: ` +
        `mkdir -p ${BPFFS_BIND} && mount --bind ${BPFFS} ${BPFFS_BIND}`,
    );
  }
  try {
    mkdirSync(`/proc/${pid}/root${BPFFS_BIND}`, { recursive: true });
    execFileSync('nsenter', [`--mount=/proc/${pid}/ns/mnt`, '--', ...BIND], { stdio: 'ignore' });
  } catch {
    // This command still gets through /proc/PID/root; the next one tries again.
  }
  return { root: `/proc/${pid}/root${BPFFS}`, via: pid };
}

/** The name under /run/netns of this process's (or nsfs path's) network namespace, as `ip netns identify` finds it. */
export function netnsName(nsPath = '/proc/self/ns/net'): string | undefined {
  let self: { dev: number; ino: number };
  try {
    self = statSync(nsPath);
  } catch {
    return undefined;
  }
  let names: string[];
  try {
    names = readdirSync('/run/netns');
  } catch {
    return undefined;
  }
  return names.sort().find((name) => {
    try {
      const st = statSync(join('/run/netns', name));
      return st.dev === self.dev && st.ino === self.ino;
    } catch {
      return false;
    }
  });
}

/** A namespace name (or nsfs path) as a bpffs directory name: the bpffs refuses dots. */
function dirName(netns: string): string {
  return netns.replace(/%/g, '%25').replace(/\./g, '%2E').replace(/\//g, '%2F');
}

/** The cookie of a namespace named under /run/netns, or given by an absolute nsfs path. */
function cookieOf(netns: string): bigint {
  const named = !netns.includes('/') && netns !== '.' && netns !== '..';
  if (!(isAbsolute(netns) || named) || !existsSync(netnsPath(netns))) {
    throw errors.invalid(`Cannot open network namespace "${netns}": No such file or directory`);
  }
  try {
    return netnsCookie(netns);
  } catch (e) {
    throw errors.invalid(`Cannot open network namespace "${netns}": ${(e as Error).message}`);
  }
}

/**
 * The table meant by an explicit pin path (kept as is), or by a namespace name (--netns), or by the
 * namespace this process runs in.
 */
export function locateTable(opts: { pinPath?: string; netns?: string }): Table {
  if (opts.pinPath) return { pinPath: opts.pinPath, netns: opts.netns };
  // A path of a named namespace means that name, so that both forms meet in one table.
  const netns = opts.netns === undefined ? netnsName() : isAbsolute(opts.netns) ? (netnsName(opts.netns) ?? opts.netns) : opts.netns;
  const cookie = netns === undefined ? netnsCookie() : cookieOf(netns);
  const { root, via } = reachBpffs();
  const sub = netns === undefined ? HOST_TABLE : join(NETNS_TABLES, dirName(netns));
  const table: Table = { pinPath: join(root, sub), netns, cookie, unnamed: netns === undefined };
  if (via !== undefined) table.via = { pid: via, pinPath: join(BPFFS, sub) };
  return table;
}

/** The namespace cookie recorded in the table pinned at pinPath; undefined when none is pinned there. */
function pinnedCookie(pinPath: string): bigint | undefined {
  let ctl: BpfMap;
  try {
    ctl = BpfMap.openPinned(join(pinPath, 'ctl'));
  } catch {
    return undefined;
  }
  try {
    const value = ctl.lookup(Buffer.alloc(4));
    // Another xvs version's table: Balancer.open says so.
    return value && value.length === L.ctl.size ? L.ctl.decode(value).netnsCookie : undefined;
  } finally {
    ctl.close();
  }
}

/** Removes the table pinned at pinPath if it (still) belongs to the namespace `cookie`; stops its xvsd. */
function removeTable(pinPath: string, cookie: bigint): void {
  const aside = `${pinPath}-stale-${process.pid}`;
  try {
    renameSync(pinPath, aside);
  } catch {
    return; // removed by someone else already
  }
  if (pinnedCookie(aside) !== cookie) {
    // A fresh table made in between: put it back.
    renameSync(aside, pinPath);
    return;
  }
  const ctl = BpfMap.openPinned(join(aside, 'ctl'));
  try {
    const pid = L.ctl.decode(ctl.lookup(Buffer.alloc(4))!).daemonPid;
    if (pid !== process.pid && pidAlive(pid)) process.kill(pid, 'SIGTERM');
  } finally {
    ctl.close();
  }
  removePins(aside);
}

/**
 * Before the table is opened: a table left by a namespace of the same name that is gone is removed
 * (the new namespace starts with an empty table, as with IPVS). The host's table belonging to
 * another unnamed namespace is refused: there is no telling which of them is the host.
 */
export function claimTable(t: Table): void {
  if (t.cookie === undefined || !hasPins(t.pinPath)) return;
  const recorded = pinnedCookie(t.pinPath);
  if (!recorded || recorded === t.cookie) return;
  if (t.unnamed) {
    throw errors.invalid(
      `this network namespace has no name under /run/netns and the table at ${t.pinPath} belongs to ` +
        `another one: name it (ip netns attach NAME PID) and use that name, or give --pin-path`,
    );
  }
  removeTable(t.pinPath, recorded);
}

/**
 * For xvsd: whether the namespace the open table belongs to is gone (deleted, or another one made
 * under its name). The table is then removed from pinPath when it is still pinned there.
 */
export function dropIfStale(dp: Dataplane, pinPath: string): boolean {
  const { netns, netnsCookie: cookie } = readCtl(dp);
  if (!cookie || !netns) return false;
  let now: bigint | undefined;
  try {
    now = cookieOf(netns);
  } catch {
    now = undefined;
  }
  if (now === cookie) return false;
  removeTable(pinPath, cookie);
  return true;
}
