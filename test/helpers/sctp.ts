// SCTP packets for BPF_PROG_TEST_RUN tests: the common header, chunks as RFC 9260 lays them out,
// and CRC32c computed bit by bit over the whole packet (RFC 9260 appendix B), independently of the
// dataplane's incremental update.

const POLY = 0x82f63b78;

/** CRC32c (Castagnoli) of `data`, one bit at a time. */
export function crc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let i = 0; i < 8; i++) crc = crc & 1 ? (crc >>> 1) ^ POLY : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

export const CHUNK = {
  DATA: 0, INIT: 1, INIT_ACK: 2, SACK: 3, HEARTBEAT: 4, HEARTBEAT_ACK: 5, ABORT: 6, SHUTDOWN: 7,
  SHUTDOWN_ACK: 8, ERROR: 9, COOKIE_ECHO: 10, COOKIE_ACK: 11, SHUTDOWN_COMPLETE: 14, AUTH: 15,
} as const;

/** A chunk: type, flags, length (of header and value), the value, padding to 4 bytes. */
export function chunk(type: number, value: Uint8Array = Buffer.alloc(0), flags = 0): Buffer {
  const length = 4 + value.length;
  const c = Buffer.alloc(length + ((4 - (length % 4)) % 4));
  c[0] = type;
  c[1] = flags;
  c.writeUInt16BE(length, 2);
  Buffer.from(value).copy(c, 4);
  return c;
}

const u32s = (...words: number[]) => {
  const b = Buffer.alloc(words.length * 4);
  words.forEach((w, i) => b.writeUInt32BE(w >>> 0, i * 4));
  return b;
};

/** INIT or INIT ACK: tag, a_rwnd, streams, initial TSN, then `params` (bytes of parameters). */
function initChunk(type: number, tag: number, params: Uint8Array = Buffer.alloc(0)): Buffer {
  const fixed = Buffer.alloc(16);
  fixed.writeUInt32BE(tag, 0);
  fixed.writeUInt32BE(65536, 4);
  fixed.writeUInt16BE(10, 8);
  fixed.writeUInt16BE(10, 10);
  fixed.writeUInt32BE(1, 12);
  return chunk(type, Buffer.concat([fixed, params]));
}

/** A parameter of an unknown type (0x8000 + n: skipped by receivers) with `n` bytes of value. */
export function filler(n: number): Buffer {
  const p = Buffer.alloc(4 + n + ((4 - (n % 4)) % 4), 0x5a);
  p.writeUInt16BE(0xbeef, 0);
  p.writeUInt16BE(4 + n, 2);
  return p;
}

const cookie = Buffer.concat([Buffer.from([0, 7, 0, 12]), Buffer.from('COOKIE!!')]);

export const chunks = {
  init: (params?: Uint8Array) => initChunk(CHUNK.INIT, 0x11111111, params),
  initAck: () => initChunk(CHUNK.INIT_ACK, 0x22222222, cookie),
  cookieEcho: () => chunk(CHUNK.COOKIE_ECHO, cookie.subarray(4)),
  cookieAck: () => chunk(CHUNK.COOKIE_ACK),
  data: (text = 'hello') => chunk(CHUNK.DATA, Buffer.concat([u32s(1, 0, 0), Buffer.from(text)]), 3),
  sack: () => chunk(CHUNK.SACK, u32s(1, 65536, 0)),
  heartbeat: () => chunk(CHUNK.HEARTBEAT, Buffer.from([0, 1, 0, 8, 1, 2, 3, 4])),
  heartbeatAck: () => chunk(CHUNK.HEARTBEAT_ACK, Buffer.from([0, 1, 0, 8, 1, 2, 3, 4])),
  shutdown: () => chunk(CHUNK.SHUTDOWN, u32s(1)),
  shutdownAck: () => chunk(CHUNK.SHUTDOWN_ACK),
  shutdownComplete: () => chunk(CHUNK.SHUTDOWN_COMPLETE),
  abort: () => chunk(CHUNK.ABORT),
  error: () => chunk(CHUNK.ERROR),
};

export type ChunkName = keyof typeof chunks;

/** An SCTP packet with a correct CRC32c (or, with badCrc, a wrong one). */
export function sctpPacket(sport: number, dport: number, body: Uint8Array, opts: { vtag?: number; badCrc?: boolean } = {}): Buffer {
  const p = Buffer.concat([Buffer.alloc(12), body]);
  p.writeUInt16BE(sport, 0);
  p.writeUInt16BE(dport, 2);
  p.writeUInt32BE(opts.vtag ?? 0x01020304, 4);
  p.writeUInt32LE((crc32c(p) ^ (opts.badCrc ? 1 : 0)) >>> 0, 8);
  return p;
}

export interface ParsedSctp {
  sport: number;
  dport: number;
  vtag: number;
  /** The CRC32c in the packet matches the packet. */
  crcOk: boolean;
  firstChunk: number;
}

export function parseSctp(p: Uint8Array): ParsedSctp {
  const b = Buffer.from(p);
  const zeroed = Buffer.from(b);
  zeroed.writeUInt32LE(0, 8);
  return {
    sport: b.readUInt16BE(0),
    dport: b.readUInt16BE(2),
    vtag: b.readUInt32BE(4),
    crcOk: crc32c(zeroed) === b.readUInt32LE(8),
    firstChunk: b[12]!,
  };
}
