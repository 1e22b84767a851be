/* SPDX-License-Identifier: GPL-2.0 */
/* Per-CPU counters: per service, per real server, and per pass/drop/forward reason. */
#ifndef XVS_STATS_H
#define XVS_STATS_H

#include "xvs_maps.h"

static __always_inline void count_reason(__u32 reason)
{
	__u64 *v = bpf_map_lookup_elem(&reasons, &reason);

	if (v)
		*v += 1;
}

static __always_inline int pass(__u32 reason)
{
	count_reason(reason);
	return XDP_PASS;
}

static __always_inline void count_in(__u32 svc, __u32 dest, __u32 bytes, int new_conn)
{
	struct xvs_stats *s = bpf_map_lookup_elem(&svc_stats, &svc);
	struct xvs_stats *d = bpf_map_lookup_elem(&dest_stats, &dest);

	if (s) {
		s->conns += new_conn;
		s->inpkts++;
		s->inbytes += bytes;
	}
	if (d) {
		d->conns += new_conn;
		d->inpkts++;
		d->inbytes += bytes;
	}
}

static __always_inline void count_out(__u32 svc, __u32 dest, __u32 bytes)
{
	struct xvs_stats *s = bpf_map_lookup_elem(&svc_stats, &svc);
	struct xvs_stats *d = bpf_map_lookup_elem(&dest_stats, &dest);

	if (s) {
		s->outpkts++;
		s->outbytes += bytes;
	}
	if (d) {
		d->outpkts++;
		d->outbytes += bytes;
	}
}

#endif
