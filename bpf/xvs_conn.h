/* SPDX-License-Identifier: GPL-2.0 */
/* Connections: whether a packet may start one, scheduling it to a real server, storing it (and for
 * NAT its reply entry), and checking that its real server still exists. */
#ifndef XVS_CONN_H
#define XVS_CONN_H

#include "xvs_maps.h"
#include "xvs_parse.h"
#include "sched_table.h"

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

#endif
