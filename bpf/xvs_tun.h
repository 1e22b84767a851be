/* SPDX-License-Identifier: GPL-2.0 */
/* TUN (-i): IP-in-IP encapsulation towards a real server, in any combination of families
 * (IPv4 or IPv6 inside, IPv4 or IPv6 outside: protocols 4 and 41, as ipip and ip6_tunnel use).
 *
 * The outer header is plain IPIP by default, so that a real server can decapsulate with the
 * kernel's ipip or ip6_tunnel modules or with xvs_decap.bpf.c; a real server may instead take GUE
 * or GRE (xvs_gue_gre.h), as with IPVS. Receive-side scaling on the real server hashes a
 * non-TCP/UDP packet by its outer addresses only, so with one fixed outer source every flow would
 * land on one queue; a tunnel source prefix instead gives each flow its own outer source address
 * (host bits from the flow hash), and an IPv6 outer header also carries the hash as flow label. The
 * outer header copies the inner TOS/traffic class and TTL/hop limit (as ip_vs_tunnel_xmit() does)
 * and sets DF: xvs does not fragment, the client is told the MTU instead (xvs_icmp.h). */
#ifndef XVS_TUN_H
#define XVS_TUN_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "xvs_csum.h"
#include "xvs_maps.h"
#include "xvs_parse.h"

#define XVS_IPPROTO_IPIP 4
#define XVS_IPPROTO_IPV6 41

#include "xvs_gue_gre.h"

static __always_inline __u32 fmix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* A hash of the connection's tuple, the same for every packet of the flow. */
static __always_inline __u32 flow_hash(const struct xvs_conn_key *k)
{
	__u32 h = fmix32(k->saddr.v6[0] ^ k->saddr.v6[1] ^ k->saddr.v6[2] ^ k->saddr.v6[3]);

	h = fmix32(h ^ k->daddr.v6[0] ^ k->daddr.v6[1] ^ k->daddr.v6[2] ^ k->daddr.v6[3]);
	return fmix32(h ^ ((__u32)k->sport << 16 | k->dport) ^ k->proto);
}

static __always_inline __u32 outer_hlen(__u8 af)
{
	return af == XVS_AF_INET ? sizeof(struct iphdr) : sizeof(struct ipv6hdr);
}

/* The configured outer source for the family, with this flow's host bits. Returns 0 when none
 * is configured: the route's source is used then. */
static __always_inline int tun_source(__u8 af, __u32 hash, union xvs_addr *src)
{
	__u32 slot = af == XVS_AF_INET6;
	struct xvs_tun_source *ts = bpf_map_lookup_elem(&tun_sources, &slot);

	if (!ts || !(ts->addr.v6[0] | ts->addr.v6[1] | ts->addr.v6[2] | ts->addr.v6[3]))
		return 0;
	*src = ts->addr;
	if (af == XVS_AF_INET)
		src->v4 |= bpf_htonl(hash) & ts->hostmask.v4;
	else
		src->v6[3] |= bpf_htonl(hash) & ts->hostmask.v6[3];
	return 1;
}

/* Traffic class (TOS) and hop limit (TTL) of the inner packet. */
static __always_inline void inner_tos_ttl(const struct xvs_pkt *p, __u8 *tos, __u8 *ttl)
{
	if (p->ip4) {
		*tos = p->ip4->tos;
		*ttl = p->ip4->ttl;
	} else if (p->ip6) {
		*tos = bpf_ntohl(*(__be32 *)p->ip6) >> 20;
		*ttl = p->ip6->hop_limit;
	}
}

static __always_inline void write_outer4(struct iphdr *ip, __u8 proto, __u8 tos, __u8 ttl,
					 __u32 len, __be32 src, __be32 dst)
{
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = tos;
	ip->tot_len = bpf_htons(len);
	ip->id = 0; /* an atomic datagram (RFC 6864): DF set, never fragmented */
	ip->frag_off = bpf_htons(IP_DF);
	ip->ttl = ttl;
	ip->protocol = proto;
	ip->check = 0;
	ip->saddr = src;
	ip->daddr = dst;
	ip->check = csum_ipv4_header((__u16 *)ip);
}

static __always_inline void write_outer6(struct ipv6hdr *ip6, __u8 proto, __u8 tos, __u8 ttl,
					 __u32 len, const union xvs_addr *src,
					 const union xvs_addr *dst, __u32 hash)
{
	*(__be32 *)ip6 = bpf_htonl(6 << 28 | (__u32)tos << 20 | (hash & 0xfffff));
	ip6->payload_len = bpf_htons(len);
	ip6->nexthdr = proto;
	ip6->hop_limit = ttl;
	__builtin_memcpy(ip6->saddr.in6_u.u6_addr32, src->v6, 16);
	__builtin_memcpy(ip6->daddr.in6_u.u6_addr32, dst->v6, 16);
}

/* The outer header's protocol: the tunnel's, or for IPIP the inner family's. */
static __always_inline __u8 outer_proto(const struct xvs_pkt *p)
{
	if (p->fwd.tun_type == XVS_TUN_GUE)
		return XVS_IPPROTO_UDP;
	if (p->fwd.tun_type == XVS_TUN_GRE)
		return XVS_IPPROTO_GRE;
	return p->key.af == XVS_AF_INET ? XVS_IPPROTO_IPIP : XVS_IPPROTO_IPV6;
}

/* Puts an outer header of family `af` from src to dst, and the real server's GUE or GRE header,
 * in front of the packet's IP header. Returns 0 with p->eth the moved L2 header and the other
 * packet pointers void; XVS_R_DROP_NO_ROOM or XVS_R_DROP_TUN_SUM when it cannot. */
static __always_inline int tun_encap(struct xdp_md *ctx, struct xvs_pkt *p, __u8 af,
				     const union xvs_addr *src, const union xvs_addr *dst,
				     __u32 hash)
{
	__u8 tos = 0, ttl = 0, proto = outer_proto(p);
	__u32 inner_len = p->ip_len, mid_len = tun_mid_len(p), inner_sum = 0;
	int tagged = p->tagged, remcsum = remcsum_applies(p);
	int hlen = outer_hlen(af) + mid_len;

	if (tun_needs_sum(p) && tun_inner_sum(ctx, p, remcsum, &inner_sum))
		return XVS_R_DROP_TUN_SUM;
	inner_tos_ttl(p, &tos, &ttl);
	/* The L2 header (with room for a tag) moves to the new start; the IP header follows it. */
	__u8 l2[sizeof(struct ethhdr) + sizeof(struct vlan_hdr)];
	if ((void *)p->eth + sizeof(l2) > p->data_end)
		return XVS_R_DROP_NO_ROOM;
	__builtin_memcpy(l2, p->eth, sizeof(l2));
	if (bpf_xdp_adjust_head(ctx, -hlen))
		return XVS_R_DROP_NO_ROOM;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if (data + sizeof(l2) > data_end)
		return XVS_R_DROP_NO_ROOM;
	__builtin_memcpy(eth, l2, sizeof(l2));
	void *l3 = data + sizeof(struct ethhdr);
	if (tagged)
		l3 += sizeof(struct vlan_hdr);
	*(__be16 *)(l3 - 2) = bpf_htons(af == XVS_AF_INET ? ETH_P_IP : ETH_P_IPV6);
	void *mid;
	if (af == XVS_AF_INET) {
		struct iphdr *ip = l3;

		if ((void *)(ip + 1) > data_end)
			return XVS_R_DROP_NO_ROOM;
		write_outer4(ip, proto, tos, ttl, inner_len + hlen, src->v4, dst->v4);
		mid = ip + 1;
	} else {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > data_end)
			return XVS_R_DROP_NO_ROOM;
		write_outer6(ip6, proto, tos, ttl, inner_len + mid_len, src, dst, hash);
		mid = ip6 + 1;
	}
	if (mid_len && write_mid(mid, data_end, p, af, src, dst, hash, mid_len, inner_sum, remcsum))
		return XVS_R_DROP_NO_ROOM;
	p->eth = eth;
	p->ip4 = NULL;
	p->ip6 = NULL;
	p->l4 = NULL;
	p->data_end = data_end;
	return 0;
}

#endif
