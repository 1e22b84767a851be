// SPDX-License-Identifier: GPL-2.0
/* Benchmark receiver, attached on a real server's interface: counts every frame that arrives,
 * and apart those addressed as the balancer must address them (this interface's MAC, the
 * expected IPv4 destination), then drops them. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

enum bench_sink_counter {
	BENCH_SINK_FRAMES = 0,	/* every frame */
	BENCH_SINK_EXPECTED,	/* IPv4, to this interface's MAC and the expected address */
	BENCH_SINK_COUNTERS,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BENCH_SINK_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} bench_sink_counts SEC(".maps");

/* Set before load. */
const volatile __u8 bench_sink_mac[ETH_ALEN];
const volatile __be32 bench_sink_daddr;

static __always_inline void count(__u32 counter)
{
	__u64 *n = bpf_map_lookup_elem(&bench_sink_counts, &counter);

	if (n)
		*n += 1;
}

static __always_inline int expected(const struct ethhdr *eth, const struct iphdr *ip)
{
	for (int i = 0; i < ETH_ALEN; i++) {
		if (eth->h_dest[i] != bench_sink_mac[i])
			return 0;
	}
	return eth->h_proto == bpf_htons(ETH_P_IP) && ip->daddr == bench_sink_daddr;
}

SEC("xdp")
int bench_sink(struct xdp_md *ctx)
{
	struct ethhdr *eth = (void *)(long)ctx->data;
	struct iphdr *ip = (void *)(eth + 1);

	count(BENCH_SINK_FRAMES);
	if ((void *)(ip + 1) <= (void *)(long)ctx->data_end && expected(eth, ip))
		count(BENCH_SINK_EXPECTED);
	return XDP_DROP;
}

/* Makes clang emit the enum into BTF, where the benchmark reads the counters' indexes. */
const volatile enum bench_sink_counter bench_sink_counter_btf;
