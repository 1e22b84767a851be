/* SPDX-License-Identifier: GPL-2.0 */
/* Persistence (ip_vs_sched_persist): a template ⟨protocol, client address & netmask, virtual
 * address, virtual port⟩ sends every new connection of a client to the real server its first
 * connection went to, while the template lives. A template counts as PersistConn on its server,
 * lives `-p` seconds after the last connection it sent, and when that time comes while it still
 * controls connections it waits again XVS_TEMPLATE_REARM seconds at a time (ip_vs_conn_expire).
 * A template whose server was removed is void: it ends and the client is scheduled anew.
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

/* The client's template, refreshed as a new connection uses it, or NULL. A void one ends here. */
static __always_inline struct xvs_template *template_use(void *map, const void *k, __u64 now)
{
	struct xvs_template *t = bpf_map_lookup_elem(map, k);

	if (!t)
		return NULL;
	if (!dest_get(t->dest, t->dest_gen)) {
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
