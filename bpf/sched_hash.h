/* SPDX-License-Identifier: GPL-2.0 */
/* The kernel's hashes for dh, sh, lblc (hash_32: multiply by GOLDEN_RATIO_32, keep the top bits)
 * and mh (hsiphash of a u32, which on 64-bit kernels is SipHash-1-3 with a 2 x 64-bit key; mh's
 * keys are fixed constants, so its buckets are the same on every 64-bit machine). */
#ifndef XVS_SCHED_HASH_H
#define XVS_SCHED_HASH_H

#include <linux/types.h>
#include <bpf/bpf_endian.h>
#include "xvs_structs.h"

#define XVS_GOLDEN_RATIO_32 0x61C88647U
#define XVS_MH_HASH1_KEY 2654435761ULL

/* The address as dh, sh and mh hash it, host order: IPv6 folded by XOR of its words, as the
 * kernel's ip_vs_*_hashkey() do. */
static __always_inline __u32 addr_fold(const union xvs_addr *a, __u8 af)
{
	if (af == XVS_AF_INET6)
		return bpf_ntohl(a->v6[0] ^ a->v6[1] ^ a->v6[2] ^ a->v6[3]);
	return bpf_ntohl(a->v4);
}

static __always_inline __u32 hash_32(__u32 val, unsigned int bits)
{
	return (__u32)(val * XVS_GOLDEN_RATIO_32) >> (32 - bits);
}

static __always_inline __u64 rol64(__u64 word, unsigned int shift)
{
	return (word << shift) | (word >> (64 - shift));
}

#define XVS_SIPROUND(v0, v1, v2, v3)                                                               \
	do {                                                                                       \
		v0 += v1; v1 = rol64(v1, 13); v1 ^= v0; v0 = rol64(v0, 32);                        \
		v2 += v3; v3 = rol64(v3, 16); v3 ^= v2;                                            \
		v0 += v3; v3 = rol64(v3, 21); v3 ^= v0;                                            \
		v2 += v1; v1 = rol64(v1, 17); v1 ^= v2; v2 = rol64(v2, 32);                        \
	} while (0)

/* hsiphash(&first, 4, {k, k}) of a 64-bit kernel (lib/siphash.c, hsiphash_1u32). */
static __always_inline __u32 hsiphash_u32(__u32 first, __u64 k)
{
	__u64 v0 = 0x736f6d6570736575ULL ^ k;
	__u64 v1 = 0x646f72616e646f6dULL ^ k;
	__u64 v2 = 0x6c7967656e657261ULL ^ k;
	__u64 v3 = 0x7465646279746573ULL ^ k;
	__u64 b = (4ULL << 56) | first;

	v3 ^= b;
	XVS_SIPROUND(v0, v1, v2, v3);
	v0 ^= b;
	v2 ^= 0xff;
	XVS_SIPROUND(v0, v1, v2, v3);
	XVS_SIPROUND(v0, v1, v2, v3);
	XVS_SIPROUND(v0, v1, v2, v3);
	return (__u32)((v0 ^ v1) ^ (v2 ^ v3));
}

#endif
