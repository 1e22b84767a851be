// The kernel's hashes for dh, sh, lblc (hash_32) and mh (hsiphash of a u32 on a 64-bit kernel,
// which is SipHash-1-3 with a 2 x 64-bit key). The BPF side has the same in bpf/sched_hash.h.

const GOLDEN_RATIO_32 = 0x61c88647;

/** hash_32(val, bits): the top `bits` bits of val * GOLDEN_RATIO_32. */
export function hash32(val: number, bits: number): number {
  return Math.imul(val >>> 0, GOLDEN_RATIO_32) >>> (32 - bits);
}

const M64 = (1n << 64n) - 1n;
const rol64 = (w: bigint, s: bigint) => ((w << s) | (w >> (64n - s))) & M64;

type SipState = [bigint, bigint, bigint, bigint];

function sipround(v: SipState): void {
  v[0] = (v[0] + v[1]) & M64; v[1] = rol64(v[1], 13n); v[1] ^= v[0]; v[0] = rol64(v[0], 32n);
  v[2] = (v[2] + v[3]) & M64; v[3] = rol64(v[3], 16n); v[3] ^= v[2];
  v[0] = (v[0] + v[3]) & M64; v[3] = rol64(v[3], 21n); v[3] ^= v[0];
  v[2] = (v[2] + v[1]) & M64; v[1] = rol64(v[1], 17n); v[1] ^= v[2]; v[2] = rol64(v[2], 32n);
}

/** hsiphash(&first, 4, key) of a 64-bit kernel (hsiphash_1u32): key = [k0, k1]. */
export function hsiphashU32(first: number, key: readonly [bigint, bigint]): number {
  const [k0, k1] = key;
  const v: SipState = [0x736f6d6570736575n ^ k0, 0x646f72616e646f6dn ^ k1, 0x6c7967656e657261n ^ k0, 0x7465646279746573n ^ k1];
  const b = (4n << 56n) | BigInt(first >>> 0);
  v[3] ^= b;
  sipround(v);
  v[0] ^= b;
  v[2] ^= 0xffn;
  sipround(v);
  sipround(v);
  sipround(v);
  return Number((v[0] ^ v[1] ^ v[2] ^ v[3]) & 0xffffffffn);
}
