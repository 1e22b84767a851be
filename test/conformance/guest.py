#!/usr/bin/env python3
# The conformance suite's work inside the user-mode Linux guest (its init script runs this):
#
#   guest.py JOB OUT   runs every command case of JOB with ipvsadm, each in a fresh network
#                      namespace, then builds the lab topology (lab.py's addresses) for every traffic
#                      case and drives it with lab.py; appends one JSON line per case to OUT.
#
# Command cases do not depend on lab.py: their cached kernel results survive changes to it.
import fcntl
import json
import os
import socket
import struct
import sys
import threading

from lab import CLONE_NEWNET, CLIENT, CLIENT6, REALS, STATS_SETTLE, VIP, VIP6, Admin, check, drive, libc, must, run, setns, sysctl

MS_BIND = 4096


def new_netns(name=None):
    """Moves this thread into a new network namespace; with a name, also pins it as ip netns does."""
    check(libc.unshare(CLONE_NEWNET), 'unshare')
    # No duplicate address detection: an address that is still tentative (link-local ones included)
    # delays neighbour discovery past the client's first connection timeout in a slow guest.
    for scope in ('all', 'default'):
        sysctl(f'net.ipv6.conf.{scope}.accept_dad', 0)
    if name is not None:
        path = f'/run/netns/{name}'
        os.makedirs('/run/netns', exist_ok=True)
        open(path, 'w').close()
        here = f'/proc/self/task/{threading.get_native_id()}/ns/net'.encode()
        check(libc.mount(here, path.encode(), b'none', MS_BIND, None), f'mount {path}')
        return path
    return None


SIOCSIFFLAGS = 0x8914
IFF_UP = 1


def link_up(ifname):
    """ip link set IFNAME up, without a process: in the guest every exec costs a good fraction of a second."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack('16sH14x', ifname.encode(), IFF_UP))


def command_case(case):
    """A fresh network namespace per case. With lo up (the local routing table then exists) IPVS
    takes any unicast real server, as on a configured host."""
    new_netns()
    link_up('lo')
    return [run(['ipvsadm', *line['args']], line.get('stdin', '')) for line in case['lines']]


def name(path):
    return os.path.basename(path)


def guest_topology(n):
    """The lab topology (lib/demo/lab.ts's addresses), dual-stack, director included."""
    ns = {role: new_netns(f'{role}{n}') for role in ['lb', 'client', *(f'r{i}' for i in range(1, REALS + 1))]}
    setns(ns['lb'])
    for key in ('net.ipv4.ip_forward', 'net.ipv6.conf.all.forwarding'):
        sysctl(key, 1)
    lb = ['link set lo up', f'addr add {VIP}/32 dev lo', f'addr add {VIP6}/128 dev lo']
    must(['ip', '-b', '-'], '\n'.join(lb) + '\n')
    setns(ns['client'])
    must(['ip', '-b', '-'], '\n'.join([
        'link set lo up', f'link add eth0 type veth peer name client netns {name(ns["lb"])}',
        f'addr add {CLIENT}/24 dev eth0', f'addr add {CLIENT6}/64 dev eth0 nodad', 'link set eth0 up',
        f'route add {VIP}/32 via 10.0.0.254', f'route add {VIP6}/128 via fd00::fe',
    ]) + '\n')
    setns(ns['lb'])
    must(['ip', '-b', '-'], 'addr add 10.0.0.254/24 dev client\naddr add fd00::fe/64 dev client nodad\nlink set client up\n')
    for i in range(1, REALS + 1):
        setns(ns[f'r{i}'])
        for scope in ('all', 'default'):
            sysctl(f'net.ipv4.conf.{scope}.arp_ignore', 1)
            sysctl(f'net.ipv4.conf.{scope}.arp_announce', 2)
        # TUN real servers take IPIP on tunl0 (the ipip module makes one in every namespace), whose
        # packets come from the director's address while the reply leaves by eth0: no rp_filter.
        for scope in ('all', 'default'):
            sysctl(f'net.ipv4.conf.{scope}.rp_filter', 0)
        must(['ip', '-b', '-'], '\n'.join([
            'link set lo up', 'link set tunl0 up', f'addr add {VIP}/32 dev lo', f'addr add {VIP6}/128 dev lo',
            f'link add eth0 type veth peer name r{i} netns {name(ns["lb"])}',
            f'addr add 10.{i}.0.1/24 dev eth0', f'addr add fd00:{i}::1/64 dev eth0 nodad', 'link set eth0 up',
            f'route add default via 10.{i}.0.254', f'route add default via fd00:{i}::fe',
        ]) + '\n')
        setns(ns['lb'])
        must(['ip', '-b', '-'], f'addr add 10.{i}.0.254/24 dev r{i}\naddr add fd00:{i}::fe/64 dev r{i} nodad\nlink set r{i} up\n')
    return ns


def guest_main(job_path, out_path):
    """Appends one JSON line per case to OUT as it completes, so that a run cut short keeps what it did."""
    with open(job_path) as f:
        job = json.load(f)
    with open(out_path, 'a') as out:
        def emit(record):
            out.write(json.dumps(record) + '\n')
            out.flush()
        try:
            for key, case in job['commands']:
                emit({'key': key, 'result': command_case(case)})
            for n, (key, case) in enumerate(job['traffic']):
                ns = guest_topology(n)
                emit({'key': key, 'result': drive(case, ns, Admin(['ipvsadm'], ns['lb']), STATS_SETTLE)})
        except Exception as e:  # reported to the host, which fails the run with it
            emit({'error': f'{type(e).__name__}: {e}'})


if __name__ == '__main__':
    guest_main(sys.argv[1], sys.argv[2])
