/* SPDX-License-Identifier: GPL-2.0 */
/* SCTP (ip_vs_proto_sctp.c): the common header and the chunk that drives the state, the
 * association states with their transition tables and timeouts, and NAT's port rewrite, which
 * keeps the CRC32c checksum exact without reading the packet.
 *
 * The state event is the first chunk's type, except that a COOKIE ECHO or COOKIE ACK followed by
 * an ABORT counts as the ABORT (set_sctp_state). Only an INIT starts a connection (sloppy_sctp 0);
 * an INIT on a CLOSED connection that no template controls starts a new one (conn_reuse_mode).
 *
 * CRC32c is linear over GF(2): for two messages of the same length L, crc(A) ^ crc(B) is the raw
 * CRC (no initial value, no final xor) of A ^ B. NAT changes only the 4 port bytes at the start
 * (the checksum covers no address), so A ^ B is those 4 bytes of difference d followed by L - 4
 * zero bytes, whose raw CRC is d(x) * x^(8L) mod P. x^(8L) comes from two tables of powers
 * (xvs_crc32c_tables.h), and each product takes 32 branch-free steps. */
#ifndef XVS_SCTP_H
#define XVS_SCTP_H

#include <linux/types.h>
#include <bpf/bpf_endian.h>
#include "xvs_consts.h"
#include "xvs_structs.h"
#include "xvs_crc32c_tables.h"

#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif

struct xvs_sctphdr {
	__be16 source;
	__be16 dest;
	__be32 vtag;
	__u32 checksum; /* CRC32c, least significant byte first */
};

struct xvs_sctp_chunkhdr {
	__u8 type;
	__u8 flags;
	__be16 length; /* of the chunk without its padding to 4 bytes */
};

#define XVS_SCTP_HLEN (sizeof(struct xvs_sctphdr) + sizeof(struct xvs_sctp_chunkhdr))
#define XVS_SCTP_PEEK_MAX 0x3ffc

/* Chunk types (RFC 9260 3.2) the state table tells apart. */
enum xvs_sctp_cid {
	XVS_SCTP_CID_DATA = 0,
	XVS_SCTP_CID_INIT = 1,
	XVS_SCTP_CID_INIT_ACK = 2,
	XVS_SCTP_CID_ABORT = 6,
	XVS_SCTP_CID_SHUTDOWN = 7,
	XVS_SCTP_CID_SHUTDOWN_ACK = 8,
	XVS_SCTP_CID_ERROR = 9,
	XVS_SCTP_CID_COOKIE_ECHO = 10,
	XVS_SCTP_CID_COOKIE_ACK = 11,
	XVS_SCTP_CID_SHUTDOWN_COMPLETE = 14,
};

/* IPVS SCTP states, as seen by the real server (ip_vs_proto_sctp.c), in the kernel's order. */
enum xvs_sctp_state {
	XVS_SCTP_S_NONE = 0,
	XVS_SCTP_S_INIT1,	    /* first INIT from the client */
	XVS_SCTP_S_INIT,	    /* a later INIT */
	XVS_SCTP_S_COOKIE_SENT,	    /* INIT ACK from the server */
	XVS_SCTP_S_COOKIE_REPLIED,  /* COOKIE ECHO from the client */
	XVS_SCTP_S_COOKIE_WAIT,	    /* INIT from the server */
	XVS_SCTP_S_COOKIE,	    /* INIT ACK from the client */
	XVS_SCTP_S_COOKIE_ECHOED,   /* COOKIE ECHO from the server */
	XVS_SCTP_S_ESTABLISHED,
	XVS_SCTP_S_SHUTDOWN_SENT,
	XVS_SCTP_S_SHUTDOWN_RECEIVED,
	XVS_SCTP_S_SHUTDOWN_ACK_SENT,
	XVS_SCTP_S_REJECTED,	    /* INIT answered by ABORT */
	XVS_SCTP_S_CLOSED,
	XVS_SCTP_S_LAST,
};

/* State events (IP_VS_SCTP_EVENT_*). */
enum { sEV_DATA, sEV_INIT, sEV_INIT_ACK, sEV_COOKIE_ECHO, sEV_COOKIE_ACK, sEV_SHUTDOWN,
       sEV_SHUTDOWN_ACK, sEV_SHUTDOWN_COMPLETE, sEV_ERROR, sEV_ABORT, sEV_COUNT };

/* Chunk type -> event (sctp_events); DATA, SACK, HEARTBEAT(-ACK), ECNE, CWR and every type past
 * 14 are data. A switch, not a 16-byte table: clang would put that in a mergeable section that
 * libbpf cannot place. */
static __always_inline __u8 sctp_event(__u8 chunk)
{
	switch (chunk) {
	case XVS_SCTP_CID_INIT:
		return sEV_INIT;
	case XVS_SCTP_CID_INIT_ACK:
		return sEV_INIT_ACK;
	case XVS_SCTP_CID_COOKIE_ECHO:
		return sEV_COOKIE_ECHO;
	case XVS_SCTP_CID_COOKIE_ACK:
		return sEV_COOKIE_ACK;
	case XVS_SCTP_CID_SHUTDOWN:
		return sEV_SHUTDOWN;
	case XVS_SCTP_CID_SHUTDOWN_ACK:
		return sEV_SHUTDOWN_ACK;
	case XVS_SCTP_CID_SHUTDOWN_COMPLETE:
		return sEV_SHUTDOWN_COMPLETE;
	case XVS_SCTP_CID_ERROR:
		return sEV_ERROR;
	case XVS_SCTP_CID_ABORT:
		return sEV_ABORT;
	}
	return sEV_DATA;
}

#define sNO XVS_SCTP_S_NONE
#define sI1 XVS_SCTP_S_INIT1
#define sIN XVS_SCTP_S_INIT
#define sCS XVS_SCTP_S_COOKIE_SENT
#define sCR XVS_SCTP_S_COOKIE_REPLIED
#define sCW XVS_SCTP_S_COOKIE_WAIT
#define sCO XVS_SCTP_S_COOKIE
#define sCE XVS_SCTP_S_COOKIE_ECHOED
#define sES XVS_SCTP_S_ESTABLISHED
#define sSS XVS_SCTP_S_SHUTDOWN_SENT
#define sSR XVS_SCTP_S_SHUTDOWN_RECEIVED
#define sSA XVS_SCTP_S_SHUTDOWN_ACK_SENT
#define sRJ XVS_SCTP_S_REJECTED
#define sCL XVS_SCTP_S_CLOSED

/* [table: INPUT, OUTPUT, INPUT_ONLY as enum xvs_tcp_table][event][current state] -> next */
static const __u8 xvs_sctp_states[3][sEV_COUNT][XVS_SCTP_S_LAST] = {
	{ /* INPUT: a NAT connection's client side */
	/*          sNO, sI1, sIN, sCS, sCR, sCW, sCO, sCE, sES, sSS, sSR, sSA, sRJ, sCL */
	/* d   */ { sES, sI1, sIN, sCS, sCR, sCW, sCO, sCE, sES, sSS, sSR, sSA, sRJ, sCL },
	/* i   */ { sI1, sIN, sIN, sCS, sCR, sCW, sCO, sCE, sES, sSS, sSR, sSA, sIN, sIN },
	/* i_a */ { sCW, sCW, sCW, sCS, sCR, sCO, sCO, sCE, sES, sSS, sSR, sSA, sRJ, sCL },
	/* c_e */ { sCR, sIN, sIN, sCR, sCR, sCW, sCO, sCE, sES, sSS, sSR, sSA, sRJ, sCL },
	/* c_a */ { sES, sI1, sIN, sCS, sCR, sCW, sCO, sES, sES, sSS, sSR, sSA, sRJ, sCL },
	/* s   */ { sSR, sI1, sIN, sCS, sCR, sCW, sCO, sCE, sSR, sSS, sSR, sSA, sRJ, sCL },
	/* s_a */ { sCL, sIN, sIN, sCS, sCR, sCW, sCO, sCE, sES, sCL, sSR, sCL, sRJ, sCL },
	/* s_c */ { sCL, sCL, sCL, sCS, sCR, sCW, sCO, sCE, sES, sSS, sSR, sCL, sRJ, sCL },
	/* err */ { sCL, sI1, sIN, sCS, sCR, sCW, sCO, sCL, sES, sSS, sSR, sSA, sRJ, sCL },
	/* ab  */ { sCL, sCL, sCL, sCL, sCL, sRJ, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL },
	},
	{ /* OUTPUT: a NAT connection's replies */
	/*          sNO, sI1, sIN, sCS, sCR, sCW, sCO, sCE, sES, sSS, sSR, sSA, sRJ, sCL */
	/* d   */ { sES, sI1, sIN, sCS, sCR, sCW, sCO, sCE, sES, sSS, sSR, sSA, sRJ, sCL },
	/* i   */ { sCW, sCW, sCW, sCW, sCW, sCW, sCW, sCW, sES, sCW, sCW, sCW, sCW, sCW },
	/* i_a */ { sCS, sCS, sCS, sCS, sCR, sCW, sCO, sCE, sES, sSS, sSR, sSA, sRJ, sCL },
	/* c_e */ { sCE, sCE, sCE, sCE, sCE, sCE, sCE, sCE, sES, sSS, sSR, sSA, sRJ, sCL },
	/* c_a */ { sES, sES, sES, sES, sES, sES, sES, sES, sES, sSS, sSR, sSA, sRJ, sCL },
	/* s   */ { sSS, sSS, sSS, sSS, sSS, sSS, sSS, sSS, sSS, sSS, sSR, sSA, sRJ, sCL },
	/* s_a */ { sSA, sSA, sSA, sSA, sSA, sCW, sCO, sCE, sES, sSA, sSA, sSA, sRJ, sCL },
	/* s_c */ { sCL, sI1, sIN, sCS, sCR, sCW, sCO, sCE, sES, sSS, sSR, sSA, sRJ, sCL },
	/* err */ { sCL, sCL, sCL, sCL, sCL, sCW, sCO, sCE, sES, sSS, sSR, sSA, sRJ, sCL },
	/* ab  */ { sCL, sRJ, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL },
	},
	{ /* INPUT_ONLY: DR and TUN, which see only the client's side */
	/*          sNO, sI1, sIN, sCS, sCR, sCW, sCO, sCE, sES, sSS, sSR, sSA, sRJ, sCL */
	/* d   */ { sES, sI1, sIN, sCS, sCR, sES, sCO, sCE, sES, sSS, sSR, sSA, sRJ, sCL },
	/* i   */ { sI1, sIN, sIN, sIN, sIN, sIN, sCO, sCE, sES, sSS, sSR, sSA, sIN, sIN },
	/* i_a */ { sCE, sCE, sCE, sCE, sCE, sCE, sCO, sCE, sES, sSS, sSR, sSA, sRJ, sCL },
	/* c_e */ { sES, sES, sES, sES, sES, sES, sCO, sCE, sES, sSS, sSR, sSA, sRJ, sCL },
	/* c_a */ { sES, sI1, sIN, sES, sES, sCW, sES, sES, sES, sSS, sSR, sSA, sRJ, sCL },
	/* s   */ { sSR, sI1, sIN, sCS, sCR, sCW, sCO, sCE, sSR, sSS, sSR, sSA, sRJ, sCL },
	/* s_a */ { sCL, sIN, sIN, sCS, sCR, sCW, sCO, sCE, sCL, sCL, sSR, sCL, sRJ, sCL },
	/* s_c */ { sCL, sCL, sCL, sCL, sCL, sCW, sCO, sCE, sES, sSS, sCL, sCL, sRJ, sCL },
	/* err */ { sCL, sI1, sIN, sCS, sCR, sCW, sCO, sCE, sES, sSS, sSR, sSA, sRJ, sCL },
	/* ab  */ { sCL, sCL, sCL, sCL, sCL, sRJ, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL },
	},
};

#undef sNO
#undef sI1
#undef sIN
#undef sCS
#undef sCR
#undef sCW
#undef sCO
#undef sCE
#undef sES
#undef sSS
#undef sSR
#undef sSA
#undef sRJ
#undef sCL

/* Seconds by state (sctp_timeouts); ipvsadm --set does not change them. IP_VS_SCTP_MAX_RTO is
 * 61 s; INIT1 and REJECTED wait 4 s. Indexed masked with 15: the unused slots are NONE's 2 s. */
static const __u32 xvs_sctp_timeouts[16] = {
	2, 4, 61, 61, 61, 61, 61, 61, 900, 61, 61, 61, 4, 61, 2, 2,
};

static __always_inline __u8 sctp_next_state(int table, __u8 state, __u8 chunk)
{
	__u8 event = sctp_event(chunk);

	if (state >= XVS_SCTP_S_LAST || event >= sEV_COUNT || table < 0 || table > 2)
		return XVS_SCTP_S_CLOSED;
	return xvs_sctp_states[table][event][state];
}

/* The chunk whose type drives the state: the first, or an ABORT right after a first COOKIE ECHO
 * or COOKIE ACK. sh's common header and first chunk header are within data_end; len is the
 * SCTP packet's length. */
static __always_inline __u8 sctp_state_chunk(const struct xvs_sctphdr *sh, __u32 len,
					     void *data_end)
{
	const struct xvs_sctp_chunkhdr *ch = (const void *)(sh + 1);
	__u8 type = ch->type;

	if (type != XVS_SCTP_CID_COOKIE_ECHO && type != XVS_SCTP_CID_COOKIE_ACK)
		return type;
	__u32 clen = bpf_ntohs(ch->length);
	if (clen < sizeof(*ch))
		return type;
	__u32 next = sizeof(*sh) + ((clen + 3) & ~3U);
	/* Frames XDP sees whole are shorter than XVS_SCTP_PEEK_MAX: that bound is for the verifier,
	 * on the very register the pointer is built from (clang would test a copy otherwise). */
	asm volatile("" : "+r"(next));
	if (next > XVS_SCTP_PEEK_MAX || next + sizeof(*ch) > len)
		return type;
	const struct xvs_sctp_chunkhdr *n = (const void *)sh + next;
	if ((void *)(n + 1) > data_end)
		return type;
	return n->type == XVS_SCTP_CID_ABORT ? XVS_SCTP_CID_ABORT : type;
}

/* Reads the SCTP header of a packet whose SCTP part is len bytes: the ports into k and the
 * chunk for the state. Returns -1, or the reason to pass the packet. A fragmented SCTP packet is
 * passed: NAT could not keep the checksum of a datagram it does not see whole, and SCTP avoids IP
 * fragmentation (it splits messages into chunks that fit the path MTU). */
static __always_inline int parse_sctp(struct xvs_sctphdr *sh, __u32 len, void *data_end, int frag,
				      struct xvs_conn_key *k, __u8 *chunk)
{
	const struct xvs_sctp_chunkhdr *ch = (const void *)(sh + 1);

	if ((void *)(ch + 1) > data_end || len < XVS_SCTP_HLEN)
		return XVS_R_PASS_MALFORMED;
	if (frag)
		return XVS_R_PASS_FRAGMENT;
	__u32 clen = bpf_ntohs(ch->length);
	if (clen < sizeof(*ch) || clen > len - sizeof(*sh))
		return XVS_R_PASS_MALFORMED;
	k->sport = sh->source;
	k->dport = sh->dest;
	*chunk = sctp_state_chunk(sh, len, data_end);
	return -1;
}

/* a(x) * b(x) mod P, both bit-reflected (bit 31 is x^0). Branch-free, and with multiplications
 * by 0 or 1 rather than masks of 0 or -1: the verifier forks its state on a {0, -1} mask ANDed
 * with a value, which over 64 steps would be 2^64 states. The empty asm hides from clang that the
 * factors are 0 or 1, or it would turn the products back into masks; a loop rather than unrolled
 * steps, or clang spills the asm operands past the stack limit. */
static __always_inline __u32 crc32c_mul(__u32 a, __u32 b)
{
	__u32 prod = 0;

#pragma clang loop unroll(disable)
	for (int i = 0; i < 32; i++) {
		__u32 bit = (a >> (31 - i)) & 1;
		__u32 carry = b & 1;

		asm volatile("" : "+r"(bit), "+r"(carry));
		prod ^= b * bit;
		b = (b >> 1) ^ (0x82f63b78 * carry);
	}
	return prod;
}

/* The raw CRC32c of 4 bytes d (as the packet holds them, read little-endian) followed by len - 4
 * zero bytes: d(x) * x^(8 len) mod P. A global function: the verifier walks its 64 steps once,
 * not once for every path that reaches a NAT rewrite. About 80 ns a packet, only when a port
 * changes. */
__attribute__((noinline)) __u32 xvs_crc32c_of_head(__u32 d, __u32 len)
{
	__u32 shift = crc32c_mul(xvs_crc32c_x8[len & 0xff], xvs_crc32c_x2048[(len >> 8) & 0xff]);

	return crc32c_mul(d, shift);
}

/* NAT: the destination (dst = 1) or source port of an SCTP packet of len bytes becomes `port`;
 * the checksum follows the change. */
static __always_inline void sctp_nat_port(struct xvs_sctphdr *sh, void *data_end, __u32 len,
					  int dst, __be16 port)
{
	if ((void *)(sh + 1) > data_end)
		return;
	__u32 *ports = (__u32 *)sh;
	__u32 before = *ports;
	if (dst)
		sh->dest = port;
	else
		sh->source = port;
	__u32 diff = before ^ *ports;
	if (diff)
		sh->checksum ^= xvs_crc32c_of_head(diff, len);
}

#endif
