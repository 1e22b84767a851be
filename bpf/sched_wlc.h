/* SPDX-License-Identifier: GPL-2.0 */
/* wlc, weighted least-connection (ip_vs_wlc.c), IPVS's default: the first server in list order
 * with weight > 0 that is not overloaded, then any later one whose overhead/weight is strictly
 * lower, compared as loh * w_d > doh * w_least in 64 bits. lblc and lblcr fall back to it. */
#ifndef XVS_SCHED_WLC_H
#define XVS_SCHED_WLC_H

#include "sched_common.h"

struct wlc_scan {
	struct sched_walk walk;
	__s64 loh;
	__s32 lw;
	__s64 least;
};

/* The weighted least-load step of wlc and sed, for a server of overhead `doh`. */
static __always_inline int weighted_least(struct wlc_scan *s, const struct sched_dest *v, __s64 doh)
{
	if (v->overloaded)
		return 0;
	if (s->least < 0 ? v->weight > 0 : s->loh * v->weight > doh * s->lw) {
		s->least = v->index;
		s->loh = doh;
		s->lw = v->weight;
	}
	return 0;
}

static __always_inline int wlc_visit(struct wlc_scan *s, const struct sched_dest *v)
{
	return weighted_least(s, v, conn_overhead(v));
}

SCHED_WALKER(wlc, struct wlc_scan, wlc_visit, SCHED_CHUNK)

static __always_inline __s64 sched_wlc(const struct xvs_sched_state *st)
{
	struct wlc_scan s = { .walk = sched_list(st), .least = -1 };

	wlc_walk(&s);
	return s.least;
}

#endif
