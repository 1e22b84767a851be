/* SPDX-License-Identifier: GPL-2.0 */
/* twos, power of two choices (ip_vs_twos.c): two weighted random draws over the servers with
 * weight > 0 that are not overloaded; the second draw wins only when w2 * oh1 > w1 * oh2 (in 32
 * bits, as the kernel computes it). The weights are summed and drawn over in 64 bits (the kernel's
 * int sum wraps for weights near 2^31; below 2^31 the choices are the kernel's): a draw is
 * r % (sum + 1) with r 32 bits while sum + 1 fits in 32 bits, else 64. The draws are left in
 * twos_draws so that a reference model can replay the same choice. */
#ifndef XVS_SCHED_TWOS_H
#define XVS_SCHED_TWOS_H

#include "sched_common.h"

struct twos_scan {
	struct sched_walk walk;
	__s64 total;
	__s64 r1;
	__s64 r2;
	__s32 w1;
	__s32 w2;
	__s32 oh1;
	__s32 oh2;
	__s64 choice1;
	__s64 choice2;
};

static __always_inline int twos_total_visit(struct twos_scan *s, const struct sched_dest *v)
{
	if (!v->overloaded && v->weight > 0) {
		s->total += v->weight;
		s->choice1 = v->index;
	}
	return 0;
}

static __always_inline int twos_pick_visit(struct twos_scan *s, const struct sched_dest *v)
{
	if (v->overloaded || v->weight <= 0)
		return 0;
	s->r1 -= v->weight;
	s->r2 -= v->weight;
	if (s->r1 <= 0 && s->w1 == -1) {
		s->choice1 = v->index;
		s->w1 = v->weight;
		s->oh1 = conn_overhead(v);
	}
	if (s->r2 <= 0 && s->w2 == -1) {
		s->choice2 = v->index;
		s->w2 = v->weight;
		s->oh2 = conn_overhead(v);
	}
	return s->w1 != -1 && s->w2 != -1;
}

/* Narrower than SCHED_CHUNK: twos's visits branch more, and verifying is the limit. */
SCHED_WALKER(twos_total, struct twos_scan, twos_total_visit, 2)
SCHED_WALKER(twos_pick, struct twos_scan, twos_pick_visit, 2)

static __always_inline __s64 sched_twos(const struct xvs_sched_state *st)
{
	struct twos_scan s = { .walk = sched_list(st), .choice1 = -1, .choice2 = -1, .w1 = -1, .w2 = -1 };
	struct xvs_twos_draws draws = {
		bpf_get_prandom_u32(), bpf_get_prandom_u32(), bpf_get_prandom_u32(), bpf_get_prandom_u32(),
	};
	__u32 zero = 0;

	twos_total_walk(&s);
	if (s.choice1 < 0)
		return -1;
	__u64 total = s.total + 1;
	int wide = total > 0xffffffffULL;

	s.r1 = ((wide ? (__u64)draws.r1_hi << 32 : 0) | draws.r1) % total;
	s.r2 = ((wide ? (__u64)draws.r2_hi << 32 : 0) | draws.r2) % total;
	bpf_map_update_elem(&twos_draws, &zero, &draws, BPF_ANY);
	twos_pick_walk(&s);
	if (s.choice2 >= 0 && (__s32)((__u32)s.w2 * (__u32)s.oh1) > (__s32)((__u32)s.w1 * (__u32)s.oh2))
		return s.choice2;
	return s.choice1;
}

#endif
