/* SPDX-License-Identifier: GPL-2.0 */
/* lc, least-connection (ip_vs_lc.c): the server with the least overhead (active * 256 + inactive),
 * strictly less, so the first in list order wins a tie; overloaded and weight-0 servers are
 * skipped. */
#ifndef XVS_SCHED_LC_H
#define XVS_SCHED_LC_H

#include "sched_common.h"

struct lc_scan {
	__u32 base;
	__u32 loh;
	__s64 least;
};

static long lc_step(__u32 i, void *ctx)
{
	struct lc_scan *s = ctx;
	struct sched_dest v;

	if (!sched_dest_at(s->base + i, &v) || v.overloaded || v.weight == 0)
		return 0;
	__u32 doh = conn_overhead(&v);
	if (s->least < 0 || doh < s->loh) {
		s->least = v.index;
		s->loh = doh;
	}
	return 0;
}

static __always_inline __s64 sched_lc(const struct xvs_sched_state *st)
{
	struct lc_scan s = { .base = st->dests, .least = -1 };

	bpf_loop(st->ndests, lc_step, &s, 0);
	return s.least;
}

#endif
