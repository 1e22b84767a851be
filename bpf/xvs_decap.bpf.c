// SPDX-License-Identifier: GPL-2.0
/* xvs decapsulation for real servers of TUN services: an XDP program that removes the outer
 * IPv4 or IPv6 header of an IP-in-IP packet (protocol 4: IPv4 inside, 41: IPv6 inside), and the
 * UDP + GUE header (UDP to a configured port, GUE version 0) or the GRE header (version 0, no key,
 * sequence or routing) of a GUE or GRE one, and passes the inner packet to the stack, as if it
 * had arrived on the interface. It stands in for the kernel's ipip/ip6_tunnel, fou and ip_gre
 * modules, which many hosts lack.
 *
 * A GUE packet's UDP checksum and a GRE packet's checksum, when present, are verified (summing the
 * packet, xvs_sum.h): once the outer headers are gone nothing else covers the inner IPv6 header or
 * a checksum-less inner UDP datagram. A GUE remote checksum option is completed as the kernel's
 * fou does with "remcsum nopartial": the inner checksum is computed and written. A zero UDP
 * checksum is accepted over IPv6 too (RFC 6935): IPVS's GUE without --tun-csum sends it.
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
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "xvs_consts.h"
#include "xvs_structs.h"
#include "xvs_csum.h"
#include "xvs_sum.h"

char LICENSE[] SEC("license") = "GPL";

#define IPPROTO_IPIP_ 4
#define IPPROTO_IPV6_ 41
#define IPPROTO_UDP_ 17
#define IPPROTO_GRE_ 47
#define GRE_CSUM 0x8000
#define GUE_FLAG_PRIV 0x0001
#define GUE_PFLAG_REMCSUM 0x80000000U
#define GUE_VERSION_CONTROL 0xe0 /* version (2 bits) and C */
#define GUE_HLEN_MASK 0x1f
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

/* UDP destination ports (network order) whose packets are GUE. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __be16);
	__type(value, __u8);
} decap_gue_ports SEC(".maps");

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
	__u32 len;	/* outer IP header length; then with the GUE or GRE header */
	__u32 payload;	/* what follows the outer IP header */
	__u8 proto;	/* the outer IP header's protocol */
	__u8 inner_af;
	__u8 ecn;
	__u8 pad;
	__u16 remcsum_start; /* GUE remote checksum: from the inner packet's start, else 0 */
	__u16 remcsum_offset;
	struct xvs_decap_src_key src;
};

static __always_inline int tunnel_proto(__u8 proto)
{
	return proto == IPPROTO_IPIP_ || proto == IPPROTO_IPV6_ || proto == IPPROTO_UDP_ ||
	       proto == IPPROTO_GRE_;
}

/* Returns -1 with o filled for an IP-in-IP packet, else the reason to pass it. */
static __always_inline int parse_outer(void *l3, void *data_end, __be16 proto, struct outer *o)
{
	__u8 inner;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;

		if ((void *)(ip + 1) > data_end)
			return XVS_DECAP_PASS_MALFORMED;
		if (!tunnel_proto(ip->protocol))
			return XVS_DECAP_PASS_NOT_TUNNEL;
		if (ip->version != 4 || ip->ihl < 5 || bpf_ntohs(ip->tot_len) < ip->ihl * 4 ||
		    l3 + bpf_ntohs(ip->tot_len) > data_end)
			return XVS_DECAP_PASS_MALFORMED;
		if (ip->frag_off & bpf_htons(IP_MF_OFFSET))
			return XVS_DECAP_PASS_FRAGMENT;
		inner = ip->protocol;
		o->len = ip->ihl * 4;
		o->payload = bpf_ntohs(ip->tot_len) - o->len;
		o->ecn = ip->tos & ECN_MASK;
		o->src.af = XVS_AF_INET;
		o->src.addr.v4 = ip->saddr;
		o->src.prefixlen = 32 + 32;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > data_end)
			return XVS_DECAP_PASS_MALFORMED;
		if (!tunnel_proto(ip6->nexthdr))
			return XVS_DECAP_PASS_NOT_TUNNEL;
		if (ip6->version != 6 || (void *)(ip6 + 1) + bpf_ntohs(ip6->payload_len) > data_end)
			return XVS_DECAP_PASS_MALFORMED;
		inner = ip6->nexthdr;
		o->len = sizeof(*ip6);
		o->payload = bpf_ntohs(ip6->payload_len);
		o->ecn = (bpf_ntohl(*(__be32 *)ip6) >> 20) & ECN_MASK;
		o->src.af = XVS_AF_INET6;
		__builtin_memcpy(o->src.addr.v6, ip6->saddr.in6_u.u6_addr32, 16);
		o->src.prefixlen = 32 + 128;
	} else {
		return XVS_DECAP_PASS_NOT_TUNNEL;
	}
	o->proto = inner;
	o->inner_af = inner == IPPROTO_IPIP_ ? XVS_AF_INET : XVS_AF_INET6;
	return -1;
}

/* The sum of the outer payload (from off in the frame) must fold to 0xffff. */
static __always_inline int checksum_ok(struct xdp_md *ctx, __u32 off, __u32 len, __u32 seed)
{
	__u32 sum = seed;

	return !sum_range(ctx, off, len, &sum) && csum_fold32(sum) == 0xffff;
}

/* The UDP pseudo-header sum of the outer header at l3. */
static __always_inline __u32 udp_pseudo_sum(const void *l3, const struct outer *o)
{
	const __u16 *w = l3 + (o->src.af == XVS_AF_INET ? 12 : 8);
	int words = o->src.af == XVS_AF_INET ? 4 : 16;
	__u32 s = bpf_htons(IPPROTO_UDP_) + bpf_htons(o->payload);

	for (int i = 0; i < 16; i++) {
		if (i < words)
			s += w[i];
	}
	return s;
}

/* GRE (RFC 2784, version 0, no RFC 2890 key or sequence number): returns -1 with o->len past it
 * and o->inner_af set, else the reason to pass or drop the packet. */
static __always_inline int parse_gre(struct xdp_md *ctx, void *l3, void *data_end, __u32 l3_off,
				     struct outer *o)
{
	__be16 *gre = l3 + (o->len & 0x3c);

	if ((void *)(gre + 2) > data_end || o->payload < 4)
		return XVS_DECAP_PASS_MALFORMED;
	__u16 flags = bpf_ntohs(gre[0]);
	if (flags & ~GRE_CSUM)
		return XVS_DECAP_PASS_GRE_OPTIONS;
	if (gre[1] == bpf_htons(ETH_P_IP))
		o->inner_af = XVS_AF_INET;
	else if (gre[1] == bpf_htons(ETH_P_IPV6))
		o->inner_af = XVS_AF_INET6;
	else
		return XVS_DECAP_PASS_NOT_TUNNEL;
	if (flags & GRE_CSUM) {
		if (o->payload < 8)
			return XVS_DECAP_PASS_MALFORMED;
		if (!checksum_ok(ctx, l3_off + o->len, o->payload, 0))
			return XVS_DECAP_DROP_CSUM;
		o->len += 8;
		o->payload -= 8;
	} else {
		o->len += 4;
		o->payload -= 4;
	}
	return -1;
}

/* UDP to a GUE port, GUE version 0 with no option but remote checksum: returns -1 with o->len
 * past it and o->inner_af set, else the reason to pass or drop the packet. */
static __always_inline int parse_gue(struct xdp_md *ctx, void *l3, void *data_end, __u32 l3_off,
				     struct outer *o)
{
	struct udphdr *udp = l3 + (o->len & 0x3c);
	__u8 *gue = (__u8 *)(udp + 1);

	if ((void *)(gue + 12) > data_end)
		return XVS_DECAP_PASS_NOT_TUNNEL;
	if (!bpf_map_lookup_elem(&decap_gue_ports, &udp->dest))
		return XVS_DECAP_PASS_NOT_TUNNEL;
	__u32 optlen = (gue[0] & GUE_HLEN_MASK) * 4;
	__u16 flags = bpf_ntohs(*(__be16 *)(gue + 2));
	if (gue[0] & GUE_VERSION_CONTROL || (gue[1] != IPPROTO_IPIP_ && gue[1] != IPPROTO_IPV6_))
		return XVS_DECAP_PASS_NOT_TUNNEL;
	if (bpf_ntohs(udp->len) != o->payload || o->payload < 12 + optlen)
		return XVS_DECAP_PASS_MALFORMED;
	if (flags & ~GUE_FLAG_PRIV || (flags ? optlen != 4 && optlen != 8 : optlen != 0))
		return XVS_DECAP_PASS_MALFORMED;
	if (flags) {
		__u32 priv = bpf_ntohl(*(__be32 *)(gue + 4));
		if (priv != (optlen == 8 ? GUE_PFLAG_REMCSUM : 0))
			return XVS_DECAP_PASS_MALFORMED;
		if (optlen == 8) {
			o->remcsum_start = bpf_ntohs(*(__be16 *)(gue + 8));
			o->remcsum_offset = bpf_ntohs(*(__be16 *)(gue + 10));
		}
	}
	if (udp->check && !checksum_ok(ctx, l3_off + o->len, o->payload, udp_pseudo_sum(l3, o)))
		return XVS_DECAP_DROP_CSUM;
	o->inner_af = gue[1] == IPPROTO_IPIP_ ? XVS_AF_INET : XVS_AF_INET6;
	o->len += 12 + optlen;
	o->payload -= 12 + optlen;
	return -1;
}

/* GUE remote checksum offload: the sum from the inner packet's start + remcsum_start to its end,
 * folded and complemented, at start + remcsum_offset (skb_remcsum_process, nopartial). */
static __always_inline int complete_remcsum(struct xdp_md *ctx, void *inner, void *data_end,
					    __u32 inner_off, const struct outer *o)
{
	__u32 start = o->remcsum_start, at = o->remcsum_offset, sum = 0;

	if (start & 1 || start >= o->payload || at + 2 > o->payload || at < start || at > 0x1fe)
		return XVS_DECAP_DROP_CSUM;
	__sum16 *field = inner + (at & 0x1fe);
	if ((void *)(field + 1) > data_end)
		return XVS_DECAP_DROP_CSUM;
	if (sum_range(ctx, inner_off + start, o->payload - start, &sum))
		return XVS_DECAP_DROP_CSUM;
	*field = ~csum_fold32(sum);
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
	__u32 l3_off = tagged ? sizeof(*eth) + 4 : sizeof(*eth);
	if (o.proto == IPPROTO_GRE_)
		why = parse_gre(ctx, l3, data_end, l3_off, &o);
	else if (o.proto == IPPROTO_UDP_)
		why = parse_gue(ctx, l3, data_end, l3_off, &o);
	if (why == XVS_DECAP_DROP_CSUM)
		return done(why, XDP_DROP);
	if (why >= 0)
		return done(why, XDP_PASS);
	void *inner = l3 + (o.len & 0xff);
	if (inner + 1 > data_end || (*(__u8 *)inner >> 4) != (o.inner_af == XVS_AF_INET ? 4 : 6))
		return done(XVS_DECAP_PASS_MALFORMED, XDP_PASS);
	if (filter_sources && !bpf_map_lookup_elem(&decap_sources, &o.src))
		return done(XVS_DECAP_DROP_SOURCE, XDP_DROP);
	if (o.remcsum_offset) {
		why = complete_remcsum(ctx, inner, data_end, l3_off + (o.len & 0xff), &o);
		if (why >= 0)
			return done(why, XDP_DROP);
	}
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
