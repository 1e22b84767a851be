/* SPDX-License-Identifier: GPL-2.0 */
/* ovf, overflow (ip_vs_ovf.c): the first server in list order with the highest weight among
 * those with weight > 0, not overloaded, and no more active connections than their weight. */
#ifndef XVS_SCHED_OVF_H
#define XVS_SCHED_OVF_H

#include "sched_common.h"

struct ovf_scan {
	struct sched_walk walk;
	__s32 hw;
	__s64 best;
};

static __always_inline int ovf_visit(struct ovf_scan *s, const struct sched_dest *v)
{
	if (v->overloaded || v->active > v->weight || v->weight == 0)
		return 0;
	if (s->best < 0 || v->weight > s->hw) {
		s->best = v->index;
		s->hw = v->weight;
	}
	return 0;
}

SCHED_WALKER(ovf, struct ovf_scan, ovf_visit, SCHED_CHUNK)

static __always_inline __s64 sched_ovf(const struct xvs_sched_state *st)
{
	struct ovf_scan s = { .walk = sched_list(st), .best = -1 };

	ovf_walk(&s);
	return s.best;
}

#endif
