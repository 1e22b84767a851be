/* SPDX-License-Identifier: GPL-2.0 */
/* Incremental Internet checksum updates (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')).
 * Values are raw 16-bit words as they sit in the packet; one's-complement sums do not care
 * about byte order as long as every word is taken the same way. A "delta" is the sum ~m + m'
 * of what changed, so that several changes add up before one csum_apply(). */
#ifndef XVS_CSUM_H
#define XVS_CSUM_H

#include <linux/types.h>

static __always_inline __u16 csum_fold32(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

static __always_inline __u32 csum_delta2(__u16 from, __u16 to)
{
	return (__u16)~from + (__u32)to;
}

static __always_inline __u32 csum_delta4(__u32 from, __u32 to)
{
	return csum_delta2(from & 0xffff, to & 0xffff) + csum_delta2(from >> 16, to >> 16);
}

/* An IPv6 address (four words) changed. */
static __always_inline __u32 csum_delta16(const __u32 *from, const __u32 *to)
{
	return csum_delta4(from[0], to[0]) + csum_delta4(from[1], to[1]) +
	       csum_delta4(from[2], to[2]) + csum_delta4(from[3], to[3]);
}

/* The checksum after changes whose deltas add up to `delta`. */
static __always_inline __u16 csum_apply(__u16 check, __u32 delta)
{
	return (__u16)~csum_fold32((__u16)~check + csum_fold32(delta));
}

/* The checksum after one 16-bit word changed from `from` to `to`. */
static __always_inline __u16 csum_replace2(__u16 check, __u16 from, __u16 to)
{
	return csum_apply(check, csum_delta2(from, to));
}

/* The checksum of an option-free IPv4 header whose checksum field is zero. */
static __always_inline __u16 csum_ipv4_header(const __u16 *h)
{
	__u32 s = 0;

	for (int i = 0; i < 10; i++)
		s += h[i];
	return (__u16)~csum_fold32(s);
}

#endif
