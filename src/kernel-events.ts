// The kernel's event interfaces, for watching without polling (Linux, through koffi): the other half of
// the kernel layer, next to kernel.ts. What a change means is decided in monitor.ts.
//
// - epoll(7) on a watcher's write end of each alive FIFO, with no event asked for: the kernel reports
//   EPOLLERR when the last reader goes (pipe(7)). Asking for EPOLLOUT instead would fire at once and spin.
//   EPOLLONESHOT: reported once, then disarmed until we close that fd, so a dead FIFO cannot spin either.
// - inotify(7): IN_OPEN on a FIFO that has no reader (a runner opening it: any runner, C, runsv, ...);
//   creations, removals and renames in the directories on the way to each target.
// - Any other fd the caller wants to hear about when it becomes readable (EPOLLIN), e.g. a socket.
// - One worker thread (kernel-events-worker.ts) blocks in epoll_wait(2) and posts what it harvests. Not
//   the libuv pool (a pending call there holds one of its 4 threads: other fs calls of the application
//   would wait), and not the main thread. A thread blocked in a native call makes the exit of the process
//   hang (the main thread joins it), so an 'exit' hook wakes it through an eventfd(2) in the epoll set.
//   Only 'exit': a process that survives an uncaught exception (a handler) keeps its worker, and one that
//   does not emits 'exit' on its way out (process docs, 'uncaughtException').

import * as fs from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { ProcAliveError, errnoError } from './errors.js';
import {
  EPOLL,
  EVENT_SIZE,
  IN,
  LOAD,
  O_CLOEXEC,
  O_NONBLOCK,
  epollEvent,
  harvest,
  harvestBuffers,
  parseInotify,
  type HarvestBuffers,
  type InotifyEvent,
} from './kernel-events-format.js';
import type { WorkerData, WorkerMessage } from './kernel-events-worker.js';
import { errnoName, loadFfi } from './kernel.js';
import { fsPath } from './text.js';

export { IN, type InotifyEvent };

interface Calls {
  epoll_create1(flags: number): number;
  epoll_wait(epfd: number, events: Buffer, maxevents: number, timeout: number): number;
  read(fd: number, buf: Buffer, count: number): number | bigint;
  epoll_ctl(epfd: number, op: number, fd: number, event: Buffer | null): number;
  inotify_init1(flags: number): number;
  inotify_add_watch(fd: number, path: string | Buffer, mask: number): number;
  inotify_rm_watch(fd: number, wd: number): number;
  eventfd(initval: number, flags: number): number;
  poll(fds: Buffer, nfds: number, timeout: number): number;
  errno(): number;
}

/** What an event source tells its owner, always on the main thread. */
export interface SourceEvents {
  /**
   * What the kernel reported: write ends whose FIFO lost its last reader (fd and serial, flat), and the
   * inotify events in the kernel's order.
   */
  batch(errored: number[], inotify: InotifyEvent[]): void;
  /** The worker ended without being asked, or could not start. The source is closed when this is called. */
  failure(err: ProcAliveError): void;
  /** The worker waits now: from here on, the main thread must not drain. */
  ready(): void;
}

/**
 * Why a readable callback is called: `'readable'` (EPOLLIN: there is something to read), `'error'`
 * (EPOLLERR or EPOLLHUP: for the write end of a pipe, its last reader has gone), or `'poll'` (no kernel
 * events here, or not now: look without blocking).
 */
export type ReadyKind = 'readable' | 'error' | 'poll';

/** A registration of {@link EventSource.watchFd}. */
export interface FdWatch {
  /** Stops reporting (before the fd is closed). Idempotent. */
  close(): void;
}

const POLLERR = 0x8;

/** How long a process that ends waits for its event worker to finish loading koffi (see EventSource). */
const LOAD_WAIT_MS = 5000;

/** A path nothing of ours watches (it is not a FIFO, not a directory): markers are put on it. */
const MARKER_PATH = '/dev/null';

/**
 * One epoll set, one inotify instance and the worker waiting on them. Made by {@link openEventSource};
 * `close()` stops the worker and closes every fd it made.
 */
export class EventSource {
  readonly #c: Calls;
  readonly #fds: { epfd: number; inotifyFd: number; wakeFd: number };
  readonly #control = new Int32Array(new SharedArrayBuffer(16));
  readonly #worker: Worker;
  readonly #on: SourceEvents;
  readonly #wake = (): void => {
    this.#interrupt();
    // The process ends (a natural exit or process.exit()): Node stops the worker next. Stopped inside
    // koffi's module init, whose Node-API calls then fail (the worker's env is stopping), it aborts the
    // whole process: koffi turns the failure into a C++ exception that napi_throw cannot raise either,
    // "FATAL ERROR: Error::ThrowAsJavaScriptException napi_throw", SIGABRT (node-addon-api in a
    // stopping env, nodejs/node-addon-api#902). So wait here until the worker is past its load; it
    // then sees the stop just asked and returns. A worker that has not begun its load is told not to
    // (stopped while it boots, it is no harm), so only an end that falls within the load itself waits,
    // a few milliseconds (`run --ready=notify` of a command that ends at once aborted about one run in
    // 300 on a loaded machine). Bounded: a worker that died unseen (its 'exit' cannot be delivered
    // now) holds the exit back at most this long, and then a line on stderr says why the abort that
    // may follow happened. Not covered: a thread that ends with no 'exit' event, such as a worker of
    // the application's stopped by terminate() (README, Limits).
    if (Atomics.compareExchange(this.#control, 3, LOAD.notBegun, LOAD.cancelled) === LOAD.loading) {
      if (Atomics.wait(this.#control, 3, LOAD.loading, LOAD_WAIT_MS) === 'timed-out') {
        try {
          fs.writeSync(2, `proc-alive: the event worker was still loading koffi ${LOAD_WAIT_MS / 1000} s after this process began to end; ending anyway\n`);
        } catch {
          // stderr closed: nothing to say it on
        }
      }
    }
  };
  readonly #readable = new Map<number, { fd: number; callback: (kind: ReadyKind) => void }>();
  #closed = false;
  #ready = false;
  /** A batch of the worker's is being handled: the worker reads nothing until it is (see catchUp). */
  #held = false;
  /** Callbacks of fds found readable by catchUp, called once the batch being handled is. */
  #readableLater: Array<() => void> = [];
  #serial = 0;
  #drainBuffers: HarvestBuffers | undefined;
  #event: Buffer | undefined;
  #pollFd: Buffer | undefined;
  #exited: Promise<void>;

  constructor(c: Calls, koffiPath: string, libName: string, on: SourceEvents) {
    this.#c = c;
    this.#on = on;
    const made: number[] = [];
    try {
      const epfd = check(c, c.epoll_create1(O_CLOEXEC), 'epoll_create1');
      made.push(epfd);
      const inotifyFd = check(c, c.inotify_init1(O_NONBLOCK | O_CLOEXEC), 'inotify_init1');
      made.push(inotifyFd);
      const wakeFd = check(c, c.eventfd(0, O_NONBLOCK | O_CLOEXEC), 'eventfd');
      made.push(wakeFd);
      for (const fd of [inotifyFd, wakeFd]) check(c, c.epoll_ctl(epfd, EPOLL.CTL_ADD, fd, epollEvent(EPOLL.IN, fd, 0)), 'epoll_ctl');
      this.#fds = { epfd, inotifyFd, wakeFd };
      const workerData: WorkerData = { koffiPath, libName, ...this.#fds, control: this.#control.buffer as SharedArrayBuffer };
      this.#worker = new Worker(join(__dirname, 'kernel-events-worker.js'), {
        workerData,
        // Nothing of the application's: the worker only waits. A small heap; no stdin; its stdout and
        // stderr its own (the default pipes them into process.stdout, which makes fd 1 non-blocking for
        // every process that shares it); none of the main program's node options.
        resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 2, codeRangeSizeMb: 2, stackSizeMb: 1 },
        stdin: false,
        stdout: true,
        stderr: true,
        execArgv: [],
      });
    } catch (err) {
      for (const fd of made) fs.closeSync(fd);
      throw err instanceof ProcAliveError ? err : new ProcAliveError('EWATCH', `cannot start the event worker (${String(err)})`, { cause: err });
    }
    this.#worker.on('message', (m: WorkerMessage) => {
      if (this.#closed) return;
      if (m.kind === 'ready') {
        this.#ready = true;
        this.#on.ready(); // the main thread stops draining here, and only then lets the worker read
        Atomics.store(this.#control, 1, 1);
        Atomics.notify(this.#control, 1);
      } else if (m.kind === 'error') {
        this.#fail(errnoError(errnoName(m.errno), '', 'epoll_wait'));
      } else {
        // The worker waits until this batch is handled (kernel-events-worker.ts): meanwhile only this
        // thread reads the queues (catchUp).
        this.#held = true;
        try {
          this.#deliver(m.ready, m.inotify);
        } finally {
          this.#held = false;
          Atomics.store(this.#control, 2, 0);
          Atomics.notify(this.#control, 2);
        }
      }
    });
    this.#worker.on('error', (err) => this.#fail(err));
    this.#exited = new Promise((resolve) => {
      this.#worker.once('exit', (code) => {
        // The fds are closed once the worker is out of epoll_wait: closing them under it could hand their
        // numbers to someone else's file while it still reads them.
        for (const fd of Object.values(this.#fds)) fs.closeSync(fd);
        process.removeListener('exit', this.#wake);
        this.#fail(new Error(`it exited with code ${code}`));
        resolve();
      });
    });
    process.on('exit', this.#wake);
  }

  /** Whether the worker has started waiting: until then, events wait in the kernel unless drained. */
  get ready(): boolean {
    return this.#ready;
  }

  /**
   * What the kernel has queued, read now without waiting, on this thread, and delivered as the worker's
   * batches are. The worker takes ~30 ms to start (it loads koffi); events of that time would otherwise
   * be looked at only after it, when a runner that started and died meanwhile has left no trace of
   * having lived. The wake-up eventfd is never read here, so a stop still reaches the worker.
   */
  drain(): void {
    if (this.#closed || this.#ready) return;
    this.#drainBuffers ??= harvestBuffers();
    const h = harvest(this.#c, this.#fds, this.#drainBuffers, 0, false);
    if (h.ready.length > 0 || h.inotify !== null) this.#deliver(h.ready, h.inotify);
  }

  /**
   * While a batch is being handled (inside SourceEvents.batch): what the kernel has queued since it was
   * read, read now on this thread without waiting, in order after it (the worker reads nothing until
   * the batch is handled). The batch handler calls it after its looks, to learn what happened before
   * them that it must report first. Null when there is nothing, or when this thread may not read.
   */
  catchUp(): { errored: number[]; events: InotifyEvent[] } | null {
    if (this.#closed || (this.#ready && !this.#held)) return null;
    this.#drainBuffers ??= harvestBuffers();
    const h = harvest(this.#c, this.#fds, this.#drainBuffers, 0, false);
    if (h.ready.length === 0 && h.inotify === null) return null;
    const errored = this.#split(h.ready, this.#readableLater);
    return { errored, events: h.inotify === null ? [] : parseInotify(h.inotify) };
  }

  #deliver(ready: number[], inotify: Uint8Array | null): void {
    const readable: Array<() => void> = [];
    const errored = this.#split(ready, readable);
    this.#on.batch(errored, inotify === null ? [] : parseInotify(inotify));
    const later = this.#readableLater;
    this.#readableLater = [];
    for (const call of [...readable, ...later]) call();
  }

  /** The write ends in error among epoll's records (fd and serial, flat); the readable fds' callbacks go to `readable`. */
  #split(ready: number[], readable: Array<() => void>): number[] {
    const errored: number[] = [];
    for (let i = 0; i + 2 < ready.length; i += 3) {
      const fd = ready[i] as number;
      const serial = ready[i + 1] as number;
      const events = ready[i + 2] as number;
      const r = this.#readable.get(serial);
      if (r === undefined) errored.push(fd, serial);
      else if (r.fd === fd) readable.push(() => r.callback(events & (EPOLL.ERR | EPOLL.HUP) ? 'error' : 'readable'));
    }
    return errored;
  }

  #nextSerial(): number {
    this.#serial = (this.#serial + 1) >>> 0 || 1;
    return this.#serial;
  }

  /** Keep the process alive while this source waits (Node's default for a worker), or not. */
  ref(): void {
    this.#worker.ref();
  }

  unref(): void {
    this.#worker.unref();
  }

  /**
   * Reports, once, when the last reader of the FIFO this write end belongs to goes. Returns the serial
   * the report will carry (a report already harvested for a write end since closed must not be taken
   * for one about a new write end that got the same fd number), or the errno name if epoll refused it
   * (ENOSPC: the user's epoll watch limit; ENOMEM).
   */
  watchWriter(fd: number): number | string {
    const serial = this.#nextSerial();
    // No event asked for: EPOLLERR is always reported (epoll_ctl(2)); EPOLLONESHOT disarms it after once.
    // One buffer for every call: epoll_ctl copies it.
    this.#event ??= Buffer.alloc(EVENT_SIZE);
    if (this.#c.epoll_ctl(this.#fds.epfd, EPOLL.CTL_ADD, fd, epollEvent(EPOLL.ONESHOT, fd, serial, this.#event)) !== 0) return errnoName(this.#c.errno());
    return serial;
  }

  /**
   * Whether the FIFO of this write end has no reader now: poll(2) without waiting, no event asked for,
   * reports POLLERR then (pipe(7)). For when a reader's close is known before its EPOLLERR is harvested
   * (the worker reads inotify's queue after epoll_wait returned: a close queued meanwhile comes first).
   */
  writerLost(fd: number): boolean {
    const pfd = (this.#pollFd ??= Buffer.alloc(8)); // struct pollfd { int fd; short events, revents; }
    pfd.writeInt32LE(fd, 0);
    pfd.writeInt32LE(0, 4);
    return this.#c.poll(pfd, 1, 0) === 1 && (pfd.readUInt16LE(6) & POLLERR) !== 0;
  }

  /** Stops watching a write end (before it is closed; closing alone would do, unless the fd was dup'ed). */
  unwatchWriter(fd: number): void {
    this.#c.epoll_ctl(this.#fds.epfd, EPOLL.CTL_DEL, fd, null);
  }

  /**
   * Calls `callback` on the main thread whenever `fd` is readable (EPOLLIN; not with `readable` false),
   * and when it is in error or hung up (always reported by epoll: for the write end of a pipe, its last
   * reader has gone; for a socket, its peer has). The callback must read what is there (without
   * blocking: the fd should be non-blocking): the fd is watched again only after it returns, and
   * reported again while something is left to read or the error lasts.
   */
  watchFd(fd: number, callback: (kind: ReadyKind) => void, readable = true): FdWatch {
    const serial = this.#nextSerial();
    const event = epollEvent((readable ? EPOLL.IN : 0) | EPOLL.ONESHOT, fd, serial);
    if (this.#c.epoll_ctl(this.#fds.epfd, EPOLL.CTL_ADD, fd, event) !== 0) {
      throw errnoError(errnoName(this.#c.errno()), `fd ${fd}`, 'cannot watch');
    }
    let open = true;
    this.#readable.set(serial, {
      fd,
      callback: (kind) => {
        if (!open || this.#closed) return;
        try {
          callback(kind);
        } finally {
          if (open && !this.#closed) this.#c.epoll_ctl(this.#fds.epfd, EPOLL.CTL_MOD, fd, event);
        }
      },
    });
    return {
      close: () => {
        if (!open) return;
        open = false;
        this.#readable.delete(serial);
        if (!this.#closed) this.#c.epoll_ctl(this.#fds.epfd, EPOLL.CTL_DEL, fd, null);
      },
    };
  }

  /**
   * inotify_add_watch(2): returns the watch descriptor, or the errno name if it failed (ENOENT,
   * ENOTDIR, EACCES: no read permission on the path, ENOSPC: the user's inotify watch limit, ...).
   */
  addWatch(path: string, mask: number): number | string {
    const p = fsPath(path);
    const wd = this.#c.inotify_add_watch(this.#fds.inotifyFd, typeof p === 'string' ? p : Buffer.concat([p, Buffer.of(0)]), mask);
    return wd >= 0 ? wd : errnoName(this.#c.errno());
  }

  removeWatch(wd: number): void {
    this.#c.inotify_rm_watch(this.#fds.inotifyFd, wd);
  }

  /**
   * Puts a marker in the inotify queue: a watch added and at once removed on an inode nothing else of
   * ours watches, which queues one IN_IGNORED with a watch descriptor not used before (they are allocated
   * cyclically). Everything queued after it happened after this call. Returns that descriptor, or -1.
   */
  mark(): number {
    const wd = this.#c.inotify_add_watch(this.#fds.inotifyFd, MARKER_PATH, IN.DELETE_SELF | IN.MASK_CREATE);
    if (wd < 0) return -1;
    this.#c.inotify_rm_watch(this.#fds.inotifyFd, wd);
    return wd;
  }

  #interrupt(): void {
    Atomics.store(this.#control, 0, 1);
    Atomics.notify(this.#control, 1); // a worker still waiting for the handover
    Atomics.notify(this.#control, 2); // or for a batch to be handled
    const one = Buffer.alloc(8);
    one.writeBigUInt64LE(1n);
    try {
      fs.writeSync(this.#fds.wakeFd, one);
    } catch {
      // EAGAIN: the counter is already non-zero, so the worker is awake anyway; EBADF: it has exited
    }
  }

  #fail(err: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#interrupt();
    this.#worker.unref();
    const reason = err instanceof ProcAliveError ? err.message.replace(/^: /, '') : err.message;
    this.#on.failure(new ProcAliveError('EWATCH', `the event worker failed (${reason})`, { cause: err }));
  }

  /**
   * Stops the worker and closes the epoll set, the inotify instance and the eventfd. Resolves once the
   * worker has exited and they are closed; with `keepAlive`, the process waits for that. Idempotent.
   */
  close(keepAlive = false): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      // A worker that has not begun loading koffi need not: it ends at once, and an exit soon after
      // then has no load to wait for (see #wake).
      Atomics.compareExchange(this.#control, 3, LOAD.notBegun, LOAD.cancelled);
      this.#interrupt();
    }
    // Someone awaits the end: the worker (out of epoll_wait now) keeps the process up until it exits.
    if (keepAlive) this.#worker.ref();
    else this.#worker.unref();
    return this.#exited;
  }
}

function check(c: Calls, result: number, call: string): number {
  if (result < 0) throw errnoError(errnoName(c.errno()), call, 'cannot watch');
  return result;
}

let calls: Calls | null | undefined;

/**
 * An event source, or null where there is none (not Linux, no koffi, PROC_ALIVE_FFI=0): callers then
 * poll. Throws a ProcAliveError where there is one but it cannot be opened now (EMFILE, ENFILE, ENOMEM,
 * inotify's instance limit EMFILE, a worker that cannot be made): callers poll and try again later.
 */
export function openEventSource(on: SourceEvents): EventSource | null {
  const f = loadFfi();
  if (f === null) return null;
  if (calls === undefined) {
    try {
      calls = {
        epoll_create1: f.lib.func('int epoll_create1(int flags)'),
        epoll_wait: f.lib.func('int epoll_wait(int epfd, void *events, int maxevents, int timeout)'),
        read: f.lib.func('long read(int fd, void *buf, unsigned long count)'),
        epoll_ctl: f.lib.func('int epoll_ctl(int epfd, int op, int fd, void *event)'),
        inotify_init1: f.lib.func('int inotify_init1(int flags)'),
        inotify_add_watch: f.lib.func('int inotify_add_watch(int fd, const char *path, uint32_t mask)'),
        inotify_rm_watch: f.lib.func('int inotify_rm_watch(int fd, int wd)'),
        eventfd: f.lib.func('int eventfd(unsigned int initval, int flags)'),
        poll: f.lib.func('int poll(void *fds, unsigned long nfds, int timeout)'),
        errno: () => f.koffi.errno(),
      };
    } catch {
      calls = null;
    }
  }
  if (calls === null) return null;
  return new EventSource(calls, f.koffiPath, f.libName, on);
}
