import { it } from 'vitest';
import { commandCases, trafficCases } from './conformance/cases.js';
import { runGuest } from './conformance/guest.js';
it('guest', async () => {
  const n = Number(process.env.NCMD ?? 10), t = Number(process.env.NTR ?? 0);
  const job = { commands: commandCases.slice(0, n).map((c) => ({ lines: c.lines })), traffic: trafficCases.slice(0, t).map((c) => ({ name: c.name, firstPort: c.firstPort, setup: c.setup, actions: c.actions })) };
  const t0 = Date.now();
  const r = await runGuest(job, 1_400_000);
  console.log((Date.now() - t0) / 1000, r.ran);
}, 1_500_000);
