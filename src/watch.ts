// Watching targets change state: an event emitter and an async iterator over the same reports.

import { EventEmitter } from 'node:events';
import { ProcAliveError } from './errors.js';
import { isDirectory, isServiceDir, listTargets, serviceFifo } from './kernel.js';
import { DEFAULT_POLL_MS, theMonitor, type Mechanism, type StateChange, type WatchState } from './monitor.js';
import { targetPath } from './target.js';

export type { WatchState, Mechanism };

/** One change of state of one target. */
export interface WatchEvent {
  /** The target as given, or, for one found in a watched directory, its path. */
  target: string;
  /** The FIFO's path (for a service directory, its `supervise/ok`). */
  path: string;
  state: WatchState;
  /** The state before, or null for the first report of this target. */
  previous: WatchState | null;
  /** When the change was seen, in milliseconds since the epoch (with a fraction). */
  time: number;
  /** For `'unknown'`: the error code (`ENOTFIFO`, `EACCES`, ...) and the one-line reason. */
  code?: string;
  reason?: string;
}

export interface WatchOptions {
  /** Do not keep the process alive while watching (as `timer.unref()`). Default false. */
  unref?: boolean;
  /** Close the watcher when this signal aborts. */
  signal?: AbortSignal;
}

interface Entry {
  close(): void;
  ref(): void;
  unref(): void;
}

/**
 * Reports every change of state of its targets, as `'change'` events and through `for await`. The first
 * report of each target (its state when watching starts, `previous: null`) comes in a microtask after
 * `watch()` returns, so listeners attached right away get it. A directory that is not a service
 * directory stands for the targets in it (FIFOs and service directories), followed as they come and go.
 */
export class Watcher extends EventEmitter<{ change: [WatchEvent]; close: [] }> implements AsyncIterable<WatchEvent> {
  readonly #entries = new Map<string, Entry>();
  readonly #dirs = new Map<string, { handle: Entry; members: Set<string> }>();
  readonly #queue: WatchEvent[] = [];
  readonly #waiting: Array<(r: IteratorResult<WatchEvent>) => void> = [];
  #iterating = false;
  #refd: boolean;
  #closed = false;
  readonly #onAbort = (): void => this.close();
  readonly #signal: AbortSignal | undefined;

  constructor(targets: string[], options: WatchOptions = {}) {
    super();
    this.#refd = !options.unref;
    this.#signal = options.signal;
    // Resolve every target first, so that a bad one (an empty name) throws before anything starts.
    const resolved = targets.map((target) => ({ target, path: targetPath(target) }));
    if (options.signal?.aborted) {
      this.#closed = true;
      return;
    }
    options.signal?.addEventListener('abort', this.#onAbort, { once: true });
    queueMicrotask(() => {
      for (const { target, path } of resolved) {
        if (this.#closed) return;
        if (isDirectory(path) && !isServiceDir(path)) this.#watchDir(path);
        else this.#follow(target, path);
      }
    });
  }

  /** How changes are learnt: `'events'` (epoll and inotify) or `'polling'` (every 100 ms). */
  get mechanism(): Mechanism | null {
    return theMonitor().mechanism;
  }

  #follow(target: string, path: string): void {
    let fifo: string;
    try {
      fifo = isDirectory(path) ? serviceFifo(path) : path;
    } catch (err) {
      this.#push(unknownEvent(target, path, err));
      return;
    }
    const key = `${target}\0${fifo}`;
    if (this.#entries.has(key)) return;
    const handle = theMonitor().follow(fifo, (change) => this.#push(toEvent(target, fifo, change)), this.#refd);
    this.#entries.set(key, handle);
  }

  #unfollow(target: string): void {
    for (const [key, handle] of this.#entries) {
      if (key.startsWith(`${target}\0`)) {
        handle.close();
        this.#entries.delete(key);
      }
    }
  }

  #watchDir(dir: string): void {
    const members = new Set<string>();
    const sync = (): void => {
      if (this.#closed) return;
      let now: string[];
      try {
        now = listTargets(dir);
      } catch (err) {
        this.#push(unknownEvent(dir, dir, err));
        return;
      }
      const current = new Set(now);
      for (const path of now) {
        if (!members.has(path)) {
          members.add(path);
          this.#follow(path, path);
        }
      }
      for (const path of [...members]) {
        if (!current.has(path)) {
          members.delete(path);
          // Its own watch has reported it absent (removed) already, or does now if it was renamed away.
          this.#unfollow(path);
        }
      }
    };
    const handle = theMonitor().followDir(dir, sync, this.#refd);
    this.#dirs.set(dir, { handle, members });
    sync();
  }

  #push(event: WatchEvent): void {
    if (this.#closed) return;
    this.emit('change', event);
    if (!this.#iterating) return;
    const next = this.#waiting.shift();
    if (next !== undefined) next({ value: event, done: false });
    else this.#queue.push(event);
  }

  /** Keep the process alive while watching (the default), or not. */
  ref(): this {
    this.#refd = true;
    for (const e of this.#entries.values()) e.ref();
    for (const d of this.#dirs.values()) d.handle.ref();
    return this;
  }

  unref(): this {
    this.#refd = false;
    for (const e of this.#entries.values()) e.unref();
    for (const d of this.#dirs.values()) d.handle.unref();
    return this;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Stops watching and releases everything (fds, watches, the worker when nothing else uses it). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#signal?.removeEventListener('abort', this.#onAbort);
    for (const e of this.#entries.values()) e.close();
    this.#entries.clear();
    for (const d of this.#dirs.values()) d.handle.close();
    this.#dirs.clear();
    for (const next of this.#waiting.splice(0)) next({ value: undefined, done: true });
    this.emit('close');
  }

  [Symbol.dispose](): void {
    this.close();
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
    this.#iterating = true;
    return {
      next: () => {
        const queued = this.#queue.shift();
        if (queued !== undefined) return Promise.resolve({ value: queued, done: false });
        if (this.#closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => this.#waiting.push(resolve));
      },
      return: () => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

function toEvent(target: string, path: string, change: StateChange): WatchEvent {
  const event: WatchEvent = { target, path, state: change.state, previous: change.previous, time: change.time };
  if (change.error !== undefined) {
    event.code = change.error.code;
    event.reason = change.error.message;
  }
  return event;
}

function unknownEvent(target: string, path: string, err: unknown): WatchEvent {
  const e = err instanceof ProcAliveError ? err : new ProcAliveError('EIO', String(err), { path });
  return { target, path, state: 'unknown', previous: null, time: performance.timeOrigin + performance.now(), code: e.code, reason: e.message };
}

/**
 * Watches `targets` (names, paths, service directories, or directories of targets). See {@link Watcher}.
 * Where epoll and inotify are not available (not Linux, or no koffi), it polls every
 * {@link DEFAULT_POLL_MS} ms instead, and `watcher.mechanism` says `'polling'`.
 */
export function watch(targets: string | string[], options: WatchOptions = {}): Watcher {
  return new Watcher(typeof targets === 'string' ? [targets] : targets, options);
}

export { DEFAULT_POLL_MS };
