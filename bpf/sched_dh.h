/* SPDX-License-Identifier: GPL-2.0 */
/* dh, destination hashing (ip_vs_dh.c): 256 buckets filled round-robin with the servers in list
 * order (weights ignored); the bucket is hash_32 of the destination address. A server that is
 * quiesced or overloaded takes nothing: there is no fallback. */
#ifndef XVS_SCHED_DH_H
#define XVS_SCHED_DH_H

#include "sched_common.h"
#include "sched_hash.h"

#define XVS_DH_TAB_BITS 8

static __always_inline __s64 sched_dh(const struct xvs_pkt *p, const struct xvs_sched_state *st)
{
	int empty;

	return sched_bucket(st->table, hash_32(addr_fold(&p->key.daddr, p->key.af), XVS_DH_TAB_BITS), &empty);
}

#endif
