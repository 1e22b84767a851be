/* SPDX-License-Identifier: GPL-2.0 */
/* xvs's firewall-mark classifier. XDP runs before netfilter, so no iptables mark exists yet:
 * rules ⟨family, destination prefix, protocol, destination port range⟩ -> mark give the mark that
 * firewall-mark services (ipvsadm -f) match on. The longest matching prefix is tried first (an LPM
 * trie over family and address), its rules in the order they were added; when none of them
 * matches the packet, the next shorter prefix is tried. */
#ifndef XVS_MARK_H
#define XVS_MARK_H

#include "xvs_maps.h"
#include "xvs_parse.h"

#define XVS_MARK_LEVELS 136 /* 8 bits of family + at most 128 prefix lengths */

struct mark_search {
	struct xvs_mark_key key;
	__u16 dport;
	__u8 proto;
	__u32 mark;
};

static __always_inline int mark_rule_matches(const struct xvs_mark_rule *r,
					     const struct mark_search *m)
{
	return (!r->proto || r->proto == m->proto) && m->dport >= r->port_lo &&
	       m->dport <= r->port_hi;
}

static long mark_level(__u32 level, void *ctx)
{
	struct mark_search *m = ctx;
	struct xvs_mark_prefix *pf = bpf_map_lookup_elem(&mark_prefixes, &m->key);

	if (!pf)
		return 1;
	for (__u32 i = 0; i < XVS_MARK_RULES_MAX; i++) {
		if (i >= pf->count)
			break;
		__u32 ri = pf->first + i;
		struct xvs_mark_rule *r = bpf_map_lookup_elem(&mark_rules, &ri);
		if (r && mark_rule_matches(r, m)) {
			m->mark = r->mark;
			return 1;
		}
	}
	if (pf->prefixlen <= 8)
		return 1;
	m->key.prefixlen = pf->prefixlen - 1;
	return 0;
}

/* The packet's mark, or 0 when no rule matches. */
static __always_inline __u32 mark_classify(const struct xvs_pkt *p)
{
	struct mark_search m = {};

	m.key.prefixlen = 8 + (p->key.af == XVS_AF_INET6 ? 128 : 32);
	m.key.af = p->key.af;
	__builtin_memcpy(m.key.addr, p->key.daddr.v6, 16);
	m.dport = bpf_ntohs(p->key.dport);
	m.proto = p->key.proto;
	bpf_loop(XVS_MARK_LEVELS, mark_level, &m, 0);
	return m.mark;
}

#endif
