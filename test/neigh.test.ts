// NeighbourPrimer: a real server's next hop is primed (a managed neighbour entry) when the first
// real server starts using its address, not again while one still does, and again after all left.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { NeighbourPrimer } from '../lib/neigh.js';
import { type Namespace, Topology } from '../lib/topology.js';

let topology: Topology;
let ns: Namespace;
const REAL = '10.7.0.2';

beforeAll(async () => {
  topology = new Topology();
  ns = await topology.addNamespace('neigh');
  const peer = await topology.addNamespace('peer');
  await topology.link(ns, peer, { a: { name: 'reals', ipv4: '10.7.0.1/24' }, b: { ipv4: `${REAL}/24` } });
});

afterAll(async () => {
  await topology?.destroy();
});

async function hasEntry(): Promise<boolean> {
  return (await ns.ip(['neigh', 'show', REAL, 'dev', 'reals'])).stdout.trim() !== '';
}

it('primes an address once while real servers use it, and again after they all left', async () => {
  const primer = new NeighbourPrimer(() => ns.name);
  primer.use(REAL, true);
  expect(await hasEntry()).toBe(true);

  await ns.ip(['neigh', 'flush', 'dev', 'reals']);
  primer.use(REAL, true); // a second real server on the same address: no `ip` call
  expect(await hasEntry()).toBe(false);

  primer.release(REAL);
  primer.release(REAL);
  primer.use(REAL, true);
  expect(await hasEntry()).toBe(true);
});

it('primes a later use when the first one needed no neighbour (tunnel)', async () => {
  const primer = new NeighbourPrimer(() => ns.name);
  await ns.ip(['neigh', 'flush', 'dev', 'reals']);
  primer.use(REAL, false);
  expect(await hasEntry()).toBe(false);
  primer.use(REAL, true);
  expect(await hasEntry()).toBe(true);
});
