/* SPDX-License-Identifier: GPL-2.0 */
/* wrr for weights whose period (the sum of weight/gcd) is too long for a table (weights near
 * 2^31): the kernel's own state, cw and the list position cl, stepped for each new connection as
 * ip_vs_wrr_schedule steps it, except that rounds in which no usable server is eligible are
 * skipped at once instead of one by one (the kernel walks them without choosing anything, so the
 * choice is the same). Two walks of the list at most. The state is one u64 in the cursor,
 * cw << 32 | (cl + 1) with 0 for the list head, swapped in with compare-and-swap. */
#ifndef XVS_SCHED_WRR_H
#define XVS_SCHED_WRR_H

#include "sched_common.h"

struct wrr_scan {
	struct sched_walk walk;
	__s64 cw;
	__u32 from;	  /* only positions >= from may be found */
	__u32 at;	  /* position of the next visit */
	__s64 found;	  /* list position of the choice, -1 = none */
	__s64 dest;
	__s64 max_usable; /* the highest weight of a usable server */
};

static __always_inline int wrr_usable(const struct sched_dest *v)
{
	return v->weight > 0 && !v->overloaded;
}

/* The rest of the current round, and the highest usable weight of the whole list. */
static __always_inline int wrr_rest_visit(struct wrr_scan *s, const struct sched_dest *v)
{
	__u32 at = s->at++;

	if (!wrr_usable(v))
		return 0;
	if (v->weight > s->max_usable)
		s->max_usable = v->weight;
	if (s->found < 0 && at >= s->from && v->weight >= s->cw) {
		s->found = at;
		s->dest = v->index;
	}
	return 0;
}

/* A new round from the list head. */
static __always_inline int wrr_round_visit(struct wrr_scan *s, const struct sched_dest *v)
{
	__u32 at = s->at++;

	if (!wrr_usable(v) || v->weight < s->cw)
		return 0;
	s->found = at;
	s->dest = v->index;
	return 1;
}

SCHED_WALKER(wrr_rest, struct wrr_scan, wrr_rest_visit, SCHED_CHUNK)
SCHED_WALKER(wrr_round, struct wrr_scan, wrr_round_visit, SCHED_CHUNK)

/* One step from state `old`: the choice (or -1) and the state after it. */
static __always_inline __s64 wrr_step(const struct xvs_sched_state *st, __u64 old, __u64 *next)
{
	__s64 cw = old >> 32, di = st->wrr_di, mw = st->wrr_mw;
	__u32 cl = (__u32)old;
	struct wrr_scan s = { .walk = sched_list(st), .cw = cw, .from = cl, .found = -1 };

	wrr_rest_walk(&s);
	if (s.found >= 0) {
		*next = (__u64)cw << 32 | (__u64)(s.found + 1);
		return s.dest;
	}
	if (s.max_usable <= 0) {
		/* The kernel's failed scan: it stays put only when it began in the last pass (cw <= di)
		 * away from the head; otherwise it ends at the head with cw = mw. */
		*next = cl && cw <= di ? old : (__u64)mw << 32;
		return -1;
	}
	/* The next round with an eligible usable server: cw - di, or mw after the last round, lowered
	 * to the highest round value (k * di + 1) not above the highest usable weight. */
	__s64 top = (s.max_usable - 1) / di * di + 1;
	__s64 c = cw - di > 0 ? cw - di : mw;

	if (c > top)
		c = top;
	s.cw = c;
	s.at = 0;
	wrr_round_walk(&s);
	if (s.found < 0)
		return -1; /* the list changed under us */
	*next = (__u64)c << 32 | (__u64)(s.found + 1);
	return s.dest;
}

static __always_inline __s64 sched_wrr_step(struct xvs_sched_state *st)
{
	__u64 old = *(volatile __u64 *)&st->cursor;
	__u64 next = old;
	__s64 dest = wrr_step(st, old, &next);

	/* When another CPU stepped meanwhile, its step stands and this connection keeps its choice
	 * (the kernel serialises the two; here they chose from the same state). */
	if (next != old)
		__sync_val_compare_and_swap(&st->cursor, old, next);
	return dest;
}

#endif
