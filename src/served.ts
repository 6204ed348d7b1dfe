// The served set: every target `serve` answers for, by name, with its state as the watcher last
// reported it. Everything a probe, a scrape or a stream needs is here in memory, so that answering
// costs no filesystem call. One Watcher follows everything served.

import { basename, dirname, resolve } from 'node:path';
import { ProcAliveError } from './errors.js';
import { isDirectory, isServiceDir, listTargets } from './kernel.js';
import { status, type HolderRecord } from './status.js';
import { targetPath } from './target.js';
import { escapeText } from './text.js';
import { watch, type Watcher, type WatchEvent, type WatchState } from './watch.js';

/**
 * What serve knows of one served target, the JSON that `/healthz/<name>` and `/events` send: the fields
 * of a watch event for its last change, with the served name as `target` (the bare name as given, the
 * last component of a path, a file name in a directory) and `previous: null` until serve has seen one.
 */
export type ServedState = WatchEvent;

/** How many targets that left a served directory are still answered for (as absent), oldest forgotten first. */
export const MAX_DEPARTED = 10_000;

/** One served name. Kept small: 10,000 of them must fit in a few MiB. */
export class Slot {
  readonly name: string;
  /**
   * The name as a label value, escaped for the exposition formats, where that is not the name itself
   * (rare: names are plain file names), else null: no second string per target, and no
   * `target="..."` string kept either (the renderer writes those characters around it).
   */
  readonly #escaped: string | null;
  /**
   * The watcher's key for the target that owns the name (the target as given, or a member's path): also
   * what a holder record is asked for by (a bare name, a path, a service directory).
   */
  owner: string;
  path = '';
  state: WatchState = 'unknown';
  previous: WatchState | null = null;
  time = 0;
  code: string | undefined = undefined;
  reason: string | undefined = undefined;
  /** Every alive → dead seen since serve started. A clean stop is alive → absent: never counted. */
  deaths = 0;
  holder: HolderRecord | null = null;
  stale = false;
  /** Bumped at each change: a holder read started before it is not kept. */
  generation = 0;
  /** A directory member that left its directory (reported absent): answered for until forgotten. */
  departed = false;
  /** Reported at least once. */
  seen = false;

  constructor(name: string, owner: string) {
    this.name = name;
    this.owner = owner;
    const escaped = labelValue(name);
    this.#escaped = escaped === name ? null : escaped;
  }

  /** The name as a label value (escaped for the exposition formats), between the quotes of `target="..."`. */
  get labelValue(): string {
    return this.#escaped ?? this.name;
  }

  /** The JSON form (the fields of a watch event, with the served name as `target`). */
  toJSON(): ServedState {
    const out: ServedState = { target: this.name, path: this.path, state: this.state, previous: this.previous, time: this.time };
    if (this.code !== undefined) out.code = this.code;
    if (this.reason !== undefined) out.reason = this.reason;
    return out;
  }
}

/**
 * A name as a label value of the Prometheus text format and OpenMetrics: first made visible and inert
 * (escapeText: controls, bidirectional overrides, bytes that are not UTF-8), then escaped as the formats
 * ask (backslash, double quote; escapeText has already turned a newline into `\n`).
 */
export function labelValue(name: string): string {
  return escapeText(name).replace(/[\\"]/g, (ch) => `\\${ch}`);
}


/** The served name of a target given on the command line: its last path component, or itself. */
export function servedName(target: string): string {
  const name = target.includes('/') ? basename(target) : target;
  return name === '' ? target : name;
}

/** Claims `name` for the target at `path` in `byName`; throws EDUPNAME if another target has it. */
function claim(byName: Map<string, string>, name: string, path: string): void {
  const other = byName.get(name);
  const full = resolve(path);
  if (other !== undefined && other !== full) {
    throw new ProcAliveError('EDUPNAME', `two targets would be served as '${escapeText(name)}': ${escapeText(other)} and ${escapeText(full)}`);
  }
  byName.set(name, full);
}

export interface ServedOptions {
  /** Do not keep the process alive while serving (the watcher's `unref`). */
  unref?: boolean;
  /** Told of problems that do not stop serving: a name claimed twice, a directory that cannot be listed. */
  onWarning?: (message: string) => void;
}

/** Holder records are read at each change, and again this long after (ms): a holder writes its record
 *  just after it opens the FIFO, and `run --` replaces its own record by the command's once it runs. */
const REREAD_ALIVE_MS = [100, 1000];
const REREAD_OTHER_MS = [1000];
/** Holder records read at once, at most. */
const READ_CONCURRENCY = 8;

/**
 * Rereads due later, in the order they were asked for (each queue has one delay, so one timer). Kept as
 * three flat arrays rather than an object per reread: a start with 10,000 alive targets queues 20,000
 * of them, and objects living that long grow V8's young generation for good.
 */
interface Later {
  delay: number;
  slots: Slot[];
  generations: number[];
  /** When each is due (clock()): an array of doubles only, stored unboxed. */
  dues: number[];
  timer: NodeJS.Timeout | null;
}

const clock = (): number => performance.timeOrigin + performance.now();

/**
 * Follows the targets (and directories of targets) and keeps each one's state. Throws a ProcAliveError
 * with code `EDUPNAME` when two different targets would be served under one name, and what `watch()`
 * throws for a bad target.
 */
export class ServedSet {
  readonly #slots = new Map<string, Slot>();
  /** Targets given by name or path (the watcher reports them under that key): their served name. */
  readonly #explicit = new Map<string, string>();
  /** The same targets, resolved: a served directory's entry that is one of them is not a second target. */
  readonly #explicitPaths = new Set<string>();
  /** Directory members whose name another target owns: their last report, in case the owner leaves. */
  readonly #shadowed = new Map<string, WatchEvent>();
  /** Directories served, as the watcher names them in its reports about them, and resolved. */
  readonly #dirs = new Set<string>();
  readonly #dirPaths = new Set<string>();
  readonly #dirErrors = new Map<string, string>();
  readonly #departed = new Set<Slot>();
  readonly #listeners = new Set<(slot: Slot) => void>();
  readonly #onWarning: (message: string) => void;
  readonly #watcher: Watcher;
  #sorted: Slot[] | null = null;
  #reading = 0;
  readonly #toRead = new Set<Slot>();
  readonly #later: Later[] = [...REREAD_ALIVE_MS, ...REREAD_OTHER_MS]
    .filter((d, i, all) => all.indexOf(d) === i)
    .map((delay) => ({ delay, slots: [], generations: [], dues: [], timer: null }));
  #closed = false;

  constructor(targets: string[], options: ServedOptions = {}) {
    this.#onWarning = options.onWarning ?? (() => {});
    // (Not in a closure: the constructor's closures share one context, which the watcher's listeners
    // below keep for as long as serve runs, and with it a path and a name per target.)
    const byName = new Map<string, string>();
    for (const target of targets) {
      const path = targetPath(target);
      if (isDirectory(path) && !isServiceDir(path)) {
        this.#dirs.add(path);
        this.#dirPaths.add(resolve(path));
        for (const member of listTargets(path)) claim(byName, basename(member), member);
      } else {
        const name = servedName(target);
        claim(byName, name, path);
        this.#explicit.set(target, name);
        this.#explicitPaths.add(resolve(path));
        if (!this.#slots.has(name)) this.#slots.set(name, new Slot(name, target));
      }
    }
    this.#watcher = watch(targets, options.unref === true ? { unref: true } : {});
    this.#watcher.on('change', (e) => this.#onChange(e));
    // A failure of the watching itself (the event worker lost, a limit reached): the watcher goes on
    // by polling, so the answers stay right but come later; the operator is told, once per cause.
    this.#watcher.on('error', (err) => this.#onWarning(`watching degraded, polling instead: ${escapeText(err.message)}`));
  }

  #onChange(e: WatchEvent): void {
    if (this.#dirs.has(e.target)) {
      // A report about a served directory itself: it cannot be listed.
      const why = `${escapeText(e.target)}: ${escapeText(e.reason ?? e.state)}`;
      if (e.state === 'unknown') {
        if (this.#dirErrors.get(e.target) !== why) this.#onWarning(`cannot follow the directory ${why}`);
        this.#dirErrors.set(e.target, why);
      }
      return;
    }
    if (this.#dirErrors.size > 0) this.#clearDirError(e.target);
    const member = this.#isMember(e.target);
    // A file given alone and found again in a served directory, spelt otherwise (`sd/x0` and `/srv/sd`):
    // served once, under the name it was given, and not reported as a second target with its name.
    if (member && this.#explicitPaths.has(resolve(e.target))) return;
    const name = this.#explicit.get(e.target) ?? basename(e.target);
    let slot = this.#slots.get(name);
    if (slot === undefined) {
      // A target that appeared in a served directory.
      slot = new Slot(name, e.target);
      this.#slots.set(name, slot);
      this.#sorted = null;
    } else if (slot.owner !== e.target) {
      if (!slot.departed) {
        // The name is another target's: this one is not served, but followed in case that one leaves.
        if (e.state === 'absent' && member) this.#shadowed.delete(e.target);
        else {
          if (!this.#shadowed.has(e.target)) this.#onWarning(`not served: ${escapeText(e.target)} has the name of ${escapeText(slot.owner)}, which is served`);
          this.#shadowed.set(e.target, e);
        }
        return;
      }
      // The name's previous owner left its directory: the newcomer takes the name over.
      slot.owner = e.target;
    }
    this.#apply(slot, e);
    if (e.state === 'absent' && member) this.#depart(slot);
  }

  #clearDirError(memberPath: string): void {
    for (const dir of this.#dirErrors.keys()) if (memberPath.startsWith(`${dir}/`)) this.#dirErrors.delete(dir);
  }

  /** Whether the target the watcher reports as `key` was found in a served directory. */
  #isMember(key: string): boolean {
    return !this.#explicit.has(key) && this.#dirPaths.has(resolve(dirname(key)));
  }

  /** A member reported absent has left its directory (the watcher stops following it). */
  #depart(slot: Slot): void {
    // Another target with the name, still there, takes it over.
    for (const [key, last] of this.#shadowed) {
      if (basename(key) !== slot.name) continue;
      this.#shadowed.delete(key);
      slot.owner = key;
      this.#apply(slot, { ...last, time: clock() });
      return;
    }
    slot.departed = true;
    this.#departed.add(slot);
    if (this.#departed.size > MAX_DEPARTED) {
      const oldest = this.#departed.values().next().value as Slot;
      this.#departed.delete(oldest);
      this.#slots.delete(oldest.name);
      this.#sorted = null;
    }
  }

  #apply(slot: Slot, e: WatchEvent): void {
    const before = slot.seen ? slot.state : null;
    if (before === e.state && slot.path === e.path && slot.code === e.code) return;
    // A holder removes its FIFO before it lets go on a clean stop (alive → absent), so every
    // alive → dead is a death: a crash, a kill, the OOM killer.
    if (before === 'alive' && e.state === 'dead') slot.deaths++;
    slot.seen = true;
    slot.path = e.path;
    slot.previous = before;
    slot.state = e.state;
    slot.time = e.time;
    slot.code = e.code;
    slot.reason = e.reason;
    slot.generation++;
    if (slot.departed && e.state !== 'absent') {
      slot.departed = false;
      this.#departed.delete(slot);
    }
    this.#readHolder(slot);
    for (const l of this.#listeners) l(slot);
  }

  // -------------------------------------------------------------------------------------------------
  // Holder records: read off the hot path, a few at a time, at each change and again a little later.

  #readHolder(slot: Slot): void {
    if (this.#closed) return;
    this.#toRead.add(slot);
    this.#pump();
    const t = clock();
    for (const later of this.#later) {
      if (!(slot.state === 'alive' ? REREAD_ALIVE_MS : REREAD_OTHER_MS).includes(later.delay)) continue;
      later.slots.push(slot);
      later.generations.push(slot.generation);
      later.dues.push(t + later.delay);
      this.#arm(later);
    }
  }

  #arm(later: Later): void {
    if (later.timer !== null || later.slots.length === 0) return;
    later.timer = setTimeout(() => {
      later.timer = null;
      const t = clock();
      let n = 0;
      while (n < later.dues.length && (later.dues[n] as number) <= t) n++;
      const generations = later.generations.splice(0, n);
      later.dues.splice(0, n);
      later.slots.splice(0, n).forEach((slot, i) => {
        if (slot.generation === generations[i]) this.#toRead.add(slot);
      });
      this.#pump();
      this.#arm(later);
    }, Math.max(0, (later.dues[0] as number) - clock()));
    later.timer.unref();
  }

  #pump(): void {
    while (!this.#closed && this.#reading < READ_CONCURRENCY && this.#toRead.size > 0) {
      const slot = this.#toRead.values().next().value as Slot;
      this.#toRead.delete(slot);
      const generation = slot.generation;
      this.#reading++;
      status(slot.owner)
        .then(
          (st) => {
            if (slot.generation !== generation || this.#closed) return;
            slot.holder = st.holder;
            slot.stale = st.stale;
          },
          () => {
            // The state cannot be told (the watcher reports why): no holder to show.
            if (slot.generation !== generation || this.#closed) return;
            slot.holder = null;
            slot.stale = false;
          },
        )
        .finally(() => {
          this.#reading--;
          this.#pump();
        });
    }
  }

  // -------------------------------------------------------------------------------------------------

  /** The slot served under `name`, if any. */
  get(name: string): Slot | undefined {
    return this.#slots.get(name);
  }

  get size(): number {
    return this.#slots.size;
  }

  /** Every slot, sorted by name (the sort is kept until the set changes). */
  sorted(): Slot[] {
    if (this.#sorted === null) this.#sorted = [...this.#slots.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return this.#sorted;
  }

  /** Served directories that cannot be listed now, with the reason (escaped). */
  get directoryErrors(): string[] {
    return [...this.#dirErrors.values()];
  }

  /** Calls `fn` with the slot after each change of a served target. */
  onChange(fn: (slot: Slot) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Stops watching; resolves once the watcher has released everything. */
  close(): Promise<void> {
    if (this.#closed) return this.#watcher.close();
    this.#closed = true;
    const closed = this.#watcher.close();
    for (const later of this.#later) {
      if (later.timer !== null) clearTimeout(later.timer);
      later.timer = null;
      later.slots.length = later.generations.length = later.dues.length = 0;
    }
    this.#toRead.clear();
    this.#listeners.clear();
    return closed;
  }
}
