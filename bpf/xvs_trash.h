/* SPDX-License-Identifier: GPL-2.0 */
/* The destination trash (ip_vs_ctl.c: __ip_vs_del_dest, ip_vs_trash_get_dest,
 * ip_vs_dest_trash_expire). A real server deleted with -d, or with its service by -D or -C, keeps
 * its dests slot and gen, its counts and its counters: its connections and templates stay listed
 * and end by their own time, their packets are dropped (sysctl expire_nodest_conn 0, the default),
 * NAT replies still go back to their clients. Added back to a service with the same key, address
 * and port it is taken out of the trash with its connections. The control plane frees the slot once
 * nothing has referred to it for a while (lib/trash.ts). With expire_nodest_conn its connections end
 * at once instead (the sweeper, and a packet that meets one, which is then handled as new). */
#ifndef XVS_TRASH_H
#define XVS_TRASH_H

#include "xvs_counts.h"
#include "xvs_structs.h"

/* dest_trash[dests index]: a real server in the trash. Written and read by the control plane only. */
struct xvs_dest_trash {
	struct xvs_svc_key svc; /* the service it was deleted from (ip_vs_trash_get_dest matches it) */
	__u64 idle_since;	/* the trash timer's tick that first found nothing referring to it, 0 before */
	__u32 orphaned;		/* its service was deleted: restored into a new one, its counters restart */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_DESTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct xvs_dest_trash);
} dest_trash SEC(".maps");

/* A live connection whose real server is in the trash: kept, its packet dropped (ip_vs_in_hook
 * without expire_nodest_conn). */
static __always_inline int conn_kept_in_trash(const struct xvs_conn *c, const struct xvs_config *cfg)
{
	return !(cfg->flags & XVS_CFG_F_EXPIRE_NODEST_CONN) && dest_of(c->dest, c->dest_gen);
}

/* The sweeper ends a connection or template whose real server is gone, or in the trash with
 * expire_nodest_conn (ip_vs_expire_nodest_conn_flush). */
static __always_inline int dest_lost(__u32 index, __u32 gen, __u32 cfg_flags)
{
	struct xvs_dest *d = dest_of(index, gen);

	return !d || (!(d->flags & XVS_DEST_F_AVAILABLE) && (cfg_flags & XVS_CFG_F_EXPIRE_NODEST_CONN));
}

#endif
