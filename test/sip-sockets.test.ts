// --pe sip with real UDP sockets: a client namespace sends SIP requests of two calls through xvs
// (native XDP on the balancer) to three real servers that answer with their names.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Balancer } from '../lib/balancer.js';
import { buildLab, VIP, type Lab } from '../lib/demo/lab.js';

let lab: Lab;
let lb: Balancer;

// One socket per source port; sends each Call-ID in turn and prints which server answered each.
const CALLS = `
const dgram = require('node:dgram');
const [host, port, timeout, ...plan] = process.argv.slice(1);
const sockets = new Map();
const answers = [];
const socketFor = (sport) => new Promise((resolve) => {
  if (sockets.has(sport)) return resolve(sockets.get(sport));
  const s = dgram.createSocket('udp4');
  s.bind(Number(sport), () => { sockets.set(sport, s); resolve(s); });
});
const ask = (s, callid) => new Promise((resolve) => {
  const timer = setTimeout(() => { s.removeAllListeners('message'); resolve(null); }, Number(timeout));
  s.once('message', (m) => { clearTimeout(timer); resolve(m.toString().trim()); });
  s.send('INVITE sip:bob@example.com SIP/2.0\\r\\nVia: SIP/2.0/UDP client\\r\\nCall-ID: ' + callid + '\\r\\nCSeq: 1 INVITE\\r\\n\\r\\n', Number(port), host);
});
(async () => {
  for (const step of plan) {
    const [sport, callid] = step.split('/');
    answers.push(await ask(await socketFor(sport), callid));
  }
  console.log(JSON.stringify(answers));
  process.exit(0);
})();
`;

async function calls(plan: [sport: number, callid: string][]): Promise<(string | null)[]> {
  const { stdout } = await lab.client.exec([process.execPath, '-e', CALLS, VIP, '53', '2000', ...plan.map(([p, c]) => `${p}/${c}`)]);
  return JSON.parse(stdout) as (string | null)[];
}

beforeAll(async () => {
  lab = await buildLab();
  lb = Balancer.open({ netns: lab.lb.name });
  for (const ifname of lab.lbInterfaces) lb.attach(ifname, { mode: 'native' });
});

afterAll(async () => {
  lb?.close();
  await lab?.destroy();
});

describe('--pe sip through real sockets', () => {
  it('keeps each call on one real server, whichever source port sends it; -o places every datagram by its call', async () => {
    const key = { protocol: 'udp' as const, address: VIP, port: 53 };
    lb.addService(key, { scheduler: 'rr', persistent: 60, pe: 'sip', onePacket: true });
    for (const r of lab.reals) lb.addRealServer(key, { address: r.address }, { method: 'nat' });
    try {
      const got = await calls([
        [41000, 'alpha@client'], [41000, 'beta@client'], [41000, 'alpha@client'], [41000, 'beta@client'],
        [41001, 'alpha@client'], [41002, 'beta@client'], [41003, 'gamma@client'],
      ]);
      expect(got.every((a) => a !== null)).toBe(true);
      const [a, b] = got;
      expect(a).not.toBe(b);
      expect(got).toEqual([a, b, a, b, a, b, got[6]]);
      expect(new Set([a, b, got[6]]).size).toBe(3); // rr: three calls, three servers
      const templates = lb.connections().filter((c) => c.pe);
      expect(templates.map((t) => t.pe!.data).sort()).toEqual(['alpha@client', 'beta@client', 'gamma@client']);
      expect(lb.reasons().drop_sip_no_callid).toBe(0n);
    } finally {
      lb.deleteService(key);
    }
  });
});
