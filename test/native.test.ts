// The libbpf binding against build/bpf/fixture.bpf.o: configure, load, run, read maps, pin, attach.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readlinkSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BpfError,
  BpfMap,
  BpfObject,
  RingBuffer,
  XDP_DROP,
  XDP_PASS,
  XdpLink,
  ifindex,
  possibleCpus,
  sumU64PerCpu,
  unpin,
  withNetns,
} from '../lib/libbpf.js';
import { packageRoot } from '../lib/native.js';

const BPF_FS = '/sys/fs/bpf';
const BPF_FS_MAGIC = 0xcafe4a11;

const objectPath = (name: string) => join(packageRoot(), 'build', 'bpf', `${name}.bpf.o`);
const unique = () => randomBytes(4).toString('hex');

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

function u64(n: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

/** A 64-byte frame of 0x11: the fixture flips its first byte and reports its length. */
const frame = () => Buffer.alloc(64, 0x11);

// Everything a test opens is closed after it, also when it fails.
let cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.reverse()) cleanup();
  cleanups = [];
});
function closeLater<T extends { close(): void }>(handle: T): T {
  cleanups.push(() => handle.close());
  return handle;
}

function loadFixture(configure: (obj: BpfObject) => void = () => {}): BpfObject {
  const obj = closeLater(BpfObject.open(objectPath('fixture')));
  configure(obj);
  obj.load();
  return obj;
}

function ensureBpffs(): void {
  if (statfsSync(BPF_FS).type !== BPF_FS_MAGIC) execFileSync('mount', ['-t', 'bpf', 'bpf', BPF_FS]);
}

/** A fresh directory under bpffs, removed after the test. */
function pinDir(): string {
  ensureBpffs();
  const dir = join(BPF_FS, `xvs-test-${unique()}`);
  mkdirSync(dir);
  cleanups.unshift(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('object', () => {
  it('lists its maps, global data included, and its programs', () => {
    const obj = closeLater(BpfObject.open(objectPath('fixture')));
    expect(obj.name).toBe('fixture');
    expect(obj.mapNames().sort()).toEqual(
      ['fixture.rodata', 'fixture_events', 'fixture_hash', 'fixture_last', 'fixture_packets'].sort(),
    );
    expect(obj.programNames()).toEqual(['fixture_xdp']);
  });

  it('fails to open a missing file with ENOENT', () => {
    const err = caught(() => BpfObject.open('/nonexistent/fixture.bpf.o'));
    expect(err).toBeInstanceOf(BpfError);
    expect(err).toMatchObject({ errno: 2, code: 'ENOENT' });
    expect((err as Error).message).toMatch(/bpf_object__open_file\(\/nonexistent\/fixture\.bpf\.o\)/);
  });

  it('describes a struct from BTF, bitfields included', () => {
    const obj = closeLater(BpfObject.open(objectPath('fixture')));
    const event = obj.btfStruct('fixture_event');
    expect(event?.size).toBe(16);
    expect(event?.members).toEqual([
      { name: 'len', offsetBits: 0, bitfieldSize: 0, size: 4 },
      { name: 'first_byte', offsetBits: 32, bitfieldSize: 0, size: 1 },
      { name: 'flag', offsetBits: 40, bitfieldSize: 1, size: 1 },
      { name: 'spare', offsetBits: 41, bitfieldSize: 7, size: 1 },
      { name: 'pad', offsetBits: 48, bitfieldSize: 0, size: 2 },
      { name: 'mark', offsetBits: 64, bitfieldSize: 0, size: 8 },
    ]);
    expect(obj.btfStruct('no_such_struct')).toBeNull();
  });

  it('reports a verifier rejection with the verifier log', () => {
    const obj = closeLater(BpfObject.open(objectPath('fixture_bad')));
    const err = caught(() => obj.load());
    expect(err).toBeInstanceOf(BpfError);
    expect(err).toMatchObject({ code: 'EACCES' });
    expect((err as Error).message).toMatch(/^bpf_object__load\(fixture_bad\): Permission denied/);
    expect((err as Error).message).toMatch(/invalid access to packet/);
    expect((err as Error).message).toMatch(/R\d offset is outside of the packet/);
  });
});

describe('program', () => {
  it('returns the verdict compiled in, and the frame as the program changed it', () => {
    const program = closeLater(loadFixture().program('fixture_xdp'));
    const result = program.testRun({ data: frame() });
    expect(result.retval).toBe(XDP_PASS);
    expect(result.data[0]).toBe(0x11 ^ 0xff);
    expect(result.data.subarray(1)).toEqual(frame().subarray(1));
    expect(result.durationNs).toBeGreaterThanOrEqual(0);
  });

  it('returns the verdict set in .rodata before load', () => {
    const obj = loadFixture((o) => o.setGlobals('.rodata', { fixture_verdict: XDP_DROP }));
    expect(closeLater(obj.program('fixture_xdp')).testRun({ data: frame() }).retval).toBe(XDP_DROP);
  });

  it('writes each global at its BTF offset in its size', () => {
    const obj = loadFixture((o) => o.setGlobals('.rodata', { fixture_flag: true, fixture_mark: 0x1122334455667788n }));
    closeLater(obj.program('fixture_xdp')).testRun({ data: frame() });
    const event = closeLater(obj.map('fixture_last')).lookup(u32(0))!;
    expect(event.readUInt32LE(0)).toBe(64);
    expect(event[4]).toBe(0x11);
    expect(event[5]! & 1).toBe(1);
    expect(event.readBigUInt64LE(8)).toBe(0x1122334455667788n);
  });

  it('refuses an unknown global and a value too wide for its variable', () => {
    const obj = closeLater(BpfObject.open(objectPath('fixture')));
    expect(() => obj.setGlobals('.rodata', { fixture_nope: 1 })).toThrow(
      /\.rodata of fixture has no variable fixture_nope \(it has: fixture_verdict, fixture_flag, fixture_mark\)/,
    );
    expect(() => obj.setGlobals('.rodata', { fixture_flag: 256 })).toThrow(/fixture_flag \(8 bits\) cannot hold 256/);
  });
});

describe('maps', () => {
  it('reflects setMaxEntries', () => {
    const obj = loadFixture((o) => o.setMaxEntries('fixture_hash', 8192));
    expect(closeLater(obj.map('fixture_hash')).maxEntries).toBe(8192);
  });

  it('reads a per-CPU counter as one value per possible CPU, summing to the runs', () => {
    const obj = loadFixture();
    closeLater(obj.program('fixture_xdp')).testRun({ data: frame(), repeat: 50 });
    const packets = closeLater(obj.map('fixture_packets'));
    expect(packets.isPerCpu).toBe(true);
    const values = packets.lookupPerCpu(u32(0))!;
    expect(values).toHaveLength(possibleCpus());
    expect(values.every((v) => v.length === 8)).toBe(true);
    expect(sumU64PerCpu(values)).toBe(50n);
    expect([...packets.entriesPerCpu()].map(([key, perCpu]) => [key, sumU64PerCpu(perCpu)])).toEqual([[u32(0), 50n]]);
    expect(() => packets.lookup(u32(0))).toThrow(/is per-CPU/);
  });

  it('writes one value to every CPU', () => {
    const packets = closeLater(loadFixture().map('fixture_packets'));
    packets.updatePerCpu(u32(0), u64(7));
    expect(sumU64PerCpu(packets.lookupPerCpu(u32(0))!)).toBe(7n * BigInt(possibleCpus()));
  });

  it('updates, looks up, iterates and deletes hash entries', () => {
    const hash = closeLater(loadFixture().map('fixture_hash'));
    expect(hash.lookup(u32(1))).toBeUndefined();
    hash.update(u32(1), u64(10), 'noexist');
    hash.update(u32(2), u64(20));
    expect(caught(() => hash.update(u32(1), u64(11), 'noexist'))).toMatchObject({ code: 'EEXIST' });
    expect(caught(() => hash.update(u32(3), u64(30), 'exist'))).toMatchObject({ code: 'ENOENT' });
    expect(hash.lookup(u32(1))).toEqual(u64(10));
    expect([...hash.keys()].map((k) => k.readUInt32LE(0)).sort()).toEqual([1, 2]);
    expect(new Map([...hash.entries()].map(([k, v]) => [k.readUInt32LE(0), v.readBigUInt64LE(0)]))).toEqual(
      new Map([
        [1, 10n],
        [2, 20n],
      ]),
    );
    expect(hash.delete(u32(1))).toBe(true);
    expect(hash.delete(u32(1))).toBe(false);
    expect(hash.lookup(u32(1))).toBeUndefined();
  });

  it('refuses a key of the wrong size', () => {
    const hash = closeLater(loadFixture().map('fixture_hash'));
    expect(caught(() => hash.lookup(Buffer.alloc(3)))).toMatchObject({ code: 'EINVAL' });
  });

  it('updates, reads and deletes 1000 entries in batches', () => {
    const hash = closeLater(loadFixture().map('fixture_hash'));
    const keys = Array.from({ length: 1000 }, (_, i) => u32(i));
    const values = keys.map((_, i) => u64(i * 3));
    expect(hash.updateBatch(keys, values)).toBe(1000);

    const seen = new Map<number, bigint>();
    let batches = 0;
    for (let cursor: Buffer | null = null, first = true; first || cursor; first = false) {
      const batch = hash.lookupBatch(cursor, 100);
      batch.keys.forEach((k, i) => seen.set(k.readUInt32LE(0), batch.values[i]!.readBigUInt64LE(0)));
      cursor = batch.next;
      batches++;
    }
    expect(batches).toBeGreaterThan(1);
    expect(seen.size).toBe(1000);
    for (const [k, v] of seen) expect(v).toBe(BigInt(k * 3));
    expect([...hash.entries()]).toHaveLength(1000);

    expect(hash.deleteBatch(keys.slice(0, 500))).toBe(500);
    const rest = hash.lookupAndDeleteAll();
    expect(rest.map(([k]) => k.readUInt32LE(0)).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 500 }, (_, i) => i + 500),
    );
    expect([...hash.keys()]).toEqual([]);
  });

  it('delivers ring buffer records during poll()', () => {
    const obj = loadFixture();
    const records: Buffer[] = [];
    const ring = closeLater(new RingBuffer(closeLater(obj.map('fixture_events')), (r) => records.push(r)));
    expect(ring.poll(0)).toBe(0);
    closeLater(obj.program('fixture_xdp')).testRun({ data: frame(), repeat: 3 });
    expect(ring.poll(100)).toBe(3);
    expect(records.map((r) => r.readUInt32LE(0))).toEqual([64, 64, 64]);
  });

  it('rethrows from poll() what the record callback threw', () => {
    const obj = loadFixture();
    const ring = closeLater(
      new RingBuffer(closeLater(obj.map('fixture_events')), () => {
        throw new Error('callback failed');
      }),
    );
    closeLater(obj.program('fixture_xdp')).testRun({ data: frame() });
    expect(() => ring.poll(100)).toThrow('callback failed');
  });
});

describe('pins', () => {
  it('opens a pinned map with the same contents, until unpinned', () => {
    const path = join(pinDir(), 'hash');
    const hash = closeLater(loadFixture().map('fixture_hash'));
    hash.update(u32(7), u64(70));
    hash.pin(path);

    const pinned = closeLater(BpfMap.openPinned(path));
    expect(pinned).toMatchObject({ name: 'fixture_hash', type: hash.type, keySize: 4, valueSize: 8, maxEntries: 4096 });
    expect(pinned.lookup(u32(7))).toEqual(u64(70));

    unpin(path);
    expect(caught(() => BpfMap.openPinned(path))).toMatchObject({ code: 'ENOENT' });
  });

  it('lets a new object reuse a pinned map', () => {
    const path = join(pinDir(), 'hash');
    const hash = closeLater(loadFixture().map('fixture_hash'));
    hash.update(u32(9), u64(90));
    hash.pin(path);

    const reused = closeLater(loadFixture((o) => o.reusePinnedMap('fixture_hash', path)).map('fixture_hash'));
    expect(reused.lookup(u32(9))).toEqual(u64(90));
  });

  it('refuses to open a pinned map as a link', () => {
    const path = join(pinDir(), 'hash');
    closeLater(loadFixture().map('fixture_hash')).pin(path);
    expect(caught(() => XdpLink.openPinned(path))).toMatchObject({ code: 'EINVAL' });
  });
});

describe('XDP attachment', () => {
  let ns: string;

  const ip = (...args: string[]) => execFileSync('ip', ['-n', ns, ...args], { encoding: 'utf8' });
  const xdpShown = (dev: string) => /\bxdp/.test(ip('link', 'show', dev));

  function setup(): void {
    ns = `xvs-nt-${unique()}`;
    execFileSync('ip', ['netns', 'add', ns]);
    cleanups.unshift(() => execFileSync('ip', ['netns', 'del', ns]));
    ip('link', 'add', 'xvs0', 'type', 'veth', 'peer', 'name', 'xvs1');
    ip('link', 'set', 'xvs0', 'up');
    ip('link', 'set', 'xvs1', 'up');
  }

  it.each(['native', 'generic'] as const)('attaches in %s mode and detaches on close', (mode) => {
    setup();
    const program = closeLater(loadFixture().program('fixture_xdp'));
    const link = closeLater(program.attachXdp('xvs0', { mode, netns: ns }));
    expect(link.ifindex).toBe(ifindex('xvs0', ns));
    expect(ip('link', 'show', 'xvs0')).toMatch(mode === 'native' ? /mtu \d+ xdp / : /mtu \d+ xdpgeneric /);
    link.close();
    expect(xdpShown('xvs0')).toBe(false);
  });

  it('detaches a pinned link, and keeps a pinned one attached after close', () => {
    setup();
    const path = join(pinDir(), 'link');
    const program = closeLater(loadFixture().program('fixture_xdp'));

    const link = program.attachXdp('xvs0', { netns: ns });
    link.pin(path);
    link.close();
    expect(xdpShown('xvs0')).toBe(true);

    const pinned = closeLater(XdpLink.openPinned(path));
    expect(pinned.ifindex).toBe(ifindex('xvs0', ns));
    pinned.detach();
    expect(xdpShown('xvs0')).toBe(false);
    expect(pinned.ifindex).toBe(0);
  });

  it('says so when the driver has no native XDP (loopback)', () => {
    setup();
    const program = closeLater(loadFixture().program('fixture_xdp'));
    const err = caught(() => program.attachXdp('lo', { mode: 'native', netns: ns }));
    expect(err).toBeInstanceOf(BpfError);
    expect((err as Error).message).toMatch(/XDP native mode not supported by ifindex 1: Operation not supported/);
    expect((err as Error).message).toMatch(new RegExp(`to lo in netns ${ns}`));
  });

  it('runs a function in the namespace and comes back, also when it throws', () => {
    setup();
    const home = readlinkSync('/proc/thread-self/ns/net');
    expect(withNetns(ns, () => ifindex('xvs0'))).toBe(ifindex('xvs0', ns));
    expect(caught(() => ifindex('xvs0'))).toMatchObject({ code: 'ENODEV' });

    const thrown = new Error('inside');
    expect(
      caught(() =>
        withNetns(ns, () => {
          throw thrown;
        }),
      ),
    ).toBe(thrown);
    expect(readlinkSync('/proc/thread-self/ns/net')).toBe(home);
  });
});
