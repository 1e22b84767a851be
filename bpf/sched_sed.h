/* SPDX-License-Identifier: GPL-2.0 */
/* sed, shortest expected delay (ip_vs_sed.c): as wlc with the overhead active + 1, the connection
 * being scheduled included. */
#ifndef XVS_SCHED_SED_H
#define XVS_SCHED_SED_H

#include "sched_common.h"

struct sed_scan {
	struct sched_walk walk;
	__u32 loh;
	__s32 lw;
	__s64 least;
};

static __always_inline int sed_visit(struct sed_scan *s, const struct sched_dest *v)
{
	if (v->overloaded)
		return 0;
	__u32 doh = v->active + 1;
	if (s->least < 0 ? v->weight > 0 : (__s64)s->loh * v->weight > (__s64)doh * s->lw) {
		s->least = v->index;
		s->loh = doh;
		s->lw = v->weight;
	}
	return 0;
}

SCHED_WALKER(sed, struct sed_scan, sed_visit, SCHED_CHUNK)

static __always_inline __s64 sched_sed(const struct xvs_sched_state *st)
{
	struct sed_scan s = { .walk = sched_list(st), .least = -1 };

	sed_walk(&s);
	return s.least;
}

#endif
