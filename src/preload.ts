// Loading the FFI before it is needed. hold(), wrap(), watch() and the waits load koffi (the FFI to
// libc: mkfifo(3), flock(2), epoll, inotify) on first use, synchronously: dlopen(3) of a native addon
// cannot be done off the main thread for the main thread (a worker's copy is the worker's own). That is
// 12–17 ms on a quiet machine, more under load. A server that must not pause its event loop once it
// serves calls preload() at start-up instead, before it listens.

import { loadLibc } from './kernel.js';

/**
 * Loads the FFI now (once per process; later calls cost nothing). Returns whether it loaded: false
 * where it is off (`PROC_ALIVE_FFI=0`), not Linux, or cannot load, and proc-alive uses Node's `fs`
 * and the `mkfifo`/`flock` programs instead. Synchronous on purpose, so that its cost falls where it
 * is called: there is no way to load a native addon without blocking the thread that will use it.
 */
export function preload(): boolean {
  return loadLibc() !== null;
}
