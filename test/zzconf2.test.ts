import { it } from 'vitest';
import { trafficCases } from './conformance/cases.js';
import { buildLab, runTrafficCase } from './conformance/xvs-side.js';
it('host traffic', async () => {
  const names = (process.env.CASES ?? 'nat rr').split(',');
  let t0 = Date.now();
  const lab = await buildLab();
  console.log('lab', Date.now() - t0);
  try {
  for (const c of trafficCases.filter((c) => names.includes(c.name))) {
    t0 = Date.now();
    const r = await runTrafficCase(lab, c);
    console.log((Date.now() - t0) / 1000, JSON.stringify(r, null, 1).slice(0, 2500));
  }
  } finally { await lab.topology.destroy(); }
}, 400_000);
