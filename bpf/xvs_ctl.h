/* SPDX-License-Identifier: GPL-2.0 */
/* Control-plane state kept in maps next to the dataplane's, so that a balancer whose maps are
 * pinned can be reopened by any process (xvsadm, xvsd, the API) with nothing kept in files.
 * The XDP program never reads these maps; they live in its object so that their layouts are in
 * its BTF and checked like every other map's (lib/layout.ts). */
#ifndef XVS_CTL_H
#define XVS_CTL_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "xvs_maps.h"

#define XVS_NETNS_NAME_LEN 64

/* ctl[0]: the balancer as a whole. */
struct xvs_ctl {
	__u32 dest_gen;		/* last generation handed to a real server (xvs_dest.gen) */
	__u32 version;		/* bumped by every committed change, so a holder of old state reloads */
	__u32 daemon_pid;	/* xvsd, 0 when none runs */
	__u32 dest_high;	/* dests indexes at or above this were never used */
	__u64 daemon_tick_ns;	/* CLOCK_MONOTONIC of xvsd's start or last estimation */
	char netns[XVS_NETNS_NAME_LEN]; /* network namespace of the interfaces, "" = the caller's */
	__u64 netns_cookie;	/* the namespace whose table this is (lib/nstable.ts), 0 = not recorded */
	__u64 trash_timer_ns;	/* dataplane clock of the destination trash's next tick, 0 = none */
};

/* ctl_sched[svc id]: where the control plane's scheduler model stood right after the last change
 * of the service's table (lib/sched): the slot the table started at and the kernel's position. */
struct xvs_sched_ctl {
	__u32 start;
	__u32 last;	/* dests index of the last choice + 1, 0 = none yet */
	__u32 cw;	/* wrr's current weight */
	__u32 pad;
};

/* ctl_lock[0]: held by the process changing the balancer (BPF_NOEXIST makes taking it atomic). */
struct xvs_ctl_lock {
	__u32 pid;
	__u32 pad;
	__u64 since_ns;
};

enum xvs_est_kind {
	XVS_EST_SERVICE = 0,
	XVS_EST_DEST = 1,
};

struct xvs_est_key {
	__u32 kind;	/* enum xvs_est_kind */
	__u32 index;	/* svc id or dests index */
};

/* rate_est: the kernel's rate estimator (ip_vs_est.c) per service and real server, kept by xvsd:
 * counters at the last 2 s tick and EWMA rates scaled as the kernel scales them (cps and pps by
 * 2^10, bps by 2^5). */
struct xvs_est {
	__u64 last_conns;
	__u64 last_inpkts;
	__u64 last_outpkts;
	__u64 last_inbytes;
	__u64 last_outbytes;
	__u64 cps;
	__u64 inpps;
	__u64 outpps;
	__u64 inbps;
	__u64 outbps;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_ctl);
} ctl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_SERVICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct xvs_sched_ctl);
} ctl_sched SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_ctl_lock);
} ctl_lock SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_SERVICES + XVS_MAX_DESTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xvs_est_key);
	__type(value, struct xvs_est);
} rate_est SEC(".maps");

#endif
