#!/usr/bin/env node
// xvsd: the xvs control daemon for a pinned balancer (see lib/daemon.ts). Runs in the foreground:
// `xvsd [--pin-path DIR] [--netns NAME]` (default $XVS_PIN_PATH, else the table of NAME or of the
// network namespace it runs in, lib/nstable.ts); systemd/xvsd.service runs it as a service, and
// `xvsadm --attach` starts it detached when none runs.
import { Balancer } from './balancer.js';
import { runDaemon } from './daemon.js';
import { claimTable, locateTable } from './nstable.js';

function args(argv: string[]): { pinPath?: string; netns?: string } {
  const out: { pinPath?: string; netns?: string } = { pinPath: process.env.XVS_PIN_PATH || undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--pin-path' && argv[i + 1]) out.pinPath = argv[++i]!;
    else if (a.startsWith('--pin-path=')) out.pinPath = a.slice('--pin-path='.length);
    else if (a === '--netns' && argv[i + 1]) out.netns = argv[++i]!;
    else if (a.startsWith('--netns=')) out.netns = a.slice('--netns='.length);
    else if (a === '-h' || a === '--help') {
      process.stdout.write('Usage: xvsd [--pin-path DIR] [--netns NAME]\n');
      process.exit(0);
    }
  }
  return out;
}

async function main(): Promise<void> {
  const table = locateTable(args(process.argv.slice(2)));
  claimTable(table);
  const b = Balancer.open({ pinPath: table.pinPath, netns: table.netns, netnsCookie: table.cookie });
  try {
    await runDaemon(b, table.pinPath, (line) => console.log(line));
  } finally {
    b.close();
  }
}

main().catch((e: unknown) => {
  console.error(`xvsd: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
