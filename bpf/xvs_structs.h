/* SPDX-License-Identifier: GPL-2.0 */
/* Every map key and value of the dataplane. This header is the one source of truth for their
 * layout: lib/maps.ts encodes and decodes them and test/layout.test.ts checks it against BTF. */
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
	__u32 sched_flags; /* -b flags */
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

struct xvs_conn {
	__u64 last_seen; /* bpf_ktime_get_coarse_ns() of the last packet, XVS_LAST_SEEN_GRANULE_NS steps */
	__u32 svc;
	__u32 dest;
	__u32 dest_gen;
	__u32 timeout;	 /* seconds, from the state's timeout when the state was entered */
	union xvs_addr vaddr; /* DIR_REPLY: the virtual address to write back as source */
	__be16 vport;
	__u8 state;	 /* enum xvs_conn_state */
	__u8 method;
	__u32 flags;
};

/* svc_sched[svc id]: where a table scheduler stands. Replaced whole (hash map) when the table
 * changes, so a reader sees gen, len and cursor of one table. */
struct xvs_sched_state {
	__u64 cursor; /* next slot to probe, atomically advanced */
	__u32 gen;    /* which of the two slot generations is live */
	__u32 len;    /* slots in the live generation */
};

struct xvs_sched_slot_key {
	__u32 svc;
	__u32 gen;
	__u32 slot;
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

/* config[0]: timeouts by enum xvs_conn_state, in seconds (ipvsadm --set changes three of them). */
struct xvs_config {
	__u32 timeout[XVS_STATE_SLOTS];
};

#endif
