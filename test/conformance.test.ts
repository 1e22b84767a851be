// Differential conformance with the real kernel IPVS: every case of test/conformance/cases.ts runs
// once through ipvsadm and ip_vs in a user-mode Linux 6.1 guest and once through xvsadm and xvs on
// this host; stdout, stderr, exit statuses, who answered each connection, and the listings after
// traffic must be the same, except what deliberate.ts allows and what pending.ts still waits for.
// A missing guest (linux.uml, ipvsadm, the UML modules) fails, saying what to install.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as all from './conformance/cases.js';
import { compareCommands, compareTraffic, describeDifferences, type Report, type Verdict } from './conformance/compare.js';
import { runGuest, type GuestResult } from './conformance/guest.js';
import type { Job } from './conformance/model.js';
import { PENDING } from './conformance/pending.js';
import { buildLab, runCommandCases, runTrafficCase } from './conformance/xvs-side.js';
import { ensureBuilt } from './helpers/xvsadm.js';

// A guest that has to run every case (an empty cache) takes minutes, many more on a loaded machine.
const GUEST_TIMEOUT_MS = 1_800_000;
// XVS_CONFORMANCE_CASES=REGEX runs only the cases whose name matches (while working on them).
const only = process.env.XVS_CONFORMANCE_CASES ? new RegExp(process.env.XVS_CONFORMANCE_CASES) : undefined;
const commandCases = all.commandCases.filter((c) => !only || only.test(c.name));
const trafficCases = all.trafficCases.filter((c) => !only || only.test(c.name));
const reports = new Map<string, Report>();

const job: Job = {
  commands: commandCases.map((c) => ({ lines: c.lines })),
  traffic: trafficCases.map((c) => ({ name: c.name, firstPort: c.firstPort, setup: c.setup, actions: c.actions })),
};

async function hostSide() {
  ensureBuilt();
  const commands = await runCommandCases(commandCases);
  if (!trafficCases.length) return { commands, traffic: [] };
  const lab = await buildLab();
  try {
    const traffic = [];
    for (const c of trafficCases) traffic.push(await runTrafficCase(lab, c));
    return { commands, traffic };
  } finally {
    await lab.destroy();
  }
}

beforeAll(async () => {
  const names = [...commandCases, ...trafficCases].map((c) => c.name);
  const twice = names.filter((n, i) => names.indexOf(n) !== i);
  if (twice.length) throw new Error(`case names must be unique: ${twice.join(', ')}`);
  // Both sides at once: the guest is a process of its own.
  const guest: Promise<GuestResult> = runGuest(job, GUEST_TIMEOUT_MS);
  guest.catch(() => undefined);
  const host = await hostSide();
  const kernel = await guest;
  commandCases.forEach((c, i) => reports.set(c.name, compareCommands(c, kernel.commands[i]!, host.commands[i]!)));
  trafficCases.forEach((c, i) => reports.set(c.name, compareTraffic(c, kernel.traffic[i]!, host.traffic[i]!)));
  console.log(`conformance: the guest ran ${kernel.ran} cases (${kernel.seconds.toFixed(0)} s), the cache had the others`);
}, GUEST_TIMEOUT_MS + 120_000);

afterAll(() => {
  if (!reports.size) return;
  const count = (v: Verdict) => [...reports.values()].filter((r) => r.verdict === v).length;
  const commands = [...reports.values()].reduce((n, r) => n + r.items.length, 0);
  console.log(
    `conformance: ${reports.size} cases (${commandCases.length} command, ${trafficCases.length} traffic; ${commands} comparisons): ` +
      `${count('match')} matched, ${count('deliberate')} deliberate, ${count('pending')} pending, ` +
      `${count('differ')} differing, ${count('pending-matches')} pending but matching, ${count('broken')} broken`,
  );
});

function check(name: string, feature: string | undefined): void {
  const r = reports.get(name);
  if (!r) throw new Error(`no result for "${name}"`);
  if (r.verdict === 'pending-matches') {
    throw new Error(`"${name}" matches the kernel now: remove "${feature}" from pending.ts (${PENDING[feature!]})`);
  }
  if (r.verdict === 'broken') throw new Error(`"${name}" proves nothing: ${r.broken}`);
  if (r.verdict === 'pending') return;
  expect(describeDifferences(r)).toBe('');
}

describe('ipvsadm command sessions, kernel IPVS vs xvs', () => {
  for (const c of commandCases) it(c.name, () => check(c.name, c.feature));
});

describe('client traffic, kernel IPVS vs xvs', () => {
  for (const c of trafficCases) it(c.name, () => check(c.name, c.feature));
});
