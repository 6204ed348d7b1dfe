// Runs a command under a target: the target is alive from the command's start (or from when it says it
// is ready) until it ends. The command holds the FIFO: it inherits the reader as fd 3 (and the lock as
// fd 4), so a wrapper killed with SIGKILL leaves a command that still runs alive, as it should be. The
// wrapper keeps the same reader open too, until it has seen the command end: then it removes the FIFO
// before letting go (a clean stop reads alive → absent, never dead), or lets go and leaves it (a crash
// reads dead). The price: a command's death reads dead when the wrapper has seen it, a fraction of a
// millisecond later, not at the very instant (later if the wrapper is stopped).

import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import { constants as osConstants } from 'node:os';
import { checkFd, checkOptions, invalidArgument, targetArgument } from './arguments.js';
import { ProcAliveError } from './errors.js';
import { Claim, checkMode, type HolderEvents } from './hold.js';
import { NotifySocket, STATUS_MAX, upward, type Upward } from './notify.js';
import { newRecord, type HolderRecord } from './record.js';
import { escapeText } from './text.js';

/** The descriptors a wrapped command is given, also named in its environment. */
export const WRAP_FDS = { reader: 3, lock: 4, ready: 5 } as const;

/** The highest fd number `ready: { fd }` takes (Node opens every fd up to it in the child). */
const READY_FD_MAX = 255;

/** The signals a wrapper passes on to its command when `forwardSignals` is set. */
export const FORWARDED_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const;

/** What a wrapped command's stdin, stdout and stderr are (as for child_process.spawn). */
export type WrapStdio = 'inherit' | 'pipe' | 'ignore' | ['inherit' | 'pipe' | 'ignore', 'inherit' | 'pipe' | 'ignore', 'inherit' | 'pipe' | 'ignore'];

export interface WrapOptions {
  /** Mode of the FIFO, as for `hold`. */
  mode?: number;
  /** Hold along with other shared holders, as for `hold`. Default false (exclusive). */
  shared?: boolean;
  /**
   * Readiness: when the target turns alive. Default false: once the command has started. `true`: once
   * it writes a line to fd 5 (`$PROC_ALIVE_READY_FD`), e.g. `echo >&5` in a shell. `{ fd: N }`: once it
   * writes a line to fd N (`$READY_FD`; s6's notification-fd, dinit's pipefd). `'notify'`: once it sends
   * `READY=1` to `$NOTIFY_SOCKET` (sd_notify(3), systemd-notify(1)), a socket made for it alone (see
   * README, Readiness). Not with `shared` (other holders already make the target alive).
   */
  ready?: boolean | 'notify' | { fd: number };
  /**
   * Tell this process's own service manager, if `$NOTIFY_SOCKET` is in `process.env` (a systemd
   * `Type=notify` service): `READY=1` once the target is alive, the command's `STATUS=` passed on,
   * `STOPPING=1` at a clean stop. The command is then not given that `$NOTIFY_SOCKET`. Default false.
   */
  notify?: boolean;
  /**
   * Write a newline to this fd, and close it, once the target is alive (s6's notification-fd, dinit's
   * pipefd, OpenRC's ready=fd). Made close-on-exec first, so the command cannot write it.
   */
  notifyFd?: number;
  /** Pass SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 received by this process on to the command. */
  forwardSignals?: boolean;
  /**
   * The command's environment, replacing `process.env` as `child_process.spawn`'s `env` does (unless
   * `extendEnv`). proc-alive adds its `PROC_ALIVE_*` variables. Default: `process.env`.
   */
  env?: Record<string, string | undefined>;
  /**
   * Merge `env` into `process.env` (as execa does by default) rather than replace it; a variable set to
   * `undefined` in `env` is then removed. Default false: a daemon gets what you say, as with spawn.
   */
  extendEnv?: boolean;
  /** The command's working directory. Default: this process's. */
  cwd?: string;
  /** The command's stdin, stdout and stderr. Default `'inherit'`; `'pipe'` gives `child.stdout` etc. */
  stdio?: WrapStdio;
  /** Stop the command (with `killSignal`) when this signal aborts; a stop asked for is a clean stop. */
  signal?: AbortSignal;
  /** The signal `signal` stops the command with. Default `'SIGTERM'`. */
  killSignal?: NodeJS.Signals;
}

export interface WrapExit {
  /** The command's exit code, or null if a signal ended it. */
  code: number | null;
  /** The signal that ended it (`'SIGKILL'`, ...), or null. */
  signal: string | null;
  /** What a shell would report: the code, or 128 + the signal's number. */
  status: number;
  /** True if the target was removed (exit 0, or ended by a signal this process passed on or sent). */
  clean: boolean;
}

export interface Wrapped extends EventEmitter<HolderEvents> {
  readonly target: string;
  readonly path: string;
  /** The command's process: pid, kill(), its streams when `stdio` is `'pipe'`. */
  readonly child: ChildProcess;
  /** Resolves when the target turns alive; rejects if the command ends or fails to start first. */
  readonly alive: Promise<void>;
  /**
   * Resolves when the command has ended and the target is tidied up, with the command's outcome (a
   * clean-up failure is a 'warning' event, never a rejection). Rejects with a ProcAliveError (`ENOENT`:
   * not found; `EACCES`: not executable) if it could not start.
   */
  readonly exited: Promise<WrapExit>;
}

class WrappedCommand extends EventEmitter<HolderEvents> implements Wrapped {
  readonly target: string;
  path = '';
  child!: ChildProcess;
  alive!: Promise<void>;
  exited!: Promise<WrapExit>;

  constructor(target: string) {
    super();
    this.target = target;
  }
}

/**
 * Starts `command` with `args` holding `target`. Throws what `hold` throws (EHELD for a target another
 * process holds) before anything is started.
 *
 * What keeps the target alive is whoever has the FIFO's reader open: the command, and any child of it
 * that inherits fd 3 and does not close it. A daemon that forks helpers which outlive it should close fd
 * 3 and fd 4 in them (`helper 3<&- 4<&- &` in a shell), or they keep the target alive and locked.
 *
 * When the command ends with 0, or by a signal this process passed on, the FIFO, record and lock file
 * are removed (the target reads "absent"). Otherwise the FIFO stays ("dead": it crashed) and the record
 * says how it ended.
 */
export function wrap(target: string, command: string, args?: readonly string[], options?: WrapOptions): Wrapped;
/** The same, without arguments: `wrap('web', 'server', { ready: true })`. */
export function wrap(target: string, command: string, options?: WrapOptions): Wrapped;
/** The same, the command and its arguments in one array (as `run web -- node server.js` takes them). */
export function wrap(target: string, argv: readonly [string, ...string[]], options?: WrapOptions): Wrapped;
export function wrap(
  target: string,
  commandOrArgv: string | readonly string[],
  argsOrOptions?: readonly string[] | WrapOptions,
  maybeOptions?: WrapOptions,
): Wrapped {
  targetArgument(target);
  let command: string;
  let args: readonly string[];
  let given: WrapOptions | undefined;
  if (Array.isArray(commandOrArgv)) {
    [command = '', ...args] = stringsArgument(commandOrArgv, 'command');
    given = argsOrOptions as WrapOptions | undefined;
    if (maybeOptions !== undefined) throw invalidArgument('the fourth argument', 'absent when the command is an array', maybeOptions);
  } else if (typeof commandOrArgv === 'string') {
    command = commandOrArgv;
    const optionsThird = argsOrOptions !== undefined && !Array.isArray(argsOrOptions) && typeof argsOrOptions === 'object' && maybeOptions === undefined;
    args = argsOrOptions === undefined || optionsThird ? [] : stringsArgument(argsOrOptions, 'args');
    given = optionsThird ? (argsOrOptions as WrapOptions) : maybeOptions;
  } else {
    throw invalidArgument('command', 'a string or an array of strings', commandOrArgv);
  }
  if (command === '') throw new ProcAliveError('EINVAL', 'command must be a non-empty string');
  const options = checkOptions(given, {
    mode: checkMode,
    shared: 'boolean',
    ready: (value) => void readyFdOf(value),
    notify: 'boolean',
    notifyFd: checkFd,
    forwardSignals: 'boolean',
    env: 'object',
    extendEnv: 'boolean',
    cwd: 'string',
    stdio: checkStdio,
    signal: 'AbortSignal',
    killSignal: checkSignal,
  });
  const shared = options.shared ?? false;
  const ready = options.ready ?? false;
  const readyFd = readyFdOf(ready);
  const readyNotify = ready === 'notify';
  if (ready !== false && shared) throw new ProcAliveError('EINVAL', 'ready cannot be combined with shared');
  if (options.signal?.aborted) throw new ProcAliveError('ABORT_ERR', 'aborted before the command started');
  const w = new WrappedCommand(target);
  const emit = <K extends keyof HolderEvents>(event: K, ...payload: HolderEvents[K]): void => {
    process.nextTick(() => (w.emit as (e: string, ...a: unknown[]) => boolean)(event, ...payload));
  };

  // Signals first: one that arrives while the target is set up must not end this process the default
  // way (losing the record, orphaning the command). It is queued, and passed on once the command runs.
  const stopping = new Set<string>();
  const queued: NodeJS.Signals[] = [];
  let child: ChildProcess | undefined;
  const pass = (signal: NodeJS.Signals): void => {
    stopping.add(signal);
    if (child?.pid === undefined) queued.push(signal);
    else child.kill(signal); // EPERM comes as an 'error' event, handled below
  };
  const handlers = new Map<string, () => void>();
  if (options.forwardSignals) {
    for (const signal of FORWARDED_SIGNALS) {
      const handler = (): void => pass(signal);
      handlers.set(signal, handler);
      process.on(signal, handler);
    }
  }
  const onAbort = (): void => pass(options.killSignal ?? 'SIGTERM');
  const unhook = (): void => {
    for (const [signal, handler] of handlers) process.removeListener(signal, handler);
    handlers.clear();
    options.signal?.removeEventListener('abort', onAbort);
  };

  // Both before the target is touched: a notification fd that is not there, or a system without unix
  // datagram sockets, is refused up front.
  let up: Upward | null = null;
  let socket: NotifySocket | undefined;
  let claim: Claim;
  try {
    up = upward({ notify: options.notify, notifyFd: options.notifyFd }, (err) => emit('warning', err));
    if (readyNotify) socket = NotifySocket.open();
    claim = Claim.take(target, options.mode, shared);
  } catch (err) {
    socket?.close();
    unhook();
    throw err;
  }
  claim.events = emit;
  claim.guard();
  const path = claim.path;
  w.path = path;
  const argv = [command, ...args];
  // A first record names this wrapper, so that a contender turned away by the lock can name it.
  if (!shared) claim.writeRecord(newRecord(process.pid, argv, shared, process.pid));

  const stdio = options.stdio ?? 'inherit';
  const std: StdioOptions = typeof stdio === 'string' ? [stdio, stdio, stdio] : [...stdio];
  // The ready fd, where asked for: fds between the lock and it are not opened in the command.
  const extra: unknown[] = readyFd === undefined ? [] : [...Array<string>(readyFd - WRAP_FDS.ready).fill('ignore'), 'pipe'];
  // env replaces process.env, as spawn's does; with extendEnv it is merged in, as execa's is.
  const env: Record<string, string | undefined> = {
    ...(options.env === undefined ? process.env : options.extendEnv ? { ...process.env, ...options.env } : options.env),
  };
  // The service manager's socket is ours to speak on (or the command gets its own): a command that
  // said READY=1 to it directly would make the unit ready before the target is alive.
  if (up !== null || readyNotify) delete env['NOTIFY_SOCKET'];
  try {
    child = spawn(command, [...args], {
      stdio: [...(std as unknown[]), claim.readerFd, claim.lockFd, ...extra] as StdioOptions,
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      env: {
        ...env,
        PROC_ALIVE_TARGET: path,
        PROC_ALIVE_FD: String(WRAP_FDS.reader),
        PROC_ALIVE_LOCK_FD: String(WRAP_FDS.lock),
        ...(readyFd === undefined ? {} : { PROC_ALIVE_READY_FD: String(readyFd), READY_FD: String(readyFd) }),
        ...(socket === undefined ? {} : { NOTIFY_SOCKET: socket.path }),
      },
    });
  } catch (err) {
    // spawn throws synchronously only for arguments it rejects (a NUL byte, ...).
    unhook();
    socket?.close();
    claim.release({ clean: true });
    throw new ProcAliveError('EINVAL', `cannot run '${escapeText(command)}': ${(err as Error).message}`);
  }
  const started = child;
  w.child = started;
  options.signal?.addEventListener('abort', onAbort, { once: true });

  let setAlive!: () => void;
  let failAlive!: (err: Error) => void;
  w.alive = new Promise<void>((resolve, reject) => {
    setAlive = resolve;
    failAlive = reject;
  });
  w.alive.catch(() => {}); // a caller who awaits only `exited` must not get an unhandled rejection

  let record: HolderRecord | undefined;
  /** What the command last said of itself (STATUS=), kept in the record. */
  let said: string | undefined;
  /** It said STOPPING=1: a READY=1 after that no longer makes it alive. */
  let saidStopping = false;
  /** Once it runs (or is ready): alive, or, if it cannot be made checkable, stopped rather than run unseen. */
  const turnAlive = (): void => {
    if (started.pid === undefined || record !== undefined) return;
    record = newRecord(started.pid, argv, shared, process.pid);
    if (said !== undefined) record.status = said;
    claim.writeRecord(record);
    try {
      claim.place();
    } catch (err) {
      failAlive(err as Error);
      started.kill('SIGTERM');
      return;
    }
    claim.check();
    setAlive();
    up?.ready(path, started.pid);
  };
  let recordDue = false;
  let ended = false;
  /** STATUS= into the record: written at most once per turn of the event loop, however many came. */
  const setStatus = (text: string): void => {
    said = text.length > STATUS_MAX ? `${text.slice(0, STATUS_MAX - 1)}…` : text;
    if (record === undefined || recordDue) return;
    recordDue = true;
    setImmediate(() => {
      recordDue = false;
      if (record === undefined || said === undefined || ended) return;
      record.status = said;
      claim.writeRecord(record);
    });
  };

  w.exited = new Promise<WrapExit>((resolve, reject) => {
    started.on('error', (err: NodeJS.ErrnoException) => {
      if (started.pid !== undefined) {
        // A signal that could not be passed on: the command changed its user (sudo, a setuid program).
        emit('warning', new ProcAliveError(err.code ?? 'EIO', `cannot pass a signal on to the command (pid ${started.pid}): ${err.message}`, { path }));
        return;
      }
      const code = err.code ?? 'EIO';
      const why =
        code === 'ENOENT' ? 'command not found' : code === 'EACCES' ? 'permission denied (not executable?)' : err.message;
      const failure = new ProcAliveError(code, `cannot run '${escapeText(command)}': ${why}`, { cause: err });
      socket?.close();
      for (const problem of claim.release({ clean: true })) emit('warning', problem);
      unhook();
      failAlive(failure);
      reject(failure);
    });

    started.once('spawn', () => {
      for (const signal of queued.splice(0)) started.kill(signal);
      if (ready === false) turnAlive();
    });

    if (socket !== undefined && started.pid !== undefined) {
      socket.listen(started.pid, {
        ready: () => {
          if (!saidStopping) turnAlive();
        },
        stopping: () => {
          saidStopping = true;
          if (said === undefined) setStatus('stopping');
          up?.stopping();
        },
        status: (text) => {
          setStatus(text);
          up?.status(text);
        },
        ignored: (code, why) => emit('warning', new ProcAliveError(code, why, { path })),
      });
    }

    if (readyFd !== undefined) {
      const channel = readyChannel(started, readyFd);
      let seen = '';
      channel?.on('data', (chunk: Buffer) => {
        if (record !== undefined) return;
        seen += chunk.toString('latin1');
        if (seen.includes('\n')) turnAlive();
      });
      channel?.on('error', () => {});
    }

    started.once('exit', (code, signal) => {
      const clean = code === 0 || (signal !== null && stopping.has(signal));
      const status = code ?? 128 + (osConstants.signals[signal as NodeJS.Signals] ?? 0);
      // A grandchild that kept the ready channel open must not keep this process running.
      if (readyFd !== undefined) readyChannel(started, readyFd)?.destroy();
      // Its last words count: a READY=1 sent just before it ended is in the socket's queue.
      socket?.drain();
      socket?.close();
      if (clean && record !== undefined && !saidStopping) up?.stopping();
      ended = true;
      if (record === undefined) failAlive(new ProcAliveError('ENOTREADY', `'${escapeText(command)}' ended before it was ready`, { path }));
      for (const problem of claim.release({ clean, exit: { code, signal, at: new Date().toISOString() } })) emit('warning', problem);
      // Only now: while the handlers are there, a second SIGTERM during the clean-up is passed on (to a
      // command that is gone: ignored), not the default action that would end us half-way.
      unhook();
      resolve({ code, signal, status, clean });
    });
  });
  w.exited.catch(() => {}); // nor one who awaits only `alive`
  return w;
}

/** Our end of the readiness channel (Node makes it a socket pair, which `echo >&5` writes to as to a pipe). */
function readyChannel(child: ChildProcess, fd: number): Readable | undefined {
  return (child.stdio as unknown as Array<Readable | null | undefined>)[fd] ?? undefined;
}

/** The fd a `ready` option reads, if it is one of the fd forms; throws EINVAL for a form that is not. */
function readyFdOf(ready: unknown): number | undefined {
  if (ready === false || ready === 'notify') return undefined;
  if (ready === true) return WRAP_FDS.ready;
  if (typeof ready === 'object' && ready !== null && 'fd' in ready) {
    const fd = (ready as { fd: unknown }).fd;
    if (!Number.isInteger(fd) || (fd as number) < 3 || (fd as number) > READY_FD_MAX) {
      throw new ProcAliveError('EINVAL', `ready fd must be a number from 5 to ${READY_FD_MAX}, not ${escapeText(String(fd))}`);
    }
    if (fd === WRAP_FDS.reader || fd === WRAP_FDS.lock) {
      throw new ProcAliveError('EINVAL', `ready fd ${fd as number} is taken: the command gets the FIFO's reader as fd 3 and its lock as fd 4`);
    }
    return fd as number;
  }
  throw new ProcAliveError('EINVAL', `ready must be true, false, 'notify' or { fd: N }, not ${escapeText(typeof ready === 'string' ? `'${ready}'` : String(ready))}`);
}

/** An array of strings (a command line), copied. */
function stringsArgument(value: unknown, what: string): string[] {
  if (!Array.isArray(value)) throw invalidArgument(what, 'an array of strings', value);
  value.forEach((a, i) => {
    if (typeof a !== 'string') throw invalidArgument(`${what}[${i}]`, 'a string', a);
  });
  return [...(value as string[])];
}

const STDIO = new Set(['inherit', 'pipe', 'ignore']);

function checkStdio(value: unknown, what: string): void {
  const ok = (v: unknown): boolean => typeof v === 'string' && STDIO.has(v);
  if (ok(value) || (Array.isArray(value) && value.length === 3 && value.every(ok))) return;
  throw invalidArgument(what, "'inherit', 'pipe', 'ignore', or an array of three of them", value);
}

function checkSignal(value: unknown, what: string): void {
  if (typeof value !== 'string' || !(value in osConstants.signals)) throw invalidArgument(what, "a signal's name such as 'SIGTERM'", value);
}
