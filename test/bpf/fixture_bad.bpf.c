// SPDX-License-Identifier: GPL-2.0
/* Reads the packet without a bounds check: the verifier must reject it at load, and the
 * binding's test expects its complaint in the error. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int fixture_bad(struct xdp_md *ctx)
{
	__u8 *data = (void *)(long)ctx->data;

	return data[0] ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
