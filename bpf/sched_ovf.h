/* SPDX-License-Identifier: GPL-2.0 */
/* ovf, overflow (ip_vs_ovf.c): the first server in list order with the highest weight among
 * those with weight > 0, not overloaded, and no more active connections than their weight. */
#ifndef XVS_SCHED_OVF_H
#define XVS_SCHED_OVF_H

#include "sched_common.h"

struct ovf_scan {
	__u32 base;
	__s32 hw;
	__s64 best;
};

static long ovf_step(__u32 i, void *ctx)
{
	struct ovf_scan *s = ctx;
	struct sched_dest v;

	if (!sched_dest_at(s->base + i, &v) || v.overloaded || v.active > v.weight || v.weight == 0)
		return 0;
	if (s->best < 0 || v.weight > s->hw) {
		s->best = v.index;
		s->hw = v.weight;
	}
	return 0;
}

static __always_inline __s64 sched_ovf(const struct xvs_sched_state *st)
{
	struct ovf_scan s = { .base = st->dests, .best = -1 };

	bpf_loop(st->ndests, ovf_step, &s, 0);
	return s.best;
}

#endif
