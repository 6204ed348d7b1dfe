// Watching targets change state: an event emitter and an async iterator over the same reports.

import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { checkOptions, targetsArgument } from './arguments.js';
import { ProcAliveError, errnoError } from './errors.js';
import { DEFAULT_POLL_MS, LIMIT_CODES, TARGET, theMonitor, type Followed, type Follower, type Lease, type StateChange, type WatchState } from './monitor.js';
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
  // What the watcher follows, by followed path (the monitor's object: one per path, nothing per target
  // here but entries in these maps, so that 10,000 targets cost little).
  /**
   * The targets given that a followed path stands for, where that is not just its path (a bare name,
   * two names for one path); and those targets. A target given as a path needs neither: the monitor
   * knows whether this watcher follows it.
   */
  readonly #alias = new Map<Followed, string[]>();
  readonly #named = new Map<string, Followed>();
  /** Targets found in a directory given: the directory's followed path. */
  readonly #in = new Map<Followed, Followed>();
  /** A directory given: its targets, by path. */
  readonly #members = new Map<Followed, Map<string, Followed>>();
  /** Targets found in a directory and not reported yet (not a FIFO or service directory yet). */
  readonly #unseen = new Set<Followed>();
  /** Targets polled rather than watched, with the cause; and how many per cause. */
  readonly #degradedBy = new Map<Followed, string>();
  readonly #degraded = new Map<string, number>();
  readonly #queue: WatchEvent[] = [];
  readonly #waiting: Array<(r: IteratorResult<WatchEvent>) => void> = [];
  #iterating = false;
  #closed = false;
  #closing: Promise<void> | null = null;
  /** Targets given to add() whose first report is still to come (add follows them in a microtask). */
  readonly #adding = new Set<Set<string>>();
  #lease: Lease | null = null;
  readonly #onAbort = (): void => void this.close();
  readonly #signal: AbortSignal | undefined;
  /** What the monitor tells this watcher, about any of its followed paths. */
  readonly #follower: Follower = {
    change: (f, c) => this.#change(f, c),
    entries: (f, names) => this.#entries(f, names),
    degraded: (f, err) => this.#setDegraded(f, err),
  };

  constructor(targets: string | readonly string[], given?: WatchOptions) {
    super();
    const options = checkOptions(given, { unref: 'boolean', signal: 'AbortSignal' });
    this.#signal = options.signal;
    // Resolve every target first, so that a bad one (an empty name) throws before anything starts.
    const resolved = targetsArgument(targets).map((target) => [target, targetPath(target)] as const);
    if (options.signal?.aborted) {
      this.#closed = true;
      return;
    }
    options.signal?.addEventListener('abort', this.#onAbort, { once: true });
    // A failure can come at once (inside lease()): told in a microtask, once listeners are attached.
    this.#lease = theMonitor().lease(!options.unref, (err) => queueMicrotask(() => this.#error(err)));
    this.#startSoon(resolved);
  }

  /**
   * Follows the targets in a microtask, then says 'ready'. (Not a closure of the constructor's: those
   * share one context, which the lease's callback keeps while the watcher lives, and with it this array
   * of every target given.)
   */
  #startSoon(resolved: ReadonlyArray<readonly [string, string]>): void {
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
  add(targets: string | readonly string[]): this {
    const resolved = targetsArgument(targets).map((target) => [target, targetPath(target)] as const);
    const batch = new Set(resolved.map(([target]) => target));
    this.#adding.add(batch);
    queueMicrotask(() => {
      this.#adding.delete(batch);
      for (const [target, path] of resolved) if (!this.#closed && batch.has(target)) this.#addTop(target, path);
    });
    return this;
  }

  /** Stops watching targets given to watch() or add() (a directory: with the targets found in it). */
  unwatch(targets: string | readonly string[]): this {
    for (const target of targetsArgument(targets)) {
      // Added in this tick and not followed yet: `add(t).unwatch(t)` watches nothing.
      for (const batch of this.#adding) batch.delete(target);
      const f = this.#given(target);
      if (f === undefined) continue;
      this.#named.delete(target);
      const rest = this.#targetsOf(f).filter((t) => t !== target);
      if (rest.length > 0) this.#alias.set(f, rest);
      else this.#let(f);
    }
    return this;
  }

  /** The followed path of a target given. */
  #given(target: string): Followed | undefined {
    const named = this.#named.get(target);
    if (named !== undefined) return named;
    const f = theMonitor().followedBy(target, 'watch', this.#follower);
    return f !== undefined && this.#targetsOf(f).includes(target) ? f : undefined;
  }

  #addTop(target: string, path: string): void {
    if (this.#given(target) !== undefined) return;
    const monitor = theMonitor();
    // The same path found in a directory given too is reported once, as the target given.
    for (const [dir, members] of this.#members) {
      const member = members.get(path);
      if (member !== undefined && this.#in.get(member) === dir) this.#let(member);
    }
    const known = monitor.followedBy(path, 'watch', this.#follower);
    if (known !== undefined) {
      // Another name for a path followed already: the same followed path, one more target.
      this.#named.set(target, known);
      this.#alias.set(known, [...this.#targetsOf(known), target]);
      if (known.state !== null && known.kind === TARGET) {
        const c: StateChange = { state: known.state, path: known.final, previous: null, time: performance.timeOrigin + performance.now() };
        if (known.error !== undefined) c.error = known.error;
        this.#report(target, c, null);
      }
      return;
    }
    monitor.follow(path, 'watch', this.#follower, (f) => {
      if (target === path) return;
      this.#named.set(target, f);
      this.#alias.set(f, [target]);
    });
  }

  /** The targets given that `f` stands for (a path followed in mode 'watch' is a target given). */
  #targetsOf(f: Followed): string[] {
    return this.#alias.get(f) ?? (f.mode === 'watch' ? [f.path] : []);
  }

  /** Lets go of a followed path (and of the targets of a directory). */
  #let(f: Followed): void {
    theMonitor().unfollow(f, this.#follower);
    this.#setDegraded(f, null);
    for (const target of this.#alias.get(f) ?? []) if (this.#named.get(target) === f) this.#named.delete(target);
    this.#alias.delete(f);
    this.#unseen.delete(f);
    const members = this.#members.get(f);
    if (members !== undefined) {
      this.#members.delete(f);
      // Another spelling of the same directory still watched (`d/`, `./d`) takes its members over, as
      // they are: the same paths, followed on.
      const at = join(f.path, '.');
      const heir = [...this.#members].find(([other]) => join(other.path, '.') === at);
      for (const member of members.values()) {
        if (heir === undefined) this.#let(member);
        else {
          heir[1].set(member.path, member);
          this.#in.set(member, heir[0]);
        }
      }
    }
    const dir = this.#in.get(f);
    if (dir !== undefined) {
      this.#in.delete(f);
      this.#members.get(dir)?.delete(f.path);
    }
  }

  #change(f: Followed, c: StateChange): void {
    if (this.#closed) return;
    const dir = this.#in.get(f);
    if (dir === undefined) {
      for (const target of this.#targetsOf(f)) this.#report(target, c, c.previous);
      return;
    }
    const unseen = this.#unseen.has(f);
    if (unseen) {
      // An entry of a watched directory is a target once it is a FIFO (or a service directory): until
      // then, something else there (a file that is not a FIFO) or nothing says nothing.
      if (c.state === 'absent' && c.path === f.path) {
        // Gone before it was a target (once the batch is handled: see below).
        queueMicrotask(() => {
          if (!this.#closed && f.state === 'absent' && this.#unseen.has(f)) this.#let(f);
        });
        return;
      }
      if (c.state === 'unknown' && c.error?.code === 'ENOTFIFO') return;
      this.#unseen.delete(f);
    }
    this.#report(f.path, c, unseen ? null : c.previous);
    // A target of a directory that is gone is no longer followed; if it comes back, it starts anew. (A
    // service directory whose supervise/ok is absent is still there.) Looked at once the batch of
    // kernel events is handled: absent may be evidence, with what a look saw after it still to come.
    if (c.state === 'absent' && c.path === f.path) {
      queueMicrotask(() => {
        if (!this.#closed && f.state === 'absent' && this.#in.has(f)) this.#let(f);
      });
    }
  }

  #report(target: string, c: StateChange, previous: WatchState | null): void {
    const event: WatchEvent = { target, path: c.path, state: c.state, previous, time: c.time };
    if (c.error !== undefined) {
      event.code = c.error.code;
      event.reason = c.error.message;
    }
    this.#push(event);
  }

  /** A directory of targets changed (names), or must be listed again (null). */
  #entries(dir: Followed, names: string[] | null): void {
    if (this.#closed) return;
    let members = this.#members.get(dir);
    if (members === undefined) this.#members.set(dir, (members = new Map()));
    let found: string[];
    const monitor = theMonitor();
    if (names !== null) {
      // An entry gone again by now is still followed if the kernel proved something of it (a holder
      // renamed it into place): it is reported, then found gone.
      found = names.filter((name) => !name.startsWith('.') && (maybeTarget(join(dir.path, name)) || monitor.hasEvidence(join(dir.path, name))));
    } else {
      try {
        // And the names gone again whose life the kernel proved in the batch that has this listed.
        found = [...new Set([...listCandidates(dir.path), ...monitor.evidenceIn(dir.path)])];
      } catch (err) {
        const e = err instanceof ProcAliveError ? err : new ProcAliveError('EIO', String(err), { path: dir.path });
        for (const target of this.#targetsOf(dir)) {
          this.#report(target, { state: 'unknown', path: dir.path, previous: null, time: performance.timeOrigin + performance.now(), error: e }, null);
        }
        return;
      }
    }
    for (const name of found) {
      const path = join(dir.path, name);
      // (Also a member already through another spelling of the same directory, `d` and `d/` or `./d`:
      // one path, reported once.)
      if (members.has(path) || this.#given(path) !== undefined || monitor.followedBy(path, 'member', this.#follower) !== undefined) continue;
      const known = members;
      monitor.follow(path, 'member', this.#follower, (f) => {
        known.set(path, f);
        this.#in.set(f, dir);
        this.#unseen.add(f);
      });
    }
  }

  #setDegraded(f: Followed, err: ProcAliveError | null): void {
    const was = this.#degradedBy.get(f);
    const code = err?.code;
    if (was === code) return;
    if (was !== undefined) {
      const n = (this.#degraded.get(was) ?? 1) - 1;
      if (n === 0) this.#degraded.delete(was);
      else this.#degraded.set(was, n);
    }
    if (code === undefined || err === null) {
      this.#degradedBy.delete(f);
      return;
    }
    this.#degradedBy.set(f, code);
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
    for (const f of theMonitor().allFollowedBy('watch', this.#follower)) this.#let(f);
    this.#named.clear();
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
export function watch(targets: string | readonly string[], options?: WatchOptions): Watcher {
  return new Watcher(targets, options);
}

export { DEFAULT_POLL_MS };
