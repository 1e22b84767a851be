// SPDX-License-Identifier: GPL-2.0
/* xvs dataplane: an XDP program that balances IPv4 TCP and UDP virtual services the way IPVS
 * does. Per packet: parse, look up the service, look up or create the connection, forward by the
 * real server's method, count. Everything else is passed to the kernel untouched and counted. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "xvs_consts.h"
#include "xvs_structs.h"
#include "xvs_maps.h"
#include "xvs_parse.h"
#include "xvs_csum.h"
#include "xvs_state.h"
#include "sched_table.h"

#ifndef AF_INET
#define AF_INET 2
#endif

char LICENSE[] SEC("license") = "GPL";

static __always_inline void count_reason(__u32 reason)
{
	__u64 *v = bpf_map_lookup_elem(&reasons, &reason);

	if (v)
		*v += 1;
}

static __always_inline int pass(__u32 reason)
{
	count_reason(reason);
	return XDP_PASS;
}

static __always_inline void count_in(__u32 svc, __u32 dest, __u32 bytes, int new_conn)
{
	struct xvs_stats *s = bpf_map_lookup_elem(&svc_stats, &svc);
	struct xvs_stats *d = bpf_map_lookup_elem(&dest_stats, &dest);

	if (s) {
		s->conns += new_conn;
		s->inpkts++;
		s->inbytes += bytes;
	}
	if (d) {
		d->conns += new_conn;
		d->inpkts++;
		d->inbytes += bytes;
	}
}

static __always_inline void count_out(__u32 svc, __u32 dest, __u32 bytes)
{
	struct xvs_stats *s = bpf_map_lookup_elem(&svc_stats, &svc);
	struct xvs_stats *d = bpf_map_lookup_elem(&dest_stats, &dest);

	if (s) {
		s->outpkts++;
		s->outbytes += bytes;
	}
	if (d) {
		d->outpkts++;
		d->outbytes += bytes;
	}
}

/* Sends the packet towards `nexthop` (the real server, or the client for a NAT reply): the
 * kernel's FIB gives the egress interface and both MACs, so users never configure a MAC. */
static __always_inline int forward(struct xdp_md *ctx, struct xvs_pkt *p, __be32 nexthop)
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

static __always_inline int dest_alive(const struct xvs_dest *d, const struct xvs_conn *c)
{
	return d->gen == c->dest_gen && d->svc == c->svc && (d->flags & XVS_DEST_F_AVAILABLE);
}

static __always_inline int conn_may_start(const struct xvs_pkt *p)
{
	if (p->key.proto == IPPROTO_UDP)
		return 1;
	return (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_RST)) == TCP_FLAG_SYN;
}

static __always_inline __s64 schedule(const struct xvs_service *svc)
{
	switch (svc->sched) {
	case XVS_SCHED_RR:
	case XVS_SCHED_WRR:
		return sched_table_pick(svc);
	}
	return -1;
}

/* NAT replies also need a lookup by the reply's own tuple; DR and TUN never see replies. */
static __always_inline int add_reply_entry(const struct xvs_pkt *p, const struct xvs_dest *d,
					   const struct xvs_conn *c)
{
	struct xvs_conn_key rk = {};
	struct xvs_conn r = *c;

	rk.saddr = d->addr;
	rk.daddr = p->key.saddr;
	rk.sport = d->port;
	rk.dport = p->key.sport;
	rk.proto = p->key.proto;
	rk.af = p->key.af;
	rk.dir = XVS_DIR_REPLY;
	r.vaddr = p->key.daddr;
	r.vport = p->key.dport;
	return bpf_map_update_elem(&conns, &rk, &r, BPF_ANY);
}

/* Creates the connection for a packet that may start one. Returns the stored entry or NULL
 * with *reason set. */
static __always_inline struct xvs_conn *conn_create(struct xvs_pkt *p,
						     const struct xvs_service *svc, __u64 now,
						     int *reason)
{
	__s64 pick = schedule(svc);

	if (pick < 0) {
		*reason = XVS_R_PASS_NO_DEST;
		return NULL;
	}
	__u32 di = pick;
	struct xvs_dest *d = bpf_map_lookup_elem(&dests, &di);
	if (!d) {
		*reason = XVS_R_PASS_NO_DEST;
		return NULL;
	}
	struct xvs_conn c = {};
	c.svc = svc->id;
	c.dest = di;
	c.dest_gen = d->gen;
	c.method = d->method;
	c.state = p->key.proto == IPPROTO_TCP ? XVS_TCP_S_NONE : XVS_UDP_S_NORMAL;
	c.last_seen = now;
	if (bpf_map_update_elem(&conns, &p->key, &c, BPF_ANY) ||
	    (d->method == XVS_FWD_NAT && add_reply_entry(p, d, &c))) {
		bpf_map_delete_elem(&conns, &p->key);
		*reason = XVS_R_DROP_CONN_FULL;
		return NULL;
	}
	return bpf_map_lookup_elem(&conns, &p->key);
}

static __always_inline int balance(struct xdp_md *ctx, struct xvs_pkt *p,
				   const struct xvs_service *svc)
{
	__u64 now = bpf_ktime_get_coarse_ns();
	struct xvs_conn *c = bpf_map_lookup_elem(&conns, &p->key);
	struct xvs_dest *d = NULL;
	int new_conn = 0;

	if (c && (c->svc != svc->id || conn_expired(c, now)))
		c = NULL;
	if (c) {
		__u32 di = c->dest;

		d = bpf_map_lookup_elem(&dests, &di);
		if (!d || !dest_alive(d, c)) {
			/* As IPVS with expire_nodest_conn: the connection ends with its server. */
			bpf_map_delete_elem(&conns, &p->key);
			if (!conn_may_start(p)) {
				count_reason(XVS_R_DROP_DEST_GONE);
				return XDP_DROP;
			}
			c = NULL;
		}
	}
	if (!c) {
		int reason;

		if (!conn_may_start(p))
			return pass(XVS_R_PASS_NO_CONN);
		c = conn_create(p, svc, now, &reason);
		if (!c) {
			if (reason == XVS_R_DROP_CONN_FULL) {
				count_reason(reason);
				return XDP_DROP;
			}
			return pass(reason);
		}
		__u32 di = c->dest;
		d = bpf_map_lookup_elem(&dests, &di);
		if (!d)
			return pass(XVS_R_PASS_NO_DEST);
		new_conn = 1;
	}

	conn_touch(c, p, c->method == XVS_FWD_NAT ? XVS_TCP_INPUT : XVS_TCP_INPUT_ONLY, now);
	count_in(c->svc, c->dest, p->ip_len, new_conn);

	switch (c->method) {
	case XVS_FWD_DR:
		return forward(ctx, p, d->addr.v4);
	case XVS_FWD_NAT:
		nat_rewrite(p, &p->ip4->daddr, l4_port(p, 1), d->addr.v4, d->port);
		return forward(ctx, p, d->addr.v4);
	}
	return pass(XVS_R_UNSUPPORTED_FWD);
}

/* A packet from a NAT real server to a client: rewrite its source back to the virtual service. */
static __always_inline int nat_reply(struct xdp_md *ctx, struct xvs_pkt *p)
{
	struct xvs_real_key rk = {};

	rk.addr = p->key.saddr;
	rk.port = p->key.sport;
	rk.proto = p->key.proto;
	rk.af = p->key.af;
	if (!bpf_map_lookup_elem(&nat_reals, &rk))
		return pass(XVS_R_PASS_NO_SERVICE);

	p->key.dir = XVS_DIR_REPLY;
	struct xvs_conn *r = bpf_map_lookup_elem(&conns, &p->key);
	if (!r)
		return pass(XVS_R_PASS_NO_SERVICE);

	struct xvs_conn_key fk = {};
	fk.saddr = p->key.daddr;
	fk.daddr = r->vaddr;
	fk.sport = p->key.dport;
	fk.dport = r->vport;
	fk.proto = p->key.proto;
	fk.af = p->key.af;
	fk.dir = XVS_DIR_IN;

	__u64 now = bpf_ktime_get_coarse_ns();
	struct xvs_conn *c = bpf_map_lookup_elem(&conns, &fk);
	if (!c || c->dest != r->dest || c->dest_gen != r->dest_gen || conn_expired(c, now)) {
		bpf_map_delete_elem(&conns, &p->key);
		return pass(XVS_R_PASS_STALE_REPLY);
	}
	conn_touch(c, p, XVS_TCP_OUTPUT, now);
	count_out(c->svc, c->dest, p->ip_len);
	nat_rewrite(p, &p->ip4->saddr, l4_port(p, 0), r->vaddr.v4, r->vport);
	return forward(ctx, p, p->ip4->daddr);
}

SEC("xdp")
int xvs_xdp(struct xdp_md *ctx)
{
	struct xvs_pkt p;

	__builtin_memset(&p, 0, sizeof(p));
	int reason = parse_packet(ctx, &p);
	if (reason >= 0)
		return pass(reason);

	struct xvs_svc_key sk = {};
	sk.addr = p.key.daddr;
	sk.port = p.key.dport;
	sk.proto = p.key.proto;
	sk.af = p.key.af;
	struct xvs_service *svc = bpf_map_lookup_elem(&services, &sk);
	if (!svc)
		return nat_reply(ctx, &p);
	return balance(ctx, &p, svc);
}

/* The enums' values reach the control plane through BTF: this variable makes clang emit them. */
struct xvs_enums {
	enum xvs_fwd fwd;
	enum xvs_sched sched;
	enum xvs_svc_flags svc_flags;
	enum xvs_dest_flags dest_flags;
	enum xvs_dir dir;
	enum xvs_conn_state state;
	enum xvs_reason reason;
};
const volatile struct xvs_enums xvs_enums_btf;
