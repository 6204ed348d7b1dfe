// The event worker: one thread that blocks in epoll_wait(2) on the set kernel-events.ts builds, and posts
// what it harvests to the main thread. It only waits and reads; every change to the epoll set and to the
// inotify watches is made by the main thread (epoll_ctl and inotify_add_watch are thread-safe).
//
// Loaded by kernel-events.ts with `new Worker(join(__dirname, 'kernel-events-worker.js'))` (the same from
// the bundled CLI, dist/bin.cjs, which sits beside this file);
// it has its own koffi, bound to the same libc the main thread loaded.

import { parentPort, workerData } from 'node:worker_threads';
import { EINTR, LOAD, harvest, harvestBuffers, type HarvestCalls } from './kernel-events-format.js';
import type { Koffi } from './kernel.js';

/** What kernel-events.ts hands the worker. */
export interface WorkerData {
  koffiPath: string;
  libName: string;
  epfd: number;
  inotifyFd: number;
  wakeFd: number;
  /**
   * Int32Array over it: [0] stop, set to end the worker; [1] go, set once the main thread no longer
   * drains; [2] held, set by the worker when it posts a batch and cleared by the main thread once it has
   * handled it (see below); [3] the state of the worker's koffi load (LOAD), which an ending process
   * must not cut short (see EventSource's exit listener).
   */
  control: SharedArrayBuffer;
}

/** What the worker posts. */
export type WorkerMessage =
  | { kind: 'ready' }
  | { kind: 'batch'; ready: number[]; inotify: Uint8Array | null }
  | { kind: 'error'; errno: number };

const d = workerData as WorkerData;
const port = parentPort;
if (port === null) throw new Error('kernel-events-worker.js runs as a worker thread only');

const control = new Int32Array(d.control);
// The process is already ending, or the source was closed: load nothing, end.
if (Atomics.compareExchange(control, 3, LOAD.notBegun, LOAD.loading) !== LOAD.notBegun) process.exit(0);
let calls: HarvestCalls;
try {
  const koffi = require(d.koffiPath) as Koffi;
  const lib = koffi.load(d.libName);
  calls = {
    epoll_wait: lib.func('int epoll_wait(int epfd, void *events, int maxevents, int timeout)'),
    read: lib.func('long read(int fd, void *buf, unsigned long count)'),
    errno: () => koffi.errno(),
  };
} finally {
  // Loaded, or failed to (the error ends this worker): either way past koffi's init.
  Atomics.store(control, 3, LOAD.done);
  Atomics.notify(control, 3);
}
const bufs = harvestBuffers();
const post = (m: WorkerMessage, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);

// Handed over, not shared: until the main thread has stopped reading the queues itself (control[1] = 1),
// the worker reads nothing, so no event is taken by one thread while an earlier one waits in the other.
post({ kind: 'ready' });
while (Atomics.load(control, 0) === 0 && Atomics.load(control, 1) === 0) Atomics.wait(control, 1, 0, 100);

while (Atomics.load(control, 0) === 0) {
  const h = harvest(calls, d, bufs, -1, true);
  if (Atomics.load(control, 0) !== 0) break;
  if (h.error === EINTR) continue;
  if (h.error !== 0) {
    post({ kind: 'error', errno: h.error });
    break;
  }
  if (h.ready.length > 0 || h.inotify !== null) {
    // Nothing more is read until the main thread has handled this batch: what happens meanwhile stays
    // in the kernel's queues, where the main thread reads it itself, in order, before it reports what it
    // looked at (EventSource.catchUp). Read ahead here instead, it would reach the main thread only
    // after reports made from later looks (a process stopped between this post and its handling), and
    // what it proves would be lost.
    Atomics.store(control, 2, 1);
    post({ kind: 'batch', ready: h.ready, inotify: h.inotify }, h.inotify === null ? [] : [h.inotify.buffer as ArrayBuffer]);
    while (Atomics.load(control, 0) === 0 && Atomics.load(control, 2) === 1) Atomics.wait(control, 2, 1, 1000);
  }
}
