// The supervisors' readiness protocols, both ways.
//
// In (a wrapped command tells proc-alive it is ready, wrap.ts):
// - systemd's: the command sends `READY=1` as a datagram to the unix socket named by $NOTIFY_SOCKET
//   (sd_notify(3)). {@link NotifySocket} is such a socket, private to the wrapper: bound in a new 0700
//   directory, so only this user (and root) can reach it, and a message counts only if the kernel says
//   (SCM_CREDENTIALS) it comes from the command or one of its descendants, as systemd's
//   NotifyAccess=all counts the processes of the service's cgroup.
// - s6's: the command writes a newline to an fd (`notification-fd`; dinit's pipefd, OpenRC's
//   ready=fd, $READY_FD). That one needs no code here: wrap.ts reads the fd as it reads fd 5.
//
// Out (proc-alive tells its own supervisor that the target is alive, wrap.ts and hold.ts):
// - `READY=1` (then `STATUS=`, `STOPPING=1`) to $NOTIFY_SOCKET, abstract (`@name`) or a path: {@link sdNotify}.
// - a newline to an fd, which is then closed: {@link notifyFd}.
//
// Nothing here runs at import: no socket, no FFI, no environment read until a function is called.

import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcAliveError } from './errors.js';
import { at, makeTempDir, removeTempDir, type Dir } from './kernel-files.js';
import { bindDatagram, closeFds, DATAGRAM_MAX, isDescendant, ownFd, receiveDatagram, sendDatagram, setCloseOnExec } from './kernel-socket.js';
import { escapeText } from './text.js';

/**
 * The assignments of one sd_notify message: newline-separated `VARIABLE=VALUE` (sd_notify(3)); a line
 * without `=` is skipped, and a variable given twice keeps its last value.
 */
export function parseNotify(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of data.toString('utf8').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return out;
}

/** What a NotifySocket hears, on the main thread. */
export interface NotifyListener {
  /** `READY=1`. */
  ready(): void;
  /** `STOPPING=1`: the command begins its shutdown. */
  stopping(): void;
  /** `STATUS=…`: what the command says of itself (not escaped: escape it to print it). */
  status(text: string): void;
  /**
   * Something was ignored, said once per reason: a stranger's message (EPERM), an oversized one
   * (EMSGSIZE), MAINPID= (ENOTSUP), a failure of the socket itself (its errno).
   */
  ignored(code: string, why: string): void;
}

/** The most datagrams read in one turn of the event loop: a flood cannot starve the rest of the process. */
const READS_PER_TURN = 64;
/** The socket's name in its private directory. */
const SOCKET_NAME = 'notify';
/** The longest STATUS= kept (the record's schema allows 1024 characters). */
export const STATUS_MAX = 1024;

/**
 * The private $NOTIFY_SOCKET of one wrapped command. `open()` makes it (before the command starts, so
 * the command's environment can name it), `listen()` starts reading once the command's pid is known,
 * `drain()` reads what is queued now (when the command has ended: its last words count), `close()`
 * removes it and its directory.
 */
export class NotifySocket {
  /** The path to give the command as $NOTIFY_SOCKET. */
  readonly path: string;
  readonly #dir: Dir;
  readonly #fd: number;
  #pid = 0;
  #on: NotifyListener | null = null;
  #watch: { close(): void } | null = null;
  #closed = false;
  readonly #said = new Set<string>();

  private constructor(dir: Dir, fd: number) {
    this.#dir = dir;
    this.#fd = fd;
    this.path = join(dir.path, SOCKET_NAME);
  }

  /**
   * Makes the socket in a new private directory under os.tmpdir() (sun_path holds 107 bytes: a long
   * $TMPDIR falls back to /tmp). Throws ENOTSUP where unix datagram sockets are not available (see
   * kernel-socket.ts), or the errno of what failed.
   */
  static open(): NotifySocket {
    const parent = join(tmpdir(), 'proc-alive-notify-XXXXXX', SOCKET_NAME).length < 100 ? tmpdir() : '/tmp';
    const dir = makeTempDir(parent, 'proc-alive-notify-', 'cannot make a private directory for the notify socket');
    try {
      // Bound through the directory we opened and checked (/proc/self/fd/N/notify), not its path.
      const through = at(dir, SOCKET_NAME);
      return new NotifySocket(dir, bindDatagram(typeof through === 'string' ? through : join(dir.path, SOCKET_NAME)));
    } catch (err) {
      removeTempDir(dir, []);
      throw err;
    }
  }

  /** Starts reading: only messages from process `pid` and its descendants count. */
  listen(pid: number, on: NotifyListener): void {
    if (this.#closed) return;
    this.#pid = pid;
    this.#on = on;
    void import('./monitor.js').then(({ theMonitor }) => {
      if (this.#closed) return;
      // Not ref'd: the command, a child process, keeps the wrapper's loop alive while it runs.
      this.#watch = theMonitor().watchFd(this.#fd, () => this.#read(READS_PER_TURN), { refd: false });
      this.#read(READS_PER_TURN);
    });
  }

  /** Reads everything queued now (bounded: the queue of a unix datagram socket is, net.unix.max_dgram_qlen). */
  drain(): void {
    this.#read(4096);
  }

  #read(max: number): void {
    for (let n = 0; n < max && !this.#closed && this.#on !== null; n++) {
      let d;
      try {
        d = receiveDatagram(this.#fd);
      } catch (err) {
        this.#once((err as ProcAliveError).code ?? 'EIO', `the notify socket failed: ${(err as Error).message}`);
        return;
      }
      if (d === null) return;
      try {
        this.#handle(d);
      } finally {
        // After the sender was looked at (see Datagram.fds); BARRIER=1's fd, whose close the sender
        // waits for, closed once every message before it has been read.
        closeFds(d);
      }
    }
  }

  #handle(d: NonNullable<ReturnType<typeof receiveDatagram>>): void {
    const on = this.#on as NotifyListener;
    const pid = d.sender?.pid ?? 0;
    if (pid <= 0 || !isDescendant(pid, this.#pid)) {
      this.#once('EPERM', `ignored a message on the notify socket from ${pid > 0 ? `pid ${pid}` : 'an unknown process'} (uid ${d.sender?.uid ?? '?'}), which is neither the command nor one of its descendants`);
      return;
    }
    if (d.oversized) {
      this.#once('EMSGSIZE', `ignored a message on the notify socket longer than ${DATAGRAM_MAX} bytes (from pid ${pid})`);
      return;
    }
    const a = parseNotify(d.data);
    const status = a.get('STATUS');
    if (status !== undefined) on.status(status.length > STATUS_MAX ? `${status.slice(0, STATUS_MAX - 1)}…` : status);
    if (a.has('MAINPID')) {
      this.#once('ENOTSUP', `ignored MAINPID=${escapeText(a.get('MAINPID') ?? '')}: the process proc-alive watches is the command it started`);
    }
    if (a.get('STOPPING') === '1') on.stopping();
    if (a.get('READY') === '1') on.ready();
  }

  #once(code: string, message: string): void {
    if (this.#said.has(code)) return;
    this.#said.add(code);
    this.#on?.ignored(code, message);
  }

  /** Stops reading, closes the socket and removes it and its directory. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watch?.close();
    try {
      fs.closeSync(this.#fd);
    } catch {
      // EBADF: already closed
    }
    removeTempDir(this.#dir, [SOCKET_NAME]);
  }
}

/**
 * Sends `state` (newline-separated assignments: `'READY=1'`, `'STATUS=Serving'`, `'STOPPING=1'`) to the
 * service manager, as sd_notify(3) does: to the socket named by `socket`, by default $NOTIFY_SOCKET (a
 * path, or `@name` for an abstract socket). Returns false, sending nothing, when there is none (not run
 * by a service manager that asked). Throws a ProcAliveError when it cannot send (`ENOTSUP` on a system
 * without unix datagram sockets through the FFI, or for a vsock address; the errno otherwise). Waits up
 * to a second if the manager's queue is full.
 */
export function sdNotify(state: string, options: { socket?: string | undefined } = {}): boolean {
  if (typeof state !== 'string') throw new ProcAliveError('EINVAL', 'state must be a string such as READY=1');
  const socket = options.socket ?? process.env['NOTIFY_SOCKET'];
  if (socket === undefined || socket === '') return false;
  if (socket.startsWith('vsock:')) throw new ProcAliveError('ENOTSUP', 'a NOTIFY_SOCKET on vsock is not supported', { path: socket });
  if (!socket.startsWith('/') && !socket.startsWith('@')) {
    throw new ProcAliveError('EINVAL', 'NOTIFY_SOCKET is neither an absolute path nor an abstract name (@name)', { path: socket });
  }
  const data = Buffer.from(state);
  if (data.length > DATAGRAM_MAX) throw new ProcAliveError('EINVAL', `the message is longer than ${DATAGRAM_MAX} bytes`, { path: socket });
  sendDatagram(socket, data);
  return true;
}

/**
 * Checks `fd` for use as a notification fd (s6's notification-fd, dinit's pipefd, OpenRC's ready=fd):
 * it must be open, at least 3 (0, 1 and 2 are stdio), and not evidently one of Node's own (see
 * ownFd); it is made close-on-exec, so that a command started later cannot write it. Throws EINVAL or
 * EBADF.
 */
export function claimNotifyFd(fd: number): void {
  if (!Number.isInteger(fd) || fd < 3 || fd > 0x7fffffff) throw new ProcAliveError('EINVAL', `notifyFd must be an fd number of 3 or more, not ${String(fd)}`);
  try {
    fs.fstatSync(fd);
  } catch {
    throw new ProcAliveError('EBADF', `fd ${fd} is not open (the supervisor gives the notification fd: notification-fd in s6)`);
  }
  const own = ownFd(fd);
  if (own !== null) throw new ProcAliveError('EBADF', `fd ${fd} was not given by a supervisor: ${own}`);
  setCloseOnExec(fd);
}

/** Writes a newline to `fd` and closes it: "ready", in s6's protocol. Throws the errno (EPIPE: no reader). */
export function notifyFd(fd: number): void {
  try {
    fs.writeSync(fd, '\n');
  } catch (err) {
    try {
      fs.closeSync(fd);
    } catch {
      // already closed
    }
    throw new ProcAliveError((err as NodeJS.ErrnoException).code ?? 'EIO', `cannot write the notification fd ${fd}: ${(err as Error).message}`);
  }
  fs.closeSync(fd);
}

/** How a holder tells its own supervisor (hold's and wrap's `notify` and `notifyFd` options). */
export interface Upward {
  /** The target is alive: READY=1 (with a STATUS naming it) and the newline on the fd. */
  ready(path: string, pid: number): void;
  /** Passes the holder's (or the command's) STATUS= on. */
  status(text: string): void;
  /** A clean stop begins: STOPPING=1. */
  stopping(): void;
}

/**
 * The upward notifier for `notify` (send to $NOTIFY_SOCKET, if the environment has one) and `notifyFd`
 * (claimed here, before anything is started: a bad fd is refused up front). Failures to send go to
 * `warn`: a supervisor that cannot be told must not stop the holding.
 */
export function upward(options: { notify?: boolean | undefined; notifyFd?: number | undefined }, warn: (err: ProcAliveError) => void): Upward | null {
  const socket = options.notify ? process.env['NOTIFY_SOCKET'] : undefined;
  const fd = options.notifyFd;
  if ((socket === undefined || socket === '') && fd === undefined) return null;
  if (fd !== undefined) claimNotifyFd(fd);
  let fdDone = fd === undefined;
  let ready = false;
  const send = (state: string): void => {
    if (socket === undefined || socket === '') return;
    try {
      sdNotify(state, { socket });
    } catch (err) {
      warn(err instanceof ProcAliveError ? err : new ProcAliveError('EIO', String(err)));
    }
  };
  return {
    ready(path, pid) {
      if (ready) return;
      ready = true;
      send(`READY=1\nSTATUS=${oneLine(`alive: ${path} (pid ${pid})`)}`);
      if (!fdDone) {
        fdDone = true;
        try {
          notifyFd(fd as number);
        } catch (err) {
          warn(err as ProcAliveError);
        }
      }
    },
    status(text) {
      send(`STATUS=${oneLine(text)}`);
    },
    stopping() {
      send('STOPPING=1');
    },
  };
}

/** A value for one assignment: a newline would start another. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]/g, ' ');
}

