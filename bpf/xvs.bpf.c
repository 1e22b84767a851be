// SPDX-License-Identifier: GPL-2.0
/* xvs dataplane: an XDP program that balances IPv4 TCP and UDP virtual services the way IPVS
 * does. Per packet: parse, look up the connection; an established connection is forwarded by its
 * real server's method without looking at the service or its scheduler. A packet without one
 * looks up its service (firewall mark, then ⟨protocol, address, port⟩, then port 0), and may
 * start a connection the scheduler places. Everything else is passed to the kernel and counted.
 * A second program, xvs_sweep, ends expired connections and templates for the control plane. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "xvs_consts.h"
#include "xvs_structs.h"
#include "xvs_maps.h"
#include "xvs_parse.h"
#include "xvs_state.h"
#include "xvs_stats.h"
#include "xvs_fwd.h"
#include "xvs_conn.h"
#include "xvs_mark.h"
#include "xvs_sweep.h"

char LICENSE[] SEC("license") = "GPL";

static __always_inline int forward_to(struct xdp_md *ctx, struct xvs_pkt *p,
				      const struct xvs_dest *d, __u8 method, __be16 rport)
{
	switch (method) {
	case XVS_FWD_DR:
		return forward(ctx, p, d->addr.v4);
	case XVS_FWD_NAT:
		nat_rewrite(p, &p->ip4->daddr, l4_port(p, 1), d->addr.v4, rport);
		return forward(ctx, p, d->addr.v4);
	}
	return pass(XVS_R_UNSUPPORTED_FWD);
}

/* A packet of a connection that lives: the established path, the same for every scheduler. */
static __always_inline int established(struct xdp_md *ctx, struct xvs_pkt *p, struct xvs_conn *c,
				       const struct xvs_dest *d, const struct xvs_config *cfg,
				       __u64 now)
{
	conn_touch(c, p, c->method == XVS_FWD_NAT ? XVS_TCP_INPUT : XVS_TCP_INPUT_ONLY, cfg, now);
	count_in(c->svc, c->dest, p->ip_len, 0);
	return forward_to(ctx, p, d, c->method, c->rport);
}

/* The service a packet without connection is for (ip_vs_service_find's order), or NULL. */
static __noinline struct xvs_service *find_service(const struct xvs_pkt *p,
							const struct xvs_config *cfg)
{
	struct xvs_svc_key sk = {};
	struct xvs_service *svc;

	sk.af = p->key.af;
	if (cfg->flags & XVS_CFG_F_MARK_RULES) {
		sk.fwmark = mark_classify(p);
		if (sk.fwmark) {
			svc = bpf_map_lookup_elem(&services, &sk);
			if (svc)
				return svc;
			sk.fwmark = 0;
		}
	}
	sk.addr = p->key.daddr;
	sk.port = p->key.dport;
	sk.proto = p->key.proto;
	svc = bpf_map_lookup_elem(&services, &sk);
	if (svc || !(cfg->flags & XVS_CFG_F_PORT0))
		return svc;
	sk.port = 0;
	return bpf_map_lookup_elem(&services, &sk);
}

/* A persistent service's new connection: the real server of the client's template (kept
 * under *k), or -1 when it has none. */
static __noinline __s64 persist_lookup(const struct xvs_pkt *p, const struct xvs_service *svc,
				       __u64 now, struct xvs_tpl_key *k)
{
	tpl_key_of(k, p, svc);
	struct xvs_template *t = template_use(k, now);
	return t ? (__s64)t->dest : -1;
}

/* The client's new template under *k, sending it to `di`; -1 if it cannot be stored. */
static __noinline __s64 persist_create(const struct xvs_tpl_key *k, const struct xvs_service *svc,
				       __u32 di, __u64 now)
{
	struct xvs_dest *d = bpf_map_lookup_elem(&dests, &di);

	if (!d || !template_new(k, svc, di, d, now))
		return -1;
	return di;
}

/* A packet that may start a connection of `svc`, scheduled to `di`: store and count the
 * connection (controlled by the template under *tk on a persistent service), forward. One-packet
 * scheduling (-o, UDP) counts the datagram as a connection that ends at once (its server's
 * overload flag sees it come and go) and stores nothing. */
static __noinline int conn_start(struct xdp_md *ctx, struct xvs_pkt *p,
				 const struct xvs_service *svc, __u32 di, const struct xvs_tpl_key *tk)
{
	struct xvs_dest *d = bpf_map_lookup_elem(&dests, &di);
	struct xvs_template *tpl = NULL;
	__u32 zero = 0;
	struct xvs_config *cfg = bpf_map_lookup_elem(&config, &zero);

	if (!d || !cfg)
		return pass(XVS_R_PASS_NO_DEST);
	__u64 now = xvs_now(cfg);
	__be16 rport = real_port(p, svc, d);
	if ((svc->flags & XVS_SVC_F_ONEPACKET) && p->key.proto == IPPROTO_UDP) {
		dest_bind(di, d, XVS_COUNTED_INACTIVE);
		dest_unbind(di, d, XVS_COUNTED_INACTIVE);
		count_in(svc->id, di, p->ip_len, 1);
		return forward_to(ctx, p, d, d->method, rport);
	}

	struct xvs_conn c = {
		.last_seen = now,
		.svc = svc->id,
		.dest = di,
		.dest_gen = d->gen,
		.method = d->method,
		.state = p->key.proto == IPPROTO_TCP ? XVS_TCP_S_NONE : XVS_UDP_S_NORMAL,
		.counted = XVS_COUNTED_INACTIVE,
		.rport = rport,
	};
	if (svc->flags & XVS_SVC_F_PERSISTENT)
		tpl = bpf_map_lookup_elem(&templates, tk);
	if (tpl) {
		c.flags = XVS_CONN_F_CONTROLLED;
		c.tpl_id = tpl->id;
		c.ctl = *tk;
	}
	if (conn_store(p, d, &c)) {
		count_reason(XVS_R_DROP_CONN_FULL);
		return XDP_DROP;
	}
	dest_bind(di, d, XVS_COUNTED_INACTIVE);
	struct xvs_conn *cp = bpf_map_lookup_elem(&conns, &p->key);
	if (!cp)
		return pass(XVS_R_PASS_NO_CONN);
	conn_touch(cp, p, d->method == XVS_FWD_NAT ? XVS_TCP_INPUT : XVS_TCP_INPUT_ONLY, cfg, now);
	count_in(svc->id, di, p->ip_len, 1);
	return forward_to(ctx, p, d, d->method, rport);
}

/* A packet that may start a connection of `svc`. */
static __always_inline int conn_new(struct xdp_md *ctx, struct xvs_pkt *p,
				    const struct xvs_service *svc, __u64 now)
{
	struct xvs_tpl_key tk;
	__s64 pick;

	int persistent = svc->flags & XVS_SVC_F_PERSISTENT;

	/* ip_vs_sched_persist: the template decides, else the scheduler and a new template. */
	pick = persistent ? persist_lookup(p, svc, now, &tk) : -1;
	if (pick < 0) {
		pick = schedule(p, svc, now);
		if (pick >= 0 && persistent)
			pick = persist_create(&tk, svc, pick, now);
	}
	if (pick < 0)
		return pass(XVS_R_PASS_NO_DEST);
	return conn_start(ctx, p, svc, pick, &tk);
}

/* Whether a packet from ⟨address, port⟩ may be a NAT real server's reply. */
static __always_inline int from_nat_real(const struct xvs_pkt *p, const struct xvs_config *cfg)
{
	struct xvs_real_key rk = {};

	rk.addr = p->key.saddr;
	rk.port = p->key.sport;
	rk.proto = p->key.proto;
	rk.af = p->key.af;
	if (bpf_map_lookup_elem(&nat_reals, &rk))
		return 1;
	if (!(cfg->flags & XVS_CFG_F_NAT_PORT0))
		return 0;
	rk.port = 0;
	return bpf_map_lookup_elem(&nat_reals, &rk) != NULL;
}

/* A packet from a NAT real server to a client: rewrite its source back to the virtual service. */
static __noinline int nat_reply(struct xdp_md *ctx, struct xvs_pkt *p,
				     const struct xvs_config *cfg, __u64 now)
{
	if (!from_nat_real(p, cfg))
		return pass(XVS_R_PASS_NO_SERVICE);
	p->key.dir = XVS_DIR_REPLY;
	struct xvs_conn *r = bpf_map_lookup_elem(&conns, &p->key);
	if (!r)
		return pass(XVS_R_PASS_NO_SERVICE);

	struct xvs_conn_key fk = {};
	fk.saddr = p->key.daddr;
	fk.daddr = r->vaddr;
	fk.sport = p->key.dport;
	fk.dport = r->vport;
	fk.proto = p->key.proto;
	fk.af = p->key.af;
	fk.dir = XVS_DIR_IN;

	struct xvs_conn *c = bpf_map_lookup_elem(&conns, &fk);
	if (!c || c->dest != r->dest || c->dest_gen != r->dest_gen || conn_expired(c, now) ||
	    !dest_get(c->dest, c->dest_gen)) {
		bpf_map_delete_elem(&conns, &p->key);
		return pass(XVS_R_PASS_STALE_REPLY);
	}
	conn_touch(c, p, XVS_TCP_OUTPUT, cfg, now);
	count_out(c->svc, c->dest, p->ip_len);
	nat_rewrite(p, &p->ip4->saddr, l4_port(p, 0), r->vaddr.v4, r->vport);
	return forward(ctx, p, p->ip4->daddr);
}

SEC("xdp")
int xvs_xdp(struct xdp_md *ctx)
{
	struct xvs_pkt p;
	__u32 zero = 0;

	__builtin_memset(&p, 0, sizeof(p));
	int reason = parse_packet(ctx, &p);
	if (reason >= 0)
		return pass(reason);
	struct xvs_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return XDP_PASS;
	__u64 now = xvs_now(cfg);

	struct xvs_conn *c = bpf_map_lookup_elem(&conns, &p.key);
	if (c) {
		struct xvs_dest *d = dest_get(c->dest, c->dest_gen);

		if (d && !conn_expired(c, now) && !conn_reused(c, &p))
			return established(ctx, &p, c, d, cfg, now);
		conn_end(&p.key, c);
		if (!d && !conn_may_start(&p)) {
			/* As IPVS with expire_nodest_conn: the connection ended with its server. */
			count_reason(XVS_R_DROP_DEST_GONE);
			return XDP_DROP;
		}
	}
	struct xvs_service *svc = find_service(&p, cfg);
	if (!svc)
		return nat_reply(ctx, &p, cfg, now);
	if (!conn_may_start(&p))
		return pass(XVS_R_PASS_NO_CONN);
	return conn_new(ctx, &p, svc, now);
}

/* The enums' values reach the control plane through BTF: this variable makes clang emit them. */
struct xvs_enums {
	enum xvs_fwd fwd;
	enum xvs_sched sched;
	enum xvs_svc_flags svc_flags;
	enum xvs_sched_flags sched_flags;
	enum xvs_dest_flags dest_flags;
	enum xvs_dir dir;
	enum xvs_conn_flags conn_flags;
	enum xvs_counted counted;
	enum xvs_resume resume;
	enum xvs_config_flags config_flags;
	enum xvs_conn_state state;
	enum xvs_reason reason;
};
const volatile struct xvs_enums xvs_enums_btf;
/* The sweeper's frame layout reaches the control plane through BTF the same way. */
const volatile struct xvs_sweep xvs_sweep_btf;
