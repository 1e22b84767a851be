/* SPDX-License-Identifier: GPL-2.0 */
/* Constants shared by the dataplane and the control plane. The control plane reads every enum
 * below from the object's BTF, so a value changed here cannot silently disagree with lib/. */
#ifndef XVS_CONSTS_H
#define XVS_CONSTS_H

#define XVS_AF_INET 2	/* AF_INET */
#define XVS_AF_INET6 10 /* AF_INET6 */

/* Forwarding methods, named as ipvsadm names them. */
enum xvs_fwd {
	XVS_FWD_DR = 0,  /* -g gatewaying ("Route"): rewrite the destination MAC */
	XVS_FWD_NAT = 1, /* -m masquerading ("Masq"): rewrite the destination address and port */
	XVS_FWD_TUN = 2, /* -i tunnelling ("Tunnel"): IP-in-IP */
};

/* TUN tunnel types and their flags, valued as IPVS's IP_VS_CONN_F_TUNNEL_TYPE_* and
 * IP_VS_TUNNEL_ENCAP_FLAG_* (no flag: --tun-nocsum). */
enum xvs_tun_type {
	XVS_TUN_IPIP = 0,
	XVS_TUN_GUE = 1,
	XVS_TUN_GRE = 2,
};

enum xvs_tun_flags {
	XVS_TUN_F_CSUM = 1 << 0,    /* --tun-csum: outer UDP (gue) or GRE checksum */
	XVS_TUN_F_REMCSUM = 1 << 1, /* --tun-remcsum (gue): remote checksum offload */
};

/* Schedulers, by their ipvsadm names. Each has its choice in bpf/sched_<name>.h. */
enum xvs_sched {
	XVS_SCHED_RR = 0,
	XVS_SCHED_WRR = 1,
	XVS_SCHED_LC = 2,
	XVS_SCHED_WLC = 3,
	XVS_SCHED_SED = 4,
	XVS_SCHED_NQ = 5,
	XVS_SCHED_LBLC = 6,
	XVS_SCHED_LBLCR = 7,
	XVS_SCHED_DH = 8,
	XVS_SCHED_SH = 9,
	XVS_SCHED_MH = 10,
	XVS_SCHED_FO = 11,
	XVS_SCHED_OVF = 12,
	XVS_SCHED_TWOS = 13,
};

enum xvs_svc_flags {
	XVS_SVC_F_PERSISTENT = 1 << 0,
	XVS_SVC_F_ONEPACKET = 1 << 1,
	XVS_SVC_F_PE_SIP = 1 << 2, /* --pe sip: templates keyed by the SIP Call-ID (xvs_sip.h) */
};

/* ipvsadm -b: IP_VS_SVC_F_SCHED1..3. sh and mh read the first two as fallback and port. */
enum xvs_sched_flags {
	XVS_SCHED_F_FALLBACK = 1 << 0,
	XVS_SCHED_F_PORT = 1 << 1,
	XVS_SCHED_F_FLAG3 = 1 << 2,
};

/* A real server without XVS_DEST_F_AVAILABLE but with its gen is in the trash (xvs_trash.h). */
enum xvs_dest_flags {
	XVS_DEST_F_AVAILABLE = 1 << 0,
};

/* Direction of a connection-map entry: the client's side, or the reply side of a NAT connection. */
enum xvs_dir {
	XVS_DIR_IN = 0,
	XVS_DIR_REPLY = 1,
};

enum xvs_conn_flags {
	XVS_CONN_F_CONTROLLED = 1 << 0, /* a persistence template controls the connection */
	XVS_CONN_F_OUTPUT = 1 << 2,	/* DR/TUN: a reply crossed the balancer (IPVS clears
					 * IP_VS_CONN_F_NOOUTPUT): INPUT/OUTPUT tables from now on */
	XVS_CONN_F_ASSURED = 1 << 1,	/* it made its template ASSURED (no need to look again) */
	XVS_CONN_F_SIP = 1 << 3,	/* ... a template of sip_templates (tpl_id names it) */
};

/* xvs_template.state: IPVS's IP_VS_CTPL_S_*. */
enum xvs_tpl_state {
	XVS_CTPL_S_NONE = 0,
	XVS_CTPL_S_ASSURED = 1, /* it controlled an established TCP connection or a UDP reply */
};

/* Which counter of its real server an entry is counted in. Changed only by atomic exchange, so
 * that whoever ends an entry uncounts it exactly once, whichever CPU or program does it. */
enum xvs_counted {
	XVS_COUNTED_NONE = 0,
	XVS_COUNTED_ACTIVE = 1,
	XVS_COUNTED_INACTIVE = 2,
	XVS_COUNTED_PERSIST = 3,
};

/* sched_slots[].resume of rr and wrr: where the kernel's cursor rests after a scan that started
 * right after this slot found every server unusable. */
enum xvs_resume {
	XVS_RESUME_STAY = 0, /* where it was */
	XVS_RESUME_HEAD = 1, /* at the list head, at the period's start (wrr) */
};

/* config.flags: what the control plane configured, so that packets skip lookups nobody needs. */
enum xvs_config_flags {
	XVS_CFG_F_MARK_RULES = 1 << 0, /* the firewall-mark classifier has rules */
	XVS_CFG_F_PORT0 = 1 << 1,      /* some service listens on port 0 (all ports) */
	XVS_CFG_F_NAT_PORT0 = 1 << 2,  /* some NAT real server has port 0 (keeps the client's port) */
	XVS_CFG_F_ROUTED = 1 << 5,     /* some service has a DR/TUN real server: a packet from its
					* virtual address (vips) may be a reply (xvs_routed.h) */
	XVS_CFG_F_ROUTED_MARK = 1 << 6, /* some firewall-mark service has one: any packet may be */
	XVS_CFG_F_EXPIRE_NODEST_CONN = 1 << 3,	     /* sysctl expire_nodest_conn */
	XVS_CFG_F_EXPIRE_QUIESCENT_TEMPLATE = 1 << 4, /* sysctl expire_quiescent_template */
};

/* IPVS TCP states (ip_vs_proto_tcp.c) plus the UDP pseudo-state. */
enum xvs_conn_state {
	XVS_TCP_S_NONE = 0,
	XVS_TCP_S_ESTABLISHED,
	XVS_TCP_S_SYN_SENT,
	XVS_TCP_S_SYN_RECV,
	XVS_TCP_S_FIN_WAIT,
	XVS_TCP_S_TIME_WAIT,
	XVS_TCP_S_CLOSE,
	XVS_TCP_S_CLOSE_WAIT,
	XVS_TCP_S_LAST_ACK,
	XVS_TCP_S_LISTEN,
	XVS_TCP_S_SYNACK,
	XVS_TCP_S_LAST,
	XVS_UDP_S_NORMAL = XVS_TCP_S_LAST,
	XVS_STATE_COUNT,
};

/* Room for the states in config.timeout: a power of two, so a state masked with
 * XVS_STATE_SLOTS - 1 is a provably valid index. */
#define XVS_STATE_SLOTS 16

/* Why the dataplane passed, dropped or forwarded a packet: one per-CPU counter each. */
enum xvs_reason {
	XVS_R_FWD_TX = 0,	 /* forwarded back out of the ingress interface (XDP_TX) */
	XVS_R_FWD_REDIRECT,	 /* forwarded to another interface (bpf_redirect) */
	XVS_R_PASS_NOT_IP,	 /* neither IPv4 nor IPv6: passed */
	XVS_R_PASS_MALFORMED,	 /* truncated or inconsistent L2/L3/L4 header: passed */
	XVS_R_PASS_FRAGMENT,	 /* a later fragment of no balanced datagram (or a fragmented ICMP): passed */
	XVS_R_PASS_NOT_L4,	 /* neither TCP, UDP, SCTP nor ICMP: passed */
	XVS_R_PASS_NO_SERVICE,	 /* not for a virtual service nor a NAT reply: passed */
	XVS_R_PASS_NO_CONN,	 /* for a service, no connection, cannot start one (not a SYN, not an SCTP INIT) */
	XVS_R_PASS_NO_DEST,	 /* for a service, no real server available */
	XVS_R_PASS_NO_NEIGH,	 /* next hop not resolved yet: passed so the kernel resolves it */
	XVS_R_PASS_FIB,		 /* no usable route (fib lookup failed): passed */
	XVS_R_PASS_VLAN_EGRESS,	 /* tagged frame whose egress is not its ingress: passed */
	XVS_R_DROP_DEST_GONE,	 /* connection's real server removed (in the trash): dropped, connection kept */
	XVS_R_DROP_CONN_FULL,	 /* connection could not be stored: dropped */
	XVS_R_PASS_STALE_REPLY,	 /* NAT reply whose connection is gone: passed */
	XVS_R_UNSUPPORTED_FWD,	 /* forwarding method not built yet: passed */
	XVS_R_PASS_IPV6_EXT,	 /* IPv6 extension headers xvs does not walk (see xvs_parse.h): passed */
	XVS_R_PASS_ICMP,	 /* ICMP neither an echo request to a virtual address nor an error of a connection */
	XVS_R_ICMP_ECHO_REPLY,	 /* echo request to a virtual address: answered */
	XVS_R_ICMP_TOO_BIG,	 /* too big for the path to the real server: ICMP frag needed / packet too big sent */
	XVS_R_DROP_TOO_BIG,	 /* too big, and IPv4 without DF or an ICMP error itself: dropped (xvs does not fragment) */
	XVS_R_DROP_NO_ROOM,	 /* no headroom to add a header (tunnel, ICMP): dropped */
	XVS_R_PASS_ROUTED,	 /* DR/TUN reply left to the kernel's forwarding (TTL exhausted, no route, too big) */
	XVS_R_DROP_TUN_SUM,	 /* GUE/GRE checksum over a fragment or checksum-less UDP longer than XVS_SUM_MAX: dropped */
	XVS_R_DROP_SIP_NO_CALLID, /* --pe sip: no usable Call-ID (or not UDP): dropped, as ip_vs_sched_persist */
	XVS_R_DROP_SIP_UNPARSED,  /* --pe sip: no decision within XVS_SIP_SCAN_MAX bytes (or a first fragment) */
	XVS_R_COUNT,
};

/* What xvs_decap.bpf.c did with a packet: one per-CPU counter each. */
enum xvs_decap_reason {
	XVS_DECAP_OK = 0,	   /* IPIP, GUE or GRE packet: outer headers removed, inner passed on */
	XVS_DECAP_PASS_NOT_TUNNEL, /* not IP in IPIP, GUE (to a configured port) or GRE: passed untouched */
	XVS_DECAP_PASS_MALFORMED,  /* truncated or inconsistent headers: passed untouched */
	XVS_DECAP_PASS_FRAGMENT,   /* fragmented outer packet: passed to the stack untouched */
	XVS_DECAP_DROP_SOURCE,	   /* outer source outside the allowed prefixes: dropped */
	XVS_DECAP_DROP_ECN,	   /* outer CE over a not-ECT inner packet (RFC 6040): dropped */
	XVS_DECAP_PASS_GRE_OPTIONS, /* GRE with key, sequence, routing or version != 0: passed untouched */
	XVS_DECAP_DROP_CSUM,	   /* GUE (UDP) or GRE checksum wrong, or GUE remote checksum unusable: dropped */
	XVS_DECAP_COUNT,
};

/* Fragments: how long a balanced first fragment steers the later ones (the kernel's default
 * ipfrag_time); and whether a packet is a fragment at all. */
#define XVS_FRAG_TIMEOUT_NS (30ULL * 1000000000ULL)
/* How long a tunnel's route source stays cached before the FIB is asked again. */
#define XVS_TUN_SRC_REFRESH_NS 1000000000ULL
/* How long a real server's cached next hop (MACs, egress) is used before the FIB is asked again. */
#define XVS_NEXTHOP_TTL_NS 1000000000ULL
enum xvs_frag_kind { XVS_FRAG_NONE = 0, XVS_FRAG_FIRST = 1, XVS_FRAG_LATER = 2 };

#define XVS_SCHED_MAX_TRIES 64	     /* slots a table scheduler probes before giving up */
#define XVS_LAST_SEEN_GRANULE_NS (1ULL << 27) /* ~134 ms: last_seen is rewritten at most this often */
#define XVS_NSEC_PER_SEC 1000000000ULL
#define XVS_NO_DEST 0xffffffffU		     /* an empty bucket of a dh, sh or mh table */
#define XVS_MAX_SVC_DESTS (1 << 16)	     /* real servers one service schedules over */
#define XVS_TEMPLATE_REARM 60		     /* s: a template that still controls connections waits again */
#define XVS_LBLCR_EXPIRATION (24 * 60 * 60ULL) /* s: lblcr drops the most loaded of an old set */
#define XVS_LBLCR_SET_MAX 16		     /* members of one lblcr server set */
#define XVS_MARK_RULES_MAX 16		     /* classifier rules sharing one prefix */
#define XVS_TPL_INVALID_PORT 0xffff	     /* ports of an invalidated template (ip_vs_check_template) */
#define XVS_FTP_PORT 21			     /* persistence templates of port 21 cover all ports */

#endif
