// Client behaviours that the traffic agent does not cover, each run once inside a namespace by a
// short script: a bulk TCP echo (to exercise path MTU discovery), a UDP query that may be refused
// (ICMP port unreachable), and an ICMP echo. They print one JSON line.
import { execFileSync } from 'node:child_process';
import type { Namespace } from '../../lib/topology.js';

/** Sends `bytes` bytes to an agent server (which answers its name, then echoes) and reads them back. */
const BULK = `
const net = require('node:net');
const [host, port, bytes, timeout] = process.argv.slice(1);
const total = Number(bytes);
const socket = net.connect({ host, port: Number(port) });
let received = Buffer.alloc(0);
const finish = (result) => { console.log(JSON.stringify(result)); socket.destroy(); process.exit(0); };
setTimeout(() => finish({ error: 'timeout', received: received.length }), Number(timeout));
socket.on('error', (e) => finish({ error: e.code || e.message, received: received.length }));
socket.on('connect', () => socket.write(Buffer.alloc(total, 'b')));
socket.on('data', (chunk) => {
  received = Buffer.concat([received, chunk]);
  const nl = received.indexOf(10);
  if (nl >= 0 && received.length - nl - 1 >= total) {
    finish({ name: received.subarray(0, nl).toString(), echoed: received.length - nl - 1 });
  }
});
`;

/** Sends one datagram from a connected socket and reports the answer or the socket's error. */
const UDP = `
const dgram = require('node:dgram');
const [host, port, timeout] = process.argv.slice(1);
const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
const finish = (result) => { console.log(JSON.stringify(result)); process.exit(0); };
setTimeout(() => finish({ error: 'timeout' }), Number(timeout));
socket.on('error', (e) => finish({ error: e.code || e.message }));
socket.on('message', (m) => finish({ answer: m.toString().trim() }));
socket.connect(Number(port), host, () => socket.send('query'));
`;

/** One ICMP echo over a raw socket (Node has none): the reply's source, or null. */
const PING = `
import json, os, socket, struct, sys, time
host = sys.argv[1]
v6 = ':' in host
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW,
                  socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
s.settimeout(2)
ident = os.getpid() & 0xffff
body = struct.pack('!BBHHH', 128 if v6 else 8, 0, 0, ident, 1) + b'xvs-ping'
if not v6:
    words = sum(struct.unpack('!%dH' % (len(body) // 2), body))
    while words >> 16:
        words = (words & 0xffff) + (words >> 16)
    body = body[:2] + struct.pack('!H', ~words & 0xffff) + body[4:]
s.sendto(body, (host, 0))
deadline = time.time() + 2
while time.time() < deadline:
    try:
        data, addr = s.recvfrom(2048)
    except socket.timeout:
        break
    icmp = data if v6 else data[(data[0] & 15) * 4:]
    if icmp[0] == (129 if v6 else 0) and struct.unpack('!H', icmp[4:6])[0] == ident:
        print(json.dumps({'from': addr[0]}))
        sys.exit(0)
print(json.dumps({'from': None}))
`;

export interface BulkResult {
  name?: string;
  echoed?: number;
  error?: string;
  received?: number;
}

export async function bulkEcho(ns: Namespace, host: string, port: number, bytes: number, timeoutMs = 10_000): Promise<BulkResult> {
  const { stdout } = await ns.exec([process.execPath, '-e', BULK, host, String(port), String(bytes), String(timeoutMs)]);
  return JSON.parse(stdout) as BulkResult;
}

export async function udpQuery(ns: Namespace, host: string, port: number, timeoutMs = 3000): Promise<{ answer?: string; error?: string }> {
  const { stdout } = await ns.exec([process.execPath, '-e', UDP, host, String(port), String(timeoutMs)]);
  return JSON.parse(stdout) as { answer?: string; error?: string };
}

/** Needs python3 (for a raw socket); fails with that reason when there is none. */
export async function ping(ns: Namespace, host: string): Promise<string | null> {
  try {
    execFileSync('python3', ['-c', 'pass'], { stdio: 'ignore' });
  } catch {
    throw new Error('ping needs python3 for a raw ICMP socket, and there is none on this machine');
  }
  const { stdout } = await ns.exec(['python3', '-c', PING, host]);
  return (JSON.parse(stdout) as { from: string | null }).from;
}

/** Waits until the namespace has resolved the neighbour for each address (first packets would
 * otherwise be passed to the kernel, counted as no_neigh). */
export async function neighboursResolved(ns: Namespace, addresses: string[], timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const address of addresses) {
    for (;;) {
      const { stdout } = await ns.ip(['-j', 'neigh', 'show', address]);
      const [entry] = JSON.parse(stdout || '[]') as { state?: string[] }[];
      if (entry?.state?.some((s) => ['REACHABLE', 'STALE', 'DELAY', 'PROBE', 'PERMANENT'].includes(s))) break;
      if (Date.now() > deadline) throw new Error(`neighbour ${address} not resolved in ${ns.name} within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}
