// Where a balancer lives when it must outlive the process that configured it: a directory on the
// BPF filesystem (default /sys/fs/bpf/xvs) holding every map of the dataplane, the control
// plane's own maps (bpf/xvs_ctl.h) and one pinned XDP link per interface. Successive xvsadm calls,
// xvsd and API users open the same maps, rebuild the Balancer's in-memory state from them
// (readState) and serialise their changes with a lock that is itself a map entry.
import { existsSync, mkdirSync, readdirSync, renameSync, rmdirSync, rmSync, statfsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { AF_INET6, formatAddress } from './address.js';
import { errors } from './errors.js';
import * as L from './layout.js';
import { BpfError, BpfMap, XdpLink, unpin } from './libbpf.js';

/** What the store uses of a loaded dataplane (lib/dataplane.ts, which opens and pins through here). */
interface Dataplane {
  map(name: string): BpfMap;
  enumValue(enumName: string, name: string): number;
}

/** Under the bpffs: the directory of the named network namespaces' tables (lib/nstable.ts). */
export const NETNS_TABLES = 'xvs-netns';

export const DEFAULT_PIN_PATH = '/sys/fs/bpf/xvs';
const BPF_FS_MAGIC = 0xcafe4a11;
const LINKS_DIR = 'links';
/** How long a change waits for another process's change to finish. */
const LOCK_TIMEOUT_MS = 30_000;

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};

/** Key and value sizes of every map, for telling pins of another xvs version apart. */
const SHAPES: Record<string, [number, number]> = {
  services: [L.svcKey.size, L.service.size],
  dests: [4, L.dest.size],
  conns: [L.connKey.size, L.conn.size],
  svc_sched: [4, L.schedState.size],
  sched_slots: [4, L.schedSlot.size],
  dest_conns: [4, L.destConns.size],
  templates: [L.tplKey.size, L.template.size],
  mark_prefixes: [L.markKey.size, L.markPrefix.size],
  mark_rules: [4, L.markRule.size],
  nat_reals: [L.realKey.size, 4],
  svc_stats: [4, L.stats.size],
  dest_stats: [4, L.stats.size],
  reasons: [4, 8],
  config: [4, L.config.size],
  ctl: [4, L.ctl.size],
  ctl_sched: [4, L.schedCtl.size],
  ctl_lock: [4, L.ctlLock.size],
  rate_est: [L.estKey.size, L.est.size],
  dest_trash: [4, L.destTrash.size],
};

// --- the pin directory -----------------------------------------------------------------------

export function isBpffs(dir: string): boolean {
  try {
    return statfsSync(dir).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/** Whether a balancer's maps are pinned at pinPath. */
export function hasPins(pinPath: string): boolean {
  return existsSync(join(pinPath, 'ctl'));
}

/**
 * Pins freshly created maps at pinPath, atomically: they are pinned in a directory of their own
 * that is then renamed into place. Returns false (and pins nothing) when another process pinned
 * a balancer there first.
 */
export function pinNew(pinPath: string, maps: Record<string, BpfMap>): boolean {
  if (basename(pinPath).includes('.')) throw errors.invalid(`${pinPath}: the BPF filesystem refuses names with a dot`);
  const parent = dirname(pinPath);
  mkdirSync(parent, { recursive: true });
  if (!isBpffs(parent)) {
    throw errors.invalid(`${parent} is not on a BPF filesystem (mount it: mount -t bpf bpf /sys/fs/bpf)`);
  }
  // bpffs refuses names with dots.
  const tmp = `${pinPath}-new-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    for (const [name, map] of Object.entries(maps)) map.pin(join(tmp, name));
    renameSync(tmp, pinPath);
    return true;
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    if (hasPins(pinPath)) return false;
    throw e;
  }
}

/** Opens the maps pinned at pinPath, checking that this xvs version made them. */
export function openPins(pinPath: string, names: string[]): Record<string, BpfMap> {
  const maps: Record<string, BpfMap> = {};
  try {
    for (const name of names) {
      const map = BpfMap.openPinned(join(pinPath, name));
      maps[name] = map;
      const shape = SHAPES[name];
      if (shape && (map.keySize !== shape[0] || map.valueSize !== shape[1])) {
        throw errors.invalid(
          `map ${name} pinned at ${pinPath} has key/value sizes ${map.keySize}/${map.valueSize}, this xvs ` +
            `expects ${shape[0]}/${shape[1]}: it was made by another xvs version (remove it: xvsadm --teardown)`,
        );
      }
    }
  } catch (e) {
    for (const map of Object.values(maps)) map.close();
    if (e instanceof BpfError && e.code === 'ENOENT') {
      throw errors.invalid(`${pinPath} lacks maps this xvs needs: it was made by another xvs version (${e.message})`);
    }
    throw e;
  }
  return maps;
}

/** Where the XDP link of an interface is pinned. */
export function linkPinPath(pinPath: string, ifname: string): string {
  return join(pinPath, LINKS_DIR, ifname);
}

export function pinLink(pinPath: string, ifname: string, link: XdpLink): void {
  mkdirSync(join(pinPath, LINKS_DIR), { recursive: true });
  link.pin(linkPinPath(pinPath, ifname));
}

/** Interfaces with a pinned XDP link, sorted. */
export function pinnedInterfaces(pinPath: string): string[] {
  const dir = join(pinPath, LINKS_DIR);
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

/** Detaches the pinned link of an interface and removes its pin; false when there is none. */
export function detachPinnedLink(pinPath: string, ifname: string): boolean {
  const path = linkPinPath(pinPath, ifname);
  if (!existsSync(path)) return false;
  const link = XdpLink.openPinned(path);
  try {
    if (link.ifindex !== 0) link.detach();
  } finally {
    link.close();
  }
  unpin(path);
  return true;
}

/** Detaches every pinned link and removes the whole pin directory. */
export function removePins(pinPath: string): void {
  for (const ifname of pinnedInterfaces(pinPath)) detachPinnedLink(pinPath, ifname);
  rmSync(pinPath, { recursive: true, force: true });
  // The directory of the namespaces' tables goes with the last of them.
  // rmdir, not rm -r: it fails, harmlessly, when another namespace's table is (being) made there.
  const parent = dirname(pinPath);
  if (basename(parent) !== NETNS_TABLES) return;
  try {
    rmdirSync(parent);
  } catch {
    // not empty, or gone already
  }
}

// --- control state -----------------------------------------------------------------------------

export type Ctl = L.Decoded<typeof L.ctl.fields>;

export function readCtl(dp: Dataplane): Ctl {
  return L.ctl.decode(dp.map('ctl').lookup(u32(0))!);
}

export function writeCtl(dp: Dataplane, patch: Partial<Ctl>): void {
  dp.map('ctl').update(u32(0), L.ctl.encode({ ...readCtl(dp), ...patch }));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Takes the balancer's lock: one entry in ctl_lock, created with BPF_NOEXIST so only one process
 * succeeds. A holder that died is noticed by its pid and its lock taken over. Returns the release.
 */
export function lock(dp: Dataplane, timeoutMs = LOCK_TIMEOUT_MS): () => void {
  const map = dp.map('ctl_lock');
  const key = u32(0);
  const mine = L.ctlLock.encode({ pid: process.pid, sinceNs: process.hrtime.bigint() });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      map.update(key, mine, 'noexist');
      return () => {
        const held = map.lookup(key);
        if (held && held.equals(mine)) map.delete(key);
      };
    } catch (e) {
      if (!(e instanceof BpfError) || e.code !== 'EEXIST') throw e;
    }
    const held = map.lookup(key);
    if (!held) continue;
    const holder = L.ctlLock.decode(held).pid;
    if (!alive(holder)) {
      const again = map.lookup(key);
      if (again && again.equals(held)) map.delete(key);
      continue;
    }
    if (Date.now() > deadline) throw errors.busy(`the balancer is locked by process ${holder}`);
    Atomics.wait(sleeper, 0, 0, 5);
  }
}

// --- reading the configuration back -------------------------------------------------------------

export interface StoredDest {
  index: number;
  gen: number;
  address: string;
  port: number;
  /** enum xvs_fwd value. */
  method: number;
  weight: number;
  uThreshold: number;
  lThreshold: number;
  threshGen: number;
  lastWeight: number;
  flags: number;
  /** enum xvs_tun_type and enum xvs_tun_flags values; the gue port. */
  tunType: number;
  tunFlags: number;
  tunPort: number;
  /** Higher is nearer the list head. */
  listOrder: number;
}

export interface StoredService {
  id: number;
  key: L.Decoded<typeof L.svcKey.fields>;
  value: L.Decoded<typeof L.service.fields>;
  sched: L.Decoded<typeof L.schedState.fields> | undefined;
  /** The scheduler table's slots (real servers' dests indexes) and their resume values. */
  slots: number[];
  resume: number[];
  schedCtl: L.Decoded<typeof L.schedCtl.fields> | undefined;
  /** IPVS's list order: newest (or latest back from the trash) first. */
  dests: StoredDest[];
}

/** A real server in the destination trash (lib/trash.ts). */
export interface StoredTrashed {
  dest: StoredDest;
  record: L.Decoded<typeof L.destTrash.fields>;
}

export interface StoredState {
  ctl: Ctl;
  services: StoredService[];
  trash: StoredTrashed[];
}

/** The configuration held in the maps, as the Balancer needs it to carry on where it was left. */
export function readState(dp: Dataplane): StoredState {
  const ctl = readCtl(dp);
  const available = dp.enumValue('xvs_dest_flags', 'XVS_DEST_F_AVAILABLE');
  const dests = new Map<number, StoredDest[]>();
  const trashRecords = readTrash(dp);
  const trash: StoredTrashed[] = [];
  for (const d of readDests(dp, ctl.destHigh)) {
    const record = trashRecords.get(d.index);
    if (!(d.flags & available)) {
      if (record && d.gen) trash.push({ dest: toStoredDest(d), record });
      continue;
    }
    const list = dests.get(d.svc) ?? [];
    list.push(toStoredDest(d));
    dests.set(d.svc, list);
  }
  const slotMap = dp.map('sched_slots');
  const services: StoredService[] = [];
  for (const [k, v] of dp.map('services').entries()) {
    const value = L.service.decode(v);
    const schedRaw = dp.map('svc_sched').lookup(u32(value.id));
    const sched = schedRaw ? L.schedState.decode(schedRaw) : undefined;
    const ctlRaw = dp.map('ctl_sched').lookup(u32(value.id));
    const table = Array.from({ length: sched?.tableLen ?? 0 }, (_, i) =>
      L.schedSlot.decode(slotMap.lookup(u32(sched!.table + i))!),
    );
    services.push({
      id: value.id,
      key: L.svcKey.decode(k),
      value,
      sched,
      slots: table.map((s) => s.dest),
      resume: table.map((s) => s.resume),
      schedCtl: ctlRaw ? L.schedCtl.decode(ctlRaw) : undefined,
      dests: (dests.get(value.id) ?? []).sort((a, b) => b.listOrder - a.listOrder),
    });
  }
  return { ctl, services, trash };
}

/** The destination trash as pinned: dests index → its record. */
function readTrash(dp: Dataplane): Map<number, L.Decoded<typeof L.destTrash.fields>> {
  const out = new Map<number, L.Decoded<typeof L.destTrash.fields>>();
  for (const [k, v] of dp.map('dest_trash').entries()) out.set(k.readUInt32LE(0), L.destTrash.decode(v));
  return out;
}

type DestRecord = L.Decoded<typeof L.dest.fields> & { index: number };

/** The dests array below its high-water mark, batched. */
function readDests(dp: Dataplane, high: number): DestRecord[] {
  const map = dp.map('dests');
  const out: DestRecord[] = [];
  const end = Math.min(high, map.maxEntries);
  let cursor: Buffer | null = null;
  while (out.length < end) {
    const batch = map.lookupBatch(cursor, Math.min(4096, end - out.length));
    batch.keys.forEach((key, i) => out.push({ ...L.dest.decode(batch.values[i]!), index: key.readUInt32LE(0) }));
    if (!batch.next || batch.keys.length === 0) break;
    cursor = batch.next;
  }
  return out;
}

function toStoredDest(d: DestRecord): StoredDest {
  const family = d.af === AF_INET6 ? 'inet6' : 'inet';
  return {
    index: d.index,
    gen: d.gen,
    address: formatAddress(d.addr, family),
    port: d.port,
    method: d.method,
    weight: d.weight,
    uThreshold: d.uThreshold,
    lThreshold: d.lThreshold,
    threshGen: d.threshGen,
    lastWeight: d.lastWeight,
    flags: d.flags,
    tunType: d.tunType,
    tunFlags: d.tunFlags,
    tunPort: d.tunPort,
    listOrder: d.listOrder || d.gen,
  };
}
