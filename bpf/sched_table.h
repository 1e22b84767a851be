/* SPDX-License-Identifier: GPL-2.0 */
/* Table schedulers (rr, wrr): the control plane writes the kernel's exact choice sequence into
 * sched_slots (rr: the servers in list order; wrr: one period of the gcd/max-weight sequence) and
 * the cursor where the kernel would continue. A new connection takes the next slot with one
 * atomic add; a slot whose server is overloaded or gone is skipped, as the kernel's scan skips it. */
#ifndef XVS_SCHED_TABLE_H
#define XVS_SCHED_TABLE_H

#include "xvs_maps.h"

static __always_inline int dest_usable(const struct xvs_dest *d, __u32 svc_id)
{
	return d->svc == svc_id && (d->flags & XVS_DEST_F_AVAILABLE) &&
	       !(d->flags & XVS_DEST_F_OVERLOAD) && d->weight > 0;
}

/* Returns the chosen real server's index, or -1 when none is available. */
static __always_inline __s64 sched_table_pick(const struct xvs_service *svc)
{
	struct xvs_sched_state *st = bpf_map_lookup_elem(&svc_sched, &svc->id);

	if (!st)
		return -1;
	__u32 len = st->len;
	struct xvs_sched_slot_key k = { .svc = svc->id, .gen = st->gen };

	for (int i = 0; i < XVS_SCHED_MAX_TRIES; i++) {
		if (i >= len)
			break;
		__u64 pos = __sync_fetch_and_add(&st->cursor, 1);
		k.slot = pos % len;
		__u32 *idx = bpf_map_lookup_elem(&sched_slots, &k);
		if (!idx)
			continue;
		__u32 di = *idx;
		struct xvs_dest *d = bpf_map_lookup_elem(&dests, &di);
		if (d && dest_usable(d, svc->id))
			return di;
	}
	return -1;
}

#endif
