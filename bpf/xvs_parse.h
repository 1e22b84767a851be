/* SPDX-License-Identifier: GPL-2.0 */
/* Packet parsing. Every header is bounds-checked against data_end before it is read; a packet
 * that cannot be parsed yields the reason it is passed to the kernel. */
#ifndef XVS_PARSE_H
#define XVS_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <bpf/bpf_endian.h>
#include "xvs_consts.h"
#include "xvs_structs.h"

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

struct vlan_hdr {
	__be16 tci;
	__be16 encapsulated_proto;
};

struct xvs_pkt {
	struct ethhdr *eth;
	struct iphdr *ip4;
	void *l4;
	void *data_end;
	__u32 ip_len;	/* IP total length: what IPVS counts as bytes */
	__u8 tagged;	/* one 802.1Q tag was present */
	__u8 tcp_flags;
	struct xvs_conn_key key; /* the packet's own 5-tuple, XVS_DIR_IN */
};

/* Returns -1 when p describes an IPv4 TCP or UDP packet, else the enum xvs_reason to pass it. */
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
	if (proto != bpf_htons(ETH_P_IP))
		return XVS_R_PASS_NOT_IP;

	struct iphdr *ip = l3;
	if ((void *)(ip + 1) > data_end)
		return XVS_R_PASS_MALFORMED;
	__u32 ihl = ip->ihl * 4;
	__u32 tot_len = bpf_ntohs(ip->tot_len);
	if (ip->version != 4 || ihl < sizeof(*ip) || tot_len < ihl ||
	    (void *)ip + tot_len > data_end)
		return XVS_R_PASS_MALFORMED;
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return XVS_R_PASS_FRAGMENT;

	void *l4 = (void *)ip + ihl;
	__u32 l4_len = tot_len - ihl;
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;

		if ((void *)(tcp + 1) > data_end || l4_len < sizeof(*tcp) ||
		    tcp->doff * 4 < sizeof(*tcp) || tcp->doff * 4 > l4_len)
			return XVS_R_PASS_MALFORMED;
		p->key.sport = tcp->source;
		p->key.dport = tcp->dest;
		p->tcp_flags = ((__u8 *)tcp)[13];
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = l4;

		if ((void *)(udp + 1) > data_end || l4_len < sizeof(*udp) ||
		    bpf_ntohs(udp->len) < sizeof(*udp) || bpf_ntohs(udp->len) > l4_len)
			return XVS_R_PASS_MALFORMED;
		p->key.sport = udp->source;
		p->key.dport = udp->dest;
	} else {
		return XVS_R_PASS_NOT_L4;
	}

	p->ip4 = ip;
	p->l4 = l4;
	p->data_end = data_end;
	p->ip_len = tot_len;
	p->key.saddr.v4 = ip->saddr;
	p->key.daddr.v4 = ip->daddr;
	p->key.proto = ip->protocol;
	p->key.af = XVS_AF_INET;
	p->key.dir = XVS_DIR_IN;
	return -1;
}

#endif
