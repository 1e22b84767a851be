// SPDX-License-Identifier: GPL-2.0
/* The native binding's test object: one map of each kind the binding treats differently,
 * rodata globals to configure before load, and an XDP program that touches all of them. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* One record per run, sent through the ring buffer and kept in fixture_last; its layout
 * is also the btfStruct() test subject, bitfield included. */
struct fixture_event {
	__u32 len;
	__u8 first_byte;
	__u8 flag : 1;
	__u8 spare : 7;
	__u16 pad;
	__u64 mark;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} fixture_packets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} fixture_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fixture_event);
} fixture_last SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} fixture_events SEC(".maps");

const volatile __u32 fixture_verdict = XDP_PASS;
const volatile __u8 fixture_flag = 0;
const volatile __u64 fixture_mark = 0;

SEC("xdp")
int fixture_xdp(struct xdp_md *ctx)
{
	__u8 *data = (void *)(long)ctx->data;
	__u8 *data_end = (void *)(long)ctx->data_end;
	struct fixture_event event = {
		.len = data_end - data,
		.flag = fixture_flag,
		.mark = fixture_mark,
	};
	__u32 zero = 0;
	__u64 *packets = bpf_map_lookup_elem(&fixture_packets, &zero);

	if (packets)
		*packets += 1;
	if (data + 1 <= data_end) {
		event.first_byte = data[0];
		data[0] ^= 0xff;
	}
	bpf_map_update_elem(&fixture_last, &zero, &event, BPF_ANY);
	bpf_ringbuf_output(&fixture_events, &event, sizeof(event), 0);
	return fixture_verdict;
}

char LICENSE[] SEC("license") = "GPL";
