#!/usr/bin/env node
// xvsadm: ipvsadm's command line for xvs. See lib/cli/run.ts and docs/xvsadm.md.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { xvsadm } from './run.js';

const program = basename(process.argv[1] ?? 'xvsadm').replace(/\.js$/, '');
process.exitCode = await xvsadm(process.argv.slice(2), program, {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  readStdin: () => readFileSync(0, 'utf8'),
});
