/* SPDX-License-Identifier: GPL-2.0 */
/* lblcr, locality-based least-connection with replication (ip_vs_lblcr.c): per destination
 * address a set of servers, newest first. The least loaded member (wlc over the set) takes the
 * connection unless it is "overloaded" in lblc's sense; then wlc over the service picks one and
 * it joins the set. A set with more than one member, unchanged for 24 hours, drops its most
 * loaded member. Sets hold at most XVS_LBLCR_SET_MAX members (the kernel's are unbounded): a full
 * set forgets its oldest member to take a new one. The set is worked on in a per-CPU copy and
 * written back whole. */
#ifndef XVS_SCHED_LBLCR_H
#define XVS_SCHED_LBLCR_H

#include "sched_lblc.h"

#define XVS_LBLCR_SET_MASK (XVS_LBLCR_SET_MAX - 1)

static __always_inline struct xvs_lblcr_entry *lblcr_work(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&lblcr_scratch, &zero);
}

/* Member i of the working set as a scheduler sees it; a removed server reads as weight 0 and
 * unavailable. */
static __always_inline int lblcr_member(__u32 i, struct sched_dest *v, int *available)
{
	struct xvs_lblcr_entry *en = lblcr_work();

	if (!en)
		return 0;
	__u32 di = en->dest[i & XVS_LBLCR_SET_MASK];
	__u32 gen = en->dest_gen[i & XVS_LBLCR_SET_MASK];
	if (!sched_dest_read(di, v))
		return 0;
	*available = dest_get(di, gen) != NULL;
	if (!*available) {
		v->weight = 0;
		v->active = 0;
		v->inactive = 0;
	}
	return 1;
}

struct lblcr_scan {
	__s64 best; /* min: a dests index; max: a position in the set */
	__s32 oh;
	__s32 w;
};

/* ip_vs_dest_set_min: the set's weighted least-connection member. */
static long lblcr_min_step(__u32 i, void *ctx)
{
	struct lblcr_scan *s = ctx;
	struct sched_dest v;
	int available;

	if (!lblcr_member(i, &v, &available) || v.overloaded || !available)
		return 0;
	__s32 doh = conn_overhead(&v);
	if (s->best < 0 ? v.weight > 0 : (__s64)s->oh * v.weight > (__s64)doh * s->w) {
		s->best = v.index;
		s->oh = doh;
		s->w = v.weight;
	}
	return 0;
}

/* ip_vs_dest_set_max: the position of the set's weighted most-connection member. */
static long lblcr_max_step(__u32 i, void *ctx)
{
	struct lblcr_scan *s = ctx;
	struct sched_dest v;
	int available;

	if (!lblcr_member(i, &v, &available) || v.weight <= 0)
		return 0;
	__s32 doh = conn_overhead(&v);
	if (s->best < 0 || (__s64)s->oh * v.weight < (__s64)doh * s->w) {
		s->best = i;
		s->oh = doh;
		s->w = v.weight;
	}
	return 0;
}

/* Erasing the member at `*ctx`: member at + j + 1 moves to at + j. */
static long lblcr_erase_step(__u32 j, void *ctx)
{
	struct xvs_lblcr_entry *en = lblcr_work();
	__u32 to = (*(__u32 *)ctx + j) & XVS_LBLCR_SET_MASK;
	__u32 from = (to + 1) & XVS_LBLCR_SET_MASK;

	if (en) {
		en->dest[to] = en->dest[from];
		en->dest_gen[to] = en->dest_gen[from];
	}
	return 0;
}

/* Making room at the head: member MAX - 2 - j moves to MAX - 1 - j. */
static long lblcr_room_step(__u32 j, void *ctx)
{
	struct xvs_lblcr_entry *en = lblcr_work();
	__u32 to = (XVS_LBLCR_SET_MAX - 1 - j) & XVS_LBLCR_SET_MASK;
	__u32 from = (to - 1) & XVS_LBLCR_SET_MASK;

	if (en) {
		en->dest[to] = en->dest[from];
		en->dest_gen[to] = en->dest_gen[from];
	}
	return 0;
}

struct lblcr_find {
	__u32 dest;
	__u32 gen;
	int found;
};

static long lblcr_find_step(__u32 i, void *ctx)
{
	struct lblcr_find *f = ctx;
	struct xvs_lblcr_entry *en = lblcr_work();

	if (en && en->dest[i & XVS_LBLCR_SET_MASK] == f->dest &&
	    en->dest_gen[i & XVS_LBLCR_SET_MASK] == f->gen) {
		f->found = 1;
		return 1;
	}
	return 0;
}

/* ip_vs_dest_set_insert: a new member goes first, unless it is in the set already. */
static __always_inline void lblcr_set_insert(struct xvs_lblcr_entry *en, __u32 di, __u32 gen,
					     __u64 now)
{
	struct lblcr_find f = { .dest = di, .gen = gen };
	__u32 size = en->size;

	bpf_loop(size < XVS_LBLCR_SET_MAX ? size : XVS_LBLCR_SET_MAX, lblcr_find_step, &f, 0);
	if (f.found)
		return;
	bpf_loop(XVS_LBLCR_SET_MAX - 1, lblcr_room_step, NULL, 0);
	en->dest[0] = di;
	en->dest_gen[0] = gen;
	if (en->size < XVS_LBLCR_SET_MAX)
		en->size++;
	en->lastmod = now;
}

/* A set older than the expiration with more than one member drops its most loaded one. */
static __always_inline void lblcr_set_prune(struct xvs_lblcr_entry *en, __u64 now)
{
	struct lblcr_scan s = { .best = -1 };
	__u32 size = en->size;

	if (size <= 1 || now <= en->lastmod + XVS_LBLCR_EXPIRATION * XVS_NSEC_PER_SEC)
		return;
	bpf_loop(size < XVS_LBLCR_SET_MAX ? size : XVS_LBLCR_SET_MAX, lblcr_max_step, &s, 0);
	if (s.best < 0)
		return;
	__u32 at = s.best & XVS_LBLCR_SET_MASK;
	if (at + 1 < size)
		bpf_loop(size - 1 - at, lblcr_erase_step, &at, 0);
	en->size = size - 1;
	en->lastmod = now;
}

static __noinline __s64 sched_lblcr(const struct xvs_pkt *p, const struct xvs_service *svc,
				    const struct xvs_sched_state *st, __u64 now)
{
	struct xvs_lblcr_entry *en = lblcr_work();
	struct lblcr_scan least = { .best = -1 };
	struct xvs_lblc_key k;
	struct sched_dest v;

	if (!en)
		return -1;
	lblc_key_of(&k, p, svc);
	struct xvs_lblcr_entry *stored = bpf_map_lookup_elem(&lblcr, &k);
	if (stored) {
		__builtin_memcpy(en, stored, sizeof(*en));
		if (en->size > XVS_LBLCR_SET_MAX)
			en->size = XVS_LBLCR_SET_MAX;
		bpf_loop(en->size, lblcr_min_step, &least, 0);
		lblcr_set_prune(en, now);
	} else {
		__builtin_memset(en, 0, sizeof(*en));
		en->lastmod = now;
	}
	en->lastuse = now;
	__s64 pick = least.best;
	if (pick < 0 || !sched_dest_read(pick, &v) || lblc_overloaded(&v, st)) {
		pick = sched_wlc(st);
		__u32 di = pick;
		struct xvs_dest *d = bpf_map_lookup_elem(&dests, &di);
		if (pick >= 0 && d)
			lblcr_set_insert(en, di, d->gen, now);
	}
	if (stored || pick >= 0)
		bpf_map_update_elem(&lblcr, &k, en, BPF_ANY);
	return pick;
}

#endif
