/* SPDX-License-Identifier: GPL-2.0 */
/* The one's-complement sum of a range of the packet, for the few checksums that cannot be
 * derived from headers alone (bpf/xvs_tun.h: tunnel checksums over fragments and checksum-less
 * UDP; xvs_decap.bpf.c: verifying and completing tunnel checksums). The range is copied in
 * 512-byte chunks to a per-CPU buffer, which bpf_csum_diff() sums; ranges longer than
 * XVS_SUM_MAX are refused. The sum is of raw 16-bit words as they sit in memory (xvs_csum.h). */
#ifndef XVS_SUM_H
#define XVS_SUM_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define XVS_SUM_CHUNK 512
#define XVS_SUM_CHUNKS 18
#define XVS_SUM_MAX (XVS_SUM_CHUNK * XVS_SUM_CHUNKS) /* a 9000-byte jumbo frame fits */

struct xvs_sum_buf {
	__u8 b[XVS_SUM_CHUNK];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_sum_buf);
} sum_scratch SEC(".maps");

/* Adds the bytes [off, off + len) of the packet (off even) to *sum. Returns 0, or -1 when the
 * range is longer than XVS_SUM_MAX or outside the packet. */
static __always_inline int sum_range(struct xdp_md *ctx, __u32 off, __u32 len, __u32 *sum)
{
	__u32 zero = 0;
	struct xvs_sum_buf *buf = bpf_map_lookup_elem(&sum_scratch, &zero);
	__u32 done = 0;
	__s64 s = *sum;

	if (!buf || len > XVS_SUM_MAX)
		return -1;
	for (int i = 0; i < XVS_SUM_CHUNKS && done < len; i++) {
		__u32 n = len - done;

		if (n >= XVS_SUM_CHUNK) {
			if (bpf_xdp_load_bytes(ctx, off + done, buf->b, XVS_SUM_CHUNK))
				return -1;
			s = bpf_csum_diff(NULL, 0, (__be32 *)buf->b, XVS_SUM_CHUNK, (__u32)s);
			done += XVS_SUM_CHUNK;
			continue;
		}
		/* 1..511 (done < len), written so that the verifier sees the bounds. */
		n = ((n - 1) & (XVS_SUM_CHUNK - 1)) + 1;
		if (bpf_xdp_load_bytes(ctx, off + done, buf->b, n))
			return -1;
		/* Zero up to the next multiple of 4: zeros add nothing to the sum. */
		__u32 padded = (n + 3) & ~3U;
		if (n < padded)
			buf->b[n & (XVS_SUM_CHUNK - 1)] = 0;
		if (n + 1 < padded)
			buf->b[(n + 1) & (XVS_SUM_CHUNK - 1)] = 0;
		if (n + 2 < padded)
			buf->b[(n + 2) & (XVS_SUM_CHUNK - 1)] = 0;
		if (padded > XVS_SUM_CHUNK)
			return -1;
		s = bpf_csum_diff(NULL, 0, (__be32 *)buf->b, padded, (__u32)s);
		done = len;
	}
	if (s < 0)
		return -1;
	*sum = (__u32)s;
	return 0;
}

#endif
