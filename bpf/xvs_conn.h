/* SPDX-License-Identifier: GPL-2.0 */
/* Connections: whether a packet may start one, scheduling it to a real server (through the
 * client's persistence template on a persistent service), storing and counting it (and for NAT
 * its reply entry), and ending it exactly once. */
#ifndef XVS_CONN_H
#define XVS_CONN_H

#include "xvs_maps.h"
#include "xvs_parse.h"
#include "xvs_state.h"
#include "xvs_counts.h"
#include "xvs_persist.h"
#include "sched_table.h"
#include "sched_wrr.h"
#include "sched_lc.h"
#include "sched_wlc.h"
#include "sched_sed.h"
#include "sched_nq.h"
#include "sched_fo.h"
#include "sched_ovf.h"
#include "sched_twos.h"
#include "sched_dh.h"
#include "sched_sh.h"
#include "sched_mh.h"
#include "sched_lblc.h"
#include "sched_lblcr.h"

static __always_inline int conn_may_start(const struct xvs_pkt *p)
{
	if (p->key.proto == IPPROTO_UDP)
		return 1;
	if (p->key.proto == IPPROTO_SCTP)
		return p->sctp_chunk == XVS_SCTP_CID_INIT;
	return (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_RST)) == TCP_FLAG_SYN;
}

/* conn_reuse_mode 1 (is_new_conn_expected): a new SYN on a TCP connection that finished
 * (TIME_WAIT, CLOSE), or an INIT on a CLOSED SCTP one, that no template controls starts a new
 * connection, scheduled afresh. */
static __always_inline int conn_reused(const struct xvs_conn *c, const struct xvs_pkt *p)
{
	if (p->key.proto == IPPROTO_SCTP)
		return p->sctp_chunk == XVS_SCTP_CID_INIT && !(c->flags & XVS_CONN_F_CONTROLLED) &&
		       c->state == XVS_SCTP_S_CLOSED;
	return p->key.proto == IPPROTO_TCP &&
	       (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN &&
	       !(c->flags & XVS_CONN_F_CONTROLLED) &&
	       (c->state == XVS_TCP_S_TIME_WAIT || c->state == XVS_TCP_S_CLOSE);
}

/* The service's scheduler's choice for a new connection: a dests index, or -1. */
static __noinline __s64 schedule(const struct xvs_pkt *p, const struct xvs_service *svc,
				      __u64 now)
{
	struct xvs_sched_state *st = bpf_map_lookup_elem(&svc_sched, &svc->id);

	if (!st)
		return -1;
	switch (svc->sched) {
	case XVS_SCHED_RR:
		return sched_table_pick(st, 0);
	case XVS_SCHED_WRR:
		return st->wrr_mw ? sched_wrr_step(st) : sched_table_pick(st, 1);
	case XVS_SCHED_LC:
		return sched_lc(st);
	case XVS_SCHED_WLC:
		return sched_wlc(st);
	case XVS_SCHED_SED:
		return sched_sed(st);
	case XVS_SCHED_NQ:
		return sched_nq(st);
	case XVS_SCHED_FO:
		return sched_fo(st);
	case XVS_SCHED_OVF:
		return sched_ovf(st);
	case XVS_SCHED_TWOS:
		return sched_twos(st);
	case XVS_SCHED_DH:
		return sched_dh(p, st);
	case XVS_SCHED_SH:
		return sched_sh(p, svc, st);
	case XVS_SCHED_MH:
		return sched_mh(p, svc, st);
	case XVS_SCHED_LBLC:
		return sched_lblc(p, svc, st, now);
	case XVS_SCHED_LBLCR:
		return sched_lblcr(p, svc, st, now);
	}
	return -1;
}

/* The reply entry of a NAT connection: the real server's packets to the client. */
static __always_inline void reply_key_of(struct xvs_conn_key *rk, const struct xvs_conn_key *k,
					 const struct xvs_dest *d, __be16 rport)
{
	__builtin_memset(rk, 0, sizeof(*rk));
	rk->saddr = d->addr;
	rk->daddr = k->saddr;
	rk->sport = rport;
	rk->dport = k->sport;
	rk->proto = k->proto;
	rk->af = k->af;
	rk->dir = XVS_DIR_REPLY;
}

/* The client's entry (DIR_IN) of the NAT connection whose reply entry r is stored under rk. */
static __always_inline void client_key_of(struct xvs_conn_key *fk, const struct xvs_conn_key *rk,
					  const struct xvs_conn *r)
{
	__builtin_memset(fk, 0, sizeof(*fk));
	fk->saddr = rk->daddr;
	fk->daddr = r->vaddr;
	fk->sport = rk->dport;
	fk->dport = r->vport;
	fk->proto = rk->proto;
	fk->af = rk->af;
	fk->dir = XVS_DIR_IN;
}

/* Ends the connection stored under k (DIR_IN): uncounts it and removes it and its reply entry.
 * Only the party that uncounts it removes it; returns whether that was us. */
static __noinline int conn_end(const struct xvs_conn_key *k, struct xvs_conn *c)
{
	if (!entry_uncount(&c->counted, c->dest, c->dest_gen))
		return 0;
	if (c->method == XVS_FWD_NAT) {
		__u32 di = c->dest;
		struct xvs_dest *d = bpf_map_lookup_elem(&dests, &di);
		struct xvs_conn_key rk;

		if (d && d->gen == c->dest_gen) {
			reply_key_of(&rk, k, d, c->rport);
			bpf_map_delete_elem(&conns, &rk);
		}
	}
	bpf_map_delete_elem(&conns, k);
	return 1;
}

/* Stores the connection and, for NAT first, its reply entry (which is never counted); 0 on
 * success. Both carry the virtual address and port the reply is rewritten to. */
static __always_inline int conn_store(const struct xvs_pkt *p, const struct xvs_dest *d,
				      struct xvs_conn *c)
{
	struct xvs_conn_key rk;
	__u32 counted = c->counted;

	c->vaddr = p->key.daddr;
	c->vport = p->key.dport;
	if (c->method == XVS_FWD_NAT) {
		reply_key_of(&rk, &p->key, d, c->rport);
		c->counted = XVS_COUNTED_NONE;
		if (bpf_map_update_elem(&conns, &rk, c, BPF_ANY))
			return -1;
		c->counted = counted;
	}
	if (!bpf_map_update_elem(&conns, &p->key, c, BPF_NOEXIST))
		return 0;
	if (c->method == XVS_FWD_NAT)
		bpf_map_delete_elem(&conns, &rk);
	return -1;
}

/* The port NAT sends to: the real server's own, or the client's destination port when the real
 * server has none (port 0) or the service matched on a firewall mark or all ports while persistent
 * (ip_vs_schedule, ip_vs_sched_persist). */
static __always_inline __be16 real_port(const struct xvs_pkt *p, const struct xvs_service *svc,
					const struct xvs_dest *d)
{
	if (svc->flags & XVS_SVC_F_PERSISTENT)
		return p->key.dport == svc->port && d->port ? d->port : p->key.dport;
	return d->port ? d->port : p->key.dport;
}

#endif
