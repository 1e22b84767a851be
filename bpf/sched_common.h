/* SPDX-License-Identifier: GPL-2.0 */
/* What schedulers read of a service's real servers. The control plane keeps, per service, the
 * real servers' indexes in list order (newest first, as IPVS scans them) in a range of
 * sched_slots; list schedulers walk that range with bpf_loop, reading each server's weight, its
 * connection counts and its overload flag. */
#ifndef XVS_SCHED_COMMON_H
#define XVS_SCHED_COMMON_H

#include "xvs_maps.h"
#include "xvs_parse.h"
#include "xvs_counts.h"

struct sched_dest {
	__u32 index;
	__s32 weight;
	__s32 active;
	__s32 inactive;
	int overloaded; /* IP_VS_DEST_F_OVERLOAD: the upper threshold was reached */
};

/* The real server (index) as a scheduler sees it; 0 when there is none at that index. */
static __always_inline int sched_dest_read(__u32 index, struct sched_dest *v)
{
	struct xvs_dest *d = bpf_map_lookup_elem(&dests, &index);
	struct xvs_dest_conns *n = bpf_map_lookup_elem(&dest_conns, &index);

	if (!d || !n)
		return 0;
	v->index = index;
	v->weight = d->weight;
	v->active = n->active;
	v->inactive = n->inactive;
	v->overloaded = dest_overloaded(d, n);
	return 1;
}

/* The real server of a slot, from the slot's copy of its weight. */
static __always_inline int sched_dest_of(const struct xvs_sched_slot *s, struct sched_dest *v)
{
	__u32 index = s->dest;
	struct xvs_dest_conns *n = bpf_map_lookup_elem(&dest_conns, &index);
	if (!n)
		return 0;
	v->index = index;
	v->weight = s->weight;
	v->active = n->active;
	v->inactive = n->inactive;
	v->overloaded = n->overload == s->thresh_gen + 1;
	return 1;
}

/* The real server in sched_slots[slot]. */
static __always_inline int sched_dest_at(__u32 slot, struct sched_dest *v)
{
	struct xvs_sched_slot *s = bpf_map_lookup_elem(&sched_slots, &slot);

	return s && sched_dest_of(s, v);
}

/* Walking a service's list of real servers in list order: bpf_loop calls `name##_chunk` for
 * `chunk` real servers at a time, which hands each to `visit(scan, dest)`; visit returns 1 to
 * stop. A bpf_loop call costs about as much as visiting a few real servers, so lists are walked
 * in chunks; the widths keep the verifier's work (which grows with a visit's branches) well under
 * its limit. The scan struct starts with struct sched_walk. */
#define SCHED_CHUNK 4 /* the lc family's width: 4 real servers per call, ~4x faster than 1 */

struct sched_walk {
	__u32 base; /* first slot of the list */
	__u32 n;    /* real servers in it */
};

#define SCHED_WALKER(name, scan_type, visit, chunk)                                               \
	static long name##_chunk(__u32 c, void *ctx)                                              \
	{                                                                                          \
		scan_type *s = ctx;                                                                \
		for (__u32 j = 0; j < (chunk); j++) {                                              \
			__u32 i = c * (chunk) + j;                                                 \
			struct sched_dest v;                                                       \
			if (i >= s->walk.n)                                                        \
				return 1;                                                          \
			if (sched_dest_at(s->walk.base + i, &v) && visit(s, &v))                   \
				return 1;                                                          \
		}                                                                                  \
		return 0;                                                                          \
	}                                                                                          \
	static __always_inline void name##_walk(scan_type *s)                                     \
	{                                                                                          \
		bpf_loop((s->walk.n + (chunk) - 1) / (chunk), name##_chunk, s, 0);                \
	}

static __always_inline struct sched_walk sched_list(const struct xvs_sched_state *st)
{
	struct sched_walk w = { .base = st->dests, .n = st->ndests };

	return w;
}

/* ip_vs_dest_conn_overhead: an active connection weighs 256 inactive ones. */
static __always_inline __s32 conn_overhead(const struct sched_dest *v)
{
	return (v->active << 8) + v->inactive;
}

/* sh, mh and dh: a server in a bucket takes no connection when it is quiesced or overloaded. */
static __always_inline int sched_unavailable(const struct sched_dest *v)
{
	return v->weight <= 0 || v->overloaded;
}

/* The server in bucket `bucket` of the table at `table`, when it can take the connection;
 * *empty tells an empty bucket from an unavailable server. */
static __always_inline __s64 sched_bucket(__u32 table, __u32 bucket, int *empty)
{
	__u32 slot = table + bucket;
	struct xvs_sched_slot *s = bpf_map_lookup_elem(&sched_slots, &slot);
	struct sched_dest v;

	*empty = !s || s->dest == XVS_NO_DEST;
	if (*empty || !sched_dest_of(s, &v) || sched_unavailable(&v))
		return -1;
	return v.index;
}

#endif
