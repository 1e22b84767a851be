/* SPDX-License-Identifier: GPL-2.0 */
/* ICMP arriving at the balancer. An echo request to a virtual address is answered (xvs_icmp.h).
 * An error is related to a connection by the packet it quotes, as ip_vs_in_icmp() and
 * ip_vs_out_icmp() do:
 *  - quoting a packet sent to the client (from the virtual address: an error from the path
 *    towards the client), it goes to the connection's real server: as it is for DR, tunnelled for
 *    TUN, translated to the real server's address and port for NAT;
 *  - quoting a NAT-ed packet to a real server (an error from the real server, e.g. port
 *    unreachable, or from the path to it), it goes to the client, translated back to the virtual
 *    address and port;
 *  - quoting a client's packet to a DR/TUN real server (an error from that real server routed
 *    through the balancer), it is counted and routed on (xvs_routed.h).
 * Anything else is passed to the kernel. */
#ifndef XVS_ICMP_CONN_H
#define XVS_ICMP_CONN_H

#include "xvs_icmp.h"
#include "xvs_related.h"
#include "xvs_routed.h"

static __always_inline int icmp_error(struct xvs_pkt *p)
{
	struct xvs_conn_key k = {};
	__u64 now = xvs_clock();

	if (icmp_quote(p, &k))
		return pass(XVS_R_PASS_ICMP);
	k.dir = XVS_DIR_IN;
	struct xvs_conn *c = bpf_map_lookup_elem(&conns, &k);
	if (c)
		return related_to_real(p, c, &k, now, XVS_R_PASS_ICMP);
	k.dir = XVS_DIR_REPLY;
	c = bpf_map_lookup_elem(&conns, &k);
	if (c)
		return related_to_client(p, c, &k, now, XVS_R_PASS_ICMP);
	__u32 zero = 0;
	struct xvs_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (cfg && routed_reply_possible(&k, cfg))
		return XVS_ROUTED_REPLY;
	return pass(XVS_R_PASS_ICMP);
}

static __always_inline int icmp_in(struct xdp_md *ctx, struct xvs_pkt *p)
{
	__u8 type = *(__u8 *)p->l4;

	if (type == (p->ip4 ? ICMP_ECHO : ICMPV6_ECHO_REQUEST))
		return icmp_echo_reply(ctx, p);
	if (icmp_is_error(p, type))
		return icmp_error(p);
	return pass(XVS_R_PASS_ICMP);
}

/* A global function (see xvs_forward()): the decision lands in p->fwd. */
__attribute__((noinline)) int xvs_icmp(struct xdp_md *ctx, struct xvs_pkt *p)
{
	struct xvs_pkt h;

	if (!p)
		return XDP_ABORTED;
	h = *p;
	if (pkt_headers(ctx, &h) || !h.l4)
		return XDP_ABORTED;
	int verdict = icmp_in(ctx, &h);
	p->fwd = h.fwd;
	return verdict;
}


#endif
