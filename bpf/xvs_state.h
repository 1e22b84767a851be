/* SPDX-License-Identifier: GPL-2.0 */
/* IPVS connection states: the TCP transition tables of ip_vs_proto_tcp.c (INPUT for a NAT
 * connection's client side, OUTPUT for its replies, INPUT_ONLY for DR and TUN, which see only the
 * client's side), flag priority rst > syn > fin > ack, and a packet with none of them -> CLOSE.
 * SCTP's tables and timeouts are in xvs_sctp.h. */
#ifndef XVS_STATE_H
#define XVS_STATE_H

#include "xvs_maps.h"
#include "xvs_parse.h"
#include "xvs_counts.h"
#include "xvs_persist.h"

enum xvs_tcp_table { XVS_TCP_INPUT = 0, XVS_TCP_OUTPUT = 1, XVS_TCP_INPUT_ONLY = 2 };

#define sNO XVS_TCP_S_NONE
#define sES XVS_TCP_S_ESTABLISHED
#define sSS XVS_TCP_S_SYN_SENT
#define sSR XVS_TCP_S_SYN_RECV
#define sFW XVS_TCP_S_FIN_WAIT
#define sTW XVS_TCP_S_TIME_WAIT
#define sCL XVS_TCP_S_CLOSE
#define sCW XVS_TCP_S_CLOSE_WAIT
#define sLA XVS_TCP_S_LAST_ACK
#define sLI XVS_TCP_S_LISTEN
#define sSA XVS_TCP_S_SYNACK

/* [table][event: syn fin ack rst][current state] -> next state */
static const __u8 xvs_tcp_states[3][4][XVS_TCP_S_LAST] = {
	/*        sNO, sES, sSS, sSR, sFW, sTW, sCL, sCW, sLA, sLI, sSA */
	[XVS_TCP_INPUT] = {
		{ sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR },
		{ sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sTW },
		{ sCL, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES },
		{ sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sSR },
	},
	[XVS_TCP_OUTPUT] = {
		{ sSS, sES, sSS, sSR, sSS, sSS, sSS, sSS, sSS, sLI, sSR },
		{ sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW },
		{ sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES },
		{ sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL },
	},
	[XVS_TCP_INPUT_ONLY] = {
		{ sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR },
		{ sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW },
		{ sCL, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES },
		{ sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL },
	},
};

static __always_inline int tcp_event(__u8 flags)
{
	if (flags & TCP_FLAG_RST)
		return 3;
	if (flags & TCP_FLAG_SYN)
		return 0;
	if (flags & TCP_FLAG_FIN)
		return 1;
	if (flags & TCP_FLAG_ACK)
		return 2;
	return -1;
}

static __always_inline __u8 tcp_next_state(enum xvs_tcp_table table, __u8 state, __u8 flags)
{
	int ev = tcp_event(flags);

	if (ev < 0 || state >= XVS_TCP_S_LAST)
		return XVS_TCP_S_CLOSE;
	return xvs_tcp_states[table][ev][state];
}

/* The dataplane's clock: coarse monotonic time, or the control plane's frozen clock in tests. */
static __always_inline __u64 xvs_now(const struct xvs_config *cfg)
{
	return cfg->clock_ns ? cfg->clock_ns : bpf_ktime_get_coarse_ns();
}

/* The same clock, for code that has no config at hand (fragments, ICMP). */
static __always_inline __u64 xvs_clock(void)
{
	__u32 zero = 0;
	const struct xvs_config *cfg = bpf_map_lookup_elem(&config, &zero);

	return cfg ? xvs_now(cfg) : bpf_ktime_get_coarse_ns();
}

/* Moves c to the state that this packet leads to, counting it ActiveConn exactly while it is
 * ESTABLISHED and making its template ASSURED (TCP established, or a UDP reply: the kernel's
 * ip_vs_control_assure_ct), and refreshes its timeout and last-seen time, writing only the fields
 * that change so that a busy connection does not bounce its cache line. */
static __always_inline void conn_touch(struct xvs_conn *c, const struct xvs_pkt *p,
				       enum xvs_tcp_table table, const struct xvs_config *cfg,
				       __u64 now)
{
	__u8 state = c->state;

	__u8 est = XVS_TCP_S_ESTABLISHED;

	if (p->key.proto == IPPROTO_TCP) {
		state = tcp_next_state(table, state, p->tcp_flags);
	} else if (p->key.proto == IPPROTO_SCTP) {
		state = sctp_next_state(table, state, p->sctp_chunk);
		est = XVS_SCTP_S_ESTABLISHED;
	}
	if (state != c->state) {
		int was_established = c->state == est;
		int established = state == est;

		c->state = state;
		if (was_established != established)
			conn_count_established(c, established);
		if (established && (c->flags & XVS_CONN_F_CONTROLLED) && !(c->flags & XVS_CONN_F_ASSURED))
			template_assure(c);
	}
	if (p->key.proto == IPPROTO_UDP && table == XVS_TCP_OUTPUT &&
	    (c->flags & (XVS_CONN_F_CONTROLLED | XVS_CONN_F_ASSURED)) == XVS_CONN_F_CONTROLLED)
		template_assure(c);
	__u32 timeout = p->key.proto == IPPROTO_SCTP ? xvs_sctp_timeouts[state & 15]
					     : cfg->timeout[state & (XVS_STATE_SLOTS - 1)];
	if (c->timeout != timeout)
		c->timeout = timeout;
	if (now - c->last_seen >= XVS_LAST_SEEN_GRANULE_NS)
		c->last_seen = now;
}

/* The table of the client's packets: INPUT for NAT, and for DR/TUN once a reply crossed the
 * balancer (xvs_routed.h); INPUT_ONLY before. */
static __always_inline enum xvs_tcp_table conn_in_table(const struct xvs_conn *c)
{
	return c->method == XVS_FWD_NAT || (c->flags & XVS_CONN_F_OUTPUT) ? XVS_TCP_INPUT :
									  XVS_TCP_INPUT_ONLY;
}

/* A connection lives `timeout` seconds after its last packet (last_seen lags by at most a granule). */
static __always_inline int conn_expired(const struct xvs_conn *c, __u64 now)
{
	return now > c->last_seen + (__u64)c->timeout * XVS_NSEC_PER_SEC + XVS_LAST_SEEN_GRANULE_NS;
}

#endif
