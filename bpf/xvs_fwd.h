/* SPDX-License-Identifier: GPL-2.0 */
/* Forwarding: address/port rewriting with checksum fixes (NAT) and the FIB-driven L2 rewrite and
 * transmit that every method ends with. */
#ifndef XVS_FWD_H
#define XVS_FWD_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "xvs_csum.h"
#include "xvs_parse.h"
#include "xvs_stats.h"

#ifndef AF_INET
#define AF_INET 2
#endif

/* Sends the packet towards `nexthop` (the real server, or the client for a NAT reply): the
 * kernel's FIB gives the egress interface and both MACs, so users never configure a MAC. */
static __noinline int forward(struct xdp_md *ctx, struct xvs_pkt *p, __be32 nexthop)
{
	struct bpf_fib_lookup fib = {};
	struct iphdr *ip = p->ip4;

	fib.family = AF_INET;
	fib.tos = ip->tos;
	fib.l4_protocol = ip->protocol;
	fib.sport = p->key.sport;
	fib.dport = p->key.dport;
	fib.tot_len = p->ip_len;
	fib.ifindex = ctx->ingress_ifindex;
	fib.ipv4_src = ip->saddr;
	fib.ipv4_dst = nexthop;

	int rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return pass(XVS_R_PASS_NO_NEIGH);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return pass(XVS_R_PASS_FIB);
	if (p->tagged && fib.ifindex != ctx->ingress_ifindex)
		return pass(XVS_R_PASS_VLAN_EGRESS);

	__builtin_memcpy(p->eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(p->eth->h_source, fib.smac, ETH_ALEN);
	if (fib.ifindex == ctx->ingress_ifindex) {
		count_reason(XVS_R_FWD_TX);
		return XDP_TX;
	}
	count_reason(XVS_R_FWD_REDIRECT);
	return bpf_redirect(fib.ifindex, 0);
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

/* Rewrites one address and port of the packet (destination for a NAT request, source for its
 * reply) and fixes the IPv4 and TCP/UDP checksums; a UDP checksum of 0 (none) stays 0. */
static __always_inline void nat_rewrite(struct xvs_pkt *p, __be32 *addr, __be16 *port,
					__be32 new_addr, __be16 new_port)
{
	__sum16 *l4sum = l4_check(p);

	if (!l4sum)
		return;
	__u16 sum = *l4sum;
	int udp_nosum = p->key.proto == IPPROTO_UDP && sum == 0;

	p->ip4->check = csum_replace4(p->ip4->check, *addr, new_addr);
	if (!udp_nosum) {
		sum = csum_replace4(sum, *addr, new_addr);
		sum = csum_replace2(sum, *port, new_port);
		if (p->key.proto == IPPROTO_UDP && sum == 0)
			sum = 0xffff;
		*l4sum = sum;
	}
	*addr = new_addr;
	*port = new_port;
}

static __always_inline __be16 *l4_port(struct xvs_pkt *p, int dst)
{
	/* TCP and UDP both start with source port, destination port. */
	return (__be16 *)p->l4 + (dst ? 1 : 0);
}

#endif
