/* SPDX-License-Identifier: GPL-2.0 */
/* Forwarding: the FIB lookup every method starts with, address/port rewriting with checksum fixes
 * (NAT), encapsulation (TUN), and the L2 rewrite and transmit they end with. The route is looked
 * up before the packet is changed, so that a packet too big for the path is still the client's
 * own packet when the ICMP error quotes it. */
#ifndef XVS_FWD_H
#define XVS_FWD_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "xvs_csum.h"
#include "xvs_icmp.h"
#include "xvs_parse.h"
#include "xvs_stats.h"
#include "xvs_tun.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/* Asks the kernel's FIB for the route from src to dst in family af, for a packet of tot_len
 * bytes: users never configure a MAC. Returns -1 when fib holds a usable route, else the reason
 * the packet cannot take it: XVS_R_ICMP_TOO_BIG with the path's MTU in fib->mtu_result, or a
 * pass reason. */
static __always_inline int fib_route(struct xdp_md *ctx, const struct xvs_pkt *p, __u8 af,
				     const union xvs_addr *src, const union xvs_addr *dst,
				     __u32 tot_len, __u32 flags, struct bpf_fib_lookup *fib)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->l4_protocol = p->key.proto;
	fib->sport = p->key.sport;
	fib->dport = p->key.dport;
	fib->tot_len = tot_len;
	fib->ifindex = ctx->ingress_ifindex;
	if (af == XVS_AF_INET) {
		fib->family = AF_INET;
		fib->ipv4_src = src->v4;
		fib->ipv4_dst = dst->v4;
	} else {
		fib->family = AF_INET6;
		__builtin_memcpy(fib->ipv6_src, src->v6, 16);
		__builtin_memcpy(fib->ipv6_dst, dst->v6, 16);
	}

	int rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), flags);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return XVS_R_ICMP_TOO_BIG;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return XVS_R_PASS_NO_NEIGH;
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return XVS_R_PASS_FIB;
	if (p->tagged && fib->ifindex != ctx->ingress_ifindex)
		return XVS_R_PASS_VLAN_EGRESS;
	return -1;
}

/* Sends the packet on the route fib_route() found. */
static __always_inline int transmit(struct xdp_md *ctx, struct xvs_pkt *p,
				    const struct bpf_fib_lookup *fib)
{
	__builtin_memcpy(p->eth->h_dest, fib->dmac, ETH_ALEN);
	__builtin_memcpy(p->eth->h_source, fib->smac, ETH_ALEN);
	if (fib->ifindex == ctx->ingress_ifindex) {
		count_reason(XVS_R_FWD_TX);
		return XDP_TX;
	}
	count_reason(XVS_R_FWD_REDIRECT);
	return bpf_redirect(fib->ifindex, 0);
}

/* The L4 checksum field. parse_packet checked the header's length, but the verifier only keeps
 * what both protocols' checks have in common, so the TCP header is checked again here. */
static __always_inline __sum16 *l4_check(struct xvs_pkt *p)
{
	struct tcphdr *tcp = p->l4;

	if (p->key.proto == IPPROTO_UDP)
		return &((struct udphdr *)p->l4)->check;
	if ((void *)(tcp + 1) > p->data_end)
		return NULL;
	return &tcp->check;
}

static __always_inline __be16 *l4_port(struct xvs_pkt *p, int dst)
{
	/* TCP and UDP both start with source port, destination port. */
	return (__be16 *)p->l4 + (dst ? 1 : 0);
}

/* Rewrites the destination (dst = 1: a NAT request) or the source (a NAT reply) address and
 * port, fixing the IPv4 header checksum and the TCP/UDP checksum, whose pseudo-header holds the
 * addresses (IPv6 has no header checksum), or SCTP's CRC32c, which covers only the ports. A UDP checksum of 0 (none, IPv4 only) stays 0. A later
 * fragment has no ports: only its address changes (the first fragment's checksum covers the
 * datagram). An ICMP error is translated as a whole by icmp_nat(). */
static __always_inline void nat_rewrite(struct xvs_pkt *p, int dst, const union xvs_addr *to,
					__be16 port)
{
	__u32 delta;

	if (p->l4 && is_icmp(p)) {
		icmp_nat(p, dst, to, port);
		return;
	}
	if (p->ip4) {
		__be32 *addr = dst ? &p->ip4->daddr : &p->ip4->saddr;

		delta = csum_delta4(*addr, to->v4);
		p->ip4->check = csum_apply(p->ip4->check, delta);
		*addr = to->v4;
	} else if (p->ip6) {
		__be32 *addr = dst ? p->ip6->daddr.in6_u.u6_addr32 : p->ip6->saddr.in6_u.u6_addr32;

		delta = csum_delta16(addr, to->v6);
		__builtin_memcpy(addr, to->v6, 16);
	} else {
		return;
	}
	if (!p->l4)
		return;
	if (p->key.proto == IPPROTO_SCTP) {
		sctp_nat_port(p->l4, p->data_end, p->ip_len - (p->l4_off - p->l3_off), dst, port);
		return;
	}
	__sum16 *l4sum = l4_check(p);
	if (!l4sum)
		return;
	__be16 *pp = l4_port(p, dst);
	__u16 sum = *l4sum;
	if (!(p->key.proto == IPPROTO_UDP && sum == 0)) {
		sum = csum_apply(sum, delta + csum_delta2(*pp, port));
		if (p->key.proto == IPPROTO_UDP && sum == 0)
			sum = 0xffff;
		*l4sum = sum;
	}
	*pp = port;
}

/* The route's source towards the real server from its cache entry c, while that is fresh. */
static __always_inline int tun_source_cached(const struct xvs_tun_src_cache *c,
					     const struct xvs_fwd_req *r, __u64 now,
					     union xvs_addr *src)
{
	if (!c || c->dest_gen != r->dest_gen || now > c->expires)
		return 0;
	*src = c->src;
	return 1;
}

/* TUN: the outer source is the configured one, or the route's (cached per real server); the
 * route to the real server decides whether the packet still fits with the outer header. */
static __always_inline int tun_forward(struct xdp_md *ctx, struct xvs_pkt *p,
				       struct bpf_fib_lookup *fib)
{
	const struct xvs_fwd_req *r = &p->fwd;
	__u8 af = r->to_af;
	__u32 hlen = outer_hlen(af) + tun_mid_len(p);
	__u64 now = bpf_ktime_get_coarse_ns();
	struct xvs_tun_src_cache *cache = bpf_map_lookup_elem(&tun_src_cache, &r->dest);
	union xvs_addr src = {};
	int known = tun_source(af, r->hash, &src) || tun_source_cached(cache, r, now, &src);

	int why = fib_route(ctx, p, af, &src, &r->to, p->ip_len + hlen,
			    known ? 0 : BPF_FIB_LOOKUP_SRC, fib);
	if (why == XVS_R_ICMP_TOO_BIG)
		return too_big(p, fib->mtu_result > hlen ? fib->mtu_result - hlen : 0);
	if (why >= 0)
		return pass(why);
	if (!known) {
		if (af == XVS_AF_INET)
			src.v4 = fib->ipv4_src;
		else
			__builtin_memcpy(src.v6, fib->ipv6_src, 16);
		if (cache) {
			/* Racing writers store the same route's source; a reader checks gen and time. */
			cache->src = src;
			cache->expires = now + XVS_TUN_SRC_REFRESH_NS;
			cache->dest_gen = r->dest_gen;
		}
	}
	why = tun_encap(ctx, p, af, &src, &r->to, r->hash);
	if (why) {
		count_reason(why);
		return XDP_DROP;
	}
	return transmit(ctx, p, fib);
}

/* Returned by the decision code when xvs_forward() is to send the packet. */
#define XVS_FORWARD (-1)

/* The packet goes to real server d (index dest) by `method`, NAT to port rport (the connection's,
 * which differs from d->port for port-0 services and real servers); flow is its connection's key. */
static __always_inline int fwd_to_real(struct xvs_pkt *p, __u8 method, __u32 dest,
				       const struct xvs_dest *d, const struct xvs_conn_key *flow,
				       __be16 rport)
{
	p->fwd.dir = XVS_DIR_IN;
	p->fwd.method = method;
	p->fwd.to = d->addr;
	p->fwd.to_af = d->af;
	p->fwd.port = rport;
	p->fwd.hash = method == XVS_FWD_TUN ? flow_hash(flow) : 0;
	p->fwd.dest = dest;
	p->fwd.dest_gen = d->gen;
	p->fwd.tun_type = d->tun_type;
	p->fwd.tun_flags = d->tun_flags;
	p->fwd.tun_port = d->tun_port;
	return XVS_FORWARD;
}

/* The packet, from a NAT real server, goes to the client from the virtual address and port. */
static __always_inline int fwd_to_client(struct xvs_pkt *p, const union xvs_addr *vaddr,
					 __be16 vport)
{
	p->fwd.dir = XVS_DIR_REPLY;
	p->fwd.method = XVS_FWD_NAT;
	p->fwd.to = *vaddr;
	p->fwd.to_af = p->key.af;
	p->fwd.port = vport;
	return XVS_FORWARD;
}

/* fib_route() towards the real server r->dest, answered from the per-CPU next-hop cache while it
 * is fresh: the FIB lookup is most of an established packet's cost. A packet larger than any the
 * cached route took asks the FIB, which checks the MTU. */
static __always_inline int real_route(struct xdp_md *ctx, const struct xvs_pkt *p,
				      const struct xvs_fwd_req *r, struct bpf_fib_lookup *fib)
{
	__u32 di = r->dest;
	struct xvs_nexthop *nh = bpf_map_lookup_elem(&nexthops, &di);
	__u64 now = bpf_ktime_get_coarse_ns();
	int fresh = nh && nh->dest_gen == r->dest_gen && nh->ingress == ctx->ingress_ifindex &&
		    now < nh->expires;

	if (fresh && p->ip_len <= nh->max_len) {
		fib->ifindex = nh->ifindex;
		__builtin_memcpy(fib->smac, nh->smac, ETH_ALEN);
		__builtin_memcpy(fib->dmac, nh->dmac, ETH_ALEN);
		if (p->tagged && fib->ifindex != ctx->ingress_ifindex)
			return XVS_R_PASS_VLAN_EGRESS;
		return -1;
	}
	int why = fib_route(ctx, p, r->to_af, &p->key.saddr, &r->to, p->ip_len, 0, fib);
	if (why >= 0 || !nh)
		return why;
	if (fresh && nh->ifindex == fib->ifindex) {
		nh->max_len = p->ip_len;
		return -1;
	}
	nh->expires = now + XVS_NEXTHOP_TTL_NS;
	nh->dest_gen = r->dest_gen;
	nh->ingress = ctx->ingress_ifindex;
	nh->ifindex = fib->ifindex;
	nh->max_len = p->ip_len;
	__builtin_memcpy(nh->smac, fib->smac, ETH_ALEN);
	__builtin_memcpy(nh->dmac, fib->dmac, ETH_ALEN);
	return -1;
}

/* Sends a packet from the client's side of a connection to its real server by `method`. */
static __always_inline int forward_in(struct xdp_md *ctx, struct xvs_pkt *p,
				      struct bpf_fib_lookup *fib)
{
	const struct xvs_fwd_req *r = &p->fwd;

	if (r->method == XVS_FWD_TUN)
		return tun_forward(ctx, p, fib);
	if (r->method != XVS_FWD_DR && r->method != XVS_FWD_NAT)
		return pass(XVS_R_UNSUPPORTED_FWD);
	int why = real_route(ctx, p, r, fib);
	if (why == XVS_R_ICMP_TOO_BIG)
		return too_big(p, fib->mtu_result);
	if (why >= 0)
		return pass(why);
	if (r->method == XVS_FWD_NAT)
		nat_rewrite(p, 1, &r->to, r->port);
	return transmit(ctx, p, fib);
}

/* Sends a NAT real server's packet to the client with the virtual address and port as source.
 * Too big for the client's path, it is passed: the kernel's forwarding then tells the real
 * server, which sent it, the MTU. */
static __always_inline int forward_reply(struct xdp_md *ctx, struct xvs_pkt *p,
					 struct bpf_fib_lookup *fib)
{
	const struct xvs_fwd_req *r = &p->fwd;

	int why = fib_route(ctx, p, p->key.af, &p->key.saddr, &p->key.daddr, p->ip_len, 0, fib);
	if (why >= 0)
		return pass(why == XVS_R_ICMP_TOO_BIG ? XVS_R_PASS_FIB : why);
	nat_rewrite(p, 0, &r->to, r->port);
	return transmit(ctx, p, fib);
}

/* Carries out the forwarding decision in in->fwd; XVS_TOO_BIG leaves the MTU in in->fwd.mtu. A
 * global function: the verifier checks it once, for any packet and decision, instead of once for
 * every way the decision code reaches it. */
__attribute__((noinline)) int xvs_forward(struct xdp_md *ctx, struct xvs_pkt *in)
{
	__u32 zero = 0;
	struct bpf_fib_lookup *fib = bpf_map_lookup_elem(&fib_params, &zero);
	struct xvs_pkt p;
	int verdict;

	if (!in || !fib)
		return XDP_ABORTED;
	p = *in;
	if (pkt_headers(ctx, &p))
		return XDP_ABORTED;
	if (p.fwd.dir == XVS_DIR_IN)
		verdict = forward_in(ctx, &p, fib);
	else
		verdict = forward_reply(ctx, &p, fib);
	in->fwd.mtu = p.fwd.mtu;
	return verdict;
}

#endif
