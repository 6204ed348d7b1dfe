#!/usr/bin/env node
// The `proc-alive` executable: runs main() and sets the exit code. Nothing here ends in a stack trace.

import { writeSync } from 'node:fs';
import { main } from './cli.js';
import { findCommand } from './cli-commands.js';
import { rawArguments } from './kernel.js';

const args = process.argv.slice(2);
// An argument that is not UTF-8 (a path in another encoding) is taken as the kernel gave it.
main(args.some((a) => a.includes('\uFFFD')) ? rawArguments(args) : args).then(
  (code) => {
    // `run` ends on a signal (a supervisor's SIGTERM, perhaps one of a flood): once its clean stop is
    // done, it exits at once. Left to Node's own ending, its signal handlers are taken down (SIG_DFL
    // again) while the process is still ending (its worker thread, its heap), and a SIGTERM that
    // arrives then kills it: 143 by a signal after a stop that was clean. Its output is written
    // synchronously: nothing is cut short.
    if (args[0] !== undefined && findCommand(args[0])?.name === 'run') process.exit(code);
    process.exitCode = code;
  },
  (err: unknown) => {
    writeSync(2, `proc-alive: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
