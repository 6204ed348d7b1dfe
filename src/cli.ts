// The command line: parses arguments, calls the library, maps outcomes to exit codes. It holds no logic
// of its own. `main` returns the exit code rather than exiting, so it can be tested in-process.

import { closeSync, constants as fsConstants, fstatSync, openSync, writeSync } from 'node:fs';
import { basename, join } from 'node:path';
import { checkSync, type State } from './check.js';
import { ProcAliveError } from './errors.js';
import type { EventEmitter } from 'node:events';
import type { Holder, HolderEvents } from './hold.js';
import type { Status } from './status.js';
import { defaultDir, targetPath } from './target.js';
import { escapeText, jsonLine } from './text.js';
import { setLongTimeout } from './timeout.js';
import { version } from './version.js';
import { COMMANDS, UsageError, commandHelp, findCommand, overviewHelp, parseArgs, suggestion, usageLines, type Parsed } from './cli-commands.js';
import { formatDuration, parseDuration } from './cli-duration.js';

/** Exit codes of `check` (LSB init-script `status` codes). */
export const CHECK_EXIT = { alive: 0, dead: 1, absent: 3, unknown: 4 } as const;
export const EXIT_USAGE = 2;
/** `run`: another process holds the target (sysexits' EX_TEMPFAIL: try again later). */
export const EXIT_HELD = 75;
/** `run` could not hold the target, or set it up (125, as env(1) and timeout(1) say of themselves). */
export const EXIT_RUN_FAILED = 125;
/** `wait`: the timeout passed first (s6-svwait's code). */
export const EXIT_TIMEOUT = 99;
/** `watch`: the reader of its output went away (EPIPE): 128 + SIGPIPE, as a process SIGPIPE killed (tail -f). */
export const EXIT_PIPE = 141;
/** `watch`: its output is not being read and the lines waiting for it passed the bound (sysexits' EX_IOERR). */
export const EXIT_OUTPUT_STALLED = 74;
/** `watch` could not start watching (an unsafe default directory, ...): "cannot", as run and serve say it. */
export const EXIT_WATCH_FAILED = 125;
/** `run -- command`: the command was found but cannot be run; not found (the shell's codes). */
export const EXIT_CANNOT_EXEC = 126;
export const EXIT_NOT_FOUND = 127;


const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * Writes to fd 1 or 2 directly: process.stdout and process.stderr are streams built on first use, a cost
 * a one-shot check does not need. A closed pipe (EPIPE: `proc-alive check x | head -0`) is no error,
 * the answer is in the exit code. A non-blocking pipe that is full (EAGAIN) is waited for, a millisecond
 * at a time and for a second at most, never in a busy loop. (`watch` writes through {@link LineOutput}.)
 */
function write(fd: 1 | 2, text: string): void {
  let data = Buffer.from(text);
  for (let waited = 0; data.length > 0; ) {
    try {
      data = data.subarray(writeSync(fd, data));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || ++waited > 1000) return;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}

/** One line on stderr; names and records in it are escaped, so it stays one line and inert. */
function say(line: string): void {
  write(2, `proc-alive: ${escapeText(line)}\n`);
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** One line naming the target (a ProcAliveError's message names the path, which may differ from it). */
function failure(target: string, err: unknown): string {
  const message = reason(err);
  return message.startsWith(`${target}:`) ? message : `${target}: ${message}`;
}

/**
 * One target as every JSON output describes it (schemas/*.json): `path` always a string (the path a bare
 * name would have when it could not be resolved), `time` in milliseconds since the epoch, and for a
 * state that cannot be told, `code` and `reason`.
 */
function targetJson(target: string, path: string | null, state: string, error?: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = { target, path: path ?? pathOf(target), state, time: Date.now() };
  if (error !== undefined) {
    out['code'] = error instanceof ProcAliveError ? error.code : ((error as NodeJS.ErrnoException).code ?? 'EIO');
    out['reason'] = reason(error);
  }
  return out;
}

/** The path of a target without checking its directory (for a report about a target that failed). */
function pathOf(target: string): string {
  return target.includes('/') ? target : join(defaultDir(), target);
}

function runCheck({ flags, operands }: Parsed): number {
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
      out.push(jsonLine(targetJson(target, path, state, error)));
    } else if (error === undefined) {
      out.push(`${escapeText(target)}: ${state}`);
    }
  }
  if (out.length > 0) write(1, `${out.join('\n')}\n`);
  for (const code of [CHECK_EXIT.unknown, CHECK_EXIT.dead, CHECK_EXIT.absent]) if (seen.has(code)) return code;
  return CHECK_EXIT.alive;
}

function parseMode(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^0?[0-7]{3}$/.test(text)) throw new UsageError(`--mode takes an octal mode such as 0620, not '${text}'`);
  return Number.parseInt(text, 8);
}

/**
 * Shell-quoted for a message that suggests a command line to type again: a word with nothing a shell
 * would take apart is left as it is, any other is single-quoted.
 */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

/**
 * run's own operands stop at a second one that cannot be a duration: `run web node server.js --port 80`
 * is a command given without '--', said as such rather than as "unknown option '--port'".
 */
export function runOperandEndsOptions(operand: string, index: number): boolean {
  return index === 1 && !/^[-+]?[\d.]/.test(operand);
}

async function runRun({ flags, values, operands: all, dashAt }: Parsed): Promise<number> {
  // Everything after '--' is the command, never our options.
  const command = dashAt === undefined ? undefined : all.slice(dashAt);
  const operands = dashAt === undefined ? all : all.slice(0, dashAt);
  if (operands.length === 0) throw new UsageError('run needs a target');
  const [target, durationText] = operands as [string, string | undefined];
  if (target === '') throw new UsageError('empty target: give a path or a name');
  const mode = parseMode(values.get('--mode'));
  const shared = flags.has('--shared');
  if (flags.has('--ready') && values.has('--ready')) throw new UsageError('--ready is given more than once');
  // `--ready` alone (fd 5), or `--ready=fd:N` / `--ready=notify` (the table gives --ready an optional
  // value: only with '=', so that a bare --ready never takes the next argument).
  const ready = flags.has('--ready') || parseReady(values.get('--ready'));
  const notifyFd = parseNotifyFd(values.get('--notify-fd'));
  // Speaking to our own service manager is what a service under systemd wants: always on; it does
  // something only where $NOTIFY_SOCKET is set.
  const upward = { notify: true, ...(notifyFd === undefined ? {} : { notifyFd }) };
  if (command !== undefined) {
    if (operands.length > 1) throw new UsageError(`run takes a target before '--', not '${operands.slice(1).join(' ')}'`);
    if (command.length === 0 || command[0] === '') throw new UsageError("no command after '--'");
    if (ready !== false && shared) throw new UsageError('--ready cannot be combined with --shared');
    return runCommand(target, command as [string, ...string[]], { shared, ready, ...upward, ...(mode === undefined ? {} : { mode }) });
  }
  if (durationText !== undefined && !/^[-+]?[\d.]/.test(durationText)) {
    // The most common mistake: `run web node server.js`, a command without '--' before it.
    const line = ['proc-alive', 'run', ...operands.slice(0, 1), '--', ...operands.slice(1)].map(shellWord).join(' ');
    throw new UsageError(`'${durationText}' is not a duration; to run a command, put '--' before it: ${line}`);
  }
  const ms = durationText === undefined ? Number.POSITIVE_INFINITY : parseDuration(durationText);
  if (typeof ms !== 'number') throw new UsageError(ms.error);
  if (operands.length > 2) {
    throw new UsageError(`run takes a target and a duration, not '${operands.slice(2).join(' ')}' (to run a command, put '--' before it)`);
  }
  if (ready !== false) throw new UsageError("--ready needs a command: run <target> --ready -- <command>");
  // Loaded here, not at the top: a check, the command that must start fast, does not need it.
  const { hold } = await import('./hold.js');
  // The handlers first: a SIGTERM that arrives while the target is set up must end this the clean way,
  // not the default way (which would leave the FIFO behind, dead, as after a crash).
  let stopAsked = false;
  let stop = (): void => {
    stopAsked = true;
  };
  const onSignal = (): void => stop();
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  let holder: Holder;
  try {
    holder = hold(target, { shared, ...upward, ...(mode === undefined ? {} : { mode }) });
  } catch (err) {
    process.removeListener('SIGTERM', onSignal);
    process.removeListener('SIGINT', onSignal);
    return holdFailed(target, err);
  }
  report(target, holder);
  return new Promise<number>((resolve) => {
    const finish = (): void => {
      timer.clear();
      // The handlers stay, doing nothing, until the process exits: a second SIGTERM must not end it the
      // default way half-way through the release, nor turn its exit code into 143.
      stop = () => {};
      try {
        holder.close();
        resolve(0);
      } catch (err) {
        say(`releasing ${failure(target, err)}`);
        resolve(EXIT_RUN_FAILED);
      }
    };
    const timer = setLongTimeout(finish, ms);
    stop = finish;
    if (stopAsked) finish();
  });
}

/** Says, one line each, what happens to a held target behind its holder's back. */
function report(target: string, who: EventEmitter<HolderEvents>): void {
  who.on('restored', (e) => say(`${target}: ${e.message}`));
  who.on('compromised', (e) => say(`${target}: ${e.message}`));
  who.on('warning', (err) => say(failure(target, err)));
}

/** `--ready=fd:N` or `--ready=notify` (the value after '='). */
function parseReady(value: string | undefined): false | 'notify' | { fd: number } {
  if (value === undefined) return false;
  if (value === 'notify') return 'notify';
  const fd = /^fd:(\d{1,3})$/.exec(value);
  if (fd !== null) {
    const n = Number(fd[1]);
    if (n === 3 || n === 4) throw new UsageError(`--ready=fd:${n}: fd ${n} is taken (the command gets the FIFO as fd 3 and its lock as fd 4)`);
    if (n >= 5 && n <= 255) return { fd: n };
  }
  throw new UsageError(`--ready takes fd:N (N from 5 to 255) or notify, not '${value}'`);
}

/** `--notify-fd N`: an fd the supervisor gave us, 3 or more. */
function parseNotifyFd(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d{1,9}$/.test(text) || Number(text) < 3) throw new UsageError(`--notify-fd takes an fd number of 3 or more, not '${text}'`);
  return Number(text);
}

/** The exit code (and the one line) for a target that could not be held. */
function holdFailed(target: string, err: unknown): number {
  // EINVAL is about the arguments (a bad name, a mode that lets others read): a usage error.
  if (err instanceof ProcAliveError && err.code === 'EINVAL') throw new UsageError(err.message);
  say(`cannot hold ${failure(target, err)}`);
  return err instanceof ProcAliveError && err.code === 'EHELD' ? EXIT_HELD : EXIT_RUN_FAILED;
}

async function runCommand(
  target: string,
  [command, ...args]: [string, ...string[]],
  options: { shared: boolean; ready: boolean | 'notify' | { fd: number }; mode?: number; notify: boolean; notifyFd?: number },
): Promise<number> {
  const { wrap } = await import('./wrap.js');
  // Signals to the wrapper are passed on by wrap() while the command runs; before and after that, until
  // this process exits, they are ignored rather than end it the default way (with 143, half-way through
  // a clean-up). A supervisor stopping a unit signals the wrapper and the command together.
  const ignore = (): void => {};
  process.on('SIGTERM', ignore);
  process.on('SIGINT', ignore);
  let wrapped: ReturnType<typeof wrap>;
  try {
    wrapped = wrap(target, command, args, { ...options, forwardSignals: true });
  } catch (err) {
    return holdFailed(target, err);
  }
  report(target, wrapped);
  wrapped.alive.catch((err: unknown) => {
    if (err instanceof ProcAliveError && err.code === 'ENOTREADY') say(failure(target, err));
  });
  try {
    return (await wrapped.exited).status;
  } catch (err) {
    say(failure(target, err));
    const code = err instanceof ProcAliveError ? err.code : '';
    return code === 'ENOENT' ? EXIT_NOT_FOUND : code === 'EACCES' || code === 'ENOEXEC' ? EXIT_CANNOT_EXEC : EXIT_RUN_FAILED;
  }
}

/** The part of a status line after the state: who holds it, or who held it (escaped: it is from a file). */
function describe(st: Status, now: number): string {
  const h = st.holder;
  const problem = st.recordProblem === undefined ? '' : `(record ignored: ${st.recordProblem})`;
  if (h === null) return problem || (st.state === 'alive' ? 'no record (not held by proc-alive run)' : '');
  const since = formatDuration(now - Date.parse(h.started));
  const command = escapeText(h.command.join(' '));
  if (h.supervisor !== undefined) {
    const service = h.pid === 0 ? `service down ${since}` : `service pid ${h.pid}  up ${since}`;
    return st.state === 'alive' ? `${h.supervisor}  ${service}` : `${h.supervisor} not running`;
  }
  const said = h.status === undefined ? '' : `  "${escapeText(h.status)}"`;
  if (!st.stale) return `pid ${h.pid}  up ${since}${h.shared ? '  (shared: latest holder)' : ''}${said}  ${command}`;
  const end = h.exit === undefined ? '' : h.exit.signal !== null ? `, killed by ${h.exit.signal}` : `, exited ${h.exit.code}`;
  return `stale record: pid ${h.pid}, started ${since} ago${end}  ${command}`;
}

async function runStatus({ flags, operands }: Parsed): Promise<number> {
  if (operands.includes('')) throw new UsageError('empty target: give a path or a name');
  const json = flags.has('--json');
  const { statusSync, listTargetsIn } = await import('./status.js');
  let targets = operands;
  if (targets.length === 0) {
    try {
      // Refused as checks refuse it: a default directory that is a symlink, another user's, or
      // writable by others may hold FIFOs someone planted.
      targets = listTargetsIn();
    } catch (err) {
      say(reason(err));
      return CHECK_EXIT.unknown;
    }
    if (targets.length === 0 && !json) say(`no targets in ${defaultDir()}`);
  }
  const listed = operands.length === 0;
  const rows: Array<[string, string, string]> = [];
  const out: string[] = [];
  const seen = new Set<number>();
  const now = Date.now();
  for (const target of targets) {
    const name = listed ? basename(target) : target;
    let st: Status;
    try {
      st = statusSync(target);
    } catch (err) {
      if (err instanceof ProcAliveError && err.code === 'EINVAL' && err.path === undefined) throw new UsageError(err.message);
      say(failure(name, err));
      seen.add(CHECK_EXIT.unknown);
      if (json) {
        out.push(jsonLine(targetJson(name, listed ? target : null, 'unknown', err)));
      } else {
        rows.push([escapeText(name), 'unknown', '']);
      }
      continue;
    }
    seen.add(CHECK_EXIT[st.state]);
    if (json) out.push(jsonLine({ ...st, target: name, time: Date.now() }));
    else rows.push([escapeText(name), st.state, describe(st, now)]);
  }
  const width = Math.max(0, ...rows.map(([n]) => n.length));
  for (const [n, state, rest] of rows) out.push(`${n.padEnd(width)}  ${state.padEnd(7)}  ${rest}`.trimEnd());
  if (out.length > 0) write(1, `${out.join('\n')}\n`);
  for (const code of [CHECK_EXIT.unknown, CHECK_EXIT.dead, CHECK_EXIT.absent]) if (seen.has(code)) return code;
  return CHECK_EXIT.alive;
}

async function runWait({ flags, ms, operands }: Parsed): Promise<number> {
  const json = flags.has('--json');
  if (operands.length === 0) throw new UsageError('wait needs at least one target');
  if (operands.includes('')) throw new UsageError('empty target: give a path or a name');
  const timeout = ms.get('--timeout');
  const { waitStates } = await import('./wait.js');
  const options = { any: flags.has('--any'), ...(timeout === undefined ? {} : { timeout }) };
  const up = !flags.has('--down');
  // --json: a line per target reached (with --any, those reached), or, on a timeout, per target not.
  const lines = (pairs: Array<[string, string | null]>): void => {
    if (json && pairs.length > 0) write(1, pairs.map(([t, s]) => `${jsonLine(targetJson(t, null, s ?? 'unknown'))}\n`).join(''));
  };
  try {
    const states = await waitStates(operands, up, options);
    lines(operands.map((t, i): [string, string | null] => [t, states[i] ?? null]).filter(([, s]) => s !== null && s !== 'unknown' && (s === 'alive') === up));
    return 0;
  } catch (err) {
    if (err instanceof ProcAliveError && err.code === 'EINVAL' && err.path === undefined) throw new UsageError(err.message);
    if (err instanceof ProcAliveError && err.code === 'ETIMEDOUT') {
      say(`timed out: ${escapeText(err.message)}`);
      lines((err.pending ?? []).map((p) => [p.target, p.state]));
      return EXIT_TIMEOUT;
    }
    if (json && err instanceof ProcAliveError && err.path !== undefined) {
      const i = operands.findIndex((t) => pathOf(t) === err.path || t === err.path);
      if (i >= 0) write(1, `${jsonLine(targetJson(operands[i] as string, null, 'unknown', err))}\n`);
    }
    say(escapeText(reason(err)));
    return CHECK_EXIT.unknown;
  }
}

/** Bytes of lines `watch` keeps for a reader that does not read, before it gives up (EXIT_OUTPUT_STALLED). */
const OUTPUT_BOUND = 1024 * 1024;
/** How soon a full pipe is tried again. */
const OUTPUT_RETRY_MS = 20;

/**
 * Lines out of a long-running command, without ever blocking or spinning on them. A pipe or a terminal
 * on fd 1 is opened again through /proc/self/fd/1, non-blocking: a new open file description of the same
 * pipe, so the flags of the one the shell and other processes share are left alone. (A socket cannot be
 * opened again: fd 1 is written as it is, and may block if it is blocking and its reader stalls.) A full pipe (EAGAIN)
 * keeps lines in a bounded queue, tried again on a timer; a blocked write(2) would be restarted after a
 * signal (libuv's handlers use SA_RESTART), and SIGTERM would wait for the reader. A reader that went away
 * ends the command with {@link EXIT_PIPE}: at the next write (EPIPE), or at once, as the kernel flags
 * the write end of a pipe with no reader (EPOLLERR; `watch | head -1` with nothing more to say). A queue
 * past {@link OUTPUT_BOUND} ends it with {@link EXIT_OUTPUT_STALLED}.
 */
class LineOutput {
  readonly #fd: number;
  readonly #own: boolean;
  readonly #queue: Buffer[] = [];
  #queued = 0;
  #retry: NodeJS.Timeout | null = null;
  #readerGone: { close(): void } | null = null;
  readonly #end: (code: number) => void;
  #ended = false;

  constructor(end: (code: number) => void, whenReaderGone: (fd: number, gone: () => void) => { close(): void }) {
    this.#end = end;
    let fd = 1;
    let peer = false;
    try {
      const st = fstatSync(1);
      peer = st.isFIFO() || st.isSocket();
      if (st.isFIFO() || st.isCharacterDevice()) {
        fd = openSync('/proc/self/fd/1', fsConstants.O_WRONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY);
      }
    } catch {
      // No /proc, or a pipe of another user's (mode 0600): fd 1 as it is.
    }
    this.#fd = fd;
    this.#own = fd !== 1;
    if (peer) this.#readerGone = whenReaderGone(fd, () => this.#finish(EXIT_PIPE));
  }

  line(text: string): void {
    if (this.#ended) return;
    const data = Buffer.from(`${text}\n`);
    if (this.#queued + data.length > OUTPUT_BOUND) {
      say(`output is not being read: ${this.#queued} bytes wait to be written; giving up`);
      this.#finish(EXIT_OUTPUT_STALLED);
      return;
    }
    this.#queue.push(data);
    this.#queued += data.length;
    if (this.#retry === null) this.flush();
  }

  /** Writes what the pipe takes now; the rest waits for the retry timer. */
  flush(): void {
    while (!this.#ended && this.#queue.length > 0) {
      const chunk = this.#queue[0] as Buffer;
      let n: number;
      try {
        n = writeSync(this.#fd, chunk);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') {
          this.#retry ??= setTimeout(() => {
            this.#retry = null;
            this.flush();
          }, OUTPUT_RETRY_MS);
          return;
        }
        if (code !== 'EPIPE') say(`cannot write the output: ${escapeText(reason(err))}`);
        this.#finish(EXIT_PIPE);
        return;
      }
      this.#queued -= n;
      if (n < chunk.length) this.#queue[0] = chunk.subarray(n);
      else this.#queue.shift();
    }
  }

  #finish(code: number): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#end(code);
  }

  /** One last try at what waits (never blocking), then lets go of the timers and the fd. */
  close(): void {
    this.flush();
    this.#ended = true;
    if (this.#retry !== null) clearTimeout(this.#retry);
    this.#readerGone?.close();
    if (this.#own) closeSync(this.#fd);
  }
}

async function runWatch({ flags, operands }: Parsed): Promise<number> {
  if (operands.length === 0) throw new UsageError('watch needs at least one target or directory');
  if (operands.includes('')) throw new UsageError('empty target: give a path or a name');
  const json = flags.has('--json');
  const { watch } = await import('./watch.js');
  const { theMonitor } = await import('./monitor.js');
  let watcher: ReturnType<typeof watch>;
  try {
    watcher = watch(operands);
  } catch (err) {
    if (err instanceof ProcAliveError && err.code === 'EINVAL') throw new UsageError(err.message);
    // Before any line: the watching cannot start (an unsafe default directory). Not 1, which says
    // "dead" to whoever reads exit codes as check's; 125, as run and serve say they cannot.
    say(`cannot watch: ${escapeText(reason(err))}`);
    return EXIT_WATCH_FAILED;
  }
  return new Promise<number>((resolve) => {
    const stop = (code: number): void => {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      out.close();
      // Released in the background: the worker and the fds go with the process anyway.
      void watcher.close();
      resolve(code);
    };
    const onSignal = (): void => stop(0);
    // The kernel says when the reader of a pipe has gone (EPOLLERR on its write end).
    const out = new LineOutput(stop, (fd, gone) => theMonitor().watchFd(fd, (kind) => kind === 'error' && gone(), { readable: false, refd: false }));
    watcher.on('change', (e) => {
      if (json) {
        out.line(jsonLine(e));
        return;
      }
      const was = e.previous === null ? '' : `  (was ${e.previous})`;
      const why = e.reason === undefined ? '' : `  ${escapeText(e.reason)}`;
      out.line(`${new Date(e.time).toISOString()}  ${escapeText(e.target)}  ${e.state}${was}${why}`);
    });
    // Failures of the watching itself (it goes on by polling): one line each on stderr.
    watcher.on('error', (err) => say(escapeText(err.message)));
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

/** The commands' code, by name (their tables are in cli-commands.ts). */
const RUNNERS: Record<string, (parsed: Parsed) => number | Promise<number>> = {
  run: runRun,
  check: runCheck,
  status: runStatus,
  wait: runWait,
  watch: runWatch,
  serve: async (parsed) => (await import('./cli-serve.js')).runServe(parsed, { say }),
  completion: async (parsed) => (await import('./cli-completion.js')).runCompletion(parsed, { write }),
  help: ({ operands }) => {
    if (operands.length > 1) throw new UsageError(`help takes one command, not '${operands.join(' ')}'`);
    const [name] = operands;
    if (name === undefined) {
      write(1, overviewHelp());
      return 0;
    }
    const spec = findCommand(name);
    if (spec === undefined) throw new UsageError(unknownCommand(name));
    write(1, commandHelp(spec));
    return 0;
  },
  version: ({ operands }) => {
    if (operands.length > 0) throw new UsageError(`version takes no arguments, not '${operands.join(' ')}'`);
    write(1, `${version()}\n`);
    return 0;
  },
};

function unknownCommand(word: string): string {
  const names = COMMANDS.flatMap((c) => [c.name, ...c.aliases]);
  const near = suggestion(word, names);
  return `unknown command '${word}'${near === '' ? ' (try: proc-alive --help)' : near}`;
}

/** Runs the command line `args` (without node and the script) and returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const [word, ...rest] = args;
  const spec = word === undefined ? undefined : findCommand(word);
  try {
    if (spec !== undefined) {
      const parsed = parseArgs(spec, rest, spec.name === 'run' ? runOperandEndsOptions : undefined);
      if (parsed.help) {
        write(1, commandHelp(spec));
        return 0;
      }
      return await (RUNNERS[spec.name] as (parsed: Parsed) => number | Promise<number>)(parsed);
    }
    switch (word) {
      case '--help':
      case '-h':
        write(1, overviewHelp());
        return 0;
      // -V is what this CLI always printed its version with; -v and --version, what node and npm use.
      case '--version':
      case '-V':
      case '-v':
        write(1, `${version()}\n`);
        return 0;
      case undefined:
        throw new UsageError('no command (try: proc-alive --help)');
      default:
        throw new UsageError(word.startsWith('-') ? `unknown option '${word}' before the command (try: proc-alive --help)` : unknownCommand(word));
    }
  } catch (err) {
    if (err instanceof UsageError) {
      say(err.message);
      if (spec !== undefined) write(2, usageLines(spec));
      return EXIT_USAGE;
    }
    // Not one of the outcomes the command names: one line, and the command's code for "cannot" (never
    // 1, which says "dead" to a caller of check), never a stack trace.
    say(spec === undefined ? reason(err) : `${spec.name}: ${reason(err)}`);
    return spec?.failure ?? 1;
  }
}
