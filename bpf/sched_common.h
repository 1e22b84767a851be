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

/* The real server in sched_slots[slot]. */
static __always_inline int sched_dest_at(__u32 slot, struct sched_dest *v)
{
	struct xvs_sched_slot *s = bpf_map_lookup_elem(&sched_slots, &slot);

	return s && sched_dest_read(s->dest, v);
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
	if (*empty || !sched_dest_read(s->dest, &v) || sched_unavailable(&v))
		return -1;
	return v.index;
}

#endif
