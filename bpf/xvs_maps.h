/* SPDX-License-Identifier: GPL-2.0 */
/* The dataplane's maps. Sizes are defaults; the control plane sets them before load. */
#ifndef XVS_MAPS_H
#define XVS_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "xvs_structs.h"

#define XVS_MAX_SERVICES 65536
#define XVS_MAX_DESTS 262144
#define XVS_MAX_CONNS (1 << 20)
#define XVS_MAX_SLOTS (1 << 20)
#define XVS_MAX_FRAGS 8192

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_SERVICES);
	__type(key, struct xvs_svc_key);
	__type(value, struct xvs_service);
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_MAX_DESTS);
	__type(key, __u32);
	__type(value, struct xvs_dest);
} dests SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XVS_MAX_CONNS);
	__type(key, struct xvs_conn_key);
	__type(value, struct xvs_conn);
} conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct xvs_sched_state);
} svc_sched SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_SLOTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xvs_sched_slot_key);
	__type(value, __u32);
} sched_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_DESTS);
	__type(key, struct xvs_real_key);
	__type(value, __u32);
} nat_reals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct xvs_stats);
} svc_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_MAX_DESTS);
	__type(key, __u32);
	__type(value, struct xvs_stats);
} dest_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_R_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} reasons SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct xvs_tun_source);
} tun_sources SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_MAX_DESTS);
	__type(key, __u32);
	__type(value, struct xvs_tun_src_cache);
} tun_src_cache SEC(".maps");

/* Scratch room for bpf_fib_lookup()'s parameters: on the stack they would push xvs_forward() and
 * its caller past the 512 bytes that a chain of BPF calls may use together. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bpf_fib_lookup);
} fib_params SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XVS_MAX_FRAGS);
	__type(key, struct xvs_frag_key);
	__type(value, struct xvs_frag);
} frags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_SERVICES);
	__type(key, struct xvs_vip_key);
	__type(value, __u32);
} vips SEC(".maps");

#endif
