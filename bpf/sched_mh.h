/* SPDX-License-Identifier: GPL-2.0 */
/* mh, Maglev hashing (ip_vs_mh.c): a lookup table of 4093 entries that the control plane
 * populates as the kernel does; the entry is hsiphash(source address [+ source port with
 * mh-port]) % 4093. A quiesced or overloaded server takes nothing, unless mh-fallback probes
 * entry hsiphash(k + h + key) % 4093 for k = 0, 1, ... from the first entry h; an empty entry ends
 * the search. */
#ifndef XVS_SCHED_MH_H
#define XVS_SCHED_MH_H

#include "sched_common.h"
#include "sched_hash.h"

#define XVS_MH_TAB_SIZE 4093

struct mh_probe {
	__u32 table;
	__u32 key;
	__u32 h;
	__s64 dest;
};

static __always_inline __u32 mh_hashkey(__u32 key, __u32 offset)
{
	return hsiphash_u32(offset + key, XVS_MH_HASH1_KEY) % XVS_MH_TAB_SIZE;
}

static long mh_probe_step(__u32 i, void *ctx)
{
	struct mh_probe *s = ctx;
	__u32 roffset = (i + s->h) % XVS_MH_TAB_SIZE;
	int empty;

	s->dest = sched_bucket(s->table, mh_hashkey(s->key, roffset), &empty);
	return s->dest >= 0 || empty;
}

static __always_inline __s64 sched_mh(const struct xvs_pkt *p, const struct xvs_service *svc,
				      const struct xvs_sched_state *st)
{
	__u32 port = svc->sched_flags & XVS_SCHED_F_PORT ? bpf_ntohs(p->key.sport) : 0;
	__u32 key = port + addr_fold(&p->key.saddr, p->key.af);
	__u32 h = mh_hashkey(key, 0);
	int empty;
	__s64 dest = sched_bucket(st->table, h, &empty);

	if (dest >= 0 || empty || !(svc->sched_flags & XVS_SCHED_F_FALLBACK))
		return dest;
	struct mh_probe s = { .table = st->table, .key = key, .h = h, .dest = -1 };
	bpf_loop(XVS_MH_TAB_SIZE, mh_probe_step, &s, 0);
	return s.dest;
}

#endif
