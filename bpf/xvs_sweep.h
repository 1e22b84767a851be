/* SPDX-License-Identifier: GPL-2.0 */
/* The sweeper, run by the control plane (BPF_PROG_TEST_RUN on a frame that carries struct
 * xvs_sweep): it ends every connection whose time is up or whose real server is gone (freed from
 * the trash, or in it with expire_nodest_conn: xvs_trash.h), drops reply entries left without
 * their connection, and stamps the template of every connection that lives on; then it ends or re-arms the persistence templates whose time is up, as the kernel's
 * connection timers would have (re-armed when stamped by this sweep). Connections go first, so
 * that a template whose last connection ends in the same sweep ends too. Ending goes through the
 * same exactly-once uncounting as the packet path, so the two may race freely. */
#ifndef XVS_SWEEP_H
#define XVS_SWEEP_H

#include "xvs_conn.h"
#include "xvs_persist.h"
#include "xvs_trash.h"
#include "xvs_sip.h"

struct sweep_ctx {
	__u64 now;
	__u32 cfg_flags;
	struct xvs_sweep out;
};

static __always_inline int reply_orphaned(const struct xvs_conn_key *rk, const struct xvs_conn *r)
{
	struct xvs_conn_key fk;

	client_key_of(&fk, rk, r);
	struct xvs_conn *c = bpf_map_lookup_elem(&conns, &fk);
	return !c || c->dest != r->dest || c->dest_gen != r->dest_gen;
}

static long sweep_conn(void *map, const struct xvs_conn_key *key, struct xvs_conn *c, void *ctx)
{
	struct sweep_ctx *s = ctx;
	struct xvs_conn_key k = *key;

	if (k.dir == XVS_DIR_REPLY) {
		if (reply_orphaned(&k, c) && !bpf_map_delete_elem(&conns, &k))
			s->out.replies_ended++;
		return 0;
	}
	if (conn_expired(c, s->now) || dest_lost(c->dest, c->dest_gen, s->cfg_flags)) {
		if (conn_end(&k, c))
			s->out.conns_ended++;
		return 0;
	}
	if (c->flags & XVS_CONN_F_SIP) {
		sip_stamp(c->tpl_id, s->now);
	} else if (c->flags & XVS_CONN_F_CONTROLLED) {
		struct xvs_template *t = template_of(c);

		if (t)
			t->referenced = s->now;
	}
	return 0;
}

/* A template of `map` whose time came is re-armed if this sweep stamped it, else ended. */
static __always_inline void sweep_one_template(void *map, const void *k, struct xvs_template *t,
					       struct sweep_ctx *s)
{
	int lost = dest_lost(t->dest, t->dest_gen, s->cfg_flags) && t->referenced != s->now;

	if (!lost && !template_expired(t, s->now))
		return;
	if (!lost && t->referenced == s->now) {
		template_rearm(t, s->now);
		s->out.templates_rearmed++;
		return;
	}
	template_end(map, k, t);
	s->out.templates_ended++;
}

static long sweep_template(void *map, const struct xvs_tpl_key *key, struct xvs_template *t,
			   void *ctx)
{
	struct xvs_tpl_key k = *key;

	sweep_one_template(&templates, &k, t, ctx);
	return 0;
}

static long sweep_sip_template(void *map, const struct xvs_sip_key *key, struct xvs_template *t,
			       void *ctx)
{
	__u64 *ref = bpf_map_lookup_elem(&sip_refs, &t->id);

	if (ref)
		t->referenced = *ref;
	sweep_one_template(&sip_templates, key, t, ctx);
	return 0;
}

SEC("xdp")
int xvs_sweep(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct xvs_sweep *out = data;
	struct sweep_ctx s = {};
	__u32 zero = 0;

	if ((void *)(out + 1) > data_end)
		return XDP_ABORTED;
	struct xvs_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return XDP_ABORTED;
	s.now = xvs_now(cfg);
	s.cfg_flags = cfg->flags;
	bpf_for_each_map_elem(&conns, sweep_conn, &s, 0);
	bpf_for_each_map_elem(&templates, sweep_template, &s, 0);
	bpf_for_each_map_elem(&sip_templates, sweep_sip_template, &s, 0);
	bpf_for_each_map_elem(&sip_refs, sip_unstamp, &s.now, 0);
	*out = s.out;
	return XDP_PASS;
}

#endif
