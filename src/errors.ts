// The one error class of proc-alive. Expected outcomes (a dead or absent target) are values, never
// errors: a ProcAliveError always means "could not do it" or, for a check, "cannot tell".

/**
 * Codes a {@link ProcAliveError} carries: proc-alive's own, then the errno names it passes on from the
 * kernel (a check that cannot tell, a path that cannot be held or watched).
 */
export type ProcAliveErrorCode =
  /** Something that is not a FIFO is at the path (regular file, directory, socket, device). */
  | 'ENOTFIFO'
  /** The default directory is not owned by the user (or root), or is writable by group or others. */
  | 'EUNSAFEDIR'
  /**
   * An argument of the wrong type (`checkSync(123)`, `hold(t, { mode: '0600' })`: the message names the
   * argument, what it must be and what it got), an empty or `.`/`..` target, or an option whose value
   * makes no sense (a mode that lets others read).
   */
  | 'EINVAL'
  /** No way to create a FIFO here: koffi did not load and no `mkfifo` program was found. */
  | 'ENOMKFIFO'
  /** Another process holds the target (exclusive hold, or an exclusive holder when asking for shared). */
  | 'EHELD'
  /** The lock file (`.<name>.lock` next to the FIFO) is not a regular file. */
  | 'EBADLOCK'
  /** No way to lock here: koffi did not load and no `flock` program was found, or flock failed. */
  | 'ENOLOCK'
  /** A wrapped command ended before it said it was ready. */
  | 'ENOTREADY'
  /**
   * Not possible on this system: the readiness forms over unix datagram sockets (`ready: 'notify'`,
   * `notify`, `sdNotify`) and `notifyFd` need 64-bit Linux and the FFI (koffi); a `NOTIFY_SOCKET` on
   * vsock is not supported.
   */
  | 'ENOTSUP'
  /** A file or FIFO another user owns (or one with several hard links), which proc-alive will not use. */
  | 'EFOREIGN'
  /** Something at a name proc-alive uses is not a regular file (a record, a lock file). */
  | 'ENOTFILE'
  /** A holder's directory was moved or replaced since it was opened (platforms without /proc). */
  | 'EMOVED'
  /** Two served targets would have one name (`serve`). */
  | 'EDUPNAME'
  /** Something at a `unix:` listen path that is not a socket (`serve`). */
  | 'ENOTSOCK'
  /** A wait's timeout passed first; `err.pending` says what was not reached (see {@link WaitTimeoutError}). */
  | 'ETIMEDOUT'
  /**
   * Watching itself failed: the event worker ended without being asked, or could not start. Waits and
   * watchers go on by polling (a watcher's `'error'` event says so).
   */
  | 'EWATCH'
  /** `wrap()` was given an AbortSignal that had already aborted: nothing was started. */
  | 'ABORT_ERR'
  // The kernel's, passed on:
  | 'EACCES'
  | 'EPERM'
  | 'ELOOP'
  | 'ENAMETOOLONG'
  | 'ENOTDIR'
  | 'ENOENT'
  | 'EIO'
  | 'EROFS'
  | 'EEXIST'
  | 'EISDIR'
  | 'ENXIO'
  | 'EOVERFLOW'
  /** A holder's fd was closed by the application and its number now names another file. */
  | 'EBADF'
  /** `wrap()`: a signal could not be passed on to the command (it changed its user, or is gone). */
  | 'ESRCH'
  /** `serve()`: the address is taken, or is not this machine's. */
  | 'EADDRINUSE'
  | 'EADDRNOTAVAIL'
  /** Limits: the open-file limit (EMFILE, ENFILE), the inotify watch limit (ENOSPC), memory (ENOMEM). */
  | 'EMFILE'
  | 'ENFILE'
  | 'ENOSPC'
  | 'ENOMEM'
  | (string & {});

/** What a wait that timed out was still waiting for: a target, and its last state (null: none seen yet). */
export interface Pending {
  target: string;
  state: 'alive' | 'dead' | 'absent' | 'unknown' | null;
}

/** The error of a wait whose timeout passed: `code` is `'ETIMEDOUT'` and `pending` is set. */
export type WaitTimeoutError = ProcAliveError & { readonly code: 'ETIMEDOUT'; readonly pending: Pending[] };

export interface ProcAliveErrorOptions {
  /** The absolute or relative path that was being worked on, when there is one. */
  path?: string | undefined;
  /** The underlying error (a Node `ErrnoException`, usually). */
  cause?: unknown;
}

export class ProcAliveError extends Error {
  override name = 'ProcAliveError';
  readonly code: ProcAliveErrorCode;
  readonly path: string | undefined;
  /** Set on `ETIMEDOUT` from a wait: what was not reached. */
  declare readonly pending?: Pending[];

  /** `message` is the reason alone; the path is put in front of it when there is one. */
  constructor(code: ProcAliveErrorCode, reason: string, options: ProcAliveErrorOptions = {}) {
    super(options.path === undefined ? reason : `${options.path}: ${reason}`, { cause: options.cause });
    this.code = code;
    this.path = options.path;
  }
}

/** Human wording of the errno values a path operation can give; anything else keeps Node's text. */
const reasons: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ELOOP: 'too many levels of symbolic links',
  ENAMETOOLONG: 'name too long',
  ENOTDIR: 'a component of the path is not a directory',
  ENOENT: 'no such file or directory',
  EIO: 'input/output error',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
  EEXIST: 'already exists',
  EISDIR: 'is a directory',
  ENXIO: 'no such device or address',
  EOVERFLOW: 'value too large',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in the system',
  ENOMEM: 'out of memory',
};

/** Wraps an errno failure (from Node's fs or from the FFI) into a ProcAliveError for `path`. */
export function errnoError(code: string, path: string, doing: string, cause?: unknown): ProcAliveError {
  const reason = reasons[code] ?? (cause instanceof Error ? cause.message : 'failed');
  return new ProcAliveError(code, `${doing}: ${reason} (${code})`, { path, cause });
}

/**
 * The same error about another path: a FIFO made under a private name (`.web.123.new`) fails for reasons
 * the user knows by the target's own path.
 */
export function aboutPath(err: unknown, path: string): unknown {
  if (!(err instanceof ProcAliveError) || err.path === undefined || err.path === path) return err;
  const reason = err.message.startsWith(`${err.path}: `) ? err.message.slice(err.path.length + 2) : err.message;
  return new ProcAliveError(err.code, reason, { path, cause: err.cause });
}
