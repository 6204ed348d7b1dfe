// Makes the calling process the runner: it holds the target's FIFO open for reading until it closes
// the holder or dies. The kernel drops the reader however the process ends, SIGKILL included.

import { ProcAliveError } from './errors.js';
import {
  acquireLock,
  closeReader,
  openFreshReader,
  openReader,
  probeFs,
  refuseNonFifo,
  releaseLock,
  removeIfDead,
  type Lock,
  type Reader,
} from './kernel.js';
import { newRecord, readRecord, removeRecord, restoreRecord, writeRecord } from './record.js';
import { targetPath } from './target.js';

export interface HoldOptions {
  /**
   * Mode of a FIFO this call creates, set exactly whatever the umask. Default `0o600`. Owner read and
   * write are required; write for group (`0o620`) or others (`0o602`) lets them check. Read for group or
   * others is refused: whoever can read the FIFO can hold it and fake liveness. An existing FIFO keeps its
   * mode.
   */
  mode?: number;
  /** Leave the FIFO in place on close, so checkers see `'dead'` rather than `'absent'`. Default false. */
  keep?: boolean;
  /**
   * Hold along with other shared holders (a pool of workers): the target is alive while any of them
   * lives. Default false: exclusive, a second holder fails with `EHELD` while this one lives.
   */
  shared?: boolean;
}

export interface Holder extends Disposable {
  /** The target as given. */
  readonly target: string;
  /** The FIFO's path. */
  readonly path: string;
  /** The reader's file descriptor: a plain number, never closed behind your back (e.g. on GC). */
  readonly fd: number;
  /** The lock file's descriptor (`.<name>.lock` next to the FIFO), a plain number too. */
  readonly lockFd: number;
  /** Whether held with `shared`. */
  readonly shared: boolean;
  /** True once `close()` has run. */
  readonly closed: boolean;
  /**
   * Stops holding: closes the fd; then, if no other holder remains, removes the FIFO (unless `keep` was
   * asked, the path now names another FIFO, or a process that is not a proc-alive holder still holds
   * it), the holder record and the lock file. Idempotent.
   */
  close(): void;
}

const ALLOWED_MODE_BITS = 0o622;

export function checkMode(mode: number): void {
  if (!Number.isInteger(mode) || (mode & ~ALLOWED_MODE_BITS) !== 0 || (mode & 0o600) !== 0o600) {
    const shown = Number.isInteger(mode) && mode >= 0 ? `0${mode.toString(8)}` : String(mode);
    throw new ProcAliveError(
      'EINVAL',
      `mode ${shown} is not allowed: it must be 0600, plus write for group (0620) or others (0602) at most; ` +
        'read for them would let them hold the FIFO and fake liveness',
    );
  }
}

class FifoHolder implements Holder {
  readonly target: string;
  readonly path: string;
  readonly shared: boolean;
  readonly #reader: Reader;
  readonly #lock: Lock;
  readonly #keep: boolean;
  #closed = false;

  constructor(target: string, path: string, reader: Reader, lock: Lock, shared: boolean, keep: boolean) {
    this.target = target;
    this.path = path;
    this.shared = shared;
    this.#reader = reader;
    this.#lock = lock;
    this.#keep = keep;
  }

  get fd(): number {
    return this.#reader.fd;
  }

  get lockFd(): number {
    return this.#lock.fd;
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      closeReader(this.path, this.#reader);
    } catch (err) {
      // Our fd number was closed behind our back and may be someone else's FIFO now: tidy nothing.
      releaseLock(this.#lock, !this.shared, () => {});
      throw err;
    }
    releaseLock(this.#lock, !this.shared, () => {
      if (!this.#keep) removeIfDead(this.path, this.#reader);
      removeRecord(this.path);
    });
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** The error for a target someone else holds, naming them when their record does. */
export function heldError(path: string, foreign: boolean): ProcAliveError {
  const record = readRecord(path);
  const who = record === null ? '' : ` by pid ${record.pid} (${record.command.join(' ')})`;
  const reason = foreign && record === null ? 'already held by a process that keeps no record (not proc-alive)' : `already held${who}`;
  return new ProcAliveError('EHELD', reason, { path });
}

/**
 * Takes the target's lock, then makes sure no one holds the FIFO without it (a C runner, a wrapped
 * command whose wrapper was killed): the two steps together are race-free, since every proc-alive
 * holder takes the lock first. Returns the lock; throws EHELD if the target is taken.
 */
export function lockTarget(path: string, shared: boolean): Lock {
  refuseNonFifo(path);
  const lock = acquireLock(path, !shared);
  if (lock === null) throw heldError(path, false);
  try {
    // Something else may have been put at the path since refuseNonFifo: probeFs throws for it.
    if (!shared && probeFs(path) === 'alive') throw heldError(path, true);
  } catch (err) {
    releaseLock(lock, !shared, () => {});
    throw err;
  }
  return lock;
}

/**
 * Holds `target`: creates its FIFO if missing (reusing one left by a crash), refuses and leaves untouched
 * anything at the path that is not a FIFO, and opens it read-only, non-blocking and close-on-exec. It
 * never reads it. Exclusive unless `shared`: a target that another process holds throws `EHELD`. Writes
 * the holder record (`.<name>.json`). Throws a {@link ProcAliveError} when the target cannot be held.
 */
export function hold(target: string, options: HoldOptions = {}): Holder {
  const mode = options.mode ?? 0o600;
  checkMode(mode);
  const shared = options.shared ?? false;
  const path = targetPath(target, true);
  const lock = lockTarget(path, shared);
  const previous = readRecord(path);
  let reader: Reader;
  try {
    // The record first, so that a contender turned away by the lock can name us.
    writeRecord(path, newRecord(process.pid, process.argv, shared));
    reader = shared ? openReader(path, mode) : openFreshReader(path, mode);
  } catch (err) {
    releaseLock(lock, !shared, () => {
      if (!shared) restoreRecord(path, previous);
    });
    throw err;
  }
  return new FifoHolder(target, path, reader, lock, shared, options.keep ?? false);
}
