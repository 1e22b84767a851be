/* SPDX-License-Identifier: GPL-2.0 */
/* Table schedulers (rr, wrr): the control plane writes the kernel's exact choice sequence into
 * the service's table (rr: the servers with weight > 0 in list order; wrr: one period of the
 * gcd/max-weight sequence) and the cursor where the kernel would continue. A new connection takes
 * the next slot with one atomic add; a slot whose server is overloaded or quiesced is skipped, as
 * the kernel's scan skips it. When every slot is unusable the cursor goes where the kernel's
 * failed scan leaves its own (see enum xvs_resume). */
#ifndef XVS_SCHED_TABLE_H
#define XVS_SCHED_TABLE_H

#include "sched_common.h"

struct table_scan {
	__u32 table;
	__u32 len;
	__u32 first;
	__u32 skipped;
	__s64 dest;
};

static long table_step(__u32 i, void *ctx)
{
	struct table_scan *s = ctx;
	__u32 slot = s->table + (s->first + i) % s->len;
	struct xvs_sched_slot *sl = bpf_map_lookup_elem(&sched_slots, &slot);
	struct sched_dest v;

	if (sl && sched_dest_of(sl, &v) && v.weight > 0 && !v.overloaded) {
		s->dest = v.index;
		return 1;
	}
	s->skipped = i + 1;
	return 0;
}

/* A scan from slot `pos` found nothing: leave the cursor where the kernel's failed scan leaves
 * its own. From the list head wrr ends at the head, at the period's start. */
static __always_inline void table_fail(struct xvs_sched_state *st, __u64 pos, int wrr)
{
	__u32 slot = st->table + (pos + st->table_len - 1) % st->table_len;
	struct xvs_sched_slot *sl = bpf_map_lookup_elem(&sched_slots, &slot);

	if ((wrr && st->at_head) || (sl && sl->resume == XVS_RESUME_HEAD)) {
		st->cursor = 0;
		st->at_head = 1;
		return;
	}
	__sync_fetch_and_sub(&st->cursor, 1);
}

/* Returns the chosen real server's index, or -1 when none is usable. */
static __always_inline __s64 sched_table_pick(struct xvs_sched_state *st, int wrr)
{
	__u32 len = st->table_len;

	if (!len)
		return -1;
	__u64 pos = __sync_fetch_and_add(&st->cursor, 1);
	struct table_scan s = { .table = st->table, .len = len, .first = pos % len, .dest = -1 };
	bpf_loop(len, table_step, &s, 0);
	if (s.dest < 0) {
		table_fail(st, pos, wrr);
		return -1;
	}
	if (s.skipped)
		__sync_fetch_and_add(&st->cursor, s.skipped);
	if (st->at_head)
		st->at_head = 0;
	return s.dest;
}

#endif
