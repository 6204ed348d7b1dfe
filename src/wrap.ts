// Runs a command under a target: the target is alive from the command's start (or from when it says it
// is ready) until it exits, however it exits. The command itself holds the FIFO: it inherits the reader
// fd, and the wrapper closes its own copy. So the kernel drops the reader the instant the command ends,
// and a wrapper killed with SIGKILL leaves a command that still runs alive, as it should be.

import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { closeSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { ProcAliveError, aboutPath } from './errors.js';
import { checkMode, lockTarget } from './hold.js';
import { freshPathOf, openReader, releaseLock, removeIfDead, renameOver, unlinkQuiet, type Lock, type Reader } from './kernel.js';
import { newRecord, readRecord, removeRecord, restoreRecord, writeRecord, type HolderRecord } from './record.js';
import { targetPath } from './target.js';

/** The descriptors a wrapped command is given, also named in its environment. */
export const WRAP_FDS = { reader: 3, lock: 4, ready: 5 } as const;

/** The signals a wrapper passes on to its command when `forwardSignals` is set. */
export const FORWARDED_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const;

/** The wrapped command's process (a Node `ChildProcess`; typed narrowly so that types need no @types/node). */
export interface WrappedChild {
  readonly pid: number | undefined;
  kill(signal?: string | number): boolean;
}

export interface WrapOptions {
  /** Mode of the FIFO, as for `hold`. Default `0o600`. */
  mode?: number;
  /** Hold along with other shared holders, as for `hold`. Default false (exclusive). */
  shared?: boolean;
  /**
   * Readiness: the target turns alive only once the command writes a line to fd 5
   * (`$PROC_ALIVE_READY_FD`), e.g. `echo >&5` in a shell. Default false: alive once the command started.
   * Not with `shared` (other holders already make the target alive).
   */
  ready?: boolean;
  /** Pass SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 received by this process on to the command. */
  forwardSignals?: boolean;
  /** The command's environment. Default `process.env`. proc-alive adds its `PROC_ALIVE_*` variables. */
  env?: Record<string, string | undefined>;
}

export interface WrapExit {
  /** The command's exit code, or null if a signal ended it. */
  code: number | null;
  /** The signal that ended it (`'SIGKILL'`, ...), or null. */
  signal: string | null;
  /** What a shell would report: the code, or 128 + the signal's number. */
  status: number;
  /** True if the target was removed (exit 0, or ended by a signal this process forwarded). */
  clean: boolean;
}

export interface Wrapped {
  readonly target: string;
  readonly path: string;
  readonly child: WrappedChild;
  /** Resolves when the target turns alive; rejects if the command ends or fails to start first. */
  readonly alive: Promise<void>;
  /**
   * Resolves when the command has ended and the target is tidied up. Rejects with a ProcAliveError
   * (`ENOENT`: not found; `EACCES`: not executable) if it could not start.
   */
  readonly exited: Promise<WrapExit>;
}

/**
 * Starts `command` with `args` holding `target`. Throws what `hold` throws (EHELD for a target another
 * process holds) before anything is started.
 *
 * What keeps the target alive is whoever has the FIFO's reader open: the command, and any child of it
 * that inherits fd 3 and does not close it. A daemon that forks helpers which outlive it should close fd
 * 3 and fd 4 in them (`helper 3<&- 4<&- &` in a shell), or they keep the target alive and locked.
 *
 * When the command ends with 0, or by a signal this process forwarded, the FIFO, record and lock file are
 * removed (the target reads "absent"). Otherwise the FIFO stays ("dead": it crashed) and the record says
 * how it ended.
 */
export function wrap(target: string, command: string, args: string[], options: WrapOptions = {}): Wrapped {
  const mode = options.mode ?? 0o600;
  checkMode(mode);
  const shared = options.shared ?? false;
  const ready = options.ready ?? false;
  if (ready && shared) throw new ProcAliveError('EINVAL', 'ready cannot be combined with shared');
  const path = targetPath(target, true);
  const lock = lockTarget(path, shared);

  // Exclusive: the command gets a reader on a new FIFO under a private name, renamed over the target once
  // it runs (or is ready); until then the target reads as it did, and a command that cannot start leaves
  // it untouched. Shared: other holders may hold the FIFO at the path, so it is opened in place.
  const fresh = shared ? null : freshPathOf(path);
  const argv = [command, ...args];
  // What a crash left is put back if the command cannot start: the target stays as it was.
  const previous = shared ? null : readRecord(path);
  let reader: Reader;
  try {
    // A first record names this wrapper, so that a contender turned away by the lock can name it.
    if (!shared) writeRecord(path, newRecord(process.pid, argv, shared, process.pid));
    if (fresh !== null) unlinkQuiet(fresh, 'cannot remove a leftover FIFO'); // a wrapper's, killed before ready
    reader = openReader(fresh ?? path, mode);
  } catch (err) {
    releaseLock(lock, !shared, () => {
      if (!shared) restoreRecord(path, previous);
    });
    throw aboutPath(err, path);
  }

  let child: ChildProcess;
  try {
    child = spawn(command, args, {
      stdio: ['inherit', 'inherit', 'inherit', reader.fd, lock.fd, ...(ready ? (['pipe'] as const) : [])],
      env: {
        ...(options.env ?? process.env),
        PROC_ALIVE_TARGET: path,
        PROC_ALIVE_FD: String(WRAP_FDS.reader),
        PROC_ALIVE_LOCK_FD: String(WRAP_FDS.lock),
        ...(ready ? { PROC_ALIVE_READY_FD: String(WRAP_FDS.ready) } : {}),
      },
    });
  } catch (err) {
    // spawn throws synchronously only for arguments it rejects (a NUL byte, ...).
    closeSync(reader.fd);
    if (fresh !== null) unlinkQuiet(fresh, 'cannot remove the FIFO');
    releaseLock(lock, !shared, () => {
      if (!shared) restoreRecord(path, previous);
    });
    throw new ProcAliveError('EINVAL', `cannot run '${command}': ${(err as Error).message}`);
  }
  // Only the command holds the reader from now on; our copy would keep the target alive after it ends.
  closeSync(reader.fd);

  let record: HolderRecord | undefined;
  let placed = shared;
  const goLive = (): void => {
    if (child.pid === undefined || record !== undefined) return;
    record = newRecord(child.pid, argv, shared, process.pid);
    writeRecord(path, record);
    if (fresh !== null) renameOver(fresh, path);
    placed = true;
  };

  /** Once it runs (or is ready): alive, or, if the record or the rename failed, stopped. */
  const turnAlive = (): void => {
    try {
      goLive();
      setAlive();
    } catch (err) {
      // The command runs but cannot be made checkable: stop it rather than run it unseen.
      failAlive(err as Error);
      child.kill('SIGTERM');
    }
  };

  const forwarded = new Set<string>();
  const handlers = new Map<string, () => void>();
  if (options.forwardSignals) {
    for (const signal of FORWARDED_SIGNALS) {
      const handler = (): void => {
        forwarded.add(signal);
        child.kill(signal);
      };
      handlers.set(signal, handler);
      process.on(signal, handler);
    }
  }
  const unhook = (): void => {
    for (const [signal, handler] of handlers) process.removeListener(signal, handler);
    handlers.clear();
  };

  let setAlive!: () => void;
  let failAlive!: (err: Error) => void;
  const alive = new Promise<void>((resolve, reject) => {
    setAlive = resolve;
    failAlive = reject;
  });
  alive.catch(() => {}); // a user who awaits only `exited` must not get an unhandled rejection

  const exited = new Promise<WrapExit>((resolve, reject) => {
    const tidy = (clean: boolean, exit?: HolderRecord['exit']): void => {
      if (!placed && fresh !== null) unlinkQuiet(fresh, 'cannot remove the FIFO');
      releaseLock(lock, !shared, () => {
        if (!placed) {
          if (!shared) restoreRecord(path, previous); // our first record goes, what was there comes back
          return;
        }
        if (clean) {
          removeIfDead(path, reader);
          removeRecord(path);
        } else if (record !== undefined && exit !== undefined) {
          writeRecord(path, { ...record, exit });
        }
      });
    };

    child.once('error', (err: NodeJS.ErrnoException) => {
      if (child.pid !== undefined) return; // a failed kill(), say; 'exit' still comes
      unhook();
      const code = err.code ?? 'EIO';
      const why =
        code === 'ENOENT' ? 'command not found' : code === 'EACCES' ? 'permission denied (not executable?)' : err.message;
      const failure = new ProcAliveError(code, `cannot run '${command}': ${why}`, { cause: err });
      try {
        tidy(true);
      } catch {
        // the start failure is what the user needs to hear about
      }
      failAlive(failure);
      reject(failure);
    });

    child.once('spawn', () => {
      if (!ready) turnAlive();
    });

    if (ready) {
      const channel = readyChannel(child);
      let seen = '';
      channel?.on('data', (chunk: Buffer) => {
        if (record !== undefined) return;
        seen += chunk.toString('latin1');
        if (seen.includes('\n')) turnAlive();
      });
      channel?.on('error', () => {});
    }

    child.once('exit', (code, signal) => {
      unhook();
      const clean = code === 0 || (signal !== null && forwarded.has(signal));
      const status = code ?? 128 + (osConstants.signals[signal as NodeJS.Signals] ?? 0);
      // A grandchild that kept the ready channel open must not keep this process running.
      if (ready) readyChannel(child)?.destroy();
      if (!placed) failAlive(new ProcAliveError('ENOTREADY', `'${command}' ended before it was ready`, { path }));
      try {
        tidy(clean, { code, signal, at: new Date().toISOString() });
      } catch (err) {
        reject(err);
        return;
      }
      resolve({ code, signal, status, clean });
    });
  });

  const handle: WrappedChild = {
    get pid() {
      return child.pid;
    },
    kill: (signal) => child.kill(signal as NodeJS.Signals | number | undefined),
  };
  return { target, path, child: handle, alive, exited };
}

/** Our end of the readiness channel (Node makes it a socket pair, which `echo >&5` writes to as to a pipe). */
function readyChannel(child: ChildProcess): Readable | undefined {
  return (child.stdio as unknown as Array<Readable | null | undefined>)[WRAP_FDS.ready] ?? undefined;
}
