/* SPDX-License-Identifier: GPL-2.0 */
/* nq, never queue (ip_vs_nq.c): the first server in list order with no active connection, else
 * as sed. Overloaded and weight-0 servers are skipped. */
#ifndef XVS_SCHED_NQ_H
#define XVS_SCHED_NQ_H

#include "sched_common.h"

struct nq_scan {
	struct sched_walk walk;
	__u32 loh;
	__s32 lw;
	__s64 least;
};

static __always_inline int nq_visit(struct nq_scan *s, const struct sched_dest *v)
{
	if (v->overloaded || v->weight == 0)
		return 0;
	__u32 doh = v->active + 1;
	if (v->active == 0) {
		s->least = v->index;
		return 1;
	}
	if (s->least < 0 || (__s64)s->loh * v->weight > (__s64)doh * s->lw) {
		s->least = v->index;
		s->loh = doh;
		s->lw = v->weight;
	}
	return 0;
}

SCHED_WALKER(nq, struct nq_scan, nq_visit, SCHED_CHUNK)

static __always_inline __s64 sched_nq(const struct xvs_sched_state *st)
{
	struct nq_scan s = { .walk = sched_list(st), .least = -1 };

	nq_walk(&s);
	return s.least;
}

#endif
