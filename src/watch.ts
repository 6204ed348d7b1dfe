// Watching targets change state: an event emitter and an async iterator over the same reports.

import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { ProcAliveError, errnoError } from './errors.js';
import { DEFAULT_POLL_MS, LIMIT_CODES, theMonitor, type Followed, type Follower, type Lease, type StateChange, type WatchState } from './monitor.js';
import { targetPath } from './target.js';
import { decodeName, fsPath } from './text.js';

export type { WatchState };

/**
 * How a watcher learns of changes: `'events'` (epoll and inotify, for every target), `'polling'` (no
 * kernel events here: every target is looked at every 100 ms), or `'mixed'` (events, but some targets
 * are polled at a short interval: no read permission for inotify, as for a checker that may only write
 * the FIFO, or a limit reached).
 */
export type Mechanism = 'events' | 'polling' | 'mixed';

/** One change of state of one target. */
export interface WatchEvent {
  /** The target as given, or, for one found in a watched directory, its path. */
  target: string;
  /** What the state is of: the FIFO's path (the end of its symbolic links; a service directory's `supervise/ok`). */
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

/** The events of a {@link Watcher}. */
export interface WatcherEvents {
  /** A change of state of a target (the first of each has `previous: null`). */
  change: [event: WatchEvent];
  /** Every target given (and every target in a directory given) has had its first report. Once. */
  ready: [];
  /**
   * Watching itself failed or degraded, and goes on by polling: `EWATCH` (the event worker ended or
   * could not start), or a limit (`EMFILE`, `ENFILE`, `ENOSPC`: the inotify watch limit, `ENOMEM`).
   * Said once per cause while it lasts. Emitted only while someone listens: with no listener it is not
   * thrown, since the watcher still reports every target. Not about a target: that is state `'unknown'`.
   */
  error: [error: ProcAliveError];
  close: [];
}

/** What a watcher does with the reports about one of its targets; one per target (followed path). */
interface Owner {
  change(m: Member, change: StateChange): void;
  entries(m: Member, names: string[] | null): void;
  degraded(m: Member, err: ProcAliveError | null): void;
}

/** One target of a watcher: given, or found in a directory given. Kept small: there may be 10,000. */
class Member implements Follower {
  readonly target: string;
  readonly path: string;
  readonly owner: Owner;
  /** The directory target it was found in, or null for a target given. */
  readonly dir: Member | null;
  f: Followed | null = null;
  /** Whether a report of it has gone out (a directory's entry is reported only once it is a target). */
  reported = false;
  /** Set when it must be let go of as soon as follow() has returned it. */
  gone = false;
  /** Why it is polled, if it is (an error code). */
  degradedCode: string | null = null;
  /** For a directory of targets: its members, by path. */
  members: Map<string, Member> | null = null;

  constructor(target: string, path: string, owner: Owner, dir: Member | null) {
    this.target = target;
    this.path = path;
    this.owner = owner;
    this.dir = dir;
  }

  change(change: StateChange): void {
    this.owner.change(this, change);
  }

  entries(names: string[] | null): void {
    this.owner.entries(this, names);
  }

  degraded(err: ProcAliveError | null): void {
    this.owner.degraded(this, err);
  }
}

/**
 * Reports every change of state of its targets, as `'change'` events and through `for await`. The first
 * report of each target is its state when watching starts, with `previous: null`; it comes in a microtask
 * after `watch()` (or `add()`) returns, so listeners attached right away get it, and `'ready'` follows
 * once all of them have come. A directory that is not a service directory stands for the targets in it
 * (FIFOs and service directories), followed as they come and go; a target that appears there later
 * starts with `previous: null` too. What a path is, is what is there now: a path that does not exist yet
 * and becomes a directory is watched as one from then on.
 */
export class Watcher extends EventEmitter<WatcherEvents> implements AsyncIterable<WatchEvent> {
  readonly #top = new Map<string, Member>();
  readonly #queue: WatchEvent[] = [];
  readonly #waiting: Array<(r: IteratorResult<WatchEvent>) => void> = [];
  /** How many of its targets are polled, by cause. */
  readonly #degraded = new Map<string, number>();
  #iterating = false;
  #closed = false;
  #closing: Promise<void> | null = null;
  #lease: Lease | null = null;
  readonly #onAbort = (): void => void this.close();
  readonly #signal: AbortSignal | undefined;
  readonly #owner: Owner = {
    change: (m, c) => this.#change(m, c),
    entries: (m, names) => this.#entries(m, names),
    degraded: (m, err) => this.#setDegraded(m, err),
  };

  constructor(targets: string[], options: WatchOptions = {}) {
    super();
    this.#signal = options.signal;
    // Resolve every target first, so that a bad one (an empty name) throws before anything starts.
    const resolved = targets.map((target) => [target, targetPath(target)] as const);
    if (options.signal?.aborted) {
      this.#closed = true;
      return;
    }
    options.signal?.addEventListener('abort', this.#onAbort, { once: true });
    // A failure can come at once (inside lease()): told in a microtask, once listeners are attached.
    this.#lease = theMonitor().lease(!options.unref, (err) => queueMicrotask(() => this.#error(err)));
    queueMicrotask(() => {
      for (const [target, path] of resolved) if (!this.#closed) this.#addTop(target, path);
      if (!this.#closed) this.emit('ready');
    });
  }

  /** How changes are learnt now (see {@link Mechanism}); null once closed. */
  get mechanism(): Mechanism | null {
    const monitor = theMonitor();
    if (this.#closed || monitor.mechanism === null) return null;
    if (monitor.mechanism === 'polling') return 'polling';
    return this.#degraded.size > 0 ? 'mixed' : 'events';
  }

  /** Watches more targets (names, paths, directories); their first reports come in a microtask. */
  add(targets: string | string[]): this {
    const resolved = (typeof targets === 'string' ? [targets] : targets).map((target) => [target, targetPath(target)] as const);
    queueMicrotask(() => {
      for (const [target, path] of resolved) if (!this.#closed) this.#addTop(target, path);
    });
    return this;
  }

  /** Stops watching targets given to watch() or add() (a directory: with the targets found in it). */
  unwatch(targets: string | string[]): this {
    for (const target of typeof targets === 'string' ? [targets] : targets) {
      const m = this.#top.get(target);
      if (m === undefined) continue;
      this.#top.delete(target);
      this.#let(m);
    }
    return this;
  }

  #addTop(target: string, path: string): void {
    if (this.#top.has(target)) return;
    // The same path found in a directory given too is reported once, as the target given.
    for (const d of this.#top.values()) {
      const found = d.members?.get(target);
      if (found !== undefined) this.#let(found);
    }
    const m = new Member(target, path, this.#owner, null);
    this.#top.set(target, m);
    this.#follow(m, 'watch');
  }

  #follow(m: Member, mode: 'watch' | 'member'): void {
    const monitor = theMonitor();
    m.f = monitor.follow(m.path, mode, m);
    if (m.gone) this.#let(m);
  }

  /** Lets go of a member (and of the members of a directory). */
  #let(m: Member): void {
    if (m.f === null) {
      m.gone = true; // still inside follow(): let go once it returns
      return;
    }
    theMonitor().unfollow(m.f, m);
    m.f = null;
    this.#setDegraded(m, null);
    if (m.members !== null) for (const member of m.members.values()) this.#let(member);
    m.members = null;
    m.dir?.members?.delete(m.path);
  }

  #change(m: Member, c: StateChange): void {
    if (this.#closed) return;
    if (m.dir !== null && !m.reported) {
      // An entry of a watched directory is a target once it is a FIFO (or a service directory): until
      // then, something else there (a file that is not a FIFO) or nothing says nothing.
      if (c.state === 'absent' && c.path === m.path) return this.#let(m); // gone before it was a target
      if (c.state === 'unknown' && c.error?.code === 'ENOTFIFO') return;
    }
    const event: WatchEvent = { target: m.target, path: c.path, state: c.state, previous: m.reported ? c.previous : null, time: c.time };
    if (c.error !== undefined) {
      event.code = c.error.code;
      event.reason = c.error.message;
    }
    m.reported = true;
    this.#push(event);
    // A target of a directory that is gone is no longer followed; if it comes back, it starts anew. (A
    // service directory whose supervise/ok is absent is still there.)
    if (m.dir !== null && c.state === 'absent' && c.path === m.path) this.#let(m);
  }

  /** A directory of targets changed (names), or must be listed again (null). */
  #entries(m: Member, names: string[] | null): void {
    if (this.#closed || m.gone) return;
    const members = (m.members ??= new Map());
    let found: string[];
    if (names !== null) {
      found = names.filter((name) => !name.startsWith('.') && !members.has(join(m.path, name)) && maybeTarget(join(m.path, name)));
    } else {
      try {
        found = listCandidates(m.path);
      } catch (err) {
        const e = err instanceof ProcAliveError ? err : new ProcAliveError('EIO', String(err), { path: m.path });
        this.#change(m, { state: 'unknown', path: m.path, previous: null, time: performance.timeOrigin + performance.now(), error: e });
        return;
      }
    }
    for (const name of found) {
      const path = join(m.path, name);
      if (members.has(path) || this.#top.has(path)) continue;
      const member = new Member(path, path, this.#owner, m);
      members.set(path, member);
      this.#follow(member, 'member');
    }
  }

  #setDegraded(m: Member, err: ProcAliveError | null): void {
    const code = err?.code ?? null;
    if (m.degradedCode === code) return;
    if (m.degradedCode !== null) {
      const n = (this.#degraded.get(m.degradedCode) ?? 1) - 1;
      if (n === 0) this.#degraded.delete(m.degradedCode);
      else this.#degraded.set(m.degradedCode, n);
    }
    m.degradedCode = code;
    if (code === null || err === null) return;
    const n = (this.#degraded.get(code) ?? 0) + 1;
    this.#degraded.set(code, n);
    // A limit is a failure of the watching; a path we may not read (a checker that may only write the
    // FIFO, a directory mode 0711) is polled as documented, and is no error.
    if (n === 1 && LIMIT_CODES.has(code)) this.#error(err);
  }

  #error(err: ProcAliveError): void {
    if (!this.#closed && this.listenerCount('error') > 0) this.emit('error', err);
  }

  #push(event: WatchEvent): void {
    if (this.#closed) return;
    if (this.#iterating) {
      const next = this.#waiting.shift();
      if (next !== undefined) next({ value: event, done: false });
      else this.#queue.push(event);
    }
    this.emit('change', event);
  }

  /** Keep the process alive while watching (the default), or not. */
  ref(): this {
    this.#lease?.ref();
    return this;
  }

  unref(): this {
    this.#lease?.unref();
    return this;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Stops watching. Resolves once everything is released: fds and watches at once, and the event worker
   * too when nothing else in the process uses it. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing !== null) return this.#closing;
    this.#closed = true;
    this.#signal?.removeEventListener('abort', this.#onAbort);
    for (const m of this.#top.values()) this.#let(m);
    this.#top.clear();
    for (const next of this.#waiting.splice(0)) next({ value: undefined, done: true });
    this.#closing = this.#lease?.release(true) ?? Promise.resolve();
    this.#lease = null;
    this.emit('close');
    return this.#closing;
  }

  [Symbol.dispose](): void {
    void this.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
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
      return: async () => {
        await this.close();
        return { value: undefined, done: true };
      },
    };
  }
}

/** The entries of `dir` that may be targets: not hidden (our lock and record files are), and a FIFO, a directory or a link. */
function listCandidates(dir: string): string[] {
  let entries: fs.Dirent<Buffer>[];
  try {
    // Names as bytes: one that is not UTF-8 must still name its file (see text.ts).
    entries = fs.readdirSync(fsPath(dir), { withFileTypes: true, encoding: 'buffer' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw errnoError((err as NodeJS.ErrnoException).code ?? 'EIO', dir, 'cannot list', err);
  }
  const out: string[] = [];
  for (const e of entries) {
    const name = decodeName(e.name);
    if (name.startsWith('.')) continue;
    if (e.isFIFO() || e.isDirectory() || e.isSymbolicLink() || (!e.isFile() && !e.isSocket() && maybeTarget(join(dir, name)))) out.push(name);
  }
  return out;
}

/** Whether what is at `path` may be a target: a FIFO, a directory (a service directory, or one in the making), a link. */
function maybeTarget(path: string): boolean {
  try {
    const st = fs.lstatSync(fsPath(path));
    return st.isFIFO() || st.isDirectory() || st.isSymbolicLink();
  } catch {
    return false;
  }
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
