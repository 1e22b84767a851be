// npm run demo: a client, a balancer and three real servers in network namespaces; xvs balances
// real TCP connections to a DR service (rr) and a NAT service (wrr, port 8080 -> 80), prints who
// answered and the counters, and removes everything, also when interrupted.
import { Balancer, type ServiceInfo } from '../balancer.js';
import { runClient } from '../traffic.js';
import { buildLab, VIP } from './lab.js';

const CONNECTIONS = 60;

function table(services: ServiceInfo[]): string {
  const rows = ['Prot LocalAddress:Port Scheduler   Conns   InPkts  OutPkts  InBytes OutBytes'];
  for (const s of services) {
    const st = s.stats;
    const k = s.key;
    const where = 'fwmark' in k ? ['FWM', String(k.fwmark)] : [k.protocol.toUpperCase(), `${k.address}:${k.port}`];
    rows.push(`${where[0]!.padEnd(4)} ${where[1]!.padEnd(21)} ${s.scheduler.padEnd(9)} ` +
      [st.conns, st.inpkts, st.outpkts, st.inbytes, st.outbytes].map((n) => String(n).padStart(8)).join(' '));
    for (const r of s.realServers) {
      const rs = r.stats;
      rows.push(`  -> ${`${r.address}:${r.port}`.padEnd(17)} ${r.method.toUpperCase().padEnd(3)} w=${String(r.weight).padEnd(4)} ` +
        [rs.conns, rs.inpkts, rs.outpkts, rs.inbytes, rs.outbytes].map((n) => String(n).padStart(8)).join(' '));
    }
  }
  return rows.join('\n');
}

async function main(): Promise<void> {
  const mode = process.env.XVS_XDP_MODE === 'generic' ? 'generic' : 'native';
  console.log('xvs demo: building namespaces (client, lb, r1..r3)…');
  const lab = await buildLab();
  let lb: Balancer | undefined;
  try {
    lb = Balancer.open({ netns: lab.lb.name });
    for (const ifname of lab.lbInterfaces) lb.attach(ifname, { mode });
    console.log(`xvs attached (${mode} XDP) to ${lab.lbInterfaces.join(', ')} in ${lab.lb.name}`);

    const dr = { protocol: 'tcp' as const, address: VIP, port: 80 };
    lb.addService(dr, { scheduler: 'rr' });
    for (const r of lab.reals) lb.addRealServer(dr, { address: r.address }, { method: 'dr' });

    const nat = { protocol: 'tcp' as const, address: VIP, port: 8080 };
    lb.addService(nat, { scheduler: 'wrr' });
    lab.reals.forEach((r, i) => lb!.addRealServer(nat, { address: r.address, port: 80 }, { method: 'nat', weight: 3 - i }));

    for (const [label, port] of [['DR  rr ', 80], ['NAT wrr 3:2:1', 8080]] as const) {
      const result = await runClient(lab.client, { proto: 'tcp', host: VIP, port, count: CONNECTIONS });
      const answers = Object.entries(result.answers).sort().map(([n, c]) => `${n}=${c}`).join(' ');
      console.log(`${label}: ${CONNECTIONS} connections to ${VIP}:${port} -> ${answers}; failures ${result.failures}`);
      if (result.failures) console.log(`  errors: ${result.errors.join('; ')}`);
    }
    console.log(`\n${table(lb.list())}\n`);
    const reasons = Object.entries(lb.reasons()).filter(([, n]) => n > 0n).map(([k, n]) => `${k}=${n}`);
    console.log(`dataplane: ${reasons.join(' ')}`);
  } finally {
    lb?.close();
    await lab.destroy();
    console.log('cleaned up');
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
