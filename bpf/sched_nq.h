/* SPDX-License-Identifier: GPL-2.0 */
/* nq, never queue (ip_vs_nq.c): the first server in list order with no active connection, else
 * as sed. Overloaded and weight-0 servers are skipped. */
#ifndef XVS_SCHED_NQ_H
#define XVS_SCHED_NQ_H

#include "sched_common.h"

struct nq_scan {
	__u32 base;
	__u32 loh;
	__s64 least;
	__s32 lw;
};

static long nq_step(__u32 i, void *ctx)
{
	struct nq_scan *s = ctx;
	struct sched_dest v;

	if (!sched_dest_at(s->base + i, &v) || v.overloaded || v.weight == 0)
		return 0;
	__u32 doh = v.active + 1;
	if (v.active == 0) {
		s->least = v.index;
		return 1;
	}
	if (s->least < 0 || (__s64)s->loh * v.weight > (__s64)doh * s->lw) {
		s->least = v.index;
		s->loh = doh;
		s->lw = v.weight;
	}
	return 0;
}

static __always_inline __s64 sched_nq(const struct xvs_sched_state *st)
{
	struct nq_scan s = { .base = st->dests, .least = -1 };

	bpf_loop(st->ndests, nq_step, &s, 0);
	return s.least;
}

#endif
