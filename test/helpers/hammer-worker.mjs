// A second copy of the dataplane program, over the maps of the test's (pinned) dataplane, sending
// frames through BPF_PROG_TEST_RUN from its own thread, so that two CPUs work on the same
// connections at once. Plain JavaScript on the raw addon: worker threads do not load TypeScript.
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';

const { addonPath, objectPath, maps, nsPath, ctx, frames, rounds } = workerData;
const addon = createRequire(import.meta.url)(addonPath);
const obj = addon.openObject(objectPath);
try {
  for (const { name, path, maxEntries } of maps) {
    obj.setMapMaxEntries(name, maxEntries);
    obj.reusePinnedMap(name, path);
  }
  obj.load();
  const program = obj.program('xvs_xdp');
  let sent = 0;
  addon.withNetns(nsPath, () => {
    for (let r = 0; r < rounds; r++) {
      for (const data of frames) {
        program.testRun({ data: Buffer.from(data), ctx: Buffer.from(ctx), repeat: 1 });
        sent++;
      }
    }
  });
  parentPort.postMessage({ sent });
} finally {
  obj.close();
}
