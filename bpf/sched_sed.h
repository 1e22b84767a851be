/* SPDX-License-Identifier: GPL-2.0 */
/* sed, shortest expected delay (ip_vs_sed.c): as wlc with the overhead active + 1, the connection
 * being scheduled included. */
#ifndef XVS_SCHED_SED_H
#define XVS_SCHED_SED_H

#include "sched_wlc.h"

static __always_inline int sed_visit(struct wlc_scan *s, const struct sched_dest *v)
{
	return weighted_least(s, v, (__u32)v->active + 1);
}

SCHED_WALKER(sed, struct wlc_scan, sed_visit, SCHED_CHUNK)

static __always_inline __s64 sched_sed(const struct xvs_sched_state *st)
{
	struct wlc_scan s = { .walk = sched_list(st), .least = -1 };

	sed_walk(&s);
	return s.least;
}

#endif
