/* SPDX-License-Identifier: GPL-2.0 */
/* sed, shortest expected delay (ip_vs_sed.c): as wlc with the overhead active + 1, the connection
 * being scheduled included. */
#ifndef XVS_SCHED_SED_H
#define XVS_SCHED_SED_H

#include "sched_common.h"

struct sed_scan {
	__u32 base;
	__u32 loh;
	__s64 least;
	__s32 lw;
};

static long sed_step(__u32 i, void *ctx)
{
	struct sed_scan *s = ctx;
	struct sched_dest v;

	if (!sched_dest_at(s->base + i, &v) || v.overloaded)
		return 0;
	__u32 doh = v.active + 1;
	if (s->least < 0 ? v.weight > 0 : (__s64)s->loh * v.weight > (__s64)doh * s->lw) {
		s->least = v.index;
		s->loh = doh;
		s->lw = v.weight;
	}
	return 0;
}

static __always_inline __s64 sched_sed(const struct xvs_sched_state *st)
{
	struct sed_scan s = { .base = st->dests, .least = -1 };

	bpf_loop(st->ndests, sed_step, &s, 0);
	return s.least;
}

#endif
