// Makes the calling process the runner: it holds the target's FIFO open for reading until it closes
// the holder or dies. The kernel drops the reader however the process ends, SIGKILL included.

import { ProcAliveError } from './errors.js';
import { closeReader, openReader, type Reader } from './kernel.js';
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
}

export interface Holder extends Disposable {
  /** The target as given. */
  readonly target: string;
  /** The FIFO's path. */
  readonly path: string;
  /** The reader's file descriptor: a plain number, never closed behind your back (e.g. on GC). */
  readonly fd: number;
  /** True once `close()` has run. */
  readonly closed: boolean;
  /**
   * Stops holding: closes the fd, then removes the FIFO unless `keep` was asked, the path now names
   * another FIFO, or another process still holds it. Idempotent.
   */
  close(): void;
}

const ALLOWED_MODE_BITS = 0o622;

function checkMode(mode: number): void {
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
  readonly #reader: Reader;
  readonly #keep: boolean;
  #closed = false;

  constructor(target: string, path: string, reader: Reader, keep: boolean) {
    this.target = target;
    this.path = path;
    this.#reader = reader;
    this.#keep = keep;
  }

  get fd(): number {
    return this.#reader.fd;
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeReader(this.path, this.#reader, !this.#keep);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Holds `target`: creates its FIFO if missing (reusing one left by a crash), refuses and leaves untouched
 * anything at the path that is not a FIFO, and opens it read-only, non-blocking and close-on-exec. It
 * never reads it. Throws a {@link ProcAliveError} when the target cannot be held.
 */
export function hold(target: string, options: HoldOptions = {}): Holder {
  const mode = options.mode ?? 0o600;
  checkMode(mode);
  const path = targetPath(target, true);
  return new FifoHolder(target, path, openReader(path, mode), options.keep ?? false);
}
