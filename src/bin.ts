#!/usr/bin/env node
// The `proc-alive` executable: runs main() and sets the exit code. Nothing here ends in a stack trace.

import { writeSync } from 'node:fs';
import { main } from './cli.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    writeSync(2, `proc-alive: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
