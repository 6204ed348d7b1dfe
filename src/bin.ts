#!/usr/bin/env node
// The `proc-alive` executable: runs main() and sets the exit code. Nothing here ends in a stack trace.

import { main } from './cli.js';

// `proc-alive check x | head -0` closes our stdout: the answer is in the exit code, so EPIPE is no error.
process.stdout.on('error', () => {});

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`proc-alive: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
