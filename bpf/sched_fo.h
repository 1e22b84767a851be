/* SPDX-License-Identifier: GPL-2.0 */
/* fo, weighted failover (ip_vs_fo.c): the first server in list order with the highest weight
 * (strictly higher wins) that is not overloaded; weight 0 never. */
#ifndef XVS_SCHED_FO_H
#define XVS_SCHED_FO_H

#include "sched_common.h"

struct fo_scan {
	__u32 base;
	__s32 hw;
	__s64 best;
};

static long fo_step(__u32 i, void *ctx)
{
	struct fo_scan *s = ctx;
	struct sched_dest v;

	if (sched_dest_at(s->base + i, &v) && !v.overloaded && v.weight > s->hw) {
		s->best = v.index;
		s->hw = v.weight;
	}
	return 0;
}

static __always_inline __s64 sched_fo(const struct xvs_sched_state *st)
{
	struct fo_scan s = { .base = st->dests, .best = -1 };

	bpf_loop(st->ndests, fo_step, &s, 0);
	return s.best;
}

#endif
