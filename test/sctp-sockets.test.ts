// SCTP through the attached dataplane, between network namespaces: the host has no SCTP module,
// so the client and the real server speak SCTP over raw IPPROTO_SCTP sockets (python3): the
// client sends an INIT to the virtual service, the real server checks what arrived (address,
// ports, CRC32c) and answers INIT ACK, the client checks the answer comes from the virtual
// service with a right CRC32c. NAT rewrites ports both ways; DR delivers the packet unchanged and
// the real server answers from the VIP itself.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Balancer, type ServiceKey } from '../lib/balancer.js';
import { buildLab, CLIENT_ADDRESS, VIP, type Lab } from '../lib/demo/lab.js';
import { addService } from './helpers/lb.js';
import { neighboursResolved, ping } from './helpers/sockets.js';

/** python3: SCTP packets over raw sockets, checked with a full CRC32c. Roles:
 *  client SRC DST SPORT DPORT: sends an INIT (again every 0.5 s, as SCTP retransmits it, until
 *  the server is up), prints the INIT ACK it gets;
 *  server REPLY_FROM: answers the first INIT it gets with an INIT ACK from REPLY_FROM at once
 *  (INIT1 lasts 4 s), prints the INIT. */
const RAW = `
import json, socket, struct, sys
P = 0x82F63B78
def crc32c(b):
    c = 0xffffffff
    for x in b:
        c ^= x
        for _ in range(8):
            c = (c >> 1) ^ P if c & 1 else c >> 1
    return c ^ 0xffffffff
def packet(sport, dport, chunk_type, value):
    ln = 4 + len(value)
    chunk = struct.pack('!BBH', chunk_type, 0, ln) + value + b'\\0' * ((-ln) % 4)
    hdr = struct.pack('!HHI', sport, dport, 0)
    return hdr + struct.pack('<I', crc32c(hdr + b'\\0\\0\\0\\0' + chunk)) + chunk
def receive(s, want, timeout):
    s.settimeout(timeout)
    while True:
        data, addr = s.recvfrom(4096)
        sctp = data[(data[0] & 15) * 4:]
        if len(sctp) >= 16 and sctp[12] == want:
            sport, dport = struct.unpack('!HH', sctp[:4])
            ok = crc32c(sctp[:8] + b'\\0\\0\\0\\0' + sctp[12:]) == struct.unpack('<I', sctp[8:12])[0]
            return {'sport': sport, 'dport': dport, 'crcOk': ok, 'chunk': sctp[12],
                    'from': addr[0], 'to': socket.inet_ntoa(data[16:20])}
init = struct.pack('!IIHHI', 0x11111111, 65536, 10, 10, 1) + b'\\x80\\x00\\x00\\x3c' + bytes(range(56))
init_ack = struct.pack('!IIHHI', 0x22222222, 65536, 10, 10, 1) + b'\\x00\\x07\\x00\\x0cCOOKIE!!'
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_SCTP)
role = sys.argv[1]
try:
    if role == 'server':
        seen = receive(s, 1, 20)
        out = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_SCTP)
        out.bind((sys.argv[2], 0))
        out.sendto(packet(seen['dport'], seen['sport'], 2, init_ack), (seen['from'], 0))
        print(json.dumps(seen))
    else:
        src, dst, sport, dport = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        s.bind((src, 0))
        for attempt in range(40):
            s.sendto(packet(sport, dport, 1, init), (dst, 0))
            try:
                print(json.dumps(receive(s, 2, 0.5)))
                break
            except socket.timeout:
                pass
        else:
            raise socket.timeout()
except socket.timeout:
    print(json.dumps({'error': 'timeout'}))
`;

interface Seen {
  sport?: number;
  dport?: number;
  crcOk?: boolean;
  chunk?: number;
  from?: string;
  to?: string;
  error?: string;
}

let lab: Lab;
let lb: Balancer;

beforeAll(async () => {
  try {
    execFileSync('python3', ['-c', 'pass'], { stdio: 'ignore' });
  } catch {
    throw new Error('these tests need python3 for raw SCTP sockets, and there is none on this machine');
  }
  lab = await buildLab({ reals: 1, prefix: 'xvs5s' });
  lb = Balancer.open({ netns: lab.lb.name });
  for (const ifname of lab.lbInterfaces) lb.attach(ifname);
});

afterAll(async () => {
  lb?.close();
  await lab?.destroy();
});

beforeEach(() => {
  lb.clear();
});

/** INIT from the client to the service; the real server sees it and answers from `replyFrom`. */
async function exchange(key: ServiceKey & { port: number; address: string }, cport: number, replyFrom: string) {
  const real = lab.reals[0]!;
  await neighboursResolved(lab.lb, [real.address]);
  // The balancer forwards packets towards the client itself only once it knows the client's MAC.
  expect(await ping(lab.lb, CLIENT_ADDRESS)).toBe(CLIENT_ADDRESS);
  const server = real.ns.exec(['python3', '-c', RAW, 'server', replyFrom]);
  const client = lab.client.exec(['python3', '-c', RAW, 'client', CLIENT_ADDRESS, key.address, String(cport), String(key.port)]);
  const seen = JSON.parse((await server).stdout) as Seen;
  const answer = JSON.parse((await client).stdout) as Seen;
  return { seen, answer };
}

describe('SCTP between namespaces over raw sockets', () => {
  it('NAT: the real server gets the INIT on its own port with a right CRC; the answer comes from the VIP', async () => {
    const key = addService(lb, { protocol: 'sctp', address: VIP, port: 5000 }, [[lab.reals[0]!.address, 'nat', 6000]]);
    const { seen, answer } = await exchange(key as never, 40001, lab.reals[0]!.address);
    expect(seen).toMatchObject({ from: CLIENT_ADDRESS, to: lab.reals[0]!.address, sport: 40001, dport: 6000, crcOk: true, chunk: 1 });
    expect(answer).toMatchObject({ from: VIP, to: CLIENT_ADDRESS, sport: 5000, dport: 40001, crcOk: true, chunk: 2 });
    const conn = lb.connections().find((c) => c.protocol === 'sctp');
    expect(conn).toMatchObject({ state: 'C-SENT', client: { address: CLIENT_ADDRESS, port: 40001 }, real: { port: 6000 } });
  });

  it('DR: the INIT arrives as the client sent it; the real server answers from the VIP', async () => {
    const key = addService(lb, { protocol: 'sctp', address: VIP, port: 5001 }, [[lab.reals[0]!.address, 'dr']]);
    const { seen, answer } = await exchange(key as never, 40002, VIP);
    expect(seen).toMatchObject({ from: CLIENT_ADDRESS, to: VIP, sport: 40002, dport: 5001, crcOk: true, chunk: 1 });
    expect(answer).toMatchObject({ from: VIP, to: CLIENT_ADDRESS, sport: 5001, dport: 40002, crcOk: true, chunk: 2 });
    // The real server routes its answer through the balancer, which sees it as IPVS does (the
    // OUTPUT table, as for NAT): C-SENT, or INIT when the client had to send its INIT again.
    expect(lb.connections().find((c) => c.protocol === 'sctp')?.state).toMatch(/^(C-SENT|INIT)$/);
  });
});
