/* SPDX-License-Identifier: GPL-2.0 */
/* Connection counts of real servers (ActiveConn, InActConn, PersistConn) and the overload flag,
 * with the kernel's threshold rules (ip_vs_bind_dest, ip_vs_unbind_dest). The counts live in one
 * array shared by every CPU and change only by atomic operations; an entry records in `counted`
 * which counter holds it, and that field changes only by atomic exchange, so an entry is counted
 * and uncounted exactly once whoever (packet path or sweeper, on any CPU) ends it. */
#ifndef XVS_COUNTS_H
#define XVS_COUNTS_H

#include "xvs_maps.h"

/* The real server (index, gen) still is, or NULL once it was removed (its slot cleared or reused). */
static __always_inline struct xvs_dest *dest_get(__u32 index, __u32 gen)
{
	struct xvs_dest *d = bpf_map_lookup_elem(&dests, &index);

	if (!d || d->gen != gen || !(d->flags & XVS_DEST_F_AVAILABLE))
		return NULL;
	return d;
}

/* The real server (index, gen) whether available or in the trash (xvs_trash.h), or NULL once its
 * slot was cleared or reused: what its entries count on until they end. */
static __always_inline struct xvs_dest *dest_of(__u32 index, __u32 gen)
{
	struct xvs_dest *d = bpf_map_lookup_elem(&dests, &index);

	if (!d || !gen || d->gen != gen)
		return NULL;
	return d;
}

static __always_inline int dest_overloaded(const struct xvs_dest *d, const struct xvs_dest_conns *n)
{
	return n->overload == d->thresh_gen + 1;
}

static __always_inline __u32 *dest_counter(struct xvs_dest_conns *n, __u32 counted)
{
	switch (counted) {
	case XVS_COUNTED_ACTIVE:
		return &n->active;
	case XVS_COUNTED_INACTIVE:
		return &n->inactive;
	case XVS_COUNTED_PERSIST:
		return &n->persist;
	}
	return NULL;
}

/* ip_vs_bind_dest: count the entry, then flag the server overloaded at its upper threshold. */
static __always_inline void dest_bind(__u32 index, const struct xvs_dest *d, __u32 counted)
{
	struct xvs_dest_conns *n = bpf_map_lookup_elem(&dest_conns, &index);

	if (!n)
		return;
	__u32 *counter = dest_counter(n, counted);
	if (counter)
		__sync_fetch_and_add(counter, 1);
	if (d->u_threshold && n->active + n->inactive >= d->u_threshold)
		n->overload = d->thresh_gen + 1;
}

/* ip_vs_unbind_dest: uncount the entry, then clear the overload flag below the lower threshold,
 * or below 3/4 of the upper one when there is no lower one, or at once when there is neither. */
static __always_inline void dest_unbind(__u32 index, const struct xvs_dest *d, __u32 counted)
{
	struct xvs_dest_conns *n = bpf_map_lookup_elem(&dest_conns, &index);

	if (!n)
		return;
	__u32 *counter = dest_counter(n, counted);
	if (counter)
		__sync_fetch_and_sub(counter, 1);
	if (!dest_overloaded(d, n))
		return;
	__u32 total = n->active + n->inactive;
	if (d->l_threshold ? total < d->l_threshold :
	    d->u_threshold ? total * 4 < d->u_threshold * 3 : 1)
		n->overload = 0;
}

/* Ends what `*counted` holds on (index, gen): exactly once, by whoever exchanges it first.
 * Returns 0 when another party had ended it already. */
static __always_inline int entry_uncount(__u32 *counted, __u32 index, __u32 gen)
{
	__u32 was = __sync_lock_test_and_set(counted, XVS_COUNTED_NONE);

	if (was == XVS_COUNTED_NONE)
		return 0;
	struct xvs_dest *d = dest_of(index, gen);
	if (d)
		dest_unbind(index, d, was);
	return 1;
}

/* A TCP connection entering or leaving ESTABLISHED moves between InActConn and ActiveConn. */
static __always_inline void conn_count_established(struct xvs_conn *c, int established)
{
	__u32 from = established ? XVS_COUNTED_INACTIVE : XVS_COUNTED_ACTIVE;
	__u32 to = established ? XVS_COUNTED_ACTIVE : XVS_COUNTED_INACTIVE;

	if (__sync_val_compare_and_swap(&c->counted, from, to) != from)
		return;
	__u32 index = c->dest;
	if (!dest_of(index, c->dest_gen))
		return;
	struct xvs_dest_conns *n = bpf_map_lookup_elem(&dest_conns, &index);
	if (!n)
		return;
	__u32 *up = dest_counter(n, to);
	__u32 *down = dest_counter(n, from);
	if (up && down) {
		__sync_fetch_and_add(up, 1);
		__sync_fetch_and_sub(down, 1);
	}
}

#endif
