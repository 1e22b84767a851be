/* SPDX-License-Identifier: GPL-2.0 */
/* Every map key and value of the dataplane. This header is the one source of truth for their
 * layout: lib/layout.ts encodes and decodes them and checks its codecs against BTF at load. */
#ifndef XVS_STRUCTS_H
#define XVS_STRUCTS_H

#include <linux/types.h>
#include "xvs_consts.h"

/* An IPv4 address sits in the first word, the other three are zero. */
union xvs_addr {
	__be32 v4;
	__be32 v6[4];
};

/* services: ⟨af, protocol, virtual address, virtual port⟩ or a firewall mark. */
struct xvs_svc_key {
	union xvs_addr addr;
	__be16 port;
	__u8 proto;
	__u8 af;
	__u32 fwmark;
};

struct xvs_service {
	__u32 id;	   /* index into svc_stats and key of svc_sched */
	__u32 flags;	   /* enum xvs_svc_flags */
	__u32 sched;	   /* enum xvs_sched */
	__u32 timeout;	   /* persistence timeout, seconds */
	__be32 netmask;	   /* persistence netmask */
	__u32 sched_flags; /* enum xvs_sched_flags (-b) */
	__u32 fwmark;	   /* firewall-mark service: its mark, else 0 */
	__be16 port;	   /* virtual port; 0 for all ports and for firewall-mark services */
	__u16 pad;
};

/* dests[index]: a real server. gen changes whenever the slot is reused, so a connection that
 * remembers (index, gen) can tell that its real server was removed. */
struct xvs_dest {
	union xvs_addr addr;
	__be16 port;
	__u8 af;
	__u8 method;   /* enum xvs_fwd */
	__u32 svc;     /* owning service id */
	__u32 gen;
	__u32 flags;   /* enum xvs_dest_flags */
	__u32 weight;
	__u32 u_threshold;
	__u32 l_threshold;
	__u32 thresh_gen; /* bumped when a threshold edit clears the overload flag */
	__u32 last_weight; /* IPVS's last_weight (mh); the control plane's, kept for reopening */
	__u8 tun_type;	   /* TUN: enum xvs_tun_type */
	__u8 tun_flags;	   /* TUN: enum xvs_tun_flags */
	__be16 tun_port;   /* TUN gue: the UDP destination port */
	__u32 list_order;  /* the control plane's: higher is nearer the list head (newest first) */
};

/* dest_conns[index]: the connection counts of a real server, as IPVS keeps them, shared by all
 * CPUs and changed only atomically. overload is dests[index].thresh_gen + 1 while the server is
 * overloaded (IP_VS_DEST_F_OVERLOAD), so that the control plane can clear it without writing here. */
struct xvs_dest_conns {
	__u32 active;
	__u32 inactive;
	__u32 persist;
	__u32 overload;
};

/* Per-CPU counters of a service or real server, as IPVS keeps them. */
struct xvs_stats {
	__u64 conns;
	__u64 inpkts;
	__u64 outpkts;
	__u64 inbytes;
	__u64 outbytes;
};

/* conns: the client's 5-tuple (XVS_DIR_IN), or for NAT the reply's (XVS_DIR_REPLY). */
struct xvs_conn_key {
	union xvs_addr saddr;
	union xvs_addr daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 af;
	__u8 dir;
	__u8 pad;
};

/* templates: a persistence template ⟨protocol, client address & netmask, virtual address,
 * virtual port⟩ (port 0 for port-0 and port-21 services; a firewall-mark service has protocol 0
 * and its mark, in network order, as address). */
struct xvs_tpl_key {
	union xvs_addr saddr;
	union xvs_addr daddr;
	__be16 dport;
	__u8 proto;
	__u8 af;
};

/* A connection. It lives until last_seen + timeout; whoever ends it (the packet path or the
 * sweeper) exchanges `counted` to NONE first and uncounts what it held. */
struct xvs_conn {
	__u64 last_seen; /* the dataplane clock at the last packet, XVS_LAST_SEEN_GRANULE_NS steps */
	__u64 tpl_id;	 /* XVS_CONN_F_CONTROLLED: the id of the template that controls it */
	__u32 svc;
	__u32 dest;
	__u32 dest_gen;
	__u32 timeout;	 /* seconds, from the state's timeout when the state was entered */
	union xvs_addr vaddr; /* the virtual address (a reply's source is rewritten to it) */
	__be16 vport;
	__u8 state;	 /* enum xvs_conn_state */
	__u8 method;
	__u32 flags;	 /* enum xvs_conn_flags */
	__u32 counted;	 /* enum xvs_counted */
	__be16 rport;	 /* the real server's port: NAT rewrites the destination port to it */
	__u16 pad;
	struct xvs_tpl_key ctl; /* XVS_CONN_F_CONTROLLED: the key of that template */
};

struct xvs_template {
	__u64 last_seen;  /* when a connection last used it */
	__u64 id;	  /* tells a template from a later one with the same key */
	__u64 referenced; /* the sweep that last found a live connection it controls */
	__u32 svc;
	__u32 dest;
	__u32 dest_gen;
	__u32 timeout;	  /* seconds: the persistence timeout, XVS_TEMPLATE_REARM once it waited */
	__u32 counted;	  /* enum xvs_counted: PERSIST until it ends */
	__u32 state;	  /* enum xvs_tpl_state */
};

/* svc_sched[svc id]: where a service's scheduler stands and where its slots are. Replaced whole
 * (hash map) when they change, so a reader sees one consistent version. */
struct xvs_sched_state {
	__u64 cursor;	/* rr/wrr: next slot of the table to probe, atomically advanced */
	__u32 table;	/* first slot of the table: rr/wrr choice sequence, dh/sh/mh buckets */
	__u32 table_len;
	__u32 dests;	/* first slot of the service's real servers, in list order (newest first) */
	__u32 ndests;
	__u32 start;	/* rr/wrr: the cursor as the control plane wrote it */
	__u32 at_head;	/* rr/wrr: the kernel's cursor is at the list head (nothing chosen since) */
	__u32 wrr_di;	/* wrr without a table (bpf/sched_wrr.h): the gcd of the weights */
	__u32 wrr_mw;	/* ... and the max weight - (di - 1); 0 = wrr uses its table */
};

/* sched_slots[n]: one slot of a table or list. It repeats what schedulers read of the real
 * server besides its counts (rewritten with the list on every change), so that walking a list
 * costs one lookup here and one in dest_conns per real server. */
struct xvs_sched_slot {
	__u32 dest;
	__u32 resume;	  /* rr/wrr: enum xvs_resume */
	__u32 weight;
	__u32 thresh_gen; /* the real server's xvs_dest.thresh_gen */
};

/* lblc[⟨svc, destination address⟩]: the server cached for a destination address. */
struct xvs_lblc_key {
	union xvs_addr addr;
	__u32 svc;
};

struct xvs_lblc_entry {
	__u64 lastuse;
	__u32 dest;
	__u32 dest_gen;
};

/* lblcr[⟨svc, destination address⟩]: the server set of a destination address, newest first. */
struct xvs_lblcr_entry {
	__u64 lastuse;
	__u64 lastmod;
	__u32 size;
	__u32 pad;
	__u32 dest[XVS_LBLCR_SET_MAX];
	__u32 dest_gen[XVS_LBLCR_SET_MAX];
};

/* nat_reals: ⟨af, protocol, address, port⟩ of NAT real servers, so that only their replies pay
 * for a reply lookup. The value counts the (service, real) pairs that use it. */
struct xvs_real_key {
	union xvs_addr addr;
	__be16 port;
	__u8 proto;
	__u8 af;
};

/* tun_sources[0] (IPv4 outer header) and [1] (IPv6): the outer source address of tunnelled
 * packets. addr all zero: the route's source towards the real server (as IPVS does). Otherwise
 * addr, with the hostmask bits filled per flow from the connection's hash, so that a real
 * server's RSS spreads tunnelled flows over its queues (IPv6: the low 32 bits at most). */
struct xvs_tun_source {
	union xvs_addr addr;
	union xvs_addr hostmask;
};

/* tun_src_cache[dest index]: the route's source towards a TUN real server, as the FIB gave it when
 * no tunnel source is configured (IPv6 source selection costs more than the rest of the packet's
 * path), as IPVS keeps it with the destination's cached route. */
struct xvs_tun_src_cache {
	union xvs_addr src;
	__u64 expires; /* bpf_ktime_get_coarse_ns() after which the FIB is asked again */
	__u32 dest_gen;
	__u32 pad;
};

/* frags: a fragmented datagram whose first fragment was balanced; later fragments (which carry
 * no ports) follow the connection the first one used. */
struct xvs_frag_key {
	union xvs_addr saddr;
	union xvs_addr daddr;
	__u32 id; /* IPv4 identification or IPv6 fragment header identification, host order */
	__u8 proto;
	__u8 af;
	__u16 pad;
};

struct xvs_frag {
	__u64 created; /* bpf_ktime_get_coarse_ns() of the first fragment */
	struct xvs_conn_key conn;
};

/* vips: ⟨af, virtual address⟩ of the services, for answering ICMP echo. The value counts the
 * services on the address. */
struct xvs_vip_key {
	union xvs_addr addr;
	__u8 af;
	__u8 pad[3];
};

/* decap_sources (xvs_decap.bpf.c): LPM trie of the outer sources allowed to tunnel to a real
 * server. prefixlen counts af and pad (32 bits) plus the address prefix. */
struct xvs_decap_src_key {
	__u32 prefixlen;
	__u8 af;
	__u8 pad[3];
	union xvs_addr addr;
};

/* mark_prefixes: the firewall-mark classifier's destination prefixes (an LPM trie over the
 * address family and the address). Each holds the range of mark_rules to try in order. */
struct xvs_mark_key {
	__u32 prefixlen; /* 8 bits of family + the prefix length */
	__u8 af;
	__u8 addr[16];
};

struct xvs_mark_prefix {
	__u32 prefixlen; /* this entry's own prefixlen, to look for a shorter prefix next */
	__u32 first;	 /* index of its first rule in mark_rules */
	__u32 count;
};

struct xvs_mark_rule {
	__u32 mark;
	__u16 port_lo; /* destination ports, host order, inclusive */
	__u16 port_hi;
	__u8 proto; /* 0: any */
	__u8 pad[3];
};

/* twos_draws[0]: the last two random draws of twos, so that its reference model can replay them. */
struct xvs_twos_draws {
	__u32 r1;
	__u32 r2;
	__u32 r1_hi;	/* high halves, used when the weights sum to 2^32 or more */
	__u32 r2_hi;
};

/* The sweeper's argument and result, carried in the frame it is run on. */
struct xvs_sweep {
	__u64 conns_ended;
	__u64 templates_ended;
	__u64 templates_rearmed;
	__u64 replies_ended;
};

/* new_conn[0] (per CPU): a new connection and its template's key while they are built, too large
 * for the stack of the decision code's call chain. */
struct xvs_new_conn {
	struct xvs_conn conn;
	struct xvs_tpl_key tpl;
};

/* config[0]: timeouts by enum xvs_conn_state, in seconds (ipvsadm --set changes three of them). */
struct xvs_config {
	__u32 timeout[XVS_STATE_SLOTS];
	__u32 flags;	  /* enum xvs_config_flags */
	__u32 pad;
	__u64 clock_ns;	  /* when non-zero, the dataplane's clock reads this (deterministic tests) */
};

/* nexthops[dest index], per CPU: the L2 next hop towards a real server as bpf_fib_lookup last gave
 * it, reused for XVS_NEXTHOP_TTL_NS so that an established packet need not ask the FIB again. */
struct xvs_nexthop {
	__u64 expires;
	__u32 dest_gen;
	__u32 ingress;	/* the ingress ifindex the lookup was made for */
	__u32 ifindex;	/* egress */
	__u16 max_len;	/* the largest IP packet the route took: larger ones ask the FIB (MTU) */
	__u8 smac[6];
	__u8 dmac[6];
};

/* --pe sip (xvs_sip.h). A Call-ID longer than IP_VS_PEDATA_MAXLEN (255) is refused as the kernel
 * refuses it; the bytes are kept whole, so two calls never share a template. */
#define XVS_SIP_CALLID_MAX 256
#define XVS_SIP_SCAN_MAX 2048 /* bytes of a datagram's payload the Call-ID search reads */

/* sip_templates: ⟨the template key of xvs_tpl_key, the Call-ID⟩, what ip_vs_sip_ct_match compares. */
struct xvs_sip_key {
	struct xvs_tpl_key tpl;
	__u32 len;
	__u8 callid[XVS_SIP_CALLID_MAX]; /* len bytes, the rest zero */
};

/* sip_scratch[0] (per CPU): the payload being searched and the key it gave. */
struct xvs_sip_scratch {
	__u8 buf[XVS_SIP_SCAN_MAX];
	struct xvs_sip_key key;
	__s32 result; /* enum xvs_sip_result */
	__u32 opaque; /* a value passed through memory, which the verifier does not follow */
};

#endif
