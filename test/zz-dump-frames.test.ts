import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, it } from 'vitest';
import type { RealServerOptions } from '../lib/balancer.js';
import { ADDR, packetLab, type PacketLab } from './helpers/lb.js';
import { buildFrame } from './helpers/packet.js';

let lab: PacketLab;
const T: [string, RealServerOptions][] = [
  ['ipip', { tunType: 'ipip' }],
  ['gue', { tunType: 'gue', tunPort: 6080 }],
  ['gue-csum', { tunType: 'gue', tunPort: 6081, tunChecksum: 'csum' }],
  ['gue-remcsum', { tunType: 'gue', tunPort: 6082, tunChecksum: 'remcsum' }],
  ['gre', { tunType: 'gre' }],
  ['gre-csum', { tunType: 'gre', tunChecksum: 'csum' }],
];
beforeAll(async () => { lab = await packetLab(); });
afterAll(async () => { await lab?.destroy(); });
it('dumps', () => {
  const out: { name: string; hex: string }[] = [];
  let port = 2000;
  for (const [name, t] of T) for (const inner6 of [false, true]) for (const outer6 of [false, true]) {
    const key = { protocol: 'udp' as const, address: inner6 ? ADDR.vip6 : ADDR.vip, port: port++ };
    lab.lb.addService(key, { scheduler: 'rr' });
    lab.lb.addRealServer(key, { address: outer6 ? 'fd00:1::11' : '10.1.0.11' }, { method: 'tun', ...t });
    const label = `${name}/in${inner6 ? 6 : 4}/out${outer6 ? 6 : 4}`;
    for (const size of [10, 1200]) {
      const frame = buildFrame({ dstMac: ADDR.lbMac, srcMac: ADDR.clientMac, ip: { src: inner6 ? ADDR.client6 : ADDR.client, dst: key.address, df: true }, udp: { sport: 4000 + size, dport: key.port }, payload: `${label}/${size}/`.padEnd(size, 'z') });
      out.push({ name: `${label}/${size}`, hex: lab.run(frame).out.toString('hex') });
    }
  }
  writeFileSync('/work/tmp-tun/frames.json', JSON.stringify(out));
});
