// SPDX-License-Identifier: GPL-2.0
/* Benchmark limit: a minimal XDP forwarder. It rewrites both MACs and redirects to one of a few
 * egress ports, taken in turn so that traffic spreads over the real servers as a balancer's does.
 * No parsing past Ethernet, no lookup by flow: what is left is the cost of moving a frame. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define BENCH_FWD_MAX_PORTS 64

struct bench_fwd_port {
	__u32 ifindex;
	__u8 dmac[ETH_ALEN];
	__u8 smac[ETH_ALEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BENCH_FWD_MAX_PORTS);
	__type(key, __u32);
	__type(value, struct bench_fwd_port);
} bench_fwd_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} bench_fwd_turn SEC(".maps");

/* Ports in use, 1 .. BENCH_FWD_MAX_PORTS; set before load. */
const volatile __u32 bench_fwd_nports = 1;

SEC("xdp")
int bench_fwd(struct xdp_md *ctx)
{
	struct ethhdr *eth = (void *)(long)ctx->data;
	__u32 zero = 0;

	if ((void *)(eth + 1) > (void *)(long)ctx->data_end)
		return XDP_DROP;
	__u32 *turn = bpf_map_lookup_elem(&bench_fwd_turn, &zero);
	if (!turn)
		return XDP_DROP;
	__u32 i = (*turn)++ % bench_fwd_nports;
	struct bench_fwd_port *port = bpf_map_lookup_elem(&bench_fwd_ports, &i);
	if (!port)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, port->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, port->smac, ETH_ALEN);
	return bpf_redirect(port->ifindex, 0);
}
