/* SPDX-License-Identifier: GPL-2.0 */
/* lc, least-connection (ip_vs_lc.c): the server with the least overhead (active * 256 + inactive),
 * strictly less, so the first in list order wins a tie; overloaded and weight-0 servers are
 * skipped. */
#ifndef XVS_SCHED_LC_H
#define XVS_SCHED_LC_H

#include "sched_common.h"

struct lc_scan {
	struct sched_walk walk;
	__u32 loh;
	__s64 least;
};

static __always_inline int lc_visit(struct lc_scan *s, const struct sched_dest *v)
{
	if (v->overloaded || v->weight == 0)
		return 0;
	__u32 doh = conn_overhead(v);
	if (s->least < 0 || doh < s->loh) {
		s->least = v->index;
		s->loh = doh;
	}
	return 0;
}

SCHED_WALKER(lc, struct lc_scan, lc_visit, SCHED_CHUNK)

static __always_inline __s64 sched_lc(const struct xvs_sched_state *st)
{
	struct lc_scan s = { .walk = sched_list(st), .least = -1 };

	lc_walk(&s);
	return s.least;
}

#endif
