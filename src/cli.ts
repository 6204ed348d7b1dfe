// The command line: parses arguments, calls the library, maps outcomes to exit codes. It holds no logic
// of its own. `main` returns the exit code rather than exiting, so it can be tested in-process.

import { closeSync, constants as fsConstants, fstatSync, openSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import { checkSync, type State } from './check.js';
import { ProcAliveError } from './errors.js';
import type { EventEmitter } from 'node:events';
import type { Holder, HolderEvents } from './hold.js';
import type { Status } from './status.js';
import { defaultDir, targetPath } from './target.js';
import { escapeText, jsonLine } from './text.js';
import { setLongTimeout } from './timeout.js';
import { version } from './version.js';

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
/** `run -- command`: the command was found but cannot be run; not found (the shell's codes). */
export const EXIT_CANNOT_EXEC = 126;
export const EXIT_NOT_FOUND = 127;

const help = (): string => `Usage: proc-alive <command> [options]

Is a process alive right now? The process (the runner) holds a FIFO open for reading for its whole
life; a check opens the FIFO for writing without blocking: it succeeds only while a reader exists.
The kernel drops the reader however the runner ends, SIGKILL included. No PID, no polling.

Commands:
  run <target> [seconds]   (alias: runner) hold <target> until <seconds> pass (default: forever)
                           or SIGTERM/SIGINT; then remove the FIFO and exit 0
  run <target> -- <command> [args...]
                           start <command> holding <target>: alive while it runs, dead the instant
                           it ends; signals TERM INT HUP QUIT USR1 USR2 are passed on; exits with
                           its code (128+N if signal N ended it)
      --mode <octal>       mode of a FIFO it creates (default 0600; 0620 lets the group check)
      --shared             hold along with other --shared holders (alive while any lives);
                           default: exclusive, a second run on a held target exits 75
      --ready              (with a command) alive only once the command writes a line to fd 5
                           ($PROC_ALIVE_READY_FD), e.g. echo >&5
      --ready=fd:N         the same with fd N (5 to 255; $READY_FD), as s6's notification-fd
      --ready=notify       alive once the command sends READY=1 to $NOTIFY_SOCKET (sd_notify,
                           systemd-notify --ready): a socket made for it, where only the command
                           and its descendants are heard; STATUS= goes into the record
      --notify-fd <N>      once alive, write a newline to fd N and close it (s6 notification-fd,
                           dinit pipefd, OpenRC ready=fd)
                           Under systemd (Type=notify, $NOTIFY_SOCKET set), run sends READY=1 once
                           the target is alive and STOPPING=1 on a clean stop
  check <target>...        (alias: checker) say whether each target is alive
      --json               one JSON object per target per line: {"target","path","state",...}
      -q, --quiet          print nothing; use the exit code (usage errors are still printed)
  status [target...]       state and holder of each target (pid, uptime, command), or of every
                           target in the default directory; exit codes as for check
      --json               one JSON object per target per line: {"target","path","state","holder",...}
  wait <target>...         wait until every target is alive (no polling: the kernel tells);
                           a directory is a service directory, waited for through its supervise/ok
                           even before its run file or supervise/ exist
      --up | --down        wait for alive (default), or for dead or absent
      --any | --all        until any one target is there, or all of them (default)
      --timeout <seconds>  give up after this long: exit 99, naming what is not there yet
  watch <target or directory>...
                           print a line for each change of state, until SIGINT/SIGTERM (exit 0);
                           the first line of each target is its current state; a directory that is
                           not a service directory stands for the targets in it, as they come and go
                           (also one that does not exist yet); names are printed escaped (\n, \x1b)
      --json               one JSON object per change per line
  serve <target or directory>...
                           answer over HTTP from the watcher's memory, until SIGINT/SIGTERM (exit 0):
                           GET /healthz/<name> (200 alive, 503 not, 404 not served), /healthz (200
                           while all are alive), /metrics (Prometheus), /status (JSON), /events (SSE)
      --listen <address>   HOST:PORT or unix:PATH (a socket of mode 0600); default 127.0.0.1:19171
  --help, -h               this text
  --version, -V            the version

Targets:
  A target that contains a '/' is a path (/tmp/mah-pipe, ./web). A bare name (web) lives in the
  default directory: $PROC_ALIVE_DIR, else /run/proc-alive for root, else /tmp/proc-alive-<uid>
  (here: ${defaultDir()}). It must be a directory (not a symlink), owned by you or root, and not
  writable by group or others.
  A daemontools or runit service directory (one with supervise/ok) is alive while its supervisor runs.

Exit codes of check:
  0  alive    a process holds the FIFO
  1  dead     a FIFO with no reader: its holder crashed or was killed
  3  absent   no FIFO: stopped cleanly, or never started
  4  unknown  cannot tell (not a FIFO, permission denied, ...); stderr says why
  2  usage error
  With several targets: 4 if any cannot be told, else 1 if any is dead, else 3 if any is absent,
  else 0 (all alive).

Exit codes of wait:
  0  reached   99  timed out   2  usage error   4  a target cannot be told (stderr says why)

Exit codes of watch:
  0    stopped by SIGINT or SIGTERM
  2    usage error
  141  the reader of its output went away (as a process killed by SIGPIPE: watch ... | head -1)
  74   its output is not being read: more than 1 MiB of lines waited (one line on stderr says so)

Exit codes of serve:
  0  stopped by SIGTERM/SIGINT   2  usage error (also: two targets with one name)
  125  cannot serve (address in use, permission denied, unsafe directory, ...); stderr says why

Exit codes of run:
  0    held, then released after <seconds> or on SIGTERM/SIGINT (the FIFO is removed)
  N    with a command: the command's exit code, or 128+N if signal N ended it
  2    usage error
  75   another process holds the target (stderr names its pid when known)
  125  could not hold the target; stderr says why
  126  the command cannot be run (not executable)
  127  the command was not found
  A command that exits 0, or that a forwarded signal ended, leaves the target absent; any other
  end leaves it dead (crashed), with how it ended in its record (see status).
`;

class UsageError extends Error {}

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
      out.push(jsonLine(record));
    } else if (error === undefined) {
      out.push(`${escapeText(target)}: ${state}`);
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
  // Everything after '--' is the command, never our options.
  const dash = args.indexOf('--');
  const command = dash >= 0 ? args.slice(dash + 1) : undefined;
  // `--ready` alone (fd 5) or `--ready=fd:N` / `--ready=notify`: the form with '=' only, since a bare
  // `--ready` must not take the next argument as its value.
  const options = dash >= 0 ? args.slice(0, dash) : args;
  const readyForms = options.filter((a) => a.startsWith('--ready='));
  const { flags, values, operands } = parse(options.filter((a) => !a.startsWith('--ready=')), ['--shared', '--ready'], ['--mode', '--notify-fd']);
  if (operands.length === 0) throw new UsageError('run needs a target');
  const [target, secondsText] = operands as [string, string | undefined];
  if (target === '') throw new UsageError('empty target: give a path or a name');
  const mode = parseMode(values.get('--mode'));
  const shared = flags.has('--shared');
  if (readyForms.length + (flags.has('--ready') ? 1 : 0) > 1) throw new UsageError('--ready is given more than once');
  const ready = flags.has('--ready') || parseReady(readyForms[0]);
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
  if (operands.length > 2) throw new UsageError(`run takes a target and seconds, not '${operands.slice(2).join(' ')}'`);
  if (ready !== false) throw new UsageError("--ready needs a command: run <target> --ready -- <command>");
  const seconds = parseSeconds(secondsText);
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
    const timer = setLongTimeout(finish, seconds === undefined ? Number.POSITIVE_INFINITY : seconds * 1000);
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
function parseReady(form: string | undefined): false | 'notify' | { fd: number } {
  if (form === undefined) return false;
  const value = form.slice('--ready='.length);
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

/** "3m12s": the two largest units of a duration. */
function duration(ms: number): string {
  let s = Math.max(0, Math.floor(ms / 1000));
  const units: Array<[string, number]> = [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]];
  const parts: string[] = [];
  for (const [unit, size] of units) {
    if (s >= size || (unit === 's' && parts.length === 0)) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join('');
}

/** The part of a status line after the state: who holds it, or who held it (escaped: it is from a file). */
function describe(st: Status, now: number): string {
  const h = st.holder;
  const problem = st.recordProblem === undefined ? '' : `(record ignored: ${st.recordProblem})`;
  if (h === null) return problem || (st.state === 'alive' ? 'no record (not held by proc-alive run)' : '');
  const since = duration(now - Date.parse(h.started));
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

async function runStatus(args: string[]): Promise<number> {
  const { flags, operands } = parse(args, ['--json']);
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
        out.push(jsonLine({ target: name, path: listed ? target : null, state: 'unknown', code: (err as ProcAliveError).code ?? 'EIO', error: reason(err) }));
      } else {
        rows.push([escapeText(name), 'unknown', '']);
      }
      continue;
    }
    seen.add(CHECK_EXIT[st.state]);
    if (json) out.push(jsonLine({ ...st, target: name }));
    else rows.push([escapeText(name), st.state, describe(st, now)]);
  }
  const width = Math.max(0, ...rows.map(([n]) => n.length));
  for (const [n, state, rest] of rows) out.push(`${n.padEnd(width)}  ${state.padEnd(7)}  ${rest}`.trimEnd());
  if (out.length > 0) write(1, `${out.join('\n')}\n`);
  for (const code of [CHECK_EXIT.unknown, CHECK_EXIT.dead, CHECK_EXIT.absent]) if (seen.has(code)) return code;
  return CHECK_EXIT.alive;
}

/** Parses `--timeout <seconds>`: a non-negative decimal number. */
function parseTimeout(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+(\.\d+)?$/.test(text)) throw new UsageError(`--timeout takes a number of seconds, not '${text}'`);
  return Number(text) * 1000;
}

async function runWait(args: string[]): Promise<number> {
  const { flags, values, operands } = parse(args, ['--up', '--down', '--any', '--all'], ['--timeout']);
  if (operands.length === 0) throw new UsageError('wait needs at least one target');
  if (operands.includes('')) throw new UsageError('empty target: give a path or a name');
  if (flags.has('--up') && flags.has('--down')) throw new UsageError('--up and --down cannot be combined');
  if (flags.has('--any') && flags.has('--all')) throw new UsageError('--any and --all cannot be combined');
  const timeout = parseTimeout(values.get('--timeout'));
  const { waitAlive, waitDead } = await import('./wait.js');
  const options = { any: flags.has('--any'), ...(timeout === undefined ? {} : { timeout }) };
  try {
    await (flags.has('--down') ? waitDead : waitAlive)(operands, options);
    return 0;
  } catch (err) {
    if (err instanceof ProcAliveError && err.code === 'EINVAL' && err.path === undefined) throw new UsageError(err.message);
    if (err instanceof ProcAliveError && err.code === 'ETIMEDOUT') {
      say(`timed out: ${escapeText(err.message)}`);
      return EXIT_TIMEOUT;
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

async function runWatch(args: string[]): Promise<number> {
  const { flags, operands } = parse(args, ['--json']);
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
    throw err;
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
        out.line(jsonLine({ ...e, time: new Date(e.time).toISOString() }));
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
      case 'status':
        return await runStatus(rest);
      case 'wait':
        return await runWait(rest);
      case 'watch':
        return await runWatch(rest);
      case 'serve':
        return await (await import('./cli-serve.js')).runServe(rest, { parse, say, UsageError });
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
