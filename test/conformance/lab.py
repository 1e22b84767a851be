#!/usr/bin/env python3
# The conformance lab's traffic, run on both sides so that both see the very same behaviour:
#
#   guest.py (in the user-mode Linux guest) imports it to drive its traffic cases.
#   lab.py traffic         on the host: reads a traffic run (one JSON line) on stdin and drives it
#                          in the namespaces the caller built; asks the caller to run each xvsadm
#                          command ({"admin": args} on stdout, the result as one JSON line on
#                          stdin) and ends with {"done": [result per case]}.
#
# A traffic run is {"ns": {role: netns path}, "settle": seconds, "cases": [{"name", "firstPort",
# "setup": [args], "actions": [...]}]}. Real servers (one TCP listener per port,
# one UDP socket per address and port, answering with their name) and clients live in this one
# process: sockets are created after setns(2) into their namespace and keep it. Clients connect
# one at a time from fixed source ports, so schedulers choose deterministically and the
# connection listings of both sides name the same ports.
import ctypes
import json
import os
import selectors
import socket
import subprocess
import sys
import threading
import time

CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)

TCP_PORTS = (80, 8080)
UDP_PORTS = (53,)
VIP = '10.100.0.1'
VIP6 = 'fd00:100::1'
CLIENT = '10.0.0.1'
CLIENT6 = 'fd00::1'
REALS = 3
IO_TIMEOUT = 2.0
# Kernels before 6.2 fold per-CPU counters into what they list every 2 seconds.
STATS_SETTLE = 2.5
SNAPSHOT = [['-Ln'], ['-Ln', '--stats', '--exact'], ['-Ln', '--persistent-conn'], ['-Ln', '--thresholds'], ['-Lnc']]


def check(rc, what):
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f'{what}: {os.strerror(err)}')


def setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        check(libc.setns(fd, CLONE_NEWNET), f'setns {path}')
    finally:
        os.close(fd)


def run(argv, stdin=''):
    p = subprocess.run(argv, input=stdin.encode(), capture_output=True)
    return {'stdout': p.stdout.decode('utf-8', 'replace'), 'stderr': p.stderr.decode('utf-8', 'replace'), 'status': p.returncode}


def must(argv, stdin=''):
    r = run(argv, stdin)
    if r['status'] != 0:
        raise RuntimeError(f"{' '.join(argv)}: {r['stderr'].strip()}")


def sysctl(key, value):
    with open('/proc/sys/' + key.replace('.', '/'), 'w') as f:
        f.write(str(value))


# ---- real servers and clients ----

class Servers:
    """Every real server's sockets, served by one thread."""

    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.stopped = False
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def add(self, ns, name, addresses):
        setns(ns)
        for port in TCP_PORTS:
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.bind(('::', port))
            s.listen(128)
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ, ('listen', name))
        for address in addresses:
            for port in UDP_PORTS:
                s = socket.socket(socket.AF_INET6 if ':' in address else socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((address, port))
                s.setblocking(False)
                self.sel.register(s, selectors.EVENT_READ, ('udp', name))

    def loop(self):
        while not self.stopped:
            for key, _ in self.sel.select(0.2):
                kind, name = key.data
                sock = key.fileobj
                try:
                    if kind == 'listen':
                        conn, _ = sock.accept()
                        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        quickack(conn)
                        conn.sendall(f'{name}\n'.encode())
                        conn.setblocking(False)
                        self.sel.register(conn, selectors.EVENT_READ, ('conn', name))
                    elif kind == 'udp':
                        _, peer = sock.recvfrom(2048)
                        sock.sendto(f'{name}\n'.encode(), peer)
                    else:
                        data = sock.recv(4096)
                        quickack(sock)
                        if data:
                            sock.sendall(data)
                        else:
                            self.sel.unregister(sock)
                            sock.close()
                except OSError:
                    try:
                        self.sel.unregister(sock)
                    except (KeyError, ValueError):
                        pass
                    sock.close()

    def start(self):
        self.thread.start()

    def stop(self):
        self.stopped = True
        self.thread.join()
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()


def quickack(sock):
    """ACKs at once rather than when a delayed-ACK timer or the application's next packet comes:
    whether an ACK rides on the next segment would otherwise depend on how fast the machine is,
    and the packet counters of both sides would differ by it."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)


def family(host):
    return socket.AF_INET6 if ':' in host else socket.AF_INET


def read_line(sock):
    data = b''
    while not data.endswith(b'\n'):
        chunk = sock.recv(256)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


class Client:
    def __init__(self, ns, first_port):
        self.ns = ns
        self.next_port = first_port - 1
        self.held = []

    def port(self):
        self.next_port += 1
        return self.next_port

    def tcp(self, host, port, n, hold):
        setns(self.ns)
        names = []
        for i in range(n):
            s = socket.socket(family(host), socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.settimeout(IO_TIMEOUT)
            try:
                s.bind((CLIENT6 if ':' in host else CLIENT, self.port()))
                s.connect((host, port))
                quickack(s)
                names.append(read_line(s) or None)
            except OSError as e:
                names.append(f'error: {e.strerror or e}')
                s.close()
                continue
            if i < hold:
                self.held.append(s)
            else:
                close_tcp(s)
        return names

    def udp(self, host, port, n):
        setns(self.ns)
        names = []
        for _ in range(n):
            s = socket.socket(family(host), socket.SOCK_DGRAM)
            s.settimeout(IO_TIMEOUT)
            try:
                s.bind((CLIENT6 if ':' in host else CLIENT, self.port()))
                s.sendto(b'xvs\n', (host, port))
                names.append(s.recv(256).decode().strip())
            except OSError as e:
                names.append(f'error: {e.strerror or e}')
            s.close()
        return names

    def close(self):
        for s in self.held:
            close_tcp(s)
        self.held = []


def close_tcp(s):
    """Closes from the client side and waits for the server's FIN, as a well-behaved client does."""
    try:
        quickack(s)
        s.shutdown(socket.SHUT_WR)
        while s.recv(4096):
            pass
    except OSError:
        pass
    s.close()


class Admin:
    """ipvsadm (guest) or xvsadm (host), run in the director's namespace or where we started."""

    def __init__(self, argv, ns):
        self.argv = argv
        self.ns = ns

    def __call__(self, args, stdin=''):
        setns(self.ns)
        r = run(self.argv + args, stdin)
        r['args'] = args
        return r


def drive(case, ns, admin, settle):
    """Runs one traffic case; returns what each step saw."""
    # The director holds the VIPs (kernel IPVS takes packets on their way in to a local address),
    # and DR replies from the VIP come back through it: without accept_local they are martians.
    setns(ns['lb'])
    sysctl('net.ipv4.conf.all.accept_local', 1)
    servers = Servers()
    for i in range(1, REALS + 1):
        servers.add(ns[f'r{i}'], f'r{i}', [f'10.{i}.0.1', VIP, f'fd00:{i}::1', VIP6])
    servers.start()
    client = Client(ns['client'], case['firstPort'])
    out = {'name': case['name'], 'setup': [admin(a) for a in case['setup']], 'steps': []}
    try:
        for action in case['actions']:
            out['steps'].append(step(action, client, admin, settle))
    finally:
        client.close()
        servers.stop()
    return out


def step(action, client, admin, settle):
    do = action['do']
    if do == 'tcp':
        return {'do': do, 'names': client.tcp(action['host'], action['port'], action['n'], action.get('hold', 0))}
    if do == 'udp':
        return {'do': do, 'names': client.udp(action['host'], action['port'], action['n'])}
    if do == 'close':
        client.close()
        return {'do': do}
    if do == 'sleep':
        time.sleep(action['seconds'])
        return {'do': do}
    if do == 'admin':
        return {'do': do, 'results': [admin(a) for a in action['commands']]}
    if do == 'snapshot':
        time.sleep(settle)
        return {'do': do, 'results': [admin(a) for a in SNAPSHOT]}
    raise ValueError(f'unknown action {do}')


class RemoteAdmin:
    """The host's xvsadm, run by the caller: asks it on stdout, reads its answer on stdin."""

    def __call__(self, args, stdin=''):
        print(json.dumps({'admin': args}), flush=True)
        r = json.loads(sys.stdin.readline())
        r['args'] = args
        return r


def traffic_main():
    job = json.loads(sys.stdin.readline())
    results = [drive(case, job['ns'], RemoteAdmin(), job['settle']) for case in job['cases']]
    print(json.dumps({'done': results}), flush=True)


if __name__ == '__main__':
    if sys.argv[1:2] == ['traffic']:
        traffic_main()
    else:
        sys.exit('usage: lab.py traffic < RUN')
