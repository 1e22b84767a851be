// SPDX-License-Identifier: GPL-2.0
/* Benchmark baseline: the cheapest XDP program there is. Its per-packet cost under
 * BPF_PROG_TEST_RUN is the cost of the test loop itself. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int bench_empty(struct xdp_md *ctx)
{
	return XDP_PASS;
}
