/* SPDX-License-Identifier: GPL-2.0 */
/* Packets that belong to a connection without being the ones it was keyed by: a NAT real server's
 * replies, found by their own tuple in a reply entry (XVS_DIR_REPLY) that points to the client's
 * entry; later fragments (xvs_frag.h) and ICMP errors (xvs_icmp_conn.h), which find an entry of
 * either direction. They count in the connection's packets and bytes, as IPVS counts them, but
 * only the connection's own packets move its state. */
#ifndef XVS_RELATED_H
#define XVS_RELATED_H

#include "xvs_conn.h"
#include "xvs_fwd.h"
#include "xvs_maps.h"
#include "xvs_state.h"

/* The live connection behind reply entry r (stored under rk), or NULL when it has ended: gone,
 * expired, or now with another real server. A real server in the trash still answers its
 * connections' clients, as ip_vs_out does. */
static __always_inline struct xvs_conn *reply_conn(const struct xvs_conn_key *rk,
						    const struct xvs_conn *r, __u64 now)
{
	struct xvs_conn_key fk;

	client_key_of(&fk, rk, r);
	struct xvs_conn *c = bpf_map_lookup_elem(&conns, &fk);
	if (!c || c->dest != r->dest || c->dest_gen != r->dest_gen || conn_expired(c, now) ||
	    !dest_of(c->dest, c->dest_gen))
		return NULL;
	return c;
}

/* A reply counts on its real server and that server's service, unless the server is in the trash
 * (ip_vs_out_stats). */
static __always_inline void count_reply(const struct xvs_conn *c, __u32 bytes)
{
	struct xvs_dest *d = dest_get(c->dest, c->dest_gen);

	if (d)
		count_out(d->svc, c->dest, bytes);
}

/* A related packet goes on to the real server of connection c (its client-side entry, stored
 * under key), or is passed for `otherwise` when the connection has ended. */
static __always_inline int related_to_real(struct xvs_pkt *p, struct xvs_conn *c,
					   const struct xvs_conn_key *key, __u64 now,
					   __u32 otherwise)
{
	struct xvs_dest *d = dest_get(c->dest, c->dest_gen);

	if (conn_expired(c, now) || !d)
		return pass(otherwise);
	count_in(d->svc, c->dest, p->ip_len, 0);
	return fwd_to_real(p, c->method, c->dest, d, key, c->rport);
}

/* A related packet from a NAT real server goes on to the client of reply entry r (stored under
 * key), or is passed for `otherwise` when the connection has ended. */
static __always_inline int related_to_client(struct xvs_pkt *p, const struct xvs_conn *r,
					     const struct xvs_conn_key *key, __u64 now,
					     __u32 otherwise)
{
	struct xvs_conn *c = reply_conn(key, r, now);

	if (!c)
		return pass(otherwise);
	count_reply(c, p->ip_len);
	return fwd_to_client(p, &r->vaddr, r->vport);
}

#endif
