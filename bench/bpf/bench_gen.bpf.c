// SPDX-License-Identifier: GPL-2.0
/* Benchmark traffic generator for BPF_PROG_TEST_RUN. Each run writes a whole 64-byte
 * Ethernet/IPv4/TCP-or-UDP frame from a template, with the next flow's client address and port
 * and both checksums, so that the program under test never sees a frame it (or an earlier run)
 * rewrote: the kernel does not reset frame data between runs, and live frames are recycled.
 *
 *   bench_gen_call: then tail-calls the program under test (slot 0 of bench_gen_target), so that
 *                   one BPF_PROG_TEST_RUN with repeat N measures it over N packets of many flows.
 *   bench_gen_send: then redirects the frame to an interface; with BPF_F_TEST_XDP_LIVE_FRAMES
 *                   this is a traffic generator that transmits into a veth.
 *
 * Flow f (f = seq mod bench_gen_flows, or seq itself when bench_gen_flows is 0) has the client
 * address bench_gen_addr_base + f / bench_gen_ports_per_addr and the client port
 * bench_gen_port_base + f % bench_gen_ports_per_addr; bench/flows.ts computes the same. The
 * client is the source, or the destination for frames that play a server's replies. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define BENCH_FRAME_LEN 64
#define BENCH_IP_OFF ETH_HLEN
#define BENCH_L4_OFF (ETH_HLEN + 20)

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} bench_gen_target SEC(".maps");

/* Set before load. The template holds every byte of the frame; its checksum fields, client
 * address and client port are overwritten per flow. */
const volatile __u8 bench_gen_frame[BENCH_FRAME_LEN] __attribute__((aligned(8)));
const volatile __u8 bench_gen_client_is_dst;
/* One's-complement sums (not folded) of the IPv4 header and of the L4 pseudo-header, header and
 * payload, each without the client address and port and with the checksum fields zero. */
const volatile __u32 bench_gen_ip_sum;
const volatile __u32 bench_gen_l4_sum;
const volatile __u32 bench_gen_addr_base;
const volatile __u32 bench_gen_port_base;
const volatile __u32 bench_gen_ports_per_addr = 1;
const volatile __u32 bench_gen_flows;
const volatile __u32 bench_gen_ifindex;

/* The next packet's sequence number; set before load to continue where another run stopped.
 * Not atomic: one generator runs at a time per loaded object. */
__u64 bench_gen_seq;

static __always_inline __u16 csum_finish(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum & 0xffff;
}

/* The L4 checksum's offset in the frame: TCP's or UDP's. */
static __always_inline __u32 l4_check_off(void)
{
	return BENCH_L4_OFF + (bench_gen_frame[BENCH_IP_OFF + 9] == IPPROTO_UDP ? 6 : 16);
}

static __always_inline int write_frame(struct xdp_md *ctx)
{
	__u8 *data = (void *)(long)ctx->data;

	if (data + BENCH_FRAME_LEN > (__u8 *)(long)ctx->data_end)
		return -1;
	/* Volatile reads: a plain copy of a const (zero-initialised) array is folded into zeros. */
	const volatile __u64 *src = (const volatile __u64 *)bench_gen_frame;
	__u64 *dst = (__u64 *)data;
#pragma unroll
	for (int i = 0; i < BENCH_FRAME_LEN / 8; i++)
		dst[i] = src[i];

	__u64 seq = bench_gen_seq++;
	__u32 f = bench_gen_flows ? seq % bench_gen_flows : seq;
	__u32 addr = bench_gen_addr_base + f / bench_gen_ports_per_addr;
	__u16 port = bench_gen_port_base + f % bench_gen_ports_per_addr;
	__u32 flow_sum = (addr >> 16) + (addr & 0xffff);
	__u32 addr_off = BENCH_IP_OFF + (bench_gen_client_is_dst ? 16 : 12);
	__u32 port_off = BENCH_L4_OFF + (bench_gen_client_is_dst ? 2 : 0);

	*(__be32 *)(data + addr_off) = bpf_htonl(addr);
	*(__be16 *)(data + port_off) = bpf_htons(port);
	*(__be16 *)(data + BENCH_IP_OFF + 10) = bpf_htons(csum_finish(bench_gen_ip_sum + flow_sum));
	__u16 l4 = csum_finish(bench_gen_l4_sum + flow_sum + port);
	/* UDP sends a computed 0 as 0xffff: 0 means "no checksum". */
	if (l4 == 0 && bench_gen_frame[BENCH_IP_OFF + 9] == IPPROTO_UDP)
		l4 = 0xffff;
	*(__be16 *)(data + l4_check_off()) = bpf_htons(l4);
	return 0;
}

SEC("xdp")
int bench_gen_call(struct xdp_md *ctx)
{
	if (write_frame(ctx))
		return XDP_ABORTED;
	bpf_tail_call(ctx, &bench_gen_target, 0);
	return XDP_ABORTED;
}

SEC("xdp")
int bench_gen_send(struct xdp_md *ctx)
{
	if (write_frame(ctx))
		return XDP_ABORTED;
	return bpf_redirect(bench_gen_ifindex, 0);
}
