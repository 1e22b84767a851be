/* SPDX-License-Identifier: GPL-2.0 */
/* ICMP that the balancer itself writes: echo replies for virtual addresses, "fragmentation
 * needed" / "packet too big" back to a client whose packet does not fit the path to its real
 * server, and the translation of an ICMP error of a NAT connection (outer address, quoted
 * packet, every checksum), as ip_vs_nat_icmp() does. */
#ifndef XVS_ICMP_H
#define XVS_ICMP_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "xvs_csum.h"
#include "xvs_maps.h"
#include "xvs_parse.h"
#include "xvs_stats.h"

/* linux/icmp.h would pull in the C library's socket headers: the few needed are here. */
#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_FRAG_NEEDED 4
#define ICMP_SOURCE_QUENCH 4
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PKT_TOOBIG 2
#define ICMPV6_TIME_EXCEED 3
#define ICMPV6_PARAMPROB 4
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129

/* The first 8 bytes of an ICMP or ICMPv6 message. */
struct xvs_icmphdr {
	__u8 type;
	__u8 code;
	__sum16 check;
	union {
		__be32 mtu6; /* ICMPv6 packet too big */
		struct {
			__be16 unused;
			__be16 mtu; /* ICMP fragmentation needed (RFC 1191) */
		} frag;
	};
};

#define XVS_ICMP4_ERR_MAX 576	/* RFC 1812 4.3.2.3: an ICMP error fits in 576 bytes */
#define XVS_ICMP6_ERR_MAX 1280	/* RFC 4443 2.4 (c): it does not exceed the minimum IPv6 MTU */
#define XVS_IPV6_MIN_MTU 1280
#define XVS_ICMP_TTL 64
#define XVS_ICMP_TOS 0xc0	/* IPTOS_PREC_INTERNETCONTROL, as the kernel's icmp_send() */

#define XVS_CSUM_CHUNK 64

struct xvs_csum_walk {
	struct xdp_md *ctx;
	__u32 off; /* next byte to sum, from the frame's start */
	__u32 end;
	__u64 sum;
};

/* One bpf_loop() step: sums the next chunk (zero-padded at the end of the message, which leaves
 * the sum as RFC 1071 pads an odd last byte). A callback is verified once, not per iteration. */
static long csum_chunk(__u32 i, void *data)
{
	struct xvs_csum_walk *w = data;
	__u8 buf[XVS_CSUM_CHUNK] = {};
	__u32 len = w->end - w->off;

	if (w->off >= w->end)
		return 1;
	if (len > XVS_CSUM_CHUNK)
		len = XVS_CSUM_CHUNK;
	if (len == 0 || bpf_xdp_load_bytes(w->ctx, w->off, buf, len))
		return 1;
	w->sum += (__u32)bpf_csum_diff(NULL, 0, (__be32 *)buf, XVS_CSUM_CHUNK, 0);
	w->off += len;
	return 0;
}

/* The one's-complement sum of the frame's bytes from off to its end (the ICMP message). */
static __always_inline __u32 csum_frame(struct xdp_md *ctx, __u32 off)
{
	struct xvs_csum_walk w = { .ctx = ctx, .off = off };

	w.end = (void *)(long)ctx->data_end - (void *)(long)ctx->data;
	bpf_loop(XVS_ICMP6_ERR_MAX / XVS_CSUM_CHUNK + 1, csum_chunk, &w, 0);
	w.sum = (w.sum & 0xffffffff) + (w.sum >> 32);
	return (w.sum & 0xffffffff) + (w.sum >> 32);
}

/* The IPv6 pseudo-header of an upper-layer packet (RFC 8200 8.1), as raw words. */
static __always_inline __u32 csum_ipv6_pseudo(const __u32 *src, const __u32 *dst, __u32 len,
					      __u8 proto)
{
	__u32 s = 0;

	for (int i = 0; i < 4; i++)
		s += (src[i] & 0xffff) + (src[i] >> 16) + (dst[i] & 0xffff) + (dst[i] >> 16);
	return s + bpf_htons(len) + bpf_htons(proto);
}

static __always_inline void swap_macs(struct ethhdr *eth)
{
	__u8 tmp[ETH_ALEN];

	__builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
}

/* Makes room for `hdr_len` bytes of new IP and ICMP headers in front of the packet, keeps
 * `quote` bytes of it and turns its L2 header round, so that it goes back to the
 * neighbour it came from. Returns the L2 header length, or -1 (nothing usable left). */
static __always_inline int icmp_error_frame(struct xdp_md *ctx, int tagged, int hdr_len,
					    __u32 quote)
{
	__u32 l2 = tagged ? sizeof(struct ethhdr) + sizeof(struct vlan_hdr) : sizeof(struct ethhdr);

	if (bpf_xdp_adjust_head(ctx, -hdr_len))
		return -1;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ethhdr *old = data + hdr_len;
	if ((void *)old + sizeof(struct ethhdr) + sizeof(struct vlan_hdr) > data_end)
		return -1;
	__builtin_memcpy(eth->h_dest, old->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, old->h_dest, ETH_ALEN);
	__builtin_memcpy((void *)eth + 2 * ETH_ALEN, (void *)old + 2 * ETH_ALEN,
			 sizeof(struct vlan_hdr) + 2);

	__u32 want = l2 + hdr_len + quote;
	__u32 have = data_end - data;
	if (have > want && bpf_xdp_adjust_tail(ctx, -(int)(have - want)))
		return -1;
	return l2;
}

/* Sends a message the balancer wrote back out of the interface it came in on. Not XDP_TX: a veth
 * wakes its peer for XDP_TX frames only when the peer runs XDP itself (veth_xdp_flush()), so a
 * container's veth would hold the message until other traffic came; a redirect is flushed. */
static __always_inline int reply_to_sender(struct xdp_md *ctx, __u32 reason)
{
	count_reason(reason);
	return bpf_redirect(ctx->ingress_ifindex, 0);
}

static __always_inline int drop_no_room(void)
{
	count_reason(XVS_R_DROP_NO_ROOM);
	return XDP_DROP;
}

/* Turns the packet into the error that tells its client the path's MTU: ICMP fragmentation
 * needed (RFC 1191) or ICMPv6 packet too big (RFC 4443 3.2), from the address the client sent to
 * (the virtual address), quoting as much of its packet as RFC 1812 4.3.2.3 (576 bytes in all) or
 * RFC 4443 2.4 (1280) allows. */
static __always_inline int icmp_too_big(struct xdp_md *ctx, const struct xvs_pkt *p, __u32 mtu)
{
	int v4 = p->key.af == XVS_AF_INET;
	int hdr_len = (v4 ? sizeof(struct iphdr) : sizeof(struct ipv6hdr)) + XVS_ICMP_HLEN;
	__u32 quote = (v4 ? XVS_ICMP4_ERR_MAX : XVS_ICMP6_ERR_MAX) - hdr_len;
	union xvs_addr client = p->key.saddr;
	union xvs_addr vip = p->key.daddr;

	if (p->ip_len < quote)
		quote = p->ip_len;
	int l2 = icmp_error_frame(ctx, p->tagged, hdr_len, quote);
	if (l2 < 0)
		return drop_no_room();
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	void *l3 = data + (l2 & 0x1f);
	/* Any TCP or UDP packet leaves at least this much (IPv4: 28 + a 20-byte quote). */
	if (l3 + sizeof(struct ipv6hdr) + XVS_ICMP_HLEN > data_end)
		return drop_no_room();
	struct xvs_icmphdr *icmp = l3 + hdr_len - XVS_ICMP_HLEN;
	__u32 len = XVS_ICMP_HLEN + quote;
	__u32 sum = 0;
	if (v4) {
		struct iphdr *ip = l3;

		ip->version = 4;
		ip->ihl = 5;
		ip->tos = XVS_ICMP_TOS;
		ip->tot_len = bpf_htons(sizeof(*ip) + len);
		ip->id = 0;
		ip->frag_off = 0;
		ip->ttl = XVS_ICMP_TTL;
		ip->protocol = IPPROTO_ICMP;
		ip->check = 0;
		ip->saddr = vip.v4;
		ip->daddr = client.v4;
		ip->check = csum_ipv4_header((__u16 *)ip);
		icmp->type = ICMP_DEST_UNREACH;
		icmp->code = ICMP_FRAG_NEEDED;
		icmp->frag.unused = 0;
		icmp->frag.mtu = bpf_htons(mtu);
	} else {
		struct ipv6hdr *ip6 = l3;

		*(__be32 *)ip6 = bpf_htonl(6 << 28);
		ip6->payload_len = bpf_htons(len);
		ip6->nexthdr = IPPROTO_ICMPV6;
		ip6->hop_limit = XVS_ICMP_TTL;
		__builtin_memcpy(ip6->saddr.in6_u.u6_addr32, vip.v6, 16);
		__builtin_memcpy(ip6->daddr.in6_u.u6_addr32, client.v6, 16);
		icmp->type = ICMPV6_PKT_TOOBIG;
		icmp->code = 0;
		icmp->mtu6 = bpf_htonl(mtu < XVS_IPV6_MIN_MTU ? XVS_IPV6_MIN_MTU : mtu);
		sum = csum_ipv6_pseudo(vip.v6, client.v6, len, IPPROTO_ICMPV6);
	}
	icmp->check = 0;
	icmp->check = ~csum_fold32(sum + csum_fold32(csum_frame(ctx, (void *)icmp - data)));
	return reply_to_sender(ctx, XVS_R_ICMP_TOO_BIG);
}

/* Returned by xvs_forward() when the client is to learn the MTU in p->fwd.mtu. */
#define XVS_TOO_BIG (-2)

/* The packet cannot reach its next hop whole; mtu is what the path leaves for the packet itself.
 * As IPVS (ensure_mtu_is_adequate): the client learns the MTU, unless the packet is IPv4 without
 * DF, which IPVS would fragment and xvs cannot, or an ICMP error, which never earns another. */
static __always_inline int too_big(struct xvs_pkt *p, __u32 mtu)
{
	if (is_icmp(p) || p->frag == XVS_FRAG_LATER ||
	    (p->ip4 && !(p->ip4->frag_off & bpf_htons(IP_DF)))) {
		count_reason(XVS_R_DROP_TOO_BIG);
		return XDP_DROP;
	}
	p->fwd.mtu = mtu;
	return XVS_TOO_BIG;
}

/* Turns the frame into the ICMP error that tells the client p->fwd.mtu. A global function of its
 * own: its checksum loop is verified once, not on every path through forwarding. */
__attribute__((noinline)) int xvs_icmp_too_big(struct xdp_md *ctx, const struct xvs_pkt *p)
{
	if (!p)
		return XDP_ABORTED;
	return icmp_too_big(ctx, p, p->fwd.mtu);
}

/* An echo request to a virtual address is answered from it, as the director's own stack answers
 * for a VIP in IPVS; the reply goes back to the neighbour the request came from. */
static __always_inline int icmp_echo_reply(struct xdp_md *ctx, struct xvs_pkt *p)
{
	struct xvs_vip_key vk = {};
	__u16 *type_code = p->l4;

	vk.addr = p->key.daddr;
	vk.af = p->key.af;
	if (!bpf_map_lookup_elem(&vips, &vk) || (void *)(type_code + 2) > p->data_end)
		return pass(XVS_R_PASS_ICMP);
	__sum16 *check = (__sum16 *)(type_code + 1);
	__u16 old = *type_code;
	if (p->ip4) {
		__u16 *ttl_proto = (__u16 *)&p->ip4->ttl;
		__u16 before = *ttl_proto;

		p->ip4->saddr = p->key.daddr.v4;
		p->ip4->daddr = p->key.saddr.v4;
		p->ip4->ttl = XVS_ICMP_TTL;
		p->ip4->check = csum_replace2(p->ip4->check, before, *ttl_proto);
		((struct xvs_icmphdr *)type_code)->type = ICMP_ECHOREPLY;
	} else if (p->ip6) {
		__builtin_memcpy(p->ip6->saddr.in6_u.u6_addr32, p->key.daddr.v6, 16);
		__builtin_memcpy(p->ip6->daddr.in6_u.u6_addr32, p->key.saddr.v6, 16);
		p->ip6->hop_limit = XVS_ICMP_TTL;
		((struct xvs_icmphdr *)type_code)->type = ICMPV6_ECHO_REPLY;
	}
	/* Swapping the addresses leaves the ICMPv6 pseudo-header's sum as it was. */
	*check = csum_replace2(*check, old, *type_code);
	swap_macs(p->eth);
	return reply_to_sender(ctx, XVS_R_ICMP_ECHO_REPLY);
}

static __always_inline int icmp_is_error(const struct xvs_pkt *p, __u8 type)
{
	if (p->ip4)
		return type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED ||
		       type == ICMP_PARAMETERPROB || type == ICMP_SOURCE_QUENCH;
	return type == ICMPV6_DEST_UNREACH || type == ICMPV6_PKT_TOOBIG ||
	       type == ICMPV6_TIME_EXCEED || type == ICMPV6_PARAMPROB;
}

/* The packet quoted by an ICMP error: a TCP, UDP or SCTP packet of the same family, not a later
 * fragment, IPv6 without extension headers. */
struct xvs_quote {
	void *saddr;	   /* 4 bytes (IPv4) or 16 (IPv6) */
	void *daddr;
	__sum16 *ip_check; /* IPv4 header checksum */
	__be16 *ports;	   /* source, destination */
	__sum16 *l4_check; /* NULL when the quote is cut before it */
	__u8 proto;
};

/* Every family-specific function below takes its own header pointer: the verifier does not
 * relate a test of p->ip4 to p->ip6, so each path must check the pointer it dereferences. */
/* The quote's ports and, when the quote reaches it, TCP/UDP checksum (a quoted SCTP packet's
 * CRC32c covers its whole packet, which a quote does not hold: it is left, as the kernel does). */
static __always_inline int quote_ports(struct xvs_pkt *p, struct xvs_quote *q, void *ql4)
{
	void *end = p->data_end;

	if ((q->proto != IPPROTO_TCP && q->proto != IPPROTO_UDP && q->proto != IPPROTO_SCTP) ||
	    ql4 + 4 > end)
		return -1;
	q->ports = ql4;
	q->l4_check = NULL;
	if (q->proto == IPPROTO_UDP && ql4 + sizeof(struct udphdr) <= end)
		q->l4_check = &((struct udphdr *)ql4)->check;
	if (q->proto == IPPROTO_TCP && ql4 + sizeof(struct tcphdr) <= end)
		q->l4_check = &((struct tcphdr *)ql4)->check;
	return 0;
}

static __always_inline int icmp_quote4(struct xvs_pkt *p, struct iphdr *ip, struct xvs_quote *q)
{
	if ((void *)(ip + 1) > p->data_end || ip->version != 4 || ip->ihl < 5 ||
	    (ip->frag_off & bpf_htons(IP_OFFSET)))
		return -1;
	q->saddr = &ip->saddr;
	q->daddr = &ip->daddr;
	q->ip_check = &ip->check;
	q->proto = ip->protocol;
	return quote_ports(p, q, (void *)ip + ip->ihl * 4);
}

static __always_inline int icmp_quote6(struct xvs_pkt *p, struct ipv6hdr *ip6, struct xvs_quote *q)
{
	if ((void *)(ip6 + 1) > p->data_end || ip6->version != 6)
		return -1;
	q->saddr = ip6->saddr.in6_u.u6_addr32;
	q->daddr = ip6->daddr.in6_u.u6_addr32;
	q->proto = ip6->nexthdr;
	return quote_ports(p, q, ip6 + 1);
}

/* Finds the packet an ICMP error quotes and the key of the connection it belongs to, seen from
 * the client's side: the quote is a packet the connection sent (to the client, or NAT-ed to the
 * real server), so its addresses and ports are swapped. The error must go back to the quoted
 * packet's source. Returns 0, or -1 when the error is not one xvs can relate to a connection. */
static __always_inline int icmp_quote(struct xvs_pkt *p, struct xvs_conn_key *k)
{
	struct xvs_quote q;
	int err = -1;

	if (p->ip4) {
		err = icmp_quote4(p, p->l4 + XVS_ICMP_HLEN, &q);
		if (!err) {
			k->saddr.v4 = *(__be32 *)q.daddr;
			k->daddr.v4 = *(__be32 *)q.saddr;
		}
	} else if (p->ip6) {
		err = icmp_quote6(p, p->l4 + XVS_ICMP_HLEN, &q);
		if (!err) {
			__builtin_memcpy(k->saddr.v6, q.daddr, 16);
			__builtin_memcpy(k->daddr.v6, q.saddr, 16);
		}
	}
	if (err)
		return -1;
	k->sport = q.ports[1];
	k->dport = q.ports[0];
	k->proto = q.proto;
	k->af = p->key.af;
	if (k->daddr.v6[0] != p->key.daddr.v6[0] || k->daddr.v6[1] != p->key.daddr.v6[1] ||
	    k->daddr.v6[2] != p->key.daddr.v6[2] || k->daddr.v6[3] != p->key.daddr.v6[3])
		return -1;
	return 0;
}

/* The quoted port (source when dst, else destination) and, as far as the quote goes, its
 * TCP/UDP checksum, whose pseudo-header changed by addr_delta. Returns the delta of the ICMP
 * checksum for both. */
static __always_inline __u32 quote_port_rewrite(struct xvs_quote *q, int dst, __be16 port,
						__u32 addr_delta)
{
	__be16 *qport = &q->ports[dst ? 0 : 1];
	__u32 port_delta = csum_delta2(*qport, port);
	__u32 icmp_delta = port_delta;

	if (q->l4_check && !(q->proto == IPPROTO_UDP && *q->l4_check == 0)) {
		__u16 old = *q->l4_check;
		__u16 sum = csum_apply(old, addr_delta + port_delta);

		if (q->proto == IPPROTO_UDP && sum == 0)
			sum = 0xffff;
		*q->l4_check = sum;
		icmp_delta += csum_delta2(old, sum);
	}
	*qport = port;
	return icmp_delta;
}

static __always_inline void icmp_nat4(struct xvs_pkt *p, struct iphdr *ip, int dst,
				      const union xvs_addr *to, __be16 port)
{
	struct xvs_quote q;

	if (icmp_quote4(p, p->l4 + XVS_ICMP_HLEN, &q))
		return;
	__be32 *outer = dst ? &ip->daddr : &ip->saddr;
	__be32 *quoted = dst ? q.saddr : q.daddr;
	__u16 old_check = *q.ip_check;
	__u32 addr_delta = csum_delta4(*quoted, to->v4);

	ip->check = csum_apply(ip->check, csum_delta4(*outer, to->v4));
	*outer = to->v4;
	*q.ip_check = csum_apply(old_check, addr_delta);
	*quoted = to->v4;
	__u32 icmp_delta = addr_delta + csum_delta2(old_check, *q.ip_check) +
			   quote_port_rewrite(&q, dst, port, addr_delta);
	__sum16 *icmp_check = &((struct xvs_icmphdr *)p->l4)->check;
	*icmp_check = csum_apply(*icmp_check, icmp_delta);
}

static __always_inline void icmp_nat6(struct xvs_pkt *p, struct ipv6hdr *ip6, int dst,
				      const union xvs_addr *to, __be16 port)
{
	struct xvs_quote q;

	if (icmp_quote6(p, p->l4 + XVS_ICMP_HLEN, &q))
		return;
	__be32 *outer = dst ? ip6->daddr.in6_u.u6_addr32 : ip6->saddr.in6_u.u6_addr32;
	__be32 *quoted = dst ? q.saddr : q.daddr;
	__u32 addr_delta = csum_delta16(quoted, to->v6);
	/* ICMPv6's checksum covers the outer addresses too (pseudo-header). */
	__u32 icmp_delta = addr_delta + csum_delta16(outer, to->v6);

	__builtin_memcpy(outer, to->v6, 16);
	__builtin_memcpy(quoted, to->v6, 16);
	icmp_delta += quote_port_rewrite(&q, dst, port, addr_delta);
	__sum16 *icmp_check = &((struct xvs_icmphdr *)p->l4)->check;
	*icmp_check = csum_apply(*icmp_check, icmp_delta);
}

/* Translates an ICMP error of a NAT connection: the outer address on side `dst` (destination
 * towards the real server, source towards the client) and, on the other side of the quoted
 * packet, its address and port; fixes the outer IPv4, quoted IPv4, quoted TCP/UDP (as far as
 * the quote goes) and ICMP checksums. ip_vs_nat_icmp() recomputes the ICMP checksum whole;
 * every change here is incremental. */
static __always_inline void icmp_nat(struct xvs_pkt *p, int dst, const union xvs_addr *to,
				     __be16 port)
{
	if (p->ip4)
		icmp_nat4(p, p->ip4, dst, to, port);
	else if (p->ip6)
		icmp_nat6(p, p->ip6, dst, to, port);
}

#endif
