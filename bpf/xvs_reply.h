/* SPDX-License-Identifier: GPL-2.0 */
/* NAT replies: a packet from a real server is found by its own tuple in a reply entry
 * (XVS_DIR_REPLY); the connection itself is the client's entry that the reply entry points to. */
#ifndef XVS_REPLY_H
#define XVS_REPLY_H

#include "xvs_maps.h"
#include "xvs_state.h"

/* The live connection behind reply entry r (stored under rk), or NULL when it has ended: gone,
 * expired, or now with another real server. */
static __always_inline struct xvs_conn *reply_conn(const struct xvs_conn_key *rk,
						    const struct xvs_conn *r, __u64 now)
{
	struct xvs_conn_key fk = {};

	fk.saddr = rk->daddr;
	fk.daddr = r->vaddr;
	fk.sport = rk->dport;
	fk.dport = r->vport;
	fk.proto = rk->proto;
	fk.af = rk->af;
	fk.dir = XVS_DIR_IN;
	struct xvs_conn *c = bpf_map_lookup_elem(&conns, &fk);
	if (!c || c->dest != r->dest || c->dest_gen != r->dest_gen || conn_expired(c, now))
		return NULL;
	return c;
}

#endif
