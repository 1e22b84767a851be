// SPDX-License-Identifier: GPL-2.0
/* xvs dataplane: an XDP program that balances IPv4 and IPv6 TCP and UDP virtual services the way
 * IPVS does. Per packet: parse, look up the service, look up or create the connection, forward by
 * the real server's method, count. Later fragments follow their first fragment (xvs_frag.h), ICMP
 * is answered or related to its connection (xvs_icmp_conn.h). Everything else is passed to the
 * kernel untouched and counted. */
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

char LICENSE[] SEC("license") = "GPL";

static __always_inline int balance(struct xvs_pkt *p, const struct xvs_service *svc)
{
	__u64 now = bpf_ktime_get_coarse_ns();
	struct xvs_conn *c = bpf_map_lookup_elem(&conns, &p->key);
	struct xvs_dest *d = NULL;
	int new_conn = 0;

	if (c && (c->svc != svc->id || conn_expired(c, now)))
		c = NULL;
	if (c) {
		__u32 di = c->dest;

		d = bpf_map_lookup_elem(&dests, &di);
		if (!d || !dest_alive(d, c)) {
			/* As IPVS with expire_nodest_conn: the connection ends with its server. */
			bpf_map_delete_elem(&conns, &p->key);
			if (!conn_may_start(p)) {
				count_reason(XVS_R_DROP_DEST_GONE);
				return XDP_DROP;
			}
			c = NULL;
		}
	}
	if (!c) {
		int reason;

		if (!conn_may_start(p))
			return pass(XVS_R_PASS_NO_CONN);
		c = conn_create(p, svc, now, &reason);
		if (!c) {
			if (reason == XVS_R_DROP_CONN_FULL) {
				count_reason(reason);
				return XDP_DROP;
			}
			return pass(reason);
		}
		__u32 di = c->dest;
		d = bpf_map_lookup_elem(&dests, &di);
		if (!d)
			return pass(XVS_R_PASS_NO_DEST);
		new_conn = 1;
	}

	conn_touch(c, p, c->method == XVS_FWD_NAT ? XVS_TCP_INPUT : XVS_TCP_INPUT_ONLY, now);
	count_in(c->svc, c->dest, p->ip_len, new_conn);
	frag_remember(p, now);
	return fwd_to_real(p, c->method, c->dest, d, &p->key);
}

/* A packet from a NAT real server to a client: rewrite its source back to the virtual service. */
static __always_inline int nat_reply(struct xvs_pkt *p)
{
	struct xvs_real_key rk = {};

	rk.addr = p->key.saddr;
	rk.port = p->key.sport;
	rk.proto = p->key.proto;
	rk.af = p->key.af;
	if (!bpf_map_lookup_elem(&nat_reals, &rk))
		return pass(XVS_R_PASS_NO_SERVICE);

	p->key.dir = XVS_DIR_REPLY;
	struct xvs_conn *r = bpf_map_lookup_elem(&conns, &p->key);
	if (!r)
		return pass(XVS_R_PASS_NO_SERVICE);

	__u64 now = bpf_ktime_get_coarse_ns();
	struct xvs_conn *c = reply_conn(&p->key, r, now);
	if (!c) {
		bpf_map_delete_elem(&conns, &p->key);
		return pass(XVS_R_PASS_STALE_REPLY);
	}
	conn_touch(c, p, XVS_TCP_OUTPUT, now);
	count_out(c->svc, c->dest, p->ip_len);
	frag_remember(p, now);
	return fwd_to_client(p, &r->vaddr, r->vport);
}

/* What to do with a TCP or UDP packet or a later fragment: its decision lands in p->fwd. A global
 * function (see xvs_forward()). */
__attribute__((noinline)) int xvs_decide(struct xvs_pkt *p)
{
	if (!p)
		return XDP_ABORTED;
	if (p->frag == XVS_FRAG_LATER)
		return frag_follow(p);

	struct xvs_svc_key sk = {};
	sk.addr = p->key.daddr;
	sk.port = p->key.dport;
	sk.proto = p->key.proto;
	sk.af = p->key.af;
	struct xvs_service *svc = bpf_map_lookup_elem(&services, &sk);
	if (!svc)
		return nat_reply(p);
	return balance(p, svc);
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
	if (verdict == XVS_FORWARD)
		verdict = xvs_forward(ctx, &p);
	return verdict == XVS_TOO_BIG ? xvs_icmp_too_big(ctx, &p) : verdict;
}

/* The enums' values reach the control plane through BTF: this variable makes clang emit them. */
struct xvs_enums {
	enum xvs_fwd fwd;
	enum xvs_sched sched;
	enum xvs_svc_flags svc_flags;
	enum xvs_dest_flags dest_flags;
	enum xvs_dir dir;
	enum xvs_conn_state state;
	enum xvs_reason reason;
	enum xvs_est_kind est_kind;
};
const volatile struct xvs_enums xvs_enums_btf;
