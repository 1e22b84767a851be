/* SPDX-License-Identifier: GPL-2.0 */
/* GUE and GRE tunnels (--tun-type gue|gre), as IPVS builds them (ip_vs_xmit.c: ipvs_gue_encap,
 * ipvs_gre_encap): between the outer IP header and the inner packet,
 *   GUE: UDP (destination the real server's --tun-port, source from the flow hash as
 *        udp_flow_src_port() spreads it) + a 4-byte GUE header (version 0, proto_ctype 4 or 41);
 *   GRE: a 4-byte GRE header (version 0, protocol ETH_P_IP or ETH_P_IPV6).
 * --tun-csum adds the UDP or GRE checksum; --tun-remcsum (GUE) adds the UDP checksum and the
 * remote checksum offload option (GUE_FLAG_PRIV + GUE_PFLAG_REMCSUM, checksum start and offset),
 * leaving the inner TCP/UDP checksum to the receiver as the kernel does for a packet whose
 * checksum is not computed yet (CHECKSUM_PARTIAL: the field holds the pseudo-header sum).
 *
 * Checksums never read the payload of a whole TCP, UDP or ICMP packet (local checksum offload,
 * as the kernel's lco_csum): a valid IPv4 header sums to 0xffff, and a segment whose checksum C
 * is right sums to the complement of its pseudo-header sum P. A fragment or a UDP datagram
 * without checksum has no such shortcut: its bytes are summed (xvs_sum.h). A packet whose inner
 * checksums are wrong gets a wrong outer checksum, so the receiver drops it, as it would anyway. */
#ifndef XVS_GUE_GRE_H
#define XVS_GUE_GRE_H

#include <linux/bpf.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include "xvs_csum.h"
#include "xvs_parse.h"
#include "xvs_sum.h"

#define XVS_IPPROTO_UDP 17
#define XVS_IPPROTO_GRE 47
#define XVS_GUE_HLEN 4
#define XVS_GUE_REMCSUM_OPTLEN 8	/* GUE_LEN_PRIV + GUE_PLEN_REMCSUM */
#define XVS_GUE_FLAG_PRIV 0x0001	/* in the GUE header's flags (network order: second byte) */
#define XVS_GUE_PFLAG_REMCSUM 0x80000000U
#define XVS_GRE_CSUM 0x8000
#define XVS_GRE_HLEN 4
#define XVS_GRE_CSUM_LEN 4
/* udp_flow_src_port()'s default range: net.ipv4.ip_local_port_range. */
#define XVS_GUE_SPORT_MIN 32768
#define XVS_GUE_SPORT_MAX 60999

/* GUE remote checksum offload applies to a whole TCP or UDP packet with a checksum. */
static __always_inline int remcsum_applies(const struct xvs_pkt *p)
{
	if (p->fwd.tun_type != XVS_TUN_GUE || !(p->fwd.tun_flags & XVS_TUN_F_REMCSUM) || !p->l4 ||
	    p->frag != XVS_FRAG_NONE)
		return 0;
	if (p->key.proto == IPPROTO_TCP)
		return 1;
	if (p->key.proto != IPPROTO_UDP)
		return 0;
	struct udphdr *udp = p->l4;
	return (void *)(udp + 1) <= p->data_end && udp->check != 0;
}

/* Bytes between the outer IP header and the inner packet. */
static __always_inline __u32 tun_mid_len(const struct xvs_pkt *p)
{
	if (p->fwd.tun_type == XVS_TUN_GUE)
		return sizeof(struct udphdr) + XVS_GUE_HLEN +
		       (remcsum_applies(p) ? XVS_GUE_REMCSUM_OPTLEN : 0);
	if (p->fwd.tun_type == XVS_TUN_GRE)
		return XVS_GRE_HLEN + (p->fwd.tun_flags & XVS_TUN_F_CSUM ? XVS_GRE_CSUM_LEN : 0);
	return 0;
}

static __always_inline int tun_needs_sum(const struct xvs_pkt *p)
{
	if (p->fwd.tun_type == XVS_TUN_GUE)
		return p->fwd.tun_flags & (XVS_TUN_F_CSUM | XVS_TUN_F_REMCSUM);
	return p->fwd.tun_type == XVS_TUN_GRE && (p->fwd.tun_flags & XVS_TUN_F_CSUM);
}

/* The sum of a TCP/UDP/ICMPv6 pseudo-header. */
static __always_inline __u32 pseudo_sum(__u8 af, const union xvs_addr *src,
					const union xvs_addr *dst, __u8 proto, __u32 len)
{
	__u32 s = bpf_htons(proto) + bpf_htons(len);
	int words = af == XVS_AF_INET ? 1 : 4;

	for (int i = 0; i < 4; i++) {
		if (i < words)
			s += (src->v6[i] & 0xffff) + (src->v6[i] >> 16) + (dst->v6[i] & 0xffff) +
			     (dst->v6[i] >> 16);
	}
	return s;
}

/* The inner TCP or UDP checksum field; NULL for other protocols. */
static __always_inline __sum16 *inner_check(const struct xvs_pkt *p)
{
	if (p->key.proto == IPPROTO_TCP) {
		struct tcphdr *tcp = p->l4;

		return (void *)(tcp + 1) <= p->data_end ? &tcp->check : NULL;
	}
	if (p->key.proto == IPPROTO_UDP) {
		struct udphdr *udp = p->l4;

		return (void *)(udp + 1) <= p->data_end ? &udp->check : NULL;
	}
	return NULL;
}

/* The sum of the whole inner packet into *sum; with remcsum, first turns the inner checksum into
 * the pseudo-header sum the receiver completes. Returns 0, or -1 when it cannot be summed. */
static __always_inline int tun_inner_sum(struct xdp_md *ctx, struct xvs_pkt *p, int remcsum,
					 __u32 *sum)
{
	__u32 hlen = p->l4_off - p->l3_off;
	int v4 = p->key.af == XVS_AF_INET;

	*sum = 0;
	if (!p->l4 || p->frag != XVS_FRAG_NONE || hlen > XVS_SUM_CHUNK)
		return sum_range(ctx, p->l3_off, p->ip_len, sum);
	if (v4 && p->key.proto == IPPROTO_ICMP)
		return 0; /* a valid header and ICMP message each sum to 0xffff */
	__sum16 *check = inner_check(p);
	int icmp6 = !v4 && p->key.proto == IPPROTO_ICMPV6;
	if (!icmp6 && (!check || (p->key.proto == IPPROTO_UDP && *check == 0)))
		return sum_range(ctx, p->l3_off, p->ip_len, sum);
	/* IPv6: its header (and any extension headers) has no checksum to lean on. */
	if (!v4 && sum_range(ctx, p->l3_off, hlen, sum))
		return -1;
	__u16 pseudo = csum_fold32(pseudo_sum(p->key.af, &p->key.saddr, &p->key.daddr, p->key.proto,
						 p->ip_len - hlen));
	if (remcsum && check) {
		*sum += (__u16)~*check;
		*check = pseudo;
	} else {
		*sum += (__u16)~pseudo;
	}
	return 0;
}

/* The GUE header and, with remcsum, its options, at gue. */
static __always_inline void write_gue_hdr(__u8 *gue, __u8 inner_proto, __u16 csum_start,
					  __u16 csum_offset, int remcsum)
{
	gue[0] = remcsum ? XVS_GUE_REMCSUM_OPTLEN / 4 : 0; /* version 0, C 0, hlen */
	gue[1] = inner_proto;
	*(__be16 *)(gue + 2) = remcsum ? bpf_htons(XVS_GUE_FLAG_PRIV) : 0;
	if (!remcsum)
		return;
	*(__be32 *)(gue + 4) = bpf_htonl(XVS_GUE_PFLAG_REMCSUM);
	*(__be16 *)(gue + 8) = bpf_htons(csum_start);
	*(__be16 *)(gue + 10) = bpf_htons(csum_start + csum_offset);
}

static __always_inline __u32 sum_words(const __u16 *w, int n)
{
	__u32 s = 0;

	for (int i = 0; i < n; i++)
		s += w[i];
	return s;
}

/* The GUE source port: the flow hash, spread over the range as udp_flow_src_port() does. */
static __always_inline __be16 gue_sport(__u32 hash)
{
	hash ^= hash << 16;
	return bpf_htons((__u16)((((__u64)hash * (XVS_GUE_SPORT_MAX - XVS_GUE_SPORT_MIN)) >> 32) +
				 XVS_GUE_SPORT_MIN));
}

/* Writes the GUE or GRE header at mid (the outer header from src to dst in front of it), with
 * the checksum the flags ask for; inner_sum is the inner packet's sum. Returns 0, or -1 when the
 * packet is too short. */
static __always_inline int write_mid(void *mid, void *data_end, const struct xvs_pkt *p, __u8 af,
				     const union xvs_addr *src, const union xvs_addr *dst,
				     __u32 hash, __u32 mid_len, __u32 inner_sum, int remcsum)
{
	__u8 inner_proto = p->key.af == XVS_AF_INET ? XVS_IPPROTO_IPIP : XVS_IPPROTO_IPV6;
	__u16 csum_start = p->l4_off - p->l3_off;
	__u16 csum_offset = p->key.proto == IPPROTO_TCP ? offsetof(struct tcphdr, check)
							 : offsetof(struct udphdr, check);

	/* The inner packet follows: at least 20 more bytes than any middle header. */
	if (mid + sizeof(struct udphdr) + XVS_GUE_HLEN + XVS_GUE_REMCSUM_OPTLEN > data_end)
		return -1;
	if (p->fwd.tun_type == XVS_TUN_GRE) {
		__be16 *gre = mid;
		int csum = p->fwd.tun_flags & XVS_TUN_F_CSUM;

		gre[0] = csum ? bpf_htons(XVS_GRE_CSUM) : 0;
		gre[1] = bpf_htons(p->key.af == XVS_AF_INET ? ETH_P_IP : ETH_P_IPV6);
		if (csum) {
			gre[3] = 0;
			gre[2] = ~csum_fold32(inner_sum + gre[0] + gre[1]);
		}
		return 0;
	}
	struct udphdr *udp = mid;
	__u8 *gue = (__u8 *)(udp + 1);

	udp->source = gue_sport(hash);
	udp->dest = p->fwd.tun_port;
	udp->len = bpf_htons(mid_len + p->ip_len);
	udp->check = 0;
	write_gue_hdr(gue, inner_proto, csum_start, csum_offset, remcsum);
	if (!(p->fwd.tun_flags & (XVS_TUN_F_CSUM | XVS_TUN_F_REMCSUM)))
		return 0;
	__u32 s = inner_sum + sum_words((__u16 *)udp, 6) +
		  pseudo_sum(af, src, dst, XVS_IPPROTO_UDP, mid_len + p->ip_len);
	if (remcsum)
		s += sum_words((__u16 *)(gue + XVS_GUE_HLEN), XVS_GUE_REMCSUM_OPTLEN / 2);
	__u16 check = ~csum_fold32(s);
	udp->check = check ? check : 0xffff;
	return 0;
}

#endif
