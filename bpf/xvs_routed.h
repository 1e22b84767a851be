/* SPDX-License-Identifier: GPL-2.0 */
/* Replies of DR and TUN connections that cross the balancer. A DR or TUN real server answers the
 * client itself, from the virtual address; when its route to the client still goes through the
 * balancer, IPVS sees the reply in its FORWARD hook (ip_vs_out_hook, handle_response):
 * ip_vs_conn_out_get() finds a connection that is not NAT by ⟨client, virtual address and port⟩
 * (the reply's destination and source), counts the reply in OutPkts/OutBytes, moves the TCP state
 * with the OUTPUT table, and lets it go on as ordinary routed traffic. The first such reply
 * clears IP_VS_CONN_F_NOOUTPUT: from then on the client's packets use the INPUT table instead of
 * INPUT_ONLY (conn_in_table()), so a connection closes through CLOSE_WAIT to TIME_WAIT as NAT
 * connections do, where one whose replies go round the balancer stays in FIN_WAIT.
 *
 * Forwarding: xvs routes the reply with the FIB as the kernel's forwarding would (same route,
 * TTL or hop limit decremented, MTU checked), in XDP, as it sends NAT replies. What ip_forward()
 * would refuse or answer before IPVS sees the packet (TTL exhausted, no route, too big with DF or
 * IPv6) is passed to the kernel uncounted, which answers it the same way. What it would forward
 * but XDP cannot (neighbour unresolved, too big without DF: fragmented) is counted and passed.
 *
 * Cost: only a packet for no service and from no NAT real server may be such a reply, and it pays
 * for the connection lookup only when its source is a virtual address of a service that has a
 * DR/TUN real server (XVS_CFG_F_ROUTED and the vips map) -- or always while a firewall-mark service
 * has one, since its virtual addresses are not listed (XVS_CFG_F_ROUTED_MARK).
 *
 * ICMP errors that a DR/TUN real server sends the client about the client's packets (port
 * unreachable, ...) take the same path when they cross the balancer: ip_vs_out_icmp() counts them
 * as output of the connection they quote, without a state change.
 *
 * Not reproduced: a later fragment of such a reply is passed to the kernel, which forwards it,
 * uncounted (IPVS counts the reassembled datagram once). */
#ifndef XVS_ROUTED_H
#define XVS_ROUTED_H

#include "xvs_counts.h"
#include "xvs_fwd.h"
#include "xvs_maps.h"
#include "xvs_state.h"
#include "xvs_stats.h"

/* Returned by the decision code for a packet that may be such a reply: xvs_routed_reply() takes
 * it from there. */
#define XVS_ROUTED_REPLY (-3)

/* Whether a packet for no service and from no NAT real server may be a DR/TUN reply with the
 * tuple r (an ICMP error: the tuple of the packet it is about, seen from the reply's side). */
static __always_inline int routed_reply_possible(const struct xvs_conn_key *r,
						 const struct xvs_config *cfg)
{
	struct xvs_vip_key vk = {};

	if (cfg->flags & XVS_CFG_F_ROUTED_MARK)
		return 1;
	if (!(cfg->flags & XVS_CFG_F_ROUTED))
		return 0;
	vk.addr = r->saddr;
	vk.af = r->af;
	return bpf_map_lookup_elem(&vips, &vk) != NULL;
}

static __always_inline void reverse_key(struct xvs_conn_key *k, const struct xvs_conn_key *r)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->saddr = r->daddr;
	k->daddr = r->saddr;
	k->sport = r->dport;
	k->dport = r->sport;
	k->proto = r->proto;
	k->af = r->af;
	k->dir = XVS_DIR_IN;
}

/* The key of the connection a reply belongs to: the client's own, the reply's reversed. An ICMP
 * error that a real server sends the client quotes the client's packet (ip_vs_out_icmp() finds
 * the connection by it). Returns 0, or -1 for an error that quotes nothing usable. */
static __always_inline int routed_conn_key(struct xvs_pkt *p, struct xvs_conn_key *k)
{
	struct xvs_conn_key r = {};

	if (!is_icmp(p)) {
		reverse_key(k, &p->key);
		return 0;
	}
	if (!p->l4 || icmp_quote(p, &r))
		return -1;
	reverse_key(k, &r);
	return 0;
}

/* Whether the kernel's forwarding would take the packet on after this hop (else time exceeded). */
static __always_inline int hops_left(const struct xvs_pkt *p)
{
	if (p->ip4)
		return p->ip4->ttl > 1;
	return p->ip6 && p->ip6->hop_limit > 1;
}

static __always_inline void hop_decrease(struct xvs_pkt *p)
{
	if (p->ip4) {
		__u16 *ttl_proto = (__u16 *)&p->ip4->ttl;
		__u16 before = *ttl_proto;

		p->ip4->ttl--;
		p->ip4->check = csum_replace2(p->ip4->check, before, *ttl_proto);
	} else if (p->ip6) {
		p->ip6->hop_limit--;
	}
}

/* An IPv4 packet without DF, which the kernel fragments where XDP cannot. */
static __always_inline int may_fragment(const struct xvs_pkt *p)
{
	return p->ip4 && !(p->ip4->frag_off & bpf_htons(IP_DF));
}

/* handle_response() for a connection that is not NAT: count, then the OUTPUT state; an ICMP error
 * is only counted (handle_response_icmp()). IPVS also marks the controlling template ASSURED on
 * the way (ip_vs_control_assure_ct(): a TCP connection reaching ESTABLISHED, any UDP reply): that
 * belongs in conn_touch(), which is called here with the OUTPUT table as for a NAT reply. */
static __always_inline void routed_reply_count(struct xvs_conn *c, const struct xvs_pkt *p,
					       const struct xvs_config *cfg, __u64 now)
{
	count_out(c->svc, c->dest, p->ip_len);
	if (is_icmp(p))
		return;
	if (!(c->flags & XVS_CONN_F_OUTPUT))
		__sync_fetch_and_or(&c->flags, XVS_CONN_F_OUTPUT);
	conn_touch(c, p, XVS_TCP_OUTPUT, cfg, now);
}

/* A packet that routed_reply_possible() let through: a reply of a live DR/TUN connection is
 * counted and routed on; anything else is passed untouched. A global function with the frame at
 * hand, since what is counted depends on the route. */
__attribute__((noinline)) int xvs_routed_reply(struct xdp_md *ctx, struct xvs_pkt *in)
{
	__u32 zero = 0;
	struct bpf_fib_lookup *fib = bpf_map_lookup_elem(&fib_params, &zero);
	struct xvs_config *cfg = bpf_map_lookup_elem(&config, &zero);
	struct xvs_conn_key k;
	struct xvs_pkt p;

	if (!in || !fib || !cfg)
		return XDP_ABORTED;
	p = *in;
	if (pkt_headers(ctx, &p))
		return XDP_ABORTED;
	if (routed_conn_key(&p, &k))
		return pass(XVS_R_PASS_ICMP);
	struct xvs_conn *c = bpf_map_lookup_elem(&conns, &k);
	__u64 now = xvs_now(cfg);
	if (!c || c->method == XVS_FWD_NAT || conn_expired(c, now) || !dest_get(c->dest, c->dest_gen))
		return pass(is_icmp(&p) ? XVS_R_PASS_ICMP : XVS_R_PASS_NO_SERVICE);
	if (!hops_left(&p))
		return pass(XVS_R_PASS_ROUTED);
	int why = fib_route(ctx, &p, p.key.af, &p.key.saddr, &p.key.daddr, p.ip_len, 0, fib);
	if (why == XVS_R_PASS_FIB || (why == XVS_R_ICMP_TOO_BIG && !may_fragment(&p)))
		return pass(XVS_R_PASS_ROUTED);
	routed_reply_count(c, &p, cfg, now);
	if (why >= 0)
		return pass(why == XVS_R_ICMP_TOO_BIG ? XVS_R_PASS_ROUTED : why);
	hop_decrease(&p);
	return transmit(ctx, &p, fib);
}

#endif
