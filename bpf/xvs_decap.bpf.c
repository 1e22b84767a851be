// SPDX-License-Identifier: GPL-2.0
/* xvs decapsulation for real servers of TUN services: an XDP program that removes the outer
 * IPv4 or IPv6 header of an IP-in-IP packet (protocol 4: IPv4 inside, 41: IPv6 inside) and passes
 * the inner packet to the stack, as if it had arrived on the interface. It stands in for the
 * kernel's ipip/ip6_tunnel modules, which many hosts lack.
 *
 * Only the outer header is checked (and, when configured, its source against decap_sources);
 * the stack then treats the inner packet as any other: a virtual address held on lo accepts it.
 * An outer fragment, or an IPv6 outer header followed by extension headers, is passed untouched
 * (xvs's balancer never fragments: it sets DF, and adds no extension header). ECN: an
 * outer CE mark is copied into an ECN-capable inner packet and drops a not-ECT one (RFC 6040). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "xvs_consts.h"
#include "xvs_structs.h"
#include "xvs_csum.h"

char LICENSE[] SEC("license") = "GPL";

#define IPPROTO_IPIP_ 4
#define IPPROTO_IPV6_ 41
#define IP_MF_OFFSET 0x3fff
#define ECN_MASK 3
#define ECN_CE 3

/* Set before load: 1 when decap_sources lists the outer sources allowed. */
const volatile __u8 filter_sources = 0;

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xvs_decap_src_key);
	__type(value, __u8);
} decap_sources SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_DECAP_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} decap_stats SEC(".maps");

static __always_inline int done(__u32 reason, int verdict)
{
	__u64 *n = bpf_map_lookup_elem(&decap_stats, &reason);

	if (n)
		*n += 1;
	return verdict;
}

struct outer {
	__u32 len;	/* outer header length */
	__u8 inner_af;
	__u8 ecn;
	struct xvs_decap_src_key src;
};

/* Returns -1 with o filled for an IP-in-IP packet, else the reason to pass it. */
static __always_inline int parse_outer(void *l3, void *data_end, __be16 proto, struct outer *o)
{
	__u8 inner;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;

		if ((void *)(ip + 1) > data_end)
			return XVS_DECAP_PASS_MALFORMED;
		if (ip->protocol != IPPROTO_IPIP_ && ip->protocol != IPPROTO_IPV6_)
			return XVS_DECAP_PASS_NOT_TUNNEL;
		if (ip->version != 4 || ip->ihl < 5 || bpf_ntohs(ip->tot_len) < ip->ihl * 4 ||
		    l3 + bpf_ntohs(ip->tot_len) > data_end)
			return XVS_DECAP_PASS_MALFORMED;
		if (ip->frag_off & bpf_htons(IP_MF_OFFSET))
			return XVS_DECAP_PASS_FRAGMENT;
		inner = ip->protocol;
		o->len = ip->ihl * 4;
		o->ecn = ip->tos & ECN_MASK;
		o->src.af = XVS_AF_INET;
		o->src.addr.v4 = ip->saddr;
		o->src.prefixlen = 32 + 32;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > data_end)
			return XVS_DECAP_PASS_MALFORMED;
		if (ip6->nexthdr != IPPROTO_IPIP_ && ip6->nexthdr != IPPROTO_IPV6_)
			return XVS_DECAP_PASS_NOT_TUNNEL;
		if (ip6->version != 6 || (void *)(ip6 + 1) + bpf_ntohs(ip6->payload_len) > data_end)
			return XVS_DECAP_PASS_MALFORMED;
		inner = ip6->nexthdr;
		o->len = sizeof(*ip6);
		o->ecn = (bpf_ntohl(*(__be32 *)ip6) >> 20) & ECN_MASK;
		o->src.af = XVS_AF_INET6;
		__builtin_memcpy(o->src.addr.v6, ip6->saddr.in6_u.u6_addr32, 16);
		o->src.prefixlen = 32 + 128;
	} else {
		return XVS_DECAP_PASS_NOT_TUNNEL;
	}
	o->inner_af = inner == IPPROTO_IPIP_ ? XVS_AF_INET : XVS_AF_INET6;
	return -1;
}

/* RFC 6040 section 4.2: returns -1, or the reason to drop. */
static __always_inline int propagate_ecn(void *inner, void *data_end, const struct outer *o)
{
	if (o->ecn != ECN_CE)
		return -1;
	if (o->inner_af == XVS_AF_INET) {
		struct iphdr *ip = inner;

		if ((void *)(ip + 1) > data_end)
			return XVS_DECAP_PASS_MALFORMED;
		if ((ip->tos & ECN_MASK) == 0)
			return XVS_DECAP_DROP_ECN;
		__u16 *word = (__u16 *)ip;
		__u16 before = *word;
		ip->tos |= ECN_CE;
		ip->check = csum_replace2(ip->check, before, *word);
		return -1;
	}
	struct ipv6hdr *ip6 = inner;
	if ((void *)(ip6 + 1) > data_end)
		return XVS_DECAP_PASS_MALFORMED;
	__u32 first = bpf_ntohl(*(__be32 *)ip6);
	if (((first >> 20) & ECN_MASK) == 0)
		return XVS_DECAP_DROP_ECN;
	*(__be32 *)ip6 = bpf_htonl(first | ECN_CE << 20);
	return -1;
}

SEC("xdp")
int xvs_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *l3 = eth + 1;
	int tagged = 0;

	if (l3 > data_end)
		return done(XVS_DECAP_PASS_MALFORMED, XDP_PASS);
	__be16 proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		if (l3 + 4 > data_end)
			return done(XVS_DECAP_PASS_MALFORMED, XDP_PASS);
		proto = *(__be16 *)(l3 + 2);
		l3 += 4;
		tagged = 1;
	}

	struct outer o = {};
	int why = parse_outer(l3, data_end, proto, &o);
	if (why >= 0)
		return done(why, XDP_PASS);
	void *inner = l3 + (o.len & 0x3c);
	if (inner + 1 > data_end || (*(__u8 *)inner >> 4) != (o.inner_af == XVS_AF_INET ? 4 : 6))
		return done(XVS_DECAP_PASS_MALFORMED, XDP_PASS);
	if (filter_sources && !bpf_map_lookup_elem(&decap_sources, &o.src))
		return done(XVS_DECAP_DROP_SOURCE, XDP_DROP);
	why = propagate_ecn(inner, data_end, &o);
	if (why == XVS_DECAP_DROP_ECN)
		return done(why, XDP_DROP);
	if (why >= 0)
		return done(why, XDP_PASS);

	/* The L2 header moves up to sit in front of the inner packet; o.len >= 20 > its length. */
	int l2 = tagged ? sizeof(*eth) + 4 : sizeof(*eth);
	void *to = inner - l2;
	if (to < data || to + sizeof(*eth) + 4 > data_end)
		return done(XVS_DECAP_PASS_MALFORMED, XDP_PASS);
	__be16 ethertype = bpf_htons(o.inner_af == XVS_AF_INET ? ETH_P_IP : ETH_P_IPV6);
	if (tagged) {
		__builtin_memcpy(to, data, sizeof(*eth) + 2);
		*(__be16 *)(to + sizeof(*eth) + 2) = ethertype;
	} else {
		__builtin_memcpy(to, data, sizeof(*eth) - 2);
		*(__be16 *)(to + sizeof(*eth) - 2) = ethertype;
	}
	if (bpf_xdp_adjust_head(ctx, to - data))
		return done(XVS_DECAP_PASS_MALFORMED, XDP_PASS);
	return done(XVS_DECAP_OK, XDP_PASS);
}

/* The enum's values reach the control plane through BTF. */
const volatile enum xvs_decap_reason xvs_decap_reasons_btf;
