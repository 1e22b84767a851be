// The dataplane's flow hash (bpf/xvs_tun.h), written again from its definition: murmur3's fmix32
// over the folded addresses, then the ports as they sit in memory, then the protocol.
import { ip } from './packet.js';

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function flowHash(src: string, dst: string, sp: number, dp: number, proto: number): number {
  const fold = (address: string) => {
    const b = Buffer.alloc(16);
    ip(address).copy(b);
    return (b.readUInt32LE(0) ^ b.readUInt32LE(4) ^ b.readUInt32LE(8) ^ b.readUInt32LE(12)) >>> 0;
  };
  const raw = (port: number) => ((port & 0xff) << 8) | (port >> 8);
  let h = fmix32(fold(src));
  h = fmix32((h ^ fold(dst)) >>> 0);
  return fmix32((h ^ ((raw(sp) << 16) | raw(dp)) ^ proto) >>> 0);
}
