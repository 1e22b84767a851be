/* SPDX-License-Identifier: GPL-2.0 */
/* sh, source hashing (ip_vs_sh.c): 256 buckets where each server in list order fills `weight`
 * consecutive buckets (one when its weight is 0); the bucket is hash_32 of the source address
 * (plus the source port with sh-port). A quiesced or overloaded server takes nothing, unless
 * sh-fallback probes further buckets the kernel's way: probe k looks at bucket
 * (k + 2h) % 256 for the first bucket h, and an empty bucket ends the search. */
#ifndef XVS_SCHED_SH_H
#define XVS_SCHED_SH_H

#include "sched_common.h"
#include "sched_hash.h"

#define XVS_SH_TAB_BITS 8
#define XVS_SH_TAB_SIZE (1 << XVS_SH_TAB_BITS)

struct sh_probe {
	__u32 table;
	__u32 h; /* hash_32 of the key: the first bucket */
	__s64 dest;
};

static long sh_probe_step(__u32 i, void *ctx)
{
	struct sh_probe *s = ctx;
	__u32 roffset = (i + s->h) % XVS_SH_TAB_SIZE;
	int empty;

	s->dest = sched_bucket(s->table, (roffset + s->h) % XVS_SH_TAB_SIZE, &empty);
	return s->dest >= 0 || empty;
}

static __always_inline __s64 sched_sh(const struct xvs_pkt *p, const struct xvs_service *svc,
				      const struct xvs_sched_state *st)
{
	__u32 port = svc->sched_flags & XVS_SCHED_F_PORT ? bpf_ntohs(p->key.sport) : 0;
	__u32 h = hash_32(port + addr_fold(&p->key.saddr, p->key.af), XVS_SH_TAB_BITS);
	int empty;
	__s64 dest = sched_bucket(st->table, h, &empty);

	if (dest >= 0 || empty || !(svc->sched_flags & XVS_SCHED_F_FALLBACK))
		return dest;
	struct sh_probe s = { .table = st->table, .h = h, .dest = -1 };
	bpf_loop(XVS_SH_TAB_SIZE, sh_probe_step, &s, 0);
	return s.dest;
}

#endif
