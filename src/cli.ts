// The command line: parses arguments, calls the library, maps outcomes to exit codes. It holds no logic
// of its own. `main` returns the exit code rather than exiting, so it can be tested in-process.

import { readFileSync, writeSync } from 'node:fs';
import { checkSync, type State } from './check.js';
import { ProcAliveError } from './errors.js';
import type { Holder } from './hold.js';
import { defaultDir, targetPath } from './target.js';

/** Exit codes of `check` (LSB init-script `status` codes). */
export const CHECK_EXIT = { alive: 0, dead: 1, absent: 3, unknown: 4 } as const;
export const EXIT_USAGE = 2;
/** `run` could not hold the target. */
export const EXIT_RUN_FAILED = 1;

const help = (): string => `Usage: proc-alive <command> [options]

Is a process alive right now? The process (the runner) holds a FIFO open for reading for its whole
life; a check opens the FIFO for writing without blocking: it succeeds only while a reader exists.
The kernel drops the reader however the runner ends, SIGKILL included. No PID, no polling.

Commands:
  run <target> [seconds]   (alias: runner) hold <target> until <seconds> pass (default: forever)
                           or SIGTERM/SIGINT; then remove the FIFO and exit 0
      --mode <octal>       mode of a FIFO it creates (default 0600; 0620 lets the group check)
  check <target>...        (alias: checker) say whether each target is alive
      --json               one JSON object per target per line: {"target","path","state",...}
      -q, --quiet          print nothing; use the exit code (usage errors are still printed)
  --help, -h               this text
  --version, -V            the version

Targets:
  A target that contains a '/' is a path (/tmp/mah-pipe, ./web). A bare name (web) lives in the
  default directory: $PROC_ALIVE_DIR, else $XDG_RUNTIME_DIR/proc-alive, else <tmpdir>/proc-alive-<uid>
  (here: ${defaultDir()}). It must be owned by you or root and not writable by group or others.

Exit codes of check:
  0  alive    a process holds the FIFO
  1  dead     a FIFO with no reader: its holder crashed or was killed
  3  absent   no FIFO: stopped cleanly, or never started
  4  unknown  cannot tell (not a FIFO, permission denied, ...); stderr says why
  2  usage error
  With several targets: 4 if any cannot be told, else 1 if any is dead, else 3 if any is absent,
  else 0 (all alive).

Exit codes of run:
  0  held, then released after <seconds> or on SIGTERM/SIGINT (the FIFO is removed)
  1  could not hold the target; stderr says why
  2  usage error
`;

class UsageError extends Error {}

/**
 * Writes to fd 1 or 2 directly: process.stdout and process.stderr are streams built on first use, a cost
 * a one-shot check does not need. A closed pipe (EPIPE: `proc-alive check x | head -0`) is no error,
 * the answer is in the exit code.
 */
function write(fd: 1 | 2, text: string): void {
  let data = Buffer.from(text);
  while (data.length > 0) {
    try {
      data = data.subarray(writeSync(fd, data));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') continue; // a non-blocking pipe that is full
      return;
    }
  }
}

function say(line: string): void {
  write(2, `proc-alive: ${line}\n`);
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

interface Parsed {
  flags: Set<string>;
  values: Map<string, string>;
  operands: string[];
}

/** A small getopt: `known` flags, `withValue` options (`--mode 0620` or `--mode=0620`), `--` ends options. */
function parse(args: string[], known: string[], withValue: string[] = []): Parsed {
  const parsed: Parsed = { flags: new Set(), values: new Map(), operands: [] };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--') {
      parsed.operands.push(...args.slice(i + 1));
      break;
    }
    // '-' alone and negative numbers are operands, so that 'run x -5' says what is wrong with -5.
    if (arg.startsWith('-') && arg !== '-' && !/^-\d/.test(arg)) {
      const eq = arg.indexOf('=');
      const name = eq > 0 ? arg.slice(0, eq) : arg;
      if (withValue.includes(name)) {
        const value = eq > 0 ? arg.slice(eq + 1) : args[++i];
        if (value === undefined) throw new UsageError(`${name} needs a value`);
        parsed.values.set(name, value);
      } else if (known.includes(arg)) {
        parsed.flags.add(arg);
      } else {
        throw new UsageError(`unknown option '${arg}'`);
      }
      continue;
    }
    parsed.operands.push(arg);
  }
  return parsed;
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** One line naming the target (a ProcAliveError's message names the path, which may differ from it). */
function failure(target: string, err: unknown): string {
  const message = reason(err);
  return message.startsWith(`${target}:`) ? message : `${target}: ${message}`;
}

function runCheck(args: string[]): number {
  const { flags, operands } = parse(args, ['--json', '--quiet', '-q']);
  if (operands.length === 0) throw new UsageError('check needs at least one target');
  if (operands.includes('')) throw new UsageError('empty target: give a path or a name');
  const json = flags.has('--json');
  const quiet = flags.has('--quiet') || flags.has('-q');
  const seen = new Set<number>();
  const out: string[] = [];
  for (const target of operands) {
    let path: string | null = null;
    let state: State | 'unknown';
    let error: ProcAliveError | Error | undefined;
    try {
      path = targetPath(target);
      state = checkSync(path);
    } catch (err) {
      if (path === null && err instanceof ProcAliveError && err.code === 'EINVAL') throw new UsageError(err.message);
      state = 'unknown';
      error = err instanceof Error ? err : new Error(String(err));
      if (!quiet) say(failure(target, err));
    }
    seen.add(CHECK_EXIT[state]);
    if (quiet) continue;
    if (json) {
      const record: Record<string, unknown> = { target, path, state };
      if (error !== undefined) {
        record['code'] = (error as ProcAliveError).code ?? 'EIO';
        record['error'] = reason(error);
      }
      out.push(JSON.stringify(record));
    } else if (error === undefined) {
      out.push(`${target}: ${state}`);
    }
  }
  if (out.length > 0) write(1, `${out.join('\n')}\n`);
  for (const code of [CHECK_EXIT.unknown, CHECK_EXIT.dead, CHECK_EXIT.absent]) if (seen.has(code)) return code;
  return CHECK_EXIT.alive;
}

/** Parses `[seconds]`: a non-negative decimal number. */
function parseSeconds(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+(\.\d+)?$/.test(text)) throw new UsageError(`seconds must be a non-negative number, not '${text}'`);
  return Number(text);
}

function parseMode(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^0?[0-7]{3}$/.test(text)) throw new UsageError(`--mode takes an octal mode such as 0620, not '${text}'`);
  return Number.parseInt(text, 8);
}

async function runRun(args: string[]): Promise<number> {
  const { values, operands } = parse(args, [], ['--mode']);
  if (operands.length === 0) throw new UsageError('run needs a target');
  if (operands.length > 2) throw new UsageError(`run takes a target and seconds, not '${operands.slice(2).join(' ')}'`);
  const [target, secondsText] = operands as [string, string | undefined];
  if (target === '') throw new UsageError('empty target: give a path or a name');
  const seconds = parseSeconds(secondsText);
  const mode = parseMode(values.get('--mode'));
  // Loaded here, not at the top: a check, the command that must start fast, does not need it.
  const { hold } = await import('./hold.js');
  let holder: Holder;
  try {
    holder = hold(target, mode === undefined ? {} : { mode });
  } catch (err) {
    // EINVAL is about the arguments (a bad name, a mode that lets others read): a usage error.
    if (err instanceof ProcAliveError && err.code === 'EINVAL') throw new UsageError(err.message);
    say(`cannot hold ${failure(target, err)}`);
    return EXIT_RUN_FAILED;
  }
  return new Promise<number>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const finish = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      process.removeListener('SIGTERM', finish);
      process.removeListener('SIGINT', finish);
      try {
        holder.close();
        resolve(0);
      } catch (err) {
        say(`releasing ${failure(target, err)}`);
        resolve(EXIT_RUN_FAILED);
      }
    };
    process.on('SIGTERM', finish);
    process.on('SIGINT', finish);
    // setTimeout takes at most 2^31-1 ms (~24.8 days); longer waits are made of several.
    const MAX_MS = 2 ** 31 - 1;
    const wait = (ms: number): void => {
      timer = setTimeout(() => (ms > MAX_MS ? wait(ms - MAX_MS) : finish()), Math.min(ms, MAX_MS));
    };
    wait(seconds === undefined ? Number.POSITIVE_INFINITY : seconds * 1000);
  });
}

/** Runs the command line `args` (without node and the script) and returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      case 'check':
      case 'checker':
        return runCheck(rest);
      case 'run':
      case 'runner':
        return await runRun(rest);
      case '--help':
      case '-h':
      case 'help':
        write(1, help());
        return 0;
      case '--version':
      case '-V':
        write(1, `${version()}\n`);
        return 0;
      case undefined:
        throw new UsageError('no command (try: proc-alive --help)');
      default:
        throw new UsageError(`unknown command '${command}' (try: proc-alive --help)`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      say(`${err.message}`);
      return EXIT_USAGE;
    }
    throw err;
  }
}
