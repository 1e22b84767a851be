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
#define XVS_MAX_FRAGS 8192
#define XVS_MAX_TEMPLATES (1 << 18)
#define XVS_MAX_SLOTS (1 << 21)
#define XVS_MAX_LBLC (1 << 18)
#define XVS_MAX_LBLCR (1 << 16)
#define XVS_MAX_MARK_PREFIXES 4096
#define XVS_MAX_MARK_RULES 16384

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
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_MAX_DESTS);
	__type(key, __u32);
	__type(value, struct xvs_dest_conns);
} dest_conns SEC(".maps");

/* Not LRU: an entry is only ever removed by whoever uncounts it, so the counts stay exact. A
 * full table refuses new connections (XVS_R_DROP_CONN_FULL) until the sweeper frees room. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_CONNS);
	__type(key, struct xvs_conn_key);
	__type(value, struct xvs_conn);
} conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_TEMPLATES);
	__type(key, struct xvs_tpl_key);
	__type(value, struct xvs_template);
} templates SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct xvs_sched_state);
} svc_sched SEC(".maps");

/* Every service's tables and real-server lists, in ranges the control plane allocates. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_MAX_SLOTS);
	__type(key, __u32);
	__type(value, struct xvs_sched_slot);
} sched_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_LBLC);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xvs_lblc_key);
	__type(value, struct xvs_lblc_entry);
} lblc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_LBLCR);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xvs_lblc_key);
	__type(value, struct xvs_lblcr_entry);
} lblcr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_twos_draws);
} twos_draws SEC(".maps");

/* Room to build a new connection (see struct xvs_new_conn). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_new_conn);
} new_conn SEC(".maps");

/* Room to build an lblcr entry, too large for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_lblcr_entry);
} lblcr_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, XVS_MAX_MARK_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xvs_mark_key);
	__type(value, struct xvs_mark_prefix);
} mark_prefixes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_MAX_MARK_RULES);
	__type(key, __u32);
	__type(value, struct xvs_mark_rule);
} mark_rules SEC(".maps");

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
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_MAX_DESTS);
	__type(key, __u32);
	__type(value, struct xvs_nexthop);
} nexthops SEC(".maps");

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
