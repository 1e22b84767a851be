/* SPDX-License-Identifier: GPL-2.0 */
/* Fragments. XDP sees each fragment, where IPVS sees the reassembled datagram. The first fragment
 * carries the ports: it is balanced like a whole packet and remembered in `frags` under
 * ⟨af, protocol, source, destination, identification⟩. A later fragment follows the connection
 * its first fragment used (same real server, same rewrite, same tunnel source), but changes no
 * connection state. A later fragment whose first fragment was not balanced here (not seen yet,
 * not for a service, older than XVS_FRAG_TIMEOUT_NS, its connection ended) is passed to the
 * kernel and counted: never sent to a real server that the first fragment did not go to. */
#ifndef XVS_FRAG_H
#define XVS_FRAG_H

#include "xvs_maps.h"
#include "xvs_related.h"

static __always_inline void frag_key(const struct xvs_pkt *p, struct xvs_frag_key *fk)
{
	fk->saddr = p->key.saddr;
	fk->daddr = p->key.daddr;
	fk->id = p->frag_id;
	fk->proto = p->frag_proto;
	fk->af = p->key.af;
}

/* After a first fragment found its connection: later fragments will follow it. */
static __noinline void frag_remember(const struct xvs_pkt *p, __u64 now)
{
	struct xvs_frag_key fk = {};
	struct xvs_frag f = {};

	if (p->frag != XVS_FRAG_FIRST)
		return;
	frag_key(p, &fk);
	f.created = now;
	f.conn = p->key;
	bpf_map_update_elem(&frags, &fk, &f, BPF_ANY);
}

static __noinline int frag_follow(struct xvs_pkt *p)
{
	struct xvs_frag_key fk = {};
	__u64 now = xvs_clock();

	frag_key(p, &fk);
	struct xvs_frag *f = bpf_map_lookup_elem(&frags, &fk);
	if (!f || now - f->created > XVS_FRAG_TIMEOUT_NS)
		return pass(XVS_R_PASS_FRAGMENT);
	struct xvs_conn_key ck = f->conn;
	struct xvs_conn *c = bpf_map_lookup_elem(&conns, &ck);
	if (!c)
		return pass(XVS_R_PASS_FRAGMENT);
	if (ck.dir == XVS_DIR_REPLY)
		return related_to_client(p, c, &ck, now, XVS_R_PASS_FRAGMENT);
	return related_to_real(p, c, &ck, now, XVS_R_PASS_FRAGMENT);
}

#endif
