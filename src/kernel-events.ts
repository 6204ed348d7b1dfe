// The kernel's event interfaces, for watching without polling (Linux, through koffi): the other half of
// the kernel layer, next to kernel.ts. Watch logic (what a change means) lives in monitor.ts.
//
// - epoll(7) on a watcher's write end of each alive FIFO, with no event asked for: the kernel reports
//   EPOLLERR when the last reader goes (pipe(7)). Asking for EPOLLOUT instead would fire at once and spin.
//   EPOLLONESHOT: reported once, then disarmed until we close that fd, so a dead FIFO cannot spin either.
// - inotify(7): IN_OPEN on a FIFO that has no reader (a runner opening it: any runner, C, runsv, ...);
//   creations, removals and renames in the directories that contain the targets. IN_OPEN is not asked
//   for on an alive FIFO: every checker's open would wake us.
// - One worker thread blocks in epoll_wait(2) and posts what it saw. Not the libuv pool (a pending call
//   there holds one of its 4 threads: other fs calls of the application would wait), and not the main
//   thread. A thread blocked in a native call makes process.exit() hang (the main thread joins it), so
//   while the worker runs, an exit hook wakes it through an eventfd(2) that is in the epoll set.

import * as fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { errnoError } from './errors.js';
import { errnoName, loadFfi } from './kernel.js';

const O_CLOEXEC = 0o2000000; // EPOLL_CLOEXEC, IN_CLOEXEC and EFD_CLOEXEC have the same value
const O_NONBLOCK = 0o4000; // IN_NONBLOCK, EFD_NONBLOCK
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLLIN = 0x1;
const EPOLLONESHOT = 1 << 30;

/** inotify(7) masks. */
export const IN = {
  OPEN: 0x20,
  MOVED_FROM: 0x40,
  MOVED_TO: 0x80,
  CREATE: 0x100,
  DELETE: 0x200,
  DELETE_SELF: 0x400,
  MOVE_SELF: 0x800,
  ATTRIB: 0x4,
  UNMOUNT: 0x2000,
  Q_OVERFLOW: 0x4000,
  IGNORED: 0x8000,
  ONLYDIR: 0x01000000,
} as const;

// struct epoll_event is packed on x86-64 (12 bytes, data at offset 4) and naturally aligned elsewhere
// (16 bytes, data at offset 8): <sys/epoll.h>, __EPOLL_PACKED.
const EVENT_SIZE = process.arch === 'x64' ? 12 : 16;
const DATA_OFFSET = process.arch === 'x64' ? 4 : 8;

export interface InotifyEvent {
  wd: number;
  mask: number;
  name: string;
}

/** A write end in the epoll set: its fd, and the serial it was added with (fd numbers are reused). */
export interface WriterId {
  fd: number;
  serial: number;
}

export interface EventBatch {
  /** Write ends that reported EPOLLERR: their FIFO lost its last reader. */
  errored: WriterId[];
  inotify: InotifyEvent[];
}

interface Calls {
  epoll_create1(flags: number): number;
  epoll_wait(epfd: number, events: Buffer, maxevents: number, timeout: number): number;
  read(fd: number, buf: Buffer, count: number): number | bigint;
  epoll_ctl(epfd: number, op: number, fd: number, event: Buffer | null): number;
  inotify_init1(flags: number): number;
  inotify_add_watch(fd: number, path: string, mask: number): number;
  inotify_rm_watch(fd: number, wd: number): number;
  eventfd(initval: number, flags: number): number;
  errno(): number;
}

// The worker: CommonJS source, evaluated in its own thread with its own koffi. It only waits and reads;
// every change to the sets is made by the main thread (epoll_ctl and inotify_add_watch are thread-safe).
const WORKER = `
const { workerData: d, parentPort } = require('node:worker_threads');
const koffi = require(d.koffiPath);
const lib = koffi.load(d.libName);
const epoll_wait = lib.func('int epoll_wait(int epfd, void *events, int maxevents, int timeout)');
const read = lib.func('long read(int fd, void *buf, unsigned long count)');
const stop = new Int32Array(d.stop);
const events = Buffer.alloc(${EVENT_SIZE} * 1024);
const buf = Buffer.alloc(64 * 1024);
// Handed over, not shared: until the main thread has stopped reading the queues itself (stop[1] = 1),
// the worker reads nothing, so no event is taken by one thread while an earlier one waits in the other.
parentPort.postMessage({ ready: true });
while (Atomics.load(stop, 0) === 0 && Atomics.load(stop, 1) === 0) Atomics.wait(stop, 1, 0, 100);
for (;;) {
  const n = epoll_wait(d.epfd, events, 1024, -1);
  if (Atomics.load(stop, 0) !== 0) break;
  if (n < 0) {
    const e = koffi.errno();
    if (e === 4) continue; // EINTR
    parentPort.postMessage({ error: e });
    break;
  }
  const errored = [];
  const chunks = [];
  for (let i = 0; i < n; i++) {
    const fd = events.readInt32LE(i * ${EVENT_SIZE} + ${DATA_OFFSET});
    const serial = events.readUInt32LE(i * ${EVENT_SIZE} + ${DATA_OFFSET} + 4);
    if (fd === d.inotifyFd) {
      for (;;) {
        const r = Number(read(d.inotifyFd, buf, buf.length));
        if (r <= 0) break;
        chunks.push(Buffer.from(buf.subarray(0, r)));
      }
    } else if (fd === d.wakeFd) {
      read(d.wakeFd, buf, 8);
    } else {
      errored.push(fd, serial);
    }
  }
  if (errored.length > 0 || chunks.length > 0) parentPort.postMessage({ errored, inotify: Buffer.concat(chunks) });
}
`;

/**
 * One epoll set, one inotify instance and the worker waiting on them. Created by {@link openEventSource};
 * `close()` stops the worker and closes every fd it made.
 */
export class EventSource {
  readonly #c: Calls;
  readonly #epfd: number;
  readonly #inotifyFd: number;
  readonly #wakeFd: number;
  /** [0]: stop, set to end the worker; [1]: go, set once the main thread no longer drains. */
  readonly #stop = new Int32Array(new SharedArrayBuffer(8));
  readonly #worker: Worker;
  readonly #wake = (): void => this.#interrupt();
  #closed = false;
  #ready = false;
  #serial = 0;
  #drainBuffers: { events: Buffer; data: Buffer } | undefined;

  constructor(
    c: Calls,
    koffiPath: string,
    libName: string,
    onBatch: (batch: EventBatch) => void,
    onError: (err: Error) => void,
    onReady: () => void,
  ) {
    this.#c = c;
    const fds: number[] = [];
    try {
      this.#epfd = check(c, c.epoll_create1(O_CLOEXEC), 'epoll_create1');
      fds.push(this.#epfd);
      this.#inotifyFd = check(c, c.inotify_init1(O_NONBLOCK | O_CLOEXEC), 'inotify_init1');
      fds.push(this.#inotifyFd);
      this.#wakeFd = check(c, c.eventfd(0, O_NONBLOCK | O_CLOEXEC), 'eventfd');
      fds.push(this.#wakeFd);
      for (const fd of [this.#inotifyFd, this.#wakeFd]) check(c, c.epoll_ctl(this.#epfd, EPOLL_CTL_ADD, fd, eventOf(EPOLLIN, fd)), 'epoll_ctl');
    } catch (err) {
      for (const fd of fds) fs.closeSync(fd);
      throw err;
    }
    this.#worker = new Worker(WORKER, {
      eval: true,
      workerData: { koffiPath, libName, epfd: this.#epfd, inotifyFd: this.#inotifyFd, wakeFd: this.#wakeFd, stop: this.#stop.buffer },
      // Nothing of the application's: the worker only waits. Small heap, no stdin, and none of the main
      // program's node options (with --input-type=module inherited, this CommonJS source would not run).
      resourceLimits: { maxOldGenerationSizeMb: 16 },
      stdin: false,
      execArgv: [],
    });
    this.#worker.on('message', (m: { errored?: number[]; inotify?: Uint8Array; error?: number; ready?: boolean }) => {
      if (this.#closed) return;
      if (m.ready) {
        this.#ready = true;
        onReady(); // the main thread stops draining here, and only then lets the worker read
        Atomics.store(this.#stop, 1, 1);
        Atomics.notify(this.#stop, 1);
        return;
      }
      if (m.error !== undefined) {
        onError(errnoError(errnoName(m.error), '', 'epoll_wait'));
        return;
      }
      onBatch({ errored: pairs(m.errored ?? []), inotify: parseInotify(Buffer.from(m.inotify ?? new Uint8Array())) });
    });
    this.#worker.on('error', (err) => {
      if (!this.#closed) onError(err);
    });
    // While the worker may block, a process exit (process.exit(), the end of the loop, an uncaught
    // exception) must wake it, or the exit waits for it forever.
    process.on('exit', this.#wake);
    process.on('uncaughtExceptionMonitor', this.#wake);
  }

  /** Whether the worker has started waiting: until then, events wait in the kernel unless drained. */
  get ready(): boolean {
    return this.#ready;
  }

  /**
   * What the kernel has queued, read now without waiting, on this thread. The worker takes ~30 ms to
   * start (it loads koffi); events of that time would otherwise be looked at only after it, when a
   * runner that started and died meanwhile has left no trace of having lived. The wake-up eventfd is
   * never read here, so a stop still reaches the worker.
   */
  drain(): EventBatch {
    const c = this.#c;
    // Allocated on the first drain and kept: drains come every millisecond while the worker starts.
    this.#drainBuffers ??= { events: Buffer.alloc(EVENT_SIZE * 256), data: Buffer.alloc(64 * 1024) };
    const { events, data: buf } = this.#drainBuffers;
    const n = c.epoll_wait(this.#epfd, events, 256, 0);
    const errored: WriterId[] = [];
    const chunks: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      const fd = events.readInt32LE(i * EVENT_SIZE + DATA_OFFSET);
      const serial = events.readUInt32LE(i * EVENT_SIZE + DATA_OFFSET + 4);
      if (fd === this.#inotifyFd) {
        for (;;) {
          const r = Number(c.read(this.#inotifyFd, buf, buf.length));
          if (r <= 0) break;
          chunks.push(Buffer.from(buf.subarray(0, r)));
        }
      } else if (fd !== this.#wakeFd) {
        errored.push({ fd, serial });
      }
    }
    return { errored, inotify: parseInotify(Buffer.concat(chunks)) };
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
   * the report will carry: a report already harvested for a write end since closed must not be taken
   * for one about a new write end that got the same fd number.
   */
  watchWriter(fd: number): WriterId {
    this.#serial = (this.#serial + 1) >>> 0 || 1;
    // No event asked for: EPOLLERR is always reported (epoll_ctl(2)); EPOLLONESHOT disarms it after once.
    check(this.#c, this.#c.epoll_ctl(this.#epfd, EPOLL_CTL_ADD, fd, eventOf(EPOLLONESHOT, fd, this.#serial)), 'epoll_ctl');
    return { fd, serial: this.#serial };
  }

  /** Stops watching a write end (before it is closed; closing alone would do, unless the fd was dup'ed). */
  unwatchWriter(fd: number): void {
    this.#c.epoll_ctl(this.#epfd, EPOLL_CTL_DEL, fd, null);
  }

  /**
   * inotify_add_watch(2): returns the watch descriptor, or the errno name if it failed (ENOENT,
   * ENOTDIR, EACCES, ENOSPC when the user's inotify watch limit is reached, ...).
   */
  addWatch(path: string, mask: number): number | string {
    const wd = this.#c.inotify_add_watch(this.#inotifyFd, path, mask);
    return wd >= 0 ? wd : errnoName(this.#c.errno());
  }

  removeWatch(wd: number): void {
    this.#c.inotify_rm_watch(this.#inotifyFd, wd);
  }

  #interrupt(): void {
    Atomics.store(this.#stop, 0, 1);
    Atomics.notify(this.#stop, 1); // a worker still waiting for the handover
    const one = Buffer.alloc(8);
    one.writeBigUInt64LE(1n);
    try {
      fs.writeSync(this.#wakeFd, one);
    } catch {
      // EAGAIN: the counter is already non-zero, so the worker is awake anyway
    }
  }

  /** Stops the worker and closes the epoll set, the inotify instance and the eventfd. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#interrupt();
    process.removeListener('exit', this.#wake);
    process.removeListener('uncaughtExceptionMonitor', this.#wake);
    const fds = [this.#epfd, this.#inotifyFd, this.#wakeFd];
    // The fds are closed once the worker is out of epoll_wait: closing them under it could hand their
    // numbers to someone else's file while it still reads them.
    this.#worker.unref();
    this.#worker.once('exit', () => {
      for (const fd of fds) fs.closeSync(fd);
    });
  }
}

function check(c: Calls, result: number, call: string): number {
  if (result < 0) throw errnoError(errnoName(c.errno()), call, 'cannot watch');
  return result;
}

/** A struct epoll_event whose 64-bit data is the fd (low half) and a serial (high half). */
function eventOf(events: number, fd: number, serial = 0): Buffer {
  const b = Buffer.alloc(EVENT_SIZE);
  b.writeUInt32LE(events >>> 0, 0);
  b.writeInt32LE(fd, DATA_OFFSET);
  b.writeUInt32LE(serial, DATA_OFFSET + 4);
  return b;
}

function pairs(flat: number[]): WriterId[] {
  const out: WriterId[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push({ fd: flat[i] as number, serial: flat[i + 1] as number });
  return out;
}

/** struct inotify_event { int wd; uint32_t mask, cookie, len; char name[len]; } (inotify(7)). */
function parseInotify(data: Buffer): InotifyEvent[] {
  const out: InotifyEvent[] = [];
  for (let off = 0; off + 16 <= data.length; ) {
    const len = data.readUInt32LE(off + 12);
    const raw = data.subarray(off + 16, off + 16 + len);
    const nul = raw.indexOf(0);
    out.push({ wd: data.readInt32LE(off), mask: data.readUInt32LE(off + 4), name: raw.subarray(0, nul < 0 ? raw.length : nul).toString() });
    off += 16 + len;
  }
  return out;
}

let calls: Calls | null | undefined;

/**
 * An event source, or null where there is none (not Linux, no koffi, PROC_ALIVE_FFI=0, or the calls
 * fail, e.g. inotify disabled): callers then poll, and say so.
 */
export function openEventSource(
  onBatch: (batch: EventBatch) => void,
  onError: (err: Error) => void,
  onReady: () => void,
): EventSource | null {
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
        errno: () => f.koffi.errno(),
      };
    } catch {
      calls = null;
    }
  }
  if (calls === null) return null;
  try {
    return new EventSource(calls, f.koffiPath, f.libName, onBatch, onError, onReady);
  } catch {
    return null;
  }
}
