// SPDX-License-Identifier: GPL-2.0
/* xvs dataplane: an XDP program that balances IPv4 and IPv6 TCP, UDP and SCTP virtual services the way
 * IPVS does. Per packet: parse, look up the connection; an established connection is forwarded by
 * its real server's method without looking at the service or its scheduler. A packet without one
 * looks up its service (firewall mark, then ⟨protocol, address, port⟩, then port 0), and may
 * start a connection the scheduler places; a packet for no service may be a NAT real server's reply
 * (rewritten back to the virtual service) or a DR/TUN reply that crosses the balancer (counted
 * and routed on, xvs_routed.h). Later fragments follow their first fragment
 * (xvs_frag.h), ICMP is answered or related to its connection (xvs_icmp_conn.h). Everything else
 * is passed to the kernel untouched and counted. A second program, xvs_sweep, ends expired
 * connections and templates for the control plane. */
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
#include "xvs_ctl.h"
#include "xvs_related.h"
#include "xvs_frag.h"
#include "xvs_icmp_conn.h"
#include "xvs_mark.h"
#include "xvs_trash.h"
#include "xvs_sip.h"
#include "xvs_sweep.h"
#include "xvs_routed.h"

char LICENSE[] SEC("license") = "GPL";

/* A packet of a connection that lives: the established path, the same for every scheduler. */
static __always_inline int established(struct xvs_pkt *p, struct xvs_conn *c,
				       const struct xvs_dest *d, const struct xvs_config *cfg,
				       __u64 now)
{
	conn_touch(c, p, conn_in_table(c), cfg, now);
	count_in(d->svc, c->dest, p->ip_len, 0); /* the server's service: it may have been re-created */
	frag_remember(p, now);
	return fwd_to_real(p, c->method, c->dest, d, &p->key, c->rport);
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

/* A persistent service: the real server of the client's template (its key left in *k), or -1
 * when the client has none yet. */
static __noinline __s64 persist_find(const struct xvs_pkt *p, const struct xvs_service *svc,
				     __u64 now, struct xvs_tpl_key *k)
{
	__u32 zero = 0;
	struct xvs_config *cfg = bpf_map_lookup_elem(&config, &zero);

	tpl_key_of(k, p, svc);
	struct xvs_template *t = template_use(&templates, k, now, cfg ? cfg->flags : 0);
	if (!t)
		return -1; /* not `t ? t->dest : -1`: that is unsigned, never negative */
	return t->dest;
}

/* A persistent service's client without template was scheduled to `di`: its template (under *k)
 * sends the client's next connections there too. 0 when it could not be stored. */
static __noinline int persist_new(const struct xvs_tpl_key *k, const struct xvs_service *svc,
				  __u32 di, __u64 now)
{
	struct xvs_dest *d = bpf_map_lookup_elem(&dests, &di);

	return d && template_new(&templates, k, svc, di, d, now);
}

/* A packet that may start a connection of `svc`, scheduled to `di`: store and count the
 * connection (controlled by the template under n->tpl on a persistent service), forward.
 * One-packet scheduling (-o, UDP) counts the datagram as a connection that ends at once (its
 * server's overload flag sees it come and go) and stores nothing. */
static __noinline int conn_start(struct xvs_pkt *p, const struct xvs_service *svc, __u32 di,
				 struct xvs_new_conn *n)
{
	struct xvs_dest *d = bpf_map_lookup_elem(&dests, &di);
	struct xvs_template *tpl = NULL;
	__u32 zero = 0;
	struct xvs_config *cfg = bpf_map_lookup_elem(&config, &zero);

	if (!d || !cfg || !n)
		return pass(XVS_R_PASS_NO_DEST);
	__u64 now = xvs_now(cfg);
	__be16 rport = real_port(p, svc, d);
	if ((svc->flags & XVS_SVC_F_ONEPACKET) && p->key.proto == IPPROTO_UDP) {
		dest_bind(di, d, XVS_COUNTED_INACTIVE);
		dest_unbind(di, d, XVS_COUNTED_INACTIVE);
		count_in(svc->id, di, p->ip_len, 1);
		return fwd_to_real(p, d->method, di, d, &p->key, rport);
	}

	struct xvs_conn *c = &n->conn;
	__builtin_memset(c, 0, sizeof(*c));
	c->last_seen = now;
	c->svc = svc->id;
	c->dest = di;
	c->dest_gen = d->gen;
	c->method = d->method;
	c->state = p->key.proto == IPPROTO_UDP ? XVS_UDP_S_NORMAL : XVS_TCP_S_NONE; /* = XVS_SCTP_S_NONE */
	c->counted = XVS_COUNTED_INACTIVE;
	c->rport = rport;
	if (svc->flags & XVS_SVC_F_PERSISTENT)
		tpl = svc->flags & XVS_SVC_F_PE_SIP ? sip_template(p) : bpf_map_lookup_elem(&templates, &n->tpl);
	if (tpl) {
		c->flags = XVS_CONN_F_CONTROLLED | (svc->flags & XVS_SVC_F_PE_SIP ? XVS_CONN_F_SIP : 0);
		c->tpl_id = tpl->id;
		c->ctl = n->tpl;
	}
	if (conn_store(p, d, c)) {
		count_reason(XVS_R_DROP_CONN_FULL);
		return XDP_DROP;
	}
	dest_bind(di, d, XVS_COUNTED_INACTIVE);
	struct xvs_conn *cp = bpf_map_lookup_elem(&conns, &p->key);
	if (!cp)
		return pass(XVS_R_PASS_NO_CONN);
	conn_touch(cp, p, conn_in_table(cp), cfg, now);
	count_in(svc->id, di, p->ip_len, 1);
	frag_remember(p, now);
	return fwd_to_real(p, d->method, di, d, &p->key, rport);
}

/* A packet that may start a connection of `svc`. */
static __always_inline int conn_new(struct xvs_pkt *p, const struct xvs_service *svc, __u64 now)
{
	__u32 zero = 0;
	struct xvs_new_conn *n = bpf_map_lookup_elem(&new_conn, &zero);
	__s64 pick;

	if (!n)
		return pass(XVS_R_PASS_NO_DEST);
	if (!(svc->flags & XVS_SVC_F_PERSISTENT)) {
		pick = schedule(p, svc, now);
	} else if (svc->flags & XVS_SVC_F_PE_SIP) {
		pick = sip_pick(p, svc, now);
		if (pick == XVS_SIP_PARSE)
			return XVS_SIP_PARSE;
		if (pick == XVS_SIP_DROP)
			return XDP_DROP;
		if (pick == XVS_SIP_NEW) {
			pick = schedule(p, svc, now);
			if (pick >= 0 && !sip_template_new(svc, pick, now))
				pick = -1;
		}
	} else {
		/* ip_vs_sched_persist, with the scheduler called from here: one call level less. */
		pick = persist_find(p, svc, now, &n->tpl);
		if (pick < 0) {
			pick = schedule(p, svc, now);
			if (pick >= 0 && !persist_new(&n->tpl, svc, pick, now))
				pick = -1;
		}
	}
	if (pick < 0)
		return pass(XVS_R_PASS_NO_DEST);
	return conn_start(p, svc, pick, n);
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

/* A packet from a NAT real server to a client: its source goes back to the virtual service.
 * Another packet for no service may be a DR/TUN reply (xvs_routed.h). */
static __noinline int nat_reply(struct xvs_pkt *p, const struct xvs_config *cfg, __u64 now)
{
	if (!from_nat_real(p, cfg))
		return routed_reply_possible(&p->key, cfg) ? XVS_ROUTED_REPLY : pass(XVS_R_PASS_NO_SERVICE);
	p->key.dir = XVS_DIR_REPLY;
	struct xvs_conn *r = bpf_map_lookup_elem(&conns, &p->key);
	if (!r)
		return pass(XVS_R_PASS_NO_SERVICE);

	struct xvs_conn *c = reply_conn(&p->key, r, now);
	if (!c) {
		bpf_map_delete_elem(&conns, &p->key);
		return pass(XVS_R_PASS_STALE_REPLY);
	}
	conn_touch(c, p, XVS_TCP_OUTPUT, cfg, now);
	count_reply(c, p->ip_len);
	frag_remember(p, now);
	return fwd_to_client(p, &r->vaddr, r->vport);
}

/* What to do with a TCP, UDP or SCTP packet or a later fragment: its decision lands in p->fwd. A global
 * function (see xvs_forward()). The connection is looked up first: an established connection goes
 * on to its real server whatever its service's scheduler; only a packet without one looks up its
 * service (firewall mark, then ⟨protocol, address, port⟩, then port 0) and may start one. */
__attribute__((noinline)) int xvs_decide(struct xvs_pkt *p)
{
	__u32 zero = 0;

	if (!p)
		return XDP_ABORTED;
	if (p->frag == XVS_FRAG_LATER)
		return frag_follow(p);
	struct xvs_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return XDP_PASS;
	__u64 now = xvs_now(cfg);

	struct xvs_conn *c = bpf_map_lookup_elem(&conns, &p->key);
	if (c) {
		struct xvs_dest *d = dest_get(c->dest, c->dest_gen);
		int live = !conn_expired(c, now) && !conn_reused(c, p);

		if (d && live)
			return established(p, c, d, cfg, now);
		if (live && conn_kept_in_trash(c, cfg)) {
			count_reason(XVS_R_DROP_DEST_GONE);
			return XDP_DROP;
		}
		conn_end(&p->key, c);
	}
	struct xvs_service *svc = find_service(p, cfg);
	if (!svc)
		return nat_reply(p, cfg, now);
	if (!conn_may_start(p))
		return pass(XVS_R_PASS_NO_CONN);
	return conn_new(p, svc, now);
}

SEC("xdp")
int xvs_xdp(struct xdp_md *ctx)
{
	struct xvs_pkt p;

	__builtin_memset(&p, 0, sizeof(p));
	int reason = parse_packet(ctx, &p);
	if (reason >= 0)
		return pass(reason);
	int verdict = is_icmp(&p) && p.frag != XVS_FRAG_LATER ? xvs_icmp(ctx, &p) : xvs_decide(&p);
	if (verdict == XVS_ROUTED_REPLY)
		verdict = xvs_routed_reply(ctx, &p);
	if (verdict == XVS_SIP_PARSE) {
		/* A new datagram of a sip service: its Call-ID decides (xvs_sip.h). */
		sip_search(ctx, &p);
		p.sip_parsed = 1;
		verdict = xvs_decide(&p);
	}
	if (verdict == XVS_FORWARD)
		verdict = xvs_forward(ctx, &p);
	return verdict == XVS_TOO_BIG ? xvs_icmp_too_big(ctx, &p) : verdict;
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
	enum xvs_est_kind est_kind;
	enum xvs_sctp_state sctp_state;
	enum xvs_tun_type tun_type;
	enum xvs_tun_flags tun_flags;
	enum xvs_tpl_state tpl_state;
};
const volatile struct xvs_enums xvs_enums_btf;
/* The sweeper's frame layout reaches the control plane through BTF the same way. */
const volatile struct xvs_sweep xvs_sweep_btf;
