/* SPDX-License-Identifier: GPL-2.0 */
/* lblc, locality-based least-connection (ip_vs_lblc.c): per destination address a cached server,
 * kept while it is available, has weight > 0 and is not "overloaded" in lblc's sense (more active
 * connections than its weight while some server of the service has active * 2 < weight);
 * otherwise wlc picks a server and the cache entry is replaced. The control plane expires idle
 * entries as the kernel's periodic timer does. */
#ifndef XVS_SCHED_LBLC_H
#define XVS_SCHED_LBLC_H

#include "sched_wlc.h"

struct lblc_spare_scan {
	struct sched_walk walk;
	int found;
};

static __always_inline int lblc_spare_visit(struct lblc_spare_scan *s, const struct sched_dest *v)
{
	s->found = v->active * 2 < v->weight;
	return s->found;
}

/* Walked only when a cached server has more active connections than its weight. */
SCHED_WALKER(lblc_spare, struct lblc_spare_scan, lblc_spare_visit, 1)

/* is_overloaded() of ip_vs_lblc.c and ip_vs_lblcr.c. */
static __always_inline int lblc_overloaded(const struct sched_dest *v,
					   const struct xvs_sched_state *st)
{
	struct lblc_spare_scan s = { .walk = sched_list(st) };

	if (v->active <= v->weight)
		return 0;
	lblc_spare_walk(&s);
	return s.found;
}

static __always_inline void lblc_key_of(struct xvs_lblc_key *k, const struct xvs_pkt *p,
					const struct xvs_service *svc)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->addr = p->key.daddr;
	k->svc = svc->id;
}

static __noinline __s64 sched_lblc(const struct xvs_pkt *p, const struct xvs_service *svc,
					const struct xvs_sched_state *st, __u64 now)
{
	struct xvs_lblc_key k;
	struct sched_dest v;

	lblc_key_of(&k, p, svc);
	struct xvs_lblc_entry *en = bpf_map_lookup_elem(&lblc, &k);
	if (en) {
		en->lastuse = now;
		if (dest_get(en->dest, en->dest_gen) && sched_dest_read(en->dest, &v) && v.weight > 0 &&
		    !lblc_overloaded(&v, st))
			return en->dest;
	}
	__s64 pick = sched_wlc(st);
	if (pick < 0)
		return -1;
	__u32 di = pick;
	struct xvs_dest *d = bpf_map_lookup_elem(&dests, &di);
	if (d && !(en && en->dest == di && en->dest_gen == d->gen)) {
		struct xvs_lblc_entry fresh = { .lastuse = now, .dest = di, .dest_gen = d->gen };

		bpf_map_update_elem(&lblc, &k, &fresh, BPF_ANY);
	}
	return pick;
}

#endif
