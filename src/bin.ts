#!/usr/bin/env node
// The `proc-alive` executable: runs main() and sets the exit code. Nothing here ends in a stack trace.

import { writeSync } from 'node:fs';
import { main } from './cli.js';
import { rawArguments } from './kernel.js';

const args = process.argv.slice(2);
// An argument that is not UTF-8 (a path in another encoding) is taken as the kernel gave it.
main(args.some((a) => a.includes('\uFFFD')) ? rawArguments(args) : args).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    writeSync(2, `proc-alive: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
