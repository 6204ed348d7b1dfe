// Follows the state of FIFOs as it changes, for waits and watches. What a change means is decided here;
// how the kernel tells us is in kernel-events.ts (epoll and inotify), or, where that is not available,
// a poll of every followed path at an interval.
//
// A followed path is always in one of these set-ups, re-made from scratch ("re-armed") whenever anything
// about it may have changed:
//   alive   a write end of the FIFO, in epoll: EPOLLERR when its last reader goes.
//   dead    inotify IN_OPEN on the FIFO: a runner opening it. (A checker's failed open raises nothing.)
//   absent  nothing on the path itself.
// and in every state, a watch on its directory (or, if that is missing, on the nearest ancestor that
// exists) for creations, removals and renames of the name. Watches are added before the path is looked
// at, so that nothing that happens after the look is missed.

import { basename, dirname } from 'node:path';
import { ProcAliveError } from './errors.js';
import { IN, openEventSource, type EventBatch, type EventSource } from './kernel-events.js';
import { closeWriter, openWriter, type State } from './kernel.js';

export type WatchState = State | 'unknown';

/** A change of state of one followed path. */
export interface StateChange {
  state: WatchState;
  /** The state before, or null for the first report. */
  previous: WatchState | null;
  /** When it was seen: milliseconds since the epoch, with a fraction (performance.timeOrigin + now()). */
  time: number;
  /** For 'unknown': why the state cannot be told. */
  error?: ProcAliveError;
}

type Listener = (change: StateChange) => void;

const DIR_MASK = IN.CREATE | IN.DELETE | IN.MOVED_FROM | IN.MOVED_TO | IN.DELETE_SELF | IN.MOVE_SELF | IN.ONLYDIR;

interface Followed {
  path: string;
  listeners: Set<Listener>;
  state: WatchState | null;
  code: string | undefined;
  error: ProcAliveError | undefined;
  writer: number | null;
  /** The serial the event source gave the writer: its EPOLLERR reports carry it. */
  writerSerial: number;
  fifoWd: number | null;
  dirWd: number | null;
  /** The name whose appearance or disappearance in dirWd's directory concerns us. */
  dirName: string | null;
}

interface FollowedDir {
  dir: string;
  listeners: Set<() => void>;
  wd: number | null;
}

/** A handle on something followed: `close()` stops, `ref()`/`unref()` decide if it keeps the process up. */
export interface Following {
  close(): void;
  ref(): void;
  unref(): void;
  /** The current state (what the last report said). */
  readonly state: WatchState | null;
}

/** How the monitor learns of changes: 'events' (epoll and inotify) or 'polling'. */
export type Mechanism = 'events' | 'polling';

export const DEFAULT_POLL_MS = 100;

/**
 * How long the event source outlives its last user: starting it (a worker thread that loads koffi)
 * takes ~30 ms, which a script that waits for one target after another should pay once. While it
 * lingers it is unref'd, and so is its timer: it never keeps the process alive.
 */
const LINGER_MS = 1000;

const now = (): number => performance.timeOrigin + performance.now();

class Monitor {
  #source: EventSource | null = null;
  #polling: NodeJS.Timeout | null = null;
  #mechanism: Mechanism | null = null;
  readonly #paths = new Map<string, Followed>();
  readonly #dirs = new Map<string, FollowedDir>();
  readonly #byWd = new Map<number, Set<Followed | FollowedDir>>();
  /** Followed paths by their writer's serial (not its fd number, which the kernel reuses). */
  readonly #byWriter = new Map<number, Followed>();
  #refs = 0;
  #handles = 0;
  #linger: NodeJS.Timeout | null = null;
  #bridge: NodeJS.Timeout | null = null;

  /** How changes are learnt now, or null while nothing is followed. */
  get mechanism(): Mechanism | null {
    return this.#mechanism;
  }

  #start(): Mechanism {
    if (this.#linger !== null) {
      clearTimeout(this.#linger);
      this.#linger = null;
    }
    if (this.#mechanism !== null) return this.#mechanism;
    this.#source = openEventSource(
      (batch) => this.#onBatch(batch),
      (err) => this.#onFailure(err),
      () => this.#stopBridge(),
    );
    if (this.#source !== null) {
      this.#mechanism = 'events';
      // Until the worker waits, this thread reads what the kernel queues, every millisecond.
      const source = this.#source;
      this.#bridge = setInterval(() => {
        if (!source.ready) this.#onBatch(source.drain());
      }, 1);
    } else {
      this.#mechanism = 'polling';
      this.#polling = setInterval(() => this.#poll(), DEFAULT_POLL_MS);
    }
    this.#applyRef();
    return this.#mechanism;
  }

  #stopBridge(): void {
    if (this.#bridge !== null) clearInterval(this.#bridge);
    this.#bridge = null;
  }

  #stop(): void {
    this.#stopBridge();
    this.#source?.close();
    this.#source = null;
    if (this.#polling !== null) clearInterval(this.#polling);
    this.#polling = null;
    this.#mechanism = null;
  }

  #applyRef(): void {
    if (this.#refs > 0) {
      this.#source?.ref();
      this.#polling?.ref();
      this.#bridge?.ref();
    } else {
      this.#source?.unref();
      this.#polling?.unref();
      this.#bridge?.unref();
    }
  }

  /** Starts a handle's life: counted, and ref'd unless asked not to be. */
  #handle(release: () => void, ref: boolean): { close(): void; ref(): void; unref(): void } {
    this.#handles++;
    let refd = false;
    let closed = false;
    const setRef = (on: boolean): void => {
      if (closed || on === refd) return;
      refd = on;
      this.#refs += on ? 1 : -1;
      this.#applyRef();
    };
    setRef(ref);
    return {
      close: () => {
        if (closed) return;
        setRef(false);
        closed = true;
        release();
        if (--this.#handles === 0) {
          // Polling has nothing to keep; an event source lingers a little, unref'd (see LINGER_MS).
          if (this.#source === null) {
            this.#stop();
          } else {
            this.#linger = setTimeout(() => {
              this.#linger = null;
              if (this.#handles === 0) this.#stop();
            }, LINGER_MS);
            this.#linger.unref();
          }
        }
      },
      ref: () => setRef(true),
      unref: () => setRef(false),
    };
  }

  /** Follows the FIFO at `path`; `listener` gets its current state at once, then every change. */
  follow(path: string, listener: Listener, ref = true): Following {
    this.#start();
    let f = this.#paths.get(path);
    const first = f === undefined;
    if (f === undefined) {
      f = { path, listeners: new Set(), state: null, code: undefined, error: undefined, writer: null, writerSerial: 0, fifoWd: null, dirWd: null, dirName: null };
      this.#paths.set(path, f);
    }
    f.listeners.add(listener);
    const followed = f;
    if (first) this.#rearm(f, false);
    else if (f.state !== null) listener({ state: f.state, previous: null, time: now(), ...(f.error ? { error: f.error } : {}) });
    const h = this.#handle(() => {
      followed.listeners.delete(listener);
      if (followed.listeners.size === 0) {
        this.#release(followed);
        this.#paths.delete(path);
      }
    }, ref);
    return {
      ...h,
      get state() {
        return followed.state;
      },
    };
  }

  /** Calls `listener` whenever an entry of directory `dir` is created, removed or renamed. */
  followDir(dir: string, listener: () => void, ref = true): Omit<Following, 'state'> {
    this.#start();
    let d = this.#dirs.get(dir);
    if (d === undefined) {
      d = { dir, listeners: new Set(), wd: null };
      this.#dirs.set(dir, d);
      if (this.#source !== null) {
        const wd = this.#source.addWatch(dir, DIR_MASK);
        if (typeof wd === 'number') {
          d.wd = wd;
          this.#use(wd, d);
        }
      }
    }
    d.listeners.add(listener);
    const followed = d;
    return this.#handle(() => {
      followed.listeners.delete(listener);
      if (followed.listeners.size === 0) {
        if (followed.wd !== null) this.#unuse(followed.wd, followed);
        this.#dirs.delete(dir);
      }
    }, ref);
  }

  #use(wd: number, who: Followed | FollowedDir): void {
    let users = this.#byWd.get(wd);
    if (users === undefined) this.#byWd.set(wd, (users = new Set()));
    users.add(who);
  }

  #unuse(wd: number, who: Followed | FollowedDir): void {
    const users = this.#byWd.get(wd);
    if (users === undefined) return;
    users.delete(who);
    // inotify gives one wd per inode: drop the watch only when nothing else of ours uses it.
    if (users.size === 0) {
      this.#byWd.delete(wd);
      this.#source?.removeWatch(wd);
    }
  }

  /** Undoes a path's set-up: its write end, its watches. */
  #release(f: Followed): void {
    if (f.writer !== null) {
      this.#source?.unwatchWriter(f.writer);
      this.#byWriter.delete(f.writerSerial);
      closeWriter(f.writer);
      f.writer = null;
    }
    if (f.fifoWd !== null) this.#unuse(f.fifoWd, f);
    if (f.dirWd !== null) this.#unuse(f.dirWd, f);
    f.fifoWd = f.dirWd = null;
    f.dirName = null;
  }

  /**
   * Re-makes a path's set-up from scratch and reports its state if it changed. `died`: the kernel said the
   * last reader went (EPOLLERR). `opened`: the kernel said someone opened the FIFO (IN_OPEN), which
   * proves a reader was there at that instant: a FIFO opens for reading always, and for writing
   * (non-blocking) only if a reader exists (fifo(7)); a failed open raises no IN_OPEN.
   */
  #rearm(f: Followed, died: boolean, opened = false): void {
    this.#release(f);
    let fifoWatchError: string | undefined;
    const source = this.#source;
    if (source !== null) {
      // The directory first (or the nearest ancestor that exists, for a path whose directory is missing).
      let dir = dirname(f.path);
      let name = basename(f.path);
      for (;;) {
        const wd = source.addWatch(dir, DIR_MASK);
        if (typeof wd === 'number') {
          f.dirWd = wd;
          f.dirName = name;
          this.#use(wd, f);
          break;
        }
        if ((wd !== 'ENOENT' && wd !== 'ENOTDIR') || dirname(dir) === dir) {
          this.#report(f, 'unknown', died, new ProcAliveError(wd, `cannot watch its directory ${dir} (${wd})`, { path: f.path }));
          return;
        }
        name = basename(dir);
        dir = dirname(dir);
      }
      // Then the FIFO, for a reader's open: before we look, so one that comes after our look is seen.
      const wd = source.addWatch(f.path, IN.OPEN);
      if (typeof wd === 'number') {
        f.fifoWd = wd;
        this.#use(wd, f);
      } else {
        fifoWatchError = wd;
      }
    }
    let state: WatchState;
    let error: ProcAliveError | undefined;
    try {
      const w = openWriter(f.path);
      state = w.state;
      if (w.state === 'alive') {
        if (source === null) {
          closeWriter(w.fd);
        } else {
          f.writer = w.fd;
          f.writerSerial = source.watchWriter(w.fd).serial;
          this.#byWriter.set(f.writerSerial, f);
        }
      }
    } catch (err) {
      state = 'unknown';
      error = err instanceof ProcAliveError ? err : new ProcAliveError('EIO', String(err), { path: f.path, cause: err });
    }
    // A dead FIFO we cannot watch for a runner's open (ENOSPC: the inotify watch limit) would miss the
    // start: say so rather than report "dead" forever.
    if (state === 'dead' && source !== null && f.fifoWd === null) {
      state = 'unknown';
      error = new ProcAliveError(fifoWatchError ?? 'EIO', `cannot watch the FIFO for a runner (${fifoWatchError ?? 'EIO'})`, { path: f.path });
    }
    // IN_OPEN is wanted only while no reader is there: an alive FIFO is opened by every checker.
    if (state !== 'dead' && f.fifoWd !== null) {
      this.#unuse(f.fifoWd, f);
      f.fifoWd = null;
    }
    this.#report(f, state, died, error, opened);
  }

  #report(f: Followed, state: WatchState, died: boolean, error?: ProcAliveError, opened = false): void {
    // A death we were told of, with a new reader already there when we looked: it was dead in between.
    if (died && state === 'alive' && f.state === 'alive') this.#emit(f, 'dead');
    // An open we were told of, and no reader when we looked: it was alive in between (a runner that
    // started and died before we looked, or a checker that caught it alive).
    if (opened && state !== 'alive' && f.state === 'dead') this.#emit(f, 'alive');
    if (state === f.state && error?.code === f.code) return;
    this.#emit(f, state, error);
  }

  #emit(f: Followed, state: WatchState, error?: ProcAliveError): void {
    const change: StateChange = { state, previous: f.state, time: now(), ...(error === undefined ? {} : { error }) };
    f.state = state;
    f.code = error?.code;
    f.error = error;
    for (const listener of [...f.listeners]) listener(change);
  }

  #onBatch(batch: EventBatch): void {
    for (const { fd, serial } of batch.errored) {
      const f = this.#byWriter.get(serial);
      if (f !== undefined && f.writer === fd && f.writerSerial === serial) this.#rearm(f, true);
    }
    const dirs = new Set<FollowedDir>();
    const paths = new Set<Followed>();
    const opened = new Set<Followed>();
    for (const e of batch.inotify) {
      if (e.mask & IN.Q_OVERFLOW) {
        // The kernel dropped events: look at everything again.
        for (const f of this.#paths.values()) paths.add(f);
        for (const d of this.#dirs.values()) dirs.add(d);
        continue;
      }
      for (const who of this.#byWd.get(e.wd) ?? []) {
        if ('listeners' in who && 'dir' in who) {
          dirs.add(who);
          continue;
        }
        const f = who as Followed;
        if (f.fifoWd === e.wd && e.mask & IN.OPEN) {
          if (f.state !== 'alive') {
            paths.add(f);
            opened.add(f);
          }
        } else if (f.dirWd === e.wd && (e.name === f.dirName || e.mask & (IN.DELETE_SELF | IN.MOVE_SELF | IN.IGNORED | IN.UNMOUNT))) {
          paths.add(f);
        }
      }
    }
    for (const f of paths) if (this.#paths.get(f.path) === f) this.#rearm(f, false, opened.has(f));
    for (const d of dirs) for (const listener of [...d.listeners]) listener();
  }

  #onFailure(err: Error): void {
    this.#stopBridge();
    // The event source broke (it should not): fall back to polling, and say so to every follower.
    for (const f of this.#paths.values()) {
      this.#emit(f, 'unknown', new ProcAliveError('EWATCH', `watching failed (${err.message}); polling instead`, { path: f.path }));
    }
    this.#source?.close();
    this.#source = null;
    this.#mechanism = 'polling';
    this.#polling = setInterval(() => this.#poll(), DEFAULT_POLL_MS);
    this.#applyRef();
  }

  #poll(): void {
    for (const f of [...this.#paths.values()]) this.#rearm(f, false);
    for (const d of [...this.#dirs.values()]) for (const listener of [...d.listeners]) listener();
  }
}

/** The one monitor of this process: created on first use, so importing proc-alive starts nothing. */
let monitor: Monitor | undefined;

export function theMonitor(): Monitor {
  monitor ??= new Monitor();
  return monitor;
}

