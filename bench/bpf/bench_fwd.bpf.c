// SPDX-License-Identifier: GPL-2.0
/* Benchmark baselines: minimal XDP forwarders that spread frames over the real servers in turn,
 * as a balancer does, but keep no state and look nothing up by flow.
 *   bench_fwd:     rewrites both MACs and redirects to a configured port: the cost of moving a
 *                  frame, the limit of a path.
 *   bench_fwd_fib: asks bpf_fib_lookup for the next hop (a real server's address), as xvs does,
 *                  then rewrites the MACs and redirects: what xvs's forwarding alone costs. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

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

/* bench_fwd_fib: the next hops (IPv4 addresses of the real servers). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BENCH_FWD_MAX_PORTS);
	__type(key, __u32);
	__type(value, __be32);
} bench_fwd_nexthops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} bench_fwd_turn SEC(".maps");

/* Ports (or next hops) in use, 1 .. BENCH_FWD_MAX_PORTS; set before load. */
const volatile __u32 bench_fwd_nports = 1;

/* The next port or next hop to use, in turn. */
static __always_inline int next_turn(__u32 *i)
{
	__u32 zero = 0;
	__u32 *turn = bpf_map_lookup_elem(&bench_fwd_turn, &zero);

	if (!turn)
		return -1;
	*i = (*turn)++ % bench_fwd_nports;
	return 0;
}

SEC("xdp")
int bench_fwd(struct xdp_md *ctx)
{
	struct ethhdr *eth = (void *)(long)ctx->data;
	__u32 i;

	if ((void *)(eth + 1) > (void *)(long)ctx->data_end || next_turn(&i))
		return XDP_DROP;
	struct bench_fwd_port *port = bpf_map_lookup_elem(&bench_fwd_ports, &i);
	if (!port)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, port->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, port->smac, ETH_ALEN);
	return bpf_redirect(port->ifindex, 0);
}

SEC("xdp")
int bench_fwd_fib(struct xdp_md *ctx)
{
	struct ethhdr *eth = (void *)(long)ctx->data;
	struct iphdr *ip = (void *)(eth + 1);
	struct bpf_fib_lookup fib = {};
	__u32 i;

	if ((void *)(ip + 1) > (void *)(long)ctx->data_end || next_turn(&i))
		return XDP_DROP;
	__be32 *nexthop = bpf_map_lookup_elem(&bench_fwd_nexthops, &i);
	if (!nexthop)
		return XDP_DROP;
	fib.family = 2; /* AF_INET */
	fib.l4_protocol = ip->protocol;
	fib.tot_len = bpf_ntohs(ip->tot_len);
	fib.ifindex = ctx->ingress_ifindex;
	fib.ipv4_src = ip->saddr;
	fib.ipv4_dst = *nexthop;
	if (bpf_fib_lookup(ctx, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS)
		return XDP_PASS;
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	return bpf_redirect(fib.ifindex, 0);
}
