/* SPDX-License-Identifier: GPL-2.0 */
/* fo, weighted failover (ip_vs_fo.c): the first server in list order with the highest weight
 * (strictly higher wins) that is not overloaded; weight 0 never. */
#ifndef XVS_SCHED_FO_H
#define XVS_SCHED_FO_H

#include "sched_common.h"

struct fo_scan {
	struct sched_walk walk;
	__s32 hw;
	__s64 best;
};

static __always_inline int fo_visit(struct fo_scan *s, const struct sched_dest *v)
{
	if (!v->overloaded && v->weight > s->hw) {
		s->best = v->index;
		s->hw = v->weight;
	}
	return 0;
}

SCHED_WALKER(fo, struct fo_scan, fo_visit, SCHED_CHUNK)

static __always_inline __s64 sched_fo(const struct xvs_sched_state *st)
{
	struct fo_scan s = { .walk = sched_list(st), .best = -1 };

	fo_walk(&s);
	return s.best;
}

#endif
