/* SPDX-License-Identifier: GPL-2.0 */
/* Packet parsing. Every header is bounds-checked against data_end before it is read; a packet
 * that cannot be parsed yields the reason it is passed to the kernel.
 *
 * IPv4: options are skipped by the IHL. IPv6 extension headers: up to XVS_IPV6_EXT_MAX of
 * hop-by-hop, destination options, routing (only with no segments left: otherwise the
 * destination is not the final one) and fragment are walked; anything else after them (AH, ESP,
 * no next header, an unknown header) is not L4, and a longer chain is passed as IPV6_EXT.
 * Fragments (IPv4, or an IPv6 fragment header): the first one, which carries the ports, is
 * balanced like any packet; a later one has no ports and is marked XVS_FRAG_LATER for
 * xvs_frag.h. An IPv6 atomic fragment (offset 0, no more fragments) is a whole packet. */
#ifndef XVS_PARSE_H
#define XVS_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <bpf/bpf_endian.h>
#include "xvs_consts.h"
#include "xvs_structs.h"
#include "xvs_sctp.h"

#define IP_DF 0x4000
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define IP6_FRAG_OFFSET 0xfff8
#define IP6_FRAG_MORE 0x0001

#ifndef IPPROTO_ICMPV6
#define IPPROTO_ICMPV6 58
#endif
#define XVS_NEXTHDR_HOP 0
#define XVS_NEXTHDR_ROUTING 43
#define XVS_NEXTHDR_FRAGMENT 44
#define XVS_NEXTHDR_DEST 60
#define XVS_IPV6_EXT_MAX 4

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

#define XVS_ICMP_HLEN 8 /* ICMP and ICMPv6 headers up to the quoted packet */

struct vlan_hdr {
	__be16 tci;
	__be16 encapsulated_proto;
};

struct xvs_ipv6_frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 identification;
};

/* Where the packet is to go, decided by the connection code and carried out by xvs_forward(). */
struct xvs_fwd_req {
	union xvs_addr to; /* to the real server: its address; to the client: the virtual address */
	__u32 hash;	   /* TUN: the connection's flow hash (picks the outer source) */
	__u32 dest;	   /* to the real server: its index and generation in dests */
	__u32 dest_gen;
	__be16 port;	   /* the real server's port, or the virtual port */
	__u8 dir;	   /* XVS_DIR_IN: to the real server; XVS_DIR_REPLY: to the client (NAT) */
	__u8 method;	   /* enum xvs_fwd */
	__u8 to_af;
	__u8 tun_type;	   /* TUN: the real server's enum xvs_tun_type */
	__u16 mtu;	   /* XVS_TOO_BIG: what the path leaves for the packet */
	__u8 tun_flags;	   /* TUN: enum xvs_tun_flags */
	__u8 pad;
	__be16 tun_port;   /* TUN gue: UDP destination port */
};

/* A parsed packet. The header pointers are valid only in the function that parsed or found them
 * (pkt_headers()); global functions, which the verifier checks on their own, receive the packet
 * by value and find its headers again from l3_off and l4_off. */
struct xvs_pkt {
	struct ethhdr *eth;
	struct iphdr *ip4;	/* the IPv4 header, or NULL */
	struct ipv6hdr *ip6;	/* the IPv6 header, or NULL */
	void *l4;		/* TCP, UDP or ICMP header; NULL in a later fragment */
	void *data_end;
	__u32 ip_len;		/* IP total length: what IPVS counts as bytes */
	__u32 frag_id;		/* fragments: the datagram's identification */
	__u8 tagged : 1;	/* one 802.1Q tag was present */
	__u8 sip_parsed : 1;	/* --pe sip: sip_scratch holds this packet's Call-ID search */
	union {
		__u8 tcp_flags;	/* TCP */
		__u8 sctp_chunk; /* SCTP: the chunk type that drives the state (xvs_sctp.h) */
	};
	__u8 frag;		/* enum xvs_frag_kind */
	__u8 frag_proto;	/* fragments: the protocol field every fragment of the datagram shares */
	__u16 l3_off;		/* IP header, from the frame's start */
	__u16 l4_off;		/* TCP, UDP or ICMP header; 0 in a later fragment */
	struct xvs_conn_key key; /* the packet's own 5-tuple (ports 0 for ICMP and later fragments) */
	struct xvs_fwd_req fwd;
};

/* L4 headers lie at most this far into the frame: IPv6 extension headers reaching beyond are
 * passed as IPV6_EXT. */
#define XVS_L4_OFF_MAX 512

static __always_inline int is_icmp(const struct xvs_pkt *p)
{
	return p->key.proto == (p->key.af == XVS_AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6);
}

/* Returns -1 with *l4 and *l4_len set, or the reason to pass the packet. */
static __always_inline int parse_ipv4(struct xvs_pkt *p, struct iphdr *ip, void *data_end,
				      void **l4, __u32 *l4_len)
{
	if ((void *)(ip + 1) > data_end)
		return XVS_R_PASS_MALFORMED;
	__u32 ihl = ip->ihl * 4;
	__u32 tot_len = bpf_ntohs(ip->tot_len);
	if (ip->version != 4 || ihl < sizeof(*ip) || tot_len < ihl ||
	    (void *)ip + tot_len > data_end)
		return XVS_R_PASS_MALFORMED;

	__u16 frag_off = bpf_ntohs(ip->frag_off);
	if (frag_off & IP_OFFSET)
		p->frag = XVS_FRAG_LATER;
	else if (frag_off & IP_MF)
		p->frag = XVS_FRAG_FIRST;
	p->frag_id = bpf_ntohs(ip->id);
	p->frag_proto = ip->protocol;
	p->ip4 = ip;
	p->ip_len = tot_len;
	p->key.saddr.v4 = ip->saddr;
	p->key.daddr.v4 = ip->daddr;
	p->key.proto = ip->protocol;
	p->key.af = XVS_AF_INET;
	*l4 = (void *)ip + ihl;
	*l4_len = tot_len - ihl;
	return -1;
}

/* Walks the IPv6 extension headers (see the policy above). Returns -1 with p->key.proto, *l4 and
 * *l4_len set, or the reason to pass the packet. */
static __always_inline int parse_ipv6(struct xvs_pkt *p, struct ipv6hdr *ip6, void *data_end,
				      void **l4, __u32 *l4_len)
{
	if ((void *)(ip6 + 1) > data_end)
		return XVS_R_PASS_MALFORMED;
	__u32 plen = bpf_ntohs(ip6->payload_len);
	void *end = (void *)(ip6 + 1) + plen;
	/* A payload length of 0 announces a jumbogram, which no Ethernet frame holds. Bounds are
	 * checked against data_end for the verifier and against end for the packet's own length. */
	if (ip6->version != 6 || plen == 0 || end > data_end)
		return XVS_R_PASS_MALFORMED;

	p->ip6 = ip6;
	p->ip_len = sizeof(*ip6) + plen;
	__builtin_memcpy(p->key.saddr.v6, ip6->saddr.in6_u.u6_addr32, 16);
	__builtin_memcpy(p->key.daddr.v6, ip6->daddr.in6_u.u6_addr32, 16);
	p->key.af = XVS_AF_INET6;

	__u8 nh = ip6->nexthdr;
	void *cur = ip6 + 1;
	int i;
	for (i = 0; i < XVS_IPV6_EXT_MAX; i++) {
		if (nh == XVS_NEXTHDR_FRAGMENT) {
			struct xvs_ipv6_frag_hdr *fh = cur;

			if ((void *)(fh + 1) > end || (void *)(fh + 1) > data_end || p->frag)
				return XVS_R_PASS_MALFORMED;
			__u16 off = bpf_ntohs(fh->frag_off);
			p->frag_id = bpf_ntohl(fh->identification);
			p->frag_proto = fh->nexthdr;
			nh = fh->nexthdr;
			cur = fh + 1;
			if (off & IP6_FRAG_OFFSET) {
				p->frag = XVS_FRAG_LATER;
				p->key.proto = nh;
				return -1;
			}
			if (off & IP6_FRAG_MORE)
				p->frag = XVS_FRAG_FIRST;
			continue;
		}
		if (nh != XVS_NEXTHDR_HOP && nh != XVS_NEXTHDR_DEST && nh != XVS_NEXTHDR_ROUTING)
			break;
		/* hop-by-hop, destination options and routing share: next header, length in
		 * 8-octet units not counting the first; routing's fourth byte is segments left. */
		__u8 *h = cur;
		if ((void *)(h + 4) > end || (void *)(h + 4) > data_end)
			return XVS_R_PASS_MALFORMED;
		if (nh == XVS_NEXTHDR_ROUTING && h[3] != 0)
			return XVS_R_PASS_IPV6_EXT;
		nh = h[0];
		cur += (h[1] + 1) * 8;
	}
	if (i == XVS_IPV6_EXT_MAX)
		return XVS_R_PASS_IPV6_EXT;
	if (cur > end)
		return XVS_R_PASS_MALFORMED;
	p->key.proto = nh;
	*l4 = cur;
	*l4_len = end - cur;
	return -1;
}

/* Reads the ports (TCP, UDP, SCTP) or checks the header (ICMP of the packet's family). */
static __always_inline int parse_l4(struct xvs_pkt *p, void *l4, __u32 l4_len, void *data_end)
{
	if (p->key.proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;

		if ((void *)(tcp + 1) > data_end || l4_len < sizeof(*tcp) ||
		    tcp->doff * 4 < sizeof(*tcp) || tcp->doff * 4 > l4_len)
			return XVS_R_PASS_MALFORMED;
		p->key.sport = tcp->source;
		p->key.dport = tcp->dest;
		p->tcp_flags = ((__u8 *)tcp)[13];
	} else if (p->key.proto == IPPROTO_UDP) {
		struct udphdr *udp = l4;

		if ((void *)(udp + 1) > data_end || l4_len < sizeof(*udp))
			return XVS_R_PASS_MALFORMED;
		__u32 len = bpf_ntohs(udp->len);
		/* A first fragment holds only part of the datagram that len covers. */
		if (len < sizeof(*udp) || (len > l4_len && p->frag != XVS_FRAG_FIRST))
			return XVS_R_PASS_MALFORMED;
		/* IPv6 forbids UDP without a checksum (RFC 8200 8.1); the kernel drops it too. */
		if (p->ip6 && udp->check == 0)
			return XVS_R_PASS_MALFORMED;
		p->key.sport = udp->source;
		p->key.dport = udp->dest;
	} else if (p->key.proto == IPPROTO_SCTP) {
		int reason = parse_sctp(l4, l4_len, data_end, p->frag, &p->key, &p->sctp_chunk);

		if (reason >= 0)
			return reason;
	} else if (is_icmp(p)) {
		if (l4 + XVS_ICMP_HLEN > data_end || l4_len < XVS_ICMP_HLEN)
			return XVS_R_PASS_MALFORMED;
		if (p->frag)
			return XVS_R_PASS_FRAGMENT;
	} else {
		return XVS_R_PASS_NOT_L4;
	}
	p->l4 = l4;
	return -1;
}

/* Returns -1 when p describes an IPv4 or IPv6 TCP, UDP, SCTP or ICMP packet or a later fragment, else
 * the enum xvs_reason to pass it. */
static __always_inline int parse_packet(struct xdp_md *ctx, struct xvs_pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *l3 = eth + 1;
	__be16 proto;

	if (l3 > data_end)
		return XVS_R_PASS_MALFORMED;
	p->eth = eth;
	proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr *vh = l3;

		if ((void *)(vh + 1) > data_end)
			return XVS_R_PASS_MALFORMED;
		proto = vh->encapsulated_proto;
		l3 = vh + 1;
		p->tagged = 1;
	}

	void *l4 = NULL;
	__u32 l4_len = 0;
	int reason;
	if (proto == bpf_htons(ETH_P_IP))
		reason = parse_ipv4(p, l3, data_end, &l4, &l4_len);
	else if (proto == bpf_htons(ETH_P_IPV6))
		reason = parse_ipv6(p, l3, data_end, &l4, &l4_len);
	else
		return XVS_R_PASS_NOT_IP;
	if (reason >= 0)
		return reason;
	p->data_end = data_end;
	p->key.dir = XVS_DIR_IN;
	p->l3_off = l3 - data;
	if (p->frag == XVS_FRAG_LATER)
		return -1;
	if (l4 - data > XVS_L4_OFF_MAX)
		return XVS_R_PASS_IPV6_EXT;
	p->l4_off = l4 - data;
	return parse_l4(p, l4, l4_len, data_end);
}

/* Finds the headers of a packet that parse_packet() parsed, from its offsets. Returns 0, or -1
 * if they are not there (they always are). */
static __always_inline int pkt_headers(struct xdp_md *ctx, struct xvs_pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	void *l3 = data + (p->l3_off & 0x1f);
	__u32 l4_off = p->l4_off;

	p->ip4 = NULL;
	p->ip6 = NULL;
	p->l4 = NULL;
	if (data + sizeof(struct ethhdr) > data_end || l3 < data + sizeof(struct ethhdr) ||
	    l4_off > XVS_L4_OFF_MAX)
		return -1;
	p->eth = data;
	p->data_end = data_end;
	if (p->key.af == XVS_AF_INET) {
		if (l3 + sizeof(struct iphdr) > data_end)
			return -1;
		p->ip4 = l3;
	} else {
		if (l3 + sizeof(struct ipv6hdr) > data_end)
			return -1;
		p->ip6 = l3;
	}
	if (l4_off) {
		void *l4 = data + l4_off;

		if (l4 + XVS_ICMP_HLEN > data_end)
			return -1;
		p->l4 = l4;
	}
	return 0;
}

#endif
