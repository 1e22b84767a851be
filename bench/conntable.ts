// Connection-table scale: the established DR path with 1K … 10M live connections (prefilled with
// batch map updates, then every measured packet belongs to one of them), the memory a connection
// takes, the new-connection rate under a flood of distinct flows, and what a full table does.
import { readFileSync } from 'node:fs';
import { addressBytes } from '../lib/address.js';
import type { Balancer } from '../lib/balancer.js';
import * as L from '../lib/layout.js';
import { CLIENT_FLOWS, flowNumbers, flowTuple, frameTemplate, TCP_ACK, TCP_SYN } from './frames.js';
import { packetLab, VIP } from './lab.js';
import { clientFrames, countConnections, labBalancer, PacketBench } from './perpacket.js';
import type { Profile } from './profile.js';
import { describeReasons, median, type Progress } from './progress.js';
import { EmptyProgram, type TrafficSpec } from './programs.js';

/** Slots beyond the live connections, so that prefilling never makes the LRU evict (each CPU
 * keeps up to 128 free slots of its own, and an empty global list evicts in batches of 128). */
const HEADROOM = 1024;
const REALS = 10;
const PORT = 80;
const BATCH = 65_536;
/** A generous estimate of kernel memory per slot, to skip sizes this machine cannot hold. */
const ESTIMATED_BYTES_PER_SLOT = 200;

export interface TableSizeRow {
  connections: number;
  /** The conns map's max_entries. */
  slots: number;
  status: 'measured' | 'skipped';
  note?: string;
  /** Median kernel ns per packet on the established DR path, generator included. */
  ns?: number;
  overEmptyNs?: number;
  trialsNs?: number[];
  /** Kernel memory of the conns map (fdinfo memlock), and per slot: what a connection takes. */
  mapBytes?: number;
  bytesPerSlot?: number;
  /** Connections written per second by the batch prefill from user space. */
  prefillPerSecond?: number;
  path?: string;
}

export interface FullTableResult {
  slots: number;
  /** New connections per packet: ns and millions per second, with room left and with the table full. */
  withRoom: { ns: number; mcps: number };
  whenFull: { ns: number; mcps: number };
  /** Established connections in the full table before the flood (the LRU evicts a little early). */
  established: number;
  /** Fresh SYNs of the flood. */
  flood: number;
  /** Established connections the flood evicted: their next packet finds no connection. */
  evicted: number;
  evictedShare: number;
  /** New connections dropped because none could be stored (drop_conn_full). */
  dropped: number;
  /** How xvs counted the flood's packets. */
  path: string;
}

export interface ConnTableResult {
  repeat: number;
  trials: number;
  harnessNs: number;
  sizes: TableSizeRow[];
  full: FullTableResult;
}

function memAvailable(): number {
  const m = /^MemAvailable:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) * 1024 : Infinity;
}

/** The kernel's accounting of a map's memory (fdinfo memlock). */
function mapMemory(fd: number): number {
  const m = /^memlock:\s+(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  if (!m) throw new Error('no memlock in map fdinfo');
  return Number(m[1]);
}

function connKey(f: number): Buffer {
  const { address, port } = flowTuple(CLIENT_FLOWS, f);
  return L.connKey.encode({
    saddr: addressBytes(address), daddr: addressBytes(VIP), sport: port, dport: PORT, proto: 6, af: 2, dir: 0,
  });
}

/**
 * Established connections as the dataplane itself stores them: one per real server, opened by a
 * SYN of flows `from`.. and read back, then moved to ESTABLISHED with its timeout.
 */
function establishedTemplates(bench: PacketBench, lb: Balancer, synTraffic: TrafficSpec, from: number): Buffer[] {
  bench.prime({ ...synTraffic, flows: 0, start: from }, lb.dataplane.program, REALS);
  const conns = lb.dataplane.map('conns');
  const state = lb.dataplane.enumValue('xvs_conn_state', 'XVS_TCP_S_ESTABLISHED');
  const timeout = lb.timeouts().tcp;
  return Array.from({ length: REALS }, (_, i) => {
    const raw = conns.lookup(connKey(from + i));
    if (!raw) throw new Error(`conn-table: the SYN of flow ${from + i} opened no connection`);
    return L.conn.encode({ ...L.conn.decode(raw), state, timeout });
  });
}

/** Writes connections for flows 0..count-1 with batch updates; returns seconds taken. */
function prefill(lb: Balancer, count: number, templates: Buffer[]): number {
  const conns = lb.dataplane.map('conns');
  const keySize = L.connKey.size;
  const saddrAt = L.connKey.fields.saddr.offset;
  const sportAt = L.connKey.fields.sport.offset;
  const base = connKey(0);
  const started = process.hrtime.bigint();
  for (let first = 0; first < count; first += BATCH) {
    const n = Math.min(BATCH, count - first);
    const keyChunk = Buffer.alloc(n * keySize);
    const keys: Buffer[] = [];
    const values: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      const f = first + i;
      const { addr, port } = flowNumbers(CLIENT_FLOWS, f);
      const k = keyChunk.subarray(i * keySize, (i + 1) * keySize);
      base.copy(k);
      k.writeUInt32BE(addr, saddrAt);
      k.writeUInt16BE(port, sportAt);
      keys.push(k);
      values.push(templates[f % templates.length]!);
    }
    conns.updateBatch(keys, values);
  }
  return Number(process.hrtime.bigint() - started) / 1e9;
}

export async function runConnTable(profile: Profile, progress: Progress): Promise<ConnTableResult> {
  const c = profile.connTable;
  const lab = await packetLab(REALS);
  const bench = new PacketBench(lab, c, progress);
  const empty = new EmptyProgram();
  try {
    const traffic: Traffic = (flags, flows, start = 0) => ({
      template: frameTemplate(clientFrames(lab, { address: VIP, port: PORT }, flags)), space: CLIENT_FLOWS, flows, start,
    });
    bench.harnessNs = median(bench.measure(traffic(TCP_ACK, 1024), empty.program).trials);
    const sizes: TableSizeRow[] = [];
    for (const connections of c.sizes) sizes.push(measureSize(bench, connections, traffic, progress));
    const full = fullTable(bench, c.fullSize, traffic, progress);
    return {
      repeat: c.repeat, trials: c.trials, harnessNs: bench.harnessNs, sizes, full,
    };
  } finally {
    empty.close();
    await lab.destroy();
  }
}

type Traffic = (flags: number, flows: number, start?: number) => TrafficSpec;

function measureSize(bench: PacketBench, connections: number, traffic: Traffic, progress: Progress): TableSizeRow {
  const slots = connections + HEADROOM;
  const need = slots * ESTIMATED_BYTES_PER_SLOT;
  const available = memAvailable();
  if (need > available / 2) {
    const note = `skipped: needs about ${(need / 2 ** 30).toFixed(1)} GiB, ${(available / 2 ** 30).toFixed(1)} GiB available`;
    progress.step('conn-table', `${connections} connections: ${note}`);
    return { connections, slots, status: 'skipped', note };
  }
  progress.step('conn-table', `${connections} live connections: prefilling`);
  const lb = labBalancer(bench.lab, { maxConnections: slots, scheduler: 'rr', reals: REALS });
  try {
    const templates = establishedTemplates(bench, lb, traffic(TCP_SYN, 0), connections);
    const seconds = prefill(lb, connections, templates);
    const mapBytes = mapMemory(lb.dataplane.map('conns').fd);
    lb.zero();
    const { trials } = bench.measure(traffic(TCP_ACK, connections), lb.dataplane.program);
    const { text, shares } = describeReasons(lb.reasons());
    if ((shares.fwd_redirect ?? 0) < 0.999) progress.warn(`${connections} connections: expected every packet forwarded, got ${text}`);
    const ns = median(trials);
    const row: TableSizeRow = {
      connections, slots, status: 'measured', ns, overEmptyNs: ns - bench.harnessNs, trialsNs: trials,
      mapBytes, bytesPerSlot: mapBytes / slots, prefillPerSecond: connections / seconds, path: text,
    };
    progress.step('conn-table', `${connections} live connections: ${ns} ns/packet, ${Math.round(mapBytes / slots)} B/slot, prefill ${(connections / seconds / 1e6).toFixed(2)} M/s`);
    return row;
  } finally {
    lb.close();
  }
}

/** ns per packet of one run of `count` fresh SYNs from flow `start` on, and how xvs counted them. */
function flood(bench: PacketBench, lb: Balancer, traffic: Traffic, count: number, start: number): { ns: number; reasons: Record<string, bigint> } {
  lb.zero();
  const { trials } = bench.measure(traffic(TCP_SYN, 0, start), lb.dataplane.program, 'clients', { repeat: count, trials: 1 });
  return { ns: trials[0]!, reasons: lb.reasons() };
}

/** Established connections in the table. */
function countEstablished(lb: Balancer): number {
  const at = L.conn.fields.state.offset;
  const established = lb.dataplane.enumValue('xvs_conn_state', 'XVS_TCP_S_ESTABLISHED');
  return countConnections(lb, (value) => value[at] === established);
}

function fullTable(bench: PacketBench, size: number, traffic: Traffic, progress: Progress): FullTableResult {
  const count = Math.max(1, size >> 1);
  progress.step('conn-table', `full table: ${size} slots, flood of ${count} new connections, with room and full`);
  const roomy = labBalancer(bench.lab, { maxConnections: size + count + HEADROOM, scheduler: 'rr', reals: REALS });
  let withRoom: number;
  try {
    withRoom = flood(bench, roomy, traffic, count, size).ns;
  } finally {
    roomy.close();
  }
  const lb = labBalancer(bench.lab, { maxConnections: size, scheduler: 'rr', reals: REALS });
  try {
    const templates = establishedTemplates(bench, lb, traffic(TCP_SYN, 0), size + count);
    // The table is not LRU (exact connection counts): fill what the templates' SYNs left.
    prefill(lb, size - [...lb.dataplane.map('conns').keys()].length, templates);
    const established = countEstablished(lb);
    const f = flood(bench, lb, traffic, count, size);
    const evicted = established - countEstablished(lb);
    const result: FullTableResult = {
      slots: size,
      withRoom: { ns: withRoom, mcps: 1000 / withRoom },
      whenFull: { ns: f.ns, mcps: 1000 / f.ns },
      established,
      flood: count,
      evicted,
      evictedShare: evicted / established,
      dropped: Number(f.reasons.drop_conn_full ?? 0n),
      path: describeReasons(f.reasons).text,
    };
    progress.step('conn-table', `full table: new connection ${withRoom} ns with room, ${f.ns} ns when full; the flood evicted ${evicted} of ${established} established connections`);
    return result;
  } finally {
    lb.close();
  }
}
