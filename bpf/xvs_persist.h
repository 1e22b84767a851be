/* SPDX-License-Identifier: GPL-2.0 */
/* Persistence (ip_vs_sched_persist): a template ⟨protocol, client address & netmask, virtual
 * address, virtual port⟩ sends every new connection of a client to the real server its first
 * connection went to, while the template lives. A template counts as PersistConn on its server,
 * lives `-p` seconds after the last connection it sent, and when that time comes while it still
 * controls connections it waits again XVS_TEMPLATE_REARM seconds at a time (ip_vs_conn_expire).
 * A template whose server is unavailable (in the trash, or weight 0 with expire_quiescent_template)
 * is void: the client's next new connection invalidates it as ip_vs_check_template does (moved to
 * ports 65535, where it lives on uncalled until its time) and is scheduled anew. A template is
 * ASSURED once it controlled an established TCP connection or a UDP reply (ip_vs_control_assure_ct).
 *
 * Whether a template still controls connections is not counted (an atomic counter written through
 * a pointer whose hash-map element was meanwhile deleted and reused would drift for good): the
 * sweeper, which walks every connection, stamps each live connection's template with its time,
 * then ends or re-arms the templates whose time came by that stamp. Only the sweeper ends templates
 * on time; the packet path ends void ones. */
#ifndef XVS_PERSIST_H
#define XVS_PERSIST_H

#include "xvs_counts.h"
#include "xvs_parse.h"

static __always_inline void tpl_key_of(struct xvs_tpl_key *k, const struct xvs_pkt *p,
				       const struct xvs_service *svc)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->af = p->key.af;
	if (p->key.af == XVS_AF_INET6) {
		/* An IPv6 service's netmask is a prefix length (ipvsadm -M 64). */
		__u32 bits = svc->netmask;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			__u32 m = bits >= 32 ? 0xffffffffU : bits ? ~0U << (32 - bits) : 0;
			k->saddr.v6[i] = p->key.saddr.v6[i] & bpf_htonl(m);
			bits = bits >= 32 ? bits - 32 : 0;
		}
	} else {
		k->saddr.v4 = p->key.saddr.v4 & svc->netmask;
	}
	if (svc->fwmark) {
		k->daddr.v4 = bpf_htonl(svc->fwmark);
		return;
	}
	k->daddr = p->key.daddr;
	k->proto = p->key.proto;
	if (p->key.dport == svc->port && svc->port != bpf_htons(XVS_FTP_PORT))
		k->dport = p->key.dport;
}

static __always_inline int template_expired(const struct xvs_template *t, __u64 now)
{
	return now > t->last_seen + (__u64)t->timeout * XVS_NSEC_PER_SEC + XVS_LAST_SEEN_GRANULE_NS;
}

/* The template's time came while it controls connections: it waited again, XVS_TEMPLATE_REARM
 * seconds at a time from then, as often as it took to reach `now`. */
static __always_inline void template_rearm(struct xvs_template *t, __u64 now)
{
	__u64 due = t->last_seen + (__u64)t->timeout * XVS_NSEC_PER_SEC;
	__u64 step = XVS_TEMPLATE_REARM * XVS_NSEC_PER_SEC;

	t->last_seen = due + (now - XVS_LAST_SEEN_GRANULE_NS - due) / step * step;
	t->timeout = XVS_TEMPLATE_REARM;
}

/* `map` is templates or sip_templates, `k` a key of it (the same for the functions below). */
static __always_inline void template_end(void *map, const void *k, struct xvs_template *t)
{
	if (entry_uncount(&t->counted, t->dest, t->dest_gen))
		bpf_map_delete_elem(map, k);
}

/* ip_vs_check_template: whether the template's server may still take the client's connections. */
static __always_inline int template_valid(const struct xvs_template *t, __u32 cfg_flags)
{
	struct xvs_dest *d = dest_get(t->dest, t->dest_gen);

	return d && !((cfg_flags & XVS_CFG_F_EXPIRE_QUIESCENT_TEMPLATE) && !d->weight);
}

/* Where ip_vs_check_template moves a void template: both ports 65535 (the key's only port). */
static __always_inline void tpl_key_invalid(struct xvs_tpl_key *k)
{
	k->dport = XVS_TPL_INVALID_PORT;
}

/* Moves a void template under its invalid key, where it keeps its count and time but is never
 * used again (an older one already there ends). Exactly once: whoever takes `counted` moves it. */
static __noinline void template_invalidate(const struct xvs_tpl_key *k, struct xvs_template *t)
{
	struct xvs_tpl_key ik = *k;
	struct xvs_template moved = *t;

	if (k->dport == XVS_TPL_INVALID_PORT)
		return;
	moved.counted = __sync_lock_test_and_set(&t->counted, XVS_COUNTED_NONE);
	if (moved.counted == XVS_COUNTED_NONE)
		return;
	bpf_map_delete_elem(&templates, k);
	tpl_key_invalid(&ik);
	struct xvs_template *old = bpf_map_lookup_elem(&templates, &ik);
	if (old)
		template_end(&templates, &ik, old);
	if (!bpf_map_update_elem(&templates, &ik, &moved, BPF_NOEXIST))
		return;
	struct xvs_dest *d = dest_of(moved.dest, moved.dest_gen);
	if (d)
		dest_unbind(moved.dest, d, moved.counted);
}

/* The template that controls c (also once invalidated), or NULL. */
static __always_inline struct xvs_template *template_of(const struct xvs_conn *c)
{
	struct xvs_tpl_key k = c->ctl;
	struct xvs_template *t = bpf_map_lookup_elem(&templates, &k);

	if (t && t->id == c->tpl_id)
		return t;
	tpl_key_invalid(&k);
	t = bpf_map_lookup_elem(&templates, &k);
	return t && t->id == c->tpl_id ? t : NULL;
}

/* ip_vs_control_assure_ct: c's template becomes ASSURED (looked up once per connection). */
static __noinline void template_assure(struct xvs_conn *c)
{
	struct xvs_template *t = template_of(c);

	c->flags |= XVS_CONN_F_ASSURED;
	if (t && !(t->state & XVS_CTPL_S_ASSURED))
		__sync_fetch_and_or(&t->state, XVS_CTPL_S_ASSURED);
}

/* The client's template (`map` is templates or sip_templates, `k` a key of it), refreshed as a
 * new connection uses it, or NULL. A void one is invalidated here (a void call's template ends). */
static __always_inline struct xvs_template *template_use(void *map, const void *k, __u64 now,
							 __u32 cfg_flags)
{
	struct xvs_template *t = bpf_map_lookup_elem(map, k);

	if (!t)
		return NULL;
	if (!template_valid(t, cfg_flags)) {
		if (map == (void *)&templates)
			template_invalidate(k, t);
		else
			template_end(map, k, t);
		return NULL;
	}
	t->last_seen = now;
	return t;
}

/* A new template sending the client to `index`, counted as PersistConn; NULL if it cannot be
 * stored (another CPU's template for the same client wins). */
static __always_inline struct xvs_template *template_new(void *map, const void *k,
							 const struct xvs_service *svc,
							 __u32 index, const struct xvs_dest *d,
							 __u64 now)
{
	struct xvs_template t = {
		.last_seen = now,
		.id = (bpf_ktime_get_ns() << 8) | (bpf_get_smp_processor_id() & 0xff),
		.svc = svc->id,
		.dest = index,
		.dest_gen = d->gen,
		.timeout = svc->timeout,
		.counted = XVS_COUNTED_PERSIST,
	};

	if (bpf_map_update_elem(map, k, &t, BPF_NOEXIST))
		return bpf_map_lookup_elem(map, k);
	dest_bind(index, d, XVS_COUNTED_PERSIST);
	return bpf_map_lookup_elem(map, k);
}

#endif
