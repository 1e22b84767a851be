#!/usr/bin/env node
// xvsd: the xvs control daemon for a pinned balancer (see lib/daemon.ts). Runs in the foreground:
// `xvsd [--pin-path DIR]` (default $XVS_PIN_PATH or /sys/fs/bpf/xvs); systemd/xvsd.service runs it
// as a service, and `xvsadm --attach` starts it detached when none runs.
import { Balancer } from './balancer.js';
import { runDaemon } from './daemon.js';
import { DEFAULT_PIN_PATH } from './store.js';

function pinPathArg(argv: string[]): string {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--pin-path' && argv[i + 1]) return argv[i + 1]!;
    if (a.startsWith('--pin-path=')) return a.slice('--pin-path='.length);
    if (a === '-h' || a === '--help') {
      process.stdout.write('Usage: xvsd [--pin-path DIR]\n');
      process.exit(0);
    }
  }
  return process.env.XVS_PIN_PATH || DEFAULT_PIN_PATH;
}

async function main(): Promise<void> {
  const pinPath = pinPathArg(process.argv.slice(2));
  const b = Balancer.open({ pinPath });
  try {
    await runDaemon(b, pinPath, (line) => console.log(line));
  } finally {
    b.close();
  }
}

main().catch((e: unknown) => {
  console.error(`xvsd: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
