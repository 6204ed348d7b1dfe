// Follows what is at paths as it changes, for waits and watches. What a change means is decided here;
// how the kernel tells is in kernel-events.ts (epoll and inotify); where that is not available, or not
// for one path, that path is polled.
//
// What a path is, is what is there now, looked at again ("armed" from scratch) whenever the kernel says
// anything about it may have changed:
//   - the chain to it: the directory of the path (or, if missing, the nearest ancestor that exists) is
//     watched for the path's name; a symbolic link is followed, and the directory of each link and of
//     what it points to is watched the same way (a swapped link is a change);
//   - then, at the end of the chain:
//       a FIFO        alive: a write end of it in epoll (EPOLLERR when its last reader goes), and
//                            inotify IN_CLOSE_NOWRITE on it (to place that death in order, below);
//                     dead:  inotify IN_OPEN on it (a runner opening it);
//       nothing       absent;
//       a directory   a service directory (daemontools, runit: it has `run` or `supervise`) is followed
//                     through its supervise/ok; for a wait, any directory is one in the making; for a
//                     watch, a plain directory is a directory of targets; for a target found in one, a
//                     plain directory is nothing yet (it may become a service directory);
//       anything else unknown (not a FIFO).
// Watches are added before the path is looked at, so nothing that happens after the look is missed. A
// path whose watches cannot be added (EACCES: a checker that may only write the FIFO, or a directory
// mode 0711; a limit: ENOSPC, EMFILE) is polled at a short interval instead, and armed again on each
// poll, so it returns to events once it can.
//
// Evidence. Between two looks a target may change more than once; some kernel events prove a state that
// held in between, and it is reported in order before what the next look sees:
//   - EPOLLERR on our write end: its FIFO had no reader (dead);
//   - IN_OPEN on a FIFO that had no reader: a reader was there (a non-blocking open for writing
//     succeeds only then, and an open for reading makes one), so alive;
//   - IN_DELETE / IN_MOVED_FROM of the name, or the removal of a directory on the way: absent;
//   - IN_MOVED_FROM `.<name>.<digits>.new` paired by its cookie with IN_MOVED_TO `<name>`: a proc-alive
//     holder renames a FIFO it already holds into place, so alive.
// inotify events are queued in order, but an event harvested after a look may have happened before it,
// and reporting it after what the look saw would invent a change. So before a round of looks a marker
// goes into the inotify queue (EventSource.mark). An event is evidence for a target if it was queued
// after the marker of the target's last look that reported a change; one queued before is older than
// that report and is dropped (its state is lost between two reports rather than reported out of
// order). An event older than a later look that reported nothing still counts: what it proves is
// reported, then that look's state again, in order. (Placed after the looks instead, a marker would make
// events that came between a look and it look old, and lose them.)
//
// EPOLLERR comes from epoll, in no order with inotify's events. So an alive FIFO is watched for
// IN_CLOSE_NOWRITE, which only a reader's close raises (checkers open for writing): the death is placed
// where the last reader closed among its name's events; a death after its name was removed or replaced
// concerns a FIFO that was no longer this path's, and is not reported. Without that close in the same
// harvest, the death goes first if the close came in an earlier one, or if the path still names that
// FIFO; else (the FIFO could not be watched: polled) nothing orders it against the name's removal, and
// it is not reported: a clean stop (name first, then reader) is never a death.

import * as fs from 'node:fs';
import { basename, dirname, join, resolve as resolvePath } from 'node:path';
import { ProcAliveError, errnoError } from './errors.js';
import { IN, openEventSource, type EventSource, type InotifyEvent, type FdWatch, type ReadyKind } from './kernel-events.js';
import { closeWriter, isServiceDir, probeEntry, probeWriter, type State } from './kernel.js';
import { openWatchable } from './kernel-files.js';
import { decodeName, fsPath } from './text.js';

export type WatchState = State | 'unknown';

/** A change of state of one followed path. */
export interface StateChange {
  state: WatchState;
  /** What the state is of: the path, the end of its symbolic links, or a service directory's supervise/ok. */
  path: string;
  /** The state before, or null for the first report. */
  previous: WatchState | null;
  /** When it was seen: milliseconds since the epoch, with a fraction (performance.timeOrigin + now()). */
  time: number;
  /** For 'unknown': why the state cannot be told. */
  error?: ProcAliveError;
}

/**
 * How a directory found at a followed path is taken: 'wait', a service directory (in the making, if it
 * has neither `run` nor `supervise` yet); 'watch', a service directory if it is one, else a directory of
 * targets; 'member' (a target found in a watched directory), a service directory if it is one, else
 * nothing to report yet.
 */
export type FollowMode = 'wait' | 'watch' | 'member';

/**
 * Who is told about followed paths: a watcher, a wait. One object can follow many paths (it is told
 * which): there may be 10,000, and a closure or an object per path would cost memory per path.
 */
export interface Follower {
  /** A change of state of `f`. The first (previous: null) comes from follow() itself. */
  change(f: Followed, change: StateChange): void;
  /** Mode 'watch', while `f` is a directory of targets: entries that changed, or null to list it all. */
  entries?(f: Followed, names: string[] | null): void;
  /** `f` is polled now, not watched (err says why: EACCES, ENOSPC, ...), or watched again (null). */
  degraded?(f: Followed, err: ProcAliveError | null): void;
}

/** How the monitor learns of changes: 'events' (epoll and inotify) or 'polling'. */
export type Mechanism = 'events' | 'polling';

/** The interval of polling when there are no kernel events at all. */
export const DEFAULT_POLL_MS = 100;
/** The interval at which a few paths that cannot be watched are polled, next to events for the rest. */
const PATH_POLL_MS = 25;
/** Past this many such paths, they are polled every DEFAULT_POLL_MS: the cost grows with their number. */
const PATH_POLL_MANY = 100;
/** The first retry of an event source that failed; doubled up to RETRY_MAX_MS while it keeps failing. */
const RETRY_MS = 1000;
const RETRY_MAX_MS = 60_000;
/** How many times a batch of kernel events is caught up with before it is reported (see #onBatch). */
const MAX_CATCH_UP = 16;

/**
 * How long the event source outlives its last user: starting it (a worker thread that loads koffi)
 * takes ~30 ms, which a script that waits for one target after another should pay once. While it
 * lingers it is unref'd, and so is its timer: it never keeps the process alive.
 */
const LINGER_MS = 1000;

/** Error codes that say a limit was reached, not something about the target: retried, and a wait goes on. */
export const LIMIT_CODES: ReadonlySet<string> = new Set(['EMFILE', 'ENFILE', 'ENOSPC', 'ENOMEM']);

/** Looks' markers kept unread per spelling of a directory (DirWatch.unread). */
const UNREAD_LOOKS = 16;

const DIR_MASK = IN.CREATE | IN.DELETE | IN.MOVED_FROM | IN.MOVED_TO | IN.DELETE_SELF | IN.MOVE_SELF | IN.ONLYDIR;
// A directory above a watched one: only its renaming (IN_MOVE_SELF), added to whatever mask its inode
// has (IN_MASK_ADD: inotify_add_watch(2) replaces the mask otherwise, and the same directory may be
// watched whole for another path). Its removal needs those below removed first: they tell it themselves.
const UP_MASK = IN.MOVE_SELF | IN.MASK_ADD | IN.ONLYDIR;
// The same, replacing the mask: a directory no longer watched for its entries (see #narrow).
const NARROW_MASK = IN.MOVE_SELF | IN.ONLYDIR;
// A FIFO with no reader: any open of it proves a reader was there (see above). One with a reader: a
// reader's close, to place its death (EPOLLERR, from epoll, in no order with inotify's events) among the
// changes of its name. Checkers open it for writing, so they raise IN_CLOSE_WRITE, not IN_CLOSE_NOWRITE;
// IN_OPEN is not asked for then: every checker's open would wake us.
const DEAD_FIFO_MASK = IN.OPEN;
const ALIVE_FIFO_MASK = IN.CLOSE_NOWRITE;
const MAX_LINKS = 40; // as the kernel's path walk (path_resolution(7)): then ELOOP

const now = (): number => performance.timeOrigin + performance.now();

// What a followed path is (Followed.kind).
export const TARGET = 0; // a FIFO, a service directory's supervise/ok, nothing, or something that is no FIFO
export const DIRECTORY = 1; // mode 'watch': a directory of targets
const NOTHING = 2; // mode 'member': a plain directory, not a service directory (yet)

/**
 * A watched directory: who follows which of its entries, and who follows all of it. Entries are keyed by
 * their path as a follower spelt it (the followed path itself, usually: no string is made per target),
 * so an event's name is looked up under each spelling of the directory seen (a symbolic link on the way,
 * a trailing slash).
 */
class DirWatch {
  wd: number;
  /** The directory's spellings, each ending in '/'. */
  prefixes: string[];
  /**
   * For each spelling, the marker of the last look that found the directory there: a spelling found
   * before the directory moved is dropped when its IN_MOVE_SELF is read (see #read).
   */
  marks: number[];
  /**
   * For each spelling, the markers of the looks that found it there whose markers were not read yet
   * when the next came (oldest first, at most UNREAD_LOOKS): a move read before one of them ends at the
   * first after it (that look found the directory there), and what happened in it between the move and
   * that look happened elsewhere (see Monitor.#unplaced).
   */
  unread: number[][];
  /**
   * For each spelling, the watch of the directory above it (null: none, or it could not be watched),
   * which this one counts as one of its uses: a directory above that is renamed away takes this one
   * with it, and inotify tells only the directory renamed (IN_MOVE_SELF), not those below it. Undefined:
   * refused for a limit (the inotify watch limit, ENOSPC; kernel memory): tried again by each look
   * through it, and the paths through it are polled meanwhile (see #upsFailing).
   */
  ups: Array<DirWatch | null | undefined>;
  /**
   * For each spelling, whether a look has found no symbolic link on it (see #links) since the directory,
   * or one above it, was last told moved: the looks through it then walk it no more.
   */
  free: boolean[];
  /** How many spellings of other watches have this one as the directory above them. */
  below = 0;
  /** Whether its mask is DIR_MASK (a hop or a directory of targets), not UP_MASK's IN_MOVE_SELF alone. */
  wide = false;
  readonly names = new Map<string, Followed | Followed[]>();
  whole: Followed[] = [];
  uses = 0;
  constructor(wd: number, prefix: string, mark: number) {
    this.wd = wd;
    this.prefixes = [prefix];
    this.marks = [mark];
    this.unread = [[mark]];
    this.ups = [null];
    this.free = [false];
  }
}

/** A FIFO watched for IN_OPEN (dead) or IN_CLOSE_NOWRITE (alive), by whoever follows it (one watch per inode). */
class FifoWatch {
  wd: number;
  /** One user (nearly always: one path per FIFO), or several: no array per FIFO for the common case. */
  users: Followed | Followed[];
  constructor(wd: number, user: Followed) {
    this.wd = wd;
    this.users = user;
  }
}

/**
 * What a batch of kernel events says of one followed path. A batch may see more than one FIFO at the
 * path (one removed, another made and held, looked at in between): what is placed among the evidence
 * is the death of the one it held when the batch began, the one it was reported alive on.
 */
interface Told {
  /** States proven in between, oldest first. */
  evidence: WatchState[];
  /** The write end held when the batch began (its serial; 0: none), its FIFO, and that FIFO's watch. */
  serial: number;
  dev: number;
  ino: number;
  fifo: FifoWatch | null;
  /** The serials of every write end of the path that reported EPOLLERR in this batch (see heldDied()). */
  lost: number[];
  /** Where among `evidence` a reader of that FIFO closed last (IN_CLOSE_NOWRITE), or -1. */
  closedAt: number;
  /** Whether its name was removed or replaced in this batch, and whether before that last close. */
  renamed: boolean;
  closedRenamed: boolean;
  /**
   * The first hop of its chain whose entry was removed or replaced in this batch, or whose directory
   * was moved or removed (Infinity: none): what happens further down the old chain after that (behind
   * a swapped link, in a directory renamed away) is no longer its.
   */
  rebound: number;
  /**
   * The directory watches it was told had moved or been removed (IN_MOVE_SELF, IN_DELETE_SELF; null:
   * none): what happens in them afterwards, wherever they went, is not news of this path; nor, once
   * told, is what happens to a FIFO other than the one its latest look found (see #read).
   */
  moved: DirWatch[] | null;
}

function told(f: Followed): Told {
  const held = f.writer >= 0;
  return { evidence: [], serial: held ? f.serial : 0, dev: held ? f.dev : 0, ino: held ? f.ino : 0, fifo: f.fifo, lost: [], closedAt: -1, renamed: false, closedRenamed: false, rebound: Infinity, moved: null };
}

/** Whether the write end held when the batch began reported EPOLLERR: its FIFO lost its last reader. */
function heldDied(t: Told): boolean {
  return t.serial !== 0 && t.lost.includes(t.serial);
}

/** What a look at a followed path saw, to report once what came before it is known (see #onBatch). */
interface Look {
  state: WatchState;
  error: ProcAliveError | undefined;
  /** The marker put before it (see the top of this file). */
  mark: number;
  /** Whether the path still named the FIFO our write end was on (alive or not). */
  held: boolean;
}

/** What only some followed paths need: kept apart, so that the others do not pay for it. */
interface Extra {
  /** What the state is of, where that is not the path itself (see Followed.final). */
  final?: string | undefined;
  /** Why its state is unknown. */
  error?: ProcAliveError | undefined;
  /** Why it is polled while there are events (EACCES, ENOSPC, ...). */
  polled?: ProcAliveError | undefined;
  /** Mode 'watch', a directory of targets: the watch on all of it. */
  whole?: DirWatch | undefined;
  /**
   * The spelling (ending in '/') it has in that watch: where links on the way led, which may not be the
   * path as given (`lk → real`, `./d`); the entries its listener follows are spelt from the path.
   */
  wholeAt?: string | undefined;
  /**
   * The service directory whose `run` it watches: that file's coming and going changes what the
   * directory is (a service directory or not), not whether the target exists.
   */
  aux?: DirWatch | undefined;
}

/**
 * One followed path in one mode, shared by everyone who follows it so. One small object per path, all
 * it needs in its fields: there may be 10,000, and V8 grows its young generation with every small object
 * that outlives the first look at all of them.
 */
export class Followed {
  readonly path: string;
  readonly mode: FollowMode;
  subs: Follower | Follower[] | null = null;
  /** The last state reported (null before the first). */
  state: WatchState | null = null;
  kind = TARGET;
  /** Our write end while alive and watched (-1: none), its epoll serial, and its FIFO's identity. */
  writer = -1;
  serial = 0;
  dev = 0;
  ino = 0;
  /**
   * The directory watches on the way: one watch, holding the path itself as its entry (most targets),
   * or [watch, entry, watch, entry, ...].
   */
  hops: DirWatch | Array<DirWatch | string> | null = null;
  fifo: FifoWatch | null = null;
  /**
   * The marker put before the last look that reported a change: an event queued before it is older
   * than that report, and reporting what it proves after it would invert their order.
   */
  changeMark = 0;
  /** The marker put before its last look (see #read: whether it went through a directory that moved). */
  lookMark = 0;
  extra: Extra | null = null;

  constructor(path: string, mode: FollowMode) {
    this.path = path;
    this.mode = mode;
  }

  /** What the state is of: the path, the end of its links, a service directory's supervise/ok. */
  get final(): string {
    return this.extra?.final ?? this.path;
  }

  /** Why it is polled rather than watched, if it is (while there are kernel events). */
  get polled(): ProcAliveError | undefined {
    return this.extra?.polled;
  }

  get error(): ProcAliveError | undefined {
    return this.extra?.error;
  }
}

/** Sets or clears a field of `f.extra`, dropping the object when nothing is left in it. */
function setExtra<K extends keyof Extra>(f: Followed, key: K, value: Extra[K]): void {
  if (value === undefined) {
    if (f.extra === null || f.extra[key] === undefined) return;
    delete f.extra[key];
    if (Object.values(f.extra).every((v) => v === undefined)) f.extra = null;
    return;
  }
  (f.extra ??= {})[key] = value;
}

/** Calls fn(watch, entry) for each hop of `f` in `hops` (see Followed.hops). */
function eachHop(f: Followed, hops: Followed['hops'], fn: (w: DirWatch, key: string) => void): void {
  if (hops === null) return;
  if (hops instanceof DirWatch) return fn(hops, f.path);
  for (let i = 0; i + 1 < hops.length; i += 2) fn(hops[i] as DirWatch, hops[i + 1] as string);
}

/** Makes `f` a user of entry `key` of `w`, counted once; false if it was one already. */
function addName(w: DirWatch, key: string, f: Followed): boolean {
  const users = w.names.get(key);
  if (users !== undefined && has(users, f)) return false;
  w.names.set(key, users === undefined ? f : Array.isArray(users) ? [...users, f] : [users, f]);
  w.uses++;
  return true;
}

/** Where [w, key] is in the chain of `f` (0: the path's own entry), or Infinity. */
function hopIndex(f: Followed, w: DirWatch, key: string): number {
  const hops = f.hops;
  if (hops === null) return Infinity;
  if (hops instanceof DirWatch) return hops === w && key === f.path ? 0 : Infinity;
  for (let i = 0; i + 1 < hops.length; i += 2) if (hops[i] === w && hops[i + 1] === key) return i / 2;
  return Infinity;
}

/** Whether `hops` (of `f`) holds [w, key]. */
function hasHop(f: Followed, hops: Followed['hops'], w: DirWatch, key: string): boolean {
  if (hops === null) return false;
  if (hops instanceof DirWatch) return hops === w && key === f.path;
  for (let i = 0; i + 1 < hops.length; i += 2) if (hops[i] === w && hops[i + 1] === key) return true;
  return false;
}

/** A user of the monitor (a watcher, a wait): while any exists, the mechanism runs. */
export interface Lease {
  ref(): void;
  unref(): void;
  /**
   * Ends this use. When it was the last: with `now`, stops the mechanism at once, and the promise
   * resolves once the worker has exited and its fds are closed; else the event source lingers a little.
   */
  release(now?: boolean): Promise<void>;
}

/** A registration of {@link Monitor.watchFd}. */
export interface WatchedFd {
  close(): void;
}

export type { ReadyKind };

interface FdEntry {
  fd: number;
  readable: boolean;
  callback: (kind: ReadyKind) => void;
  handle: FdWatch | null;
}

class Monitor {
  #source: EventSource | null = null;
  /** False once it is known that this process has no event mechanism (not Linux, no koffi). */
  #supported = true;
  #started = false;
  readonly #followed = { wait: new Map<string, Followed>(), watch: new Map<string, Followed>(), member: new Map<string, Followed>() };
  readonly #watches = new Map<number, DirWatch | FifoWatch>();
  /** Followed paths by their write end's fd (checked against the serial: fd numbers are reused). */
  readonly #writers: Array<Followed | undefined> = [];
  readonly #polled = new Set<Followed>();
  #poller: NodeJS.Timeout | null = null;
  #pollMs = 0;
  #bridge: NodeJS.Timeout | null = null;
  #retry: NodeJS.Timeout | null = null;
  #retryMs = RETRY_MS;
  /** An outage of the event source has been reported and not yet ended. */
  #failing = false;
  #linger: NodeJS.Timeout | null = null;
  #leases = 0;
  #refs = 0;
  readonly #troubled = new Set<(err: ProcAliveError) => void>();
  readonly #fds = new Set<FdEntry>();
  // Markers (see the top of this file).
  readonly #marks = new Map<number, number>();
  #nextMark = 1;
  #seenMark = 0;
  /** The marker placed in this turn of the event loop, which every look of the turn comes after; 0: none. */
  #turnMark = 0;
  /** The last marker placed before an IN_Q_OVERFLOW read in this wave (-1: none), see #respell. */
  #overflowed = -1;
  /** The entry the last #hop watched (pushed, or in the chain already). */
  #hopKey = '';
  /**
   * Alive FIFOs whose reader's close (IN_CLOSE_NOWRITE, while the path still named them) came in a
   * batch without their EPOLLERR: the kernel queues the close just before it releases the reader
   * (__fput: fsnotify_close, then the pipe's release), so the death may come in the next batch, after
   * a removal of the name that followed it. Cleared with the write end, or once the death is handled.
   */
  readonly #closed = new WeakSet<Followed>();
  /**
   * Write ends and FIFO watches that a look let go of in the batch being handled (the path no longer
   * names that FIFO, or it had no reader), kept open until the look's wave has caught up: what the
   * kernel queued about that FIFO before the look (its reader's close, its EPOLLERR), read by the
   * catch-up after it, must still reach the path. Closed, or let go, then (see #wave).
   */
  readonly #leaving: Array<{ f: Followed; fd: number; serial: number }> = [];
  readonly #leavingFifos: Array<{ w: FifoWatch; f: Followed }> = [];
  /** The same for the directory watches of a path's chain (hops) and of a directory of targets (whole). */
  readonly #leavingHops: Array<{ f: Followed; hops: NonNullable<Followed['hops']> }> = [];
  readonly #leavingWholes: Array<{ w: DirWatch; f: Followed }> = [];
  /** IN_MOVED_FROM of `.<name>.<digits>.new` names, by cookie, until their IN_MOVED_TO comes. */
  readonly #moves = new Map<number, { wd: number; name: string }>();
  /**
   * Entries of watched directories that no one follows yet, with what the batch being handled proves of
   * them from a holder's rename into place on (alive, then absent if removed again): a directory's
   * target found in this batch starts from that evidence, even one gone again by then.
   */
  #unclaimed: Map<string, WatchState[]> | null = null;
  /**
   * The directory watch (of a directory of targets) whose events named each entry in the batch being
   * handled, and the entry's spelling in it: an entry followed in that batch hears the rest of them too
   * (see #arm). Both maps are keyed by the entry's path as a directory's listener spells it (the
   * directory's path joined with the name), which a link or `./` on the way makes differ from the
   * watch's spelling.
   */
  #namedBy: Map<string, { w: DirWatch; key: string }> | null = null;
  /** Paths armed while a batch is handled, to be looked at by it once it has reported (see #arm). */
  #pending = new Map<Followed, Told>();
  /** Whether a batch is being handled (#handle). */
  #handling = false;
  /** Whether a directory above a watched one may have been refused for a limit (DirWatch.ups: undefined). */
  #upsRefused = false;
  /** Whether the batch being handled must look at every path again once its wave is done (#setUp). */
  #rearm = false;
  /** Whether a look (#look) is under way. */
  #looking = false;
  /**
   * Spellings of directory watches whose events cannot be placed until a marker is read: the directory
   * moved (IN_MOVE_SELF, its own or one above), and a look found it at that spelling again after the
   * move (moved back, or at a new spelling) before the move was read. What happened in it between the
   * move and that look happened elsewhere (README, Limits): no news of the paths through that spelling.
   * Watch → spelling → the marker of that look.
   */
  #unplaced: Map<DirWatch, Map<string, number>> | null = null;

  /**
   * How changes are learnt now, or null while nothing uses the monitor. After a failure, 'polling'
   * until a new event worker has shown it works (it waits).
   */
  get mechanism(): Mechanism | null {
    if (!this.#started) return null;
    return this.#source === null || this.#failing ? 'polling' : 'events';
  }

  // ---------------------------------------------------------------------------------------------------
  // Users and the mechanism's life.

  /** Starts a use; `onTrouble` hears of failures of the mechanism itself (EWATCH: polling instead). */
  lease(refd: boolean, onTrouble?: (err: ProcAliveError) => void): Lease {
    this.#leases++;
    if (onTrouble !== undefined) this.#troubled.add(onTrouble);
    this.#start();
    let isRefd = false;
    let released = false;
    const setRef = (on: boolean): void => {
      if (released || on === isRefd) return;
      isRefd = on;
      this.#refs += on ? 1 : -1;
      this.#applyRef();
    };
    setRef(refd);
    return {
      ref: () => setRef(true),
      unref: () => setRef(false),
      release: (now = false) => {
        if (released) return Promise.resolve();
        setRef(false);
        released = true;
        if (onTrouble !== undefined) this.#troubled.delete(onTrouble);
        if (--this.#leases > 0) return Promise.resolve();
        if (now || this.#source === null) return this.#stop(now);
        // An event source lingers a little, unref'd (see LINGER_MS).
        this.#linger = setTimeout(() => {
          this.#linger = null;
          if (this.#leases === 0) void this.#stop(false);
        }, LINGER_MS);
        this.#linger.unref();
        return Promise.resolve();
      },
    };
  }

  #start(): void {
    if (this.#linger !== null) {
      clearTimeout(this.#linger);
      this.#linger = null;
    }
    if (this.#started) return;
    this.#started = true;
    this.#openSource(false);
  }

  /** Opens the event source (again, after a failure: then everything is armed anew on it). */
  #openSource(again: boolean): void {
    if (!this.#supported) {
      this.#schedulePoll();
      return;
    }
    let source: EventSource | null;
    try {
      source = openEventSource({
        batch: (errored, events) => this.#onBatch(errored, events),
        failure: (err) => this.#onFailure(err),
        ready: () => {
          this.#stopBridge();
          this.#failing = false;
          this.#retryMs = RETRY_MS;
        },
      });
    } catch (err) {
      const e = err instanceof ProcAliveError ? err : new ProcAliveError('EWATCH', String(err), { cause: err });
      this.#onFailure(new ProcAliveError('EWATCH', `cannot start watching (${e.message})`, { cause: e }));
      return;
    }
    if (source === null) {
      this.#supported = false;
      this.#schedulePoll();
      return;
    }
    this.#source = source;
    // Until the worker waits, this thread reads what the kernel queues, every millisecond.
    this.#bridge = setInterval(() => source.drain(), 1);
    for (const r of this.#fds) this.#registerFd(r);
    if (again) this.#armAll();
    this.#schedulePoll();
    this.#applyRef();
  }

  #stopBridge(): void {
    if (this.#bridge !== null) clearInterval(this.#bridge);
    this.#bridge = null;
  }

  #stop(awaited: boolean): Promise<void> {
    if (this.#linger !== null) clearTimeout(this.#linger);
    if (this.#retry !== null) clearTimeout(this.#retry);
    this.#linger = this.#retry = null;
    this.#retryMs = RETRY_MS;
    this.#failing = false;
    this.#stopBridge();
    const source = this.#source;
    this.#source = null;
    this.#forgetSource();
    this.#started = false;
    this.#schedulePoll();
    return source === null ? Promise.resolve() : source.close(awaited);
  }

  /** Drops every write end and watch: they belonged to a source that is gone. */
  #forgetSource(): void {
    this.#releaseLeaving();
    for (const map of Object.values(this.#followed)) {
      for (const f of map.values()) {
        this.#releaseWriter(f);
        f.hops = f.fifo = null;
        setExtra(f, 'whole', undefined);
        setExtra(f, 'wholeAt', undefined);
        setExtra(f, 'aux', undefined);
      }
    }
    for (const w of this.#watches.values()) w.wd = -1;
    this.#watches.clear();
    this.#writers.length = 0;
    this.#marks.clear();
    this.#moves.clear();
    this.#seenMark = this.#nextMark - 1;
    for (const r of this.#fds) r.handle = null;
  }

  /** The event source failed (the worker ended unasked, or could not start): poll, say so, retry later. */
  #onFailure(err: ProcAliveError): void {
    this.#stopBridge();
    this.#source = null;
    this.#forgetSource();
    // Everything is looked at by polling now, from scratch: what changed in between is reported.
    this.#armAll();
    this.#schedulePoll();
    this.#applyRef();
    if (!this.#failing) {
      // Said once per outage: the retries that fail too are not news.
      this.#failing = true;
      const said = new ProcAliveError('EWATCH', `${err.message}; polling instead until it can be restarted`, { cause: err });
      for (const onTrouble of [...this.#troubled]) this.#call(() => onTrouble(said));
    }
    if (this.#retry === null && this.#leases > 0) {
      this.#retry = setTimeout(() => {
        this.#retry = null;
        if (this.#leases > 0 && this.#source === null) this.#openSource(true);
      }, this.#retryMs);
      this.#retry.unref();
      this.#retryMs = Math.min(this.#retryMs * 2, RETRY_MAX_MS);
    }
  }

  #applyRef(): void {
    const on = this.#refs > 0;
    if (on) this.#source?.ref();
    else this.#source?.unref();
    for (const t of [this.#poller, this.#bridge]) {
      if (on) t?.ref();
      else t?.unref();
    }
  }

  /** Polls what must be: every path without events, else the paths that cannot be watched. */
  #schedulePoll(): void {
    let ms = 0;
    if (this.#started && this.#source === null) {
      if (this.#count() > 0 || this.#fds.size > 0) ms = DEFAULT_POLL_MS;
    } else if (this.#polled.size > 0) {
      ms = this.#polled.size > PATH_POLL_MANY ? DEFAULT_POLL_MS : PATH_POLL_MS;
    }
    if (ms === this.#pollMs) return;
    if (this.#poller !== null) clearInterval(this.#poller);
    this.#poller = null;
    this.#pollMs = ms;
    if (ms > 0) {
      this.#poller = setInterval(() => this.#poll(), ms);
      if (this.#refs === 0) this.#poller.unref();
    }
  }

  #count(): number {
    return this.#followed.wait.size + this.#followed.watch.size + this.#followed.member.size;
  }

  #poll(): void {
    if (this.#source === null) {
      for (const map of Object.values(this.#followed)) for (const f of [...map.values()]) this.#arm(f, null);
      for (const r of [...this.#fds]) this.#call(() => r.callback('poll'));
    } else {
      for (const f of [...this.#polled]) this.#arm(f, null);
    }
  }

  #armAll(): void {
    for (const map of Object.values(this.#followed)) for (const f of [...map.values()]) this.#arm(f, null);
  }

  // ---------------------------------------------------------------------------------------------------
  // Following.

  /**
   * Follows `path`; `sub` gets its current state at once (previous: null), then every change. Call
   * within a lease. `onFollowed` is given the followed path before that first report, so that `sub`
   * knows it when it comes. Returns the followed path, to give back to {@link unfollow}.
   */
  follow(path: string, mode: FollowMode, sub: Follower, onFollowed?: (f: Followed) => void): Followed {
    const map = this.#followed[mode];
    let f = map.get(path);
    if (f === undefined) {
      f = new Followed(path, mode);
      map.set(path, f);
      f.subs = sub;
      onFollowed?.(f);
      this.#arm(f, this.#unclaimed?.get(path) ?? null);
      if (this.#source === null) this.#schedulePoll();
      return f;
    }
    f.subs = f.subs === null ? sub : Array.isArray(f.subs) ? [...f.subs, sub] : [f.subs, sub];
    onFollowed?.(f);
    const known = f;
    if (known.kind === DIRECTORY) this.#call(() => sub.entries?.(known, null));
    if (known.state !== null && known.kind === TARGET) {
      const change: StateChange = { state: known.state, path: known.final, previous: null, time: now() };
      if (known.error !== undefined) change.error = known.error;
      this.#call(() => sub.change(known, change));
    }
    if (known.polled !== undefined) this.#call(() => sub.degraded?.(known, known.polled ?? null));
    return known;
  }

  /** The followed path `path` in `mode` if `sub` follows it already. */
  followedBy(path: string, mode: FollowMode, sub: Follower): Followed | undefined {
    const f = this.#followed[mode].get(path);
    return f !== undefined && follows(f, sub) ? f : undefined;
  }

  /** Every path `sub` follows in `mode`. */
  allFollowedBy(mode: FollowMode, sub: Follower): Followed[] {
    return [...this.#followed[mode].values()].filter((f) => follows(f, sub));
  }

  /** Stops telling `sub` about `f`; the last one to go releases its write end and watches. */
  unfollow(f: Followed, sub: Follower): void {
    const subs = f.subs;
    if (subs === sub) f.subs = null;
    else if (Array.isArray(subs)) {
      const rest = subs.filter((s) => s !== sub);
      f.subs = rest.length === 0 ? null : rest.length === 1 ? (rest[0] as Follower) : rest;
    }
    if (f.subs !== null) return;
    const map = this.#followed[f.mode];
    if (map.get(f.path) === f) map.delete(f.path);
    this.#releaseWriter(f);
    this.#releaseHops(f, f.hops, null);
    if (f.fifo !== null) this.#unuseFifo(f.fifo, f);
    const whole = f.extra?.whole;
    if (whole !== undefined) this.#unuseWhole(whole, f);
    f.hops = f.fifo = f.extra = null;
    if (this.#polled.delete(f) || this.#source === null) this.#schedulePoll();
  }

  #isFollowed(f: Followed): boolean {
    return this.#followed[f.mode].get(f.path) === f;
  }

  // ---------------------------------------------------------------------------------------------------
  // Arming: the chain of watches, then the look.

  /**
   * Sets the path up from scratch (watches first), looks, and reports what changed, after the states
   * `evidence` proves held in between (oldest first).
   */
  #arm(f: Followed, evidence: WatchState[] | null): void {
    const t = told(f);
    if (evidence !== null) t.evidence.push(...evidence);
    if (!this.#handling) {
      this.#handle(new Map([[f, t]]), [], []);
      return;
    }
    // Armed while a batch is handled (a directory's listener following a name it was told of, a
    // follower that follows from its callback): looked at by that batch once it has reported, and only
    // then is what the kernel queued meanwhile read. Armed and reported here, at once, it would report
    // what it finds now before what the kernel queued earlier (a holder's rename into place in the old
    // directory, then the removal of that directory, read after a look that already followed the path
    // into the new one: alive, then the new FIFO's state, with the removal lost).
    this.#pending.set(f, t);
    // An entry the batch's events named in a directory of targets also hears the rest of what that
    // directory's watch queued until its look's wave has caught up, even if that look follows its path
    // into another directory (the one named was removed or renamed away, and another made in its place).
    const by = this.#namedBy?.get(f.path);
    if (by !== undefined && by.w.wd >= 0 && addName(by.w, by.key, f)) this.#leavingHops.push({ f, hops: [by.w, by.key] });
  }

  /** Sets the path up from scratch (watches first) and looks; reports nothing (see #report). */
  #look(f: Followed, died: boolean): Look {
    this.#looking = true;
    try {
      return this.#lookOnce(f, died);
    } finally {
      this.#looking = false;
    }
  }

  #lookOnce(f: Followed, died: boolean): Look {
    const source = this.#source;
    const oldHops = f.hops;
    const oldFifo = f.fifo;
    const oldWhole = f.extra?.whole;
    f.fifo = null;
    setExtra(f, 'aux', undefined);
    const hops: Array<DirWatch | string> = [];
    let whole: DirWatch | undefined;
    let wholeAt: string | undefined;
    let fail: string | null = null; // the first watch that could not be added, if any
    const watched = <T>(r: T | string): T | undefined => {
      if (typeof r !== 'string') return r;
      fail ??= r;
      return undefined;
    };
    let kind = TARGET;
    let state: WatchState = 'absent';
    let error: ProcAliveError | undefined;
    let held = false;
    let p = f.path;
    // What the state is of, as reported (Followed.final): `p`, but through a link on the way that
    // points to nothing yet, as spelt (as through any other link on the way).
    let shown = p;
    const mark = source === null ? 0 : this.#markNow(source);
    try {
      for (let links = 0; ; ) {
        const dir = dirname(p);
        // Where the kernel's walk of `dir` leads (no link in it), if a walk of this look found it.
        let walked: string | null = null;
        const at = hops.length;
        if (source !== null && watched(this.#hop(source, f, hops, dir, basename(p), mark)) !== undefined) {
          const key = this.#hopKey;
          const own = key === `${dir.endsWith('/') ? dir : `${dir}/`}${basename(p)}`;
          // (A hop of this look already, its links watched then: only where it leads.)
          const r = hops.length > at ? this.#links(source, f, hops, at, mark, watched) : resolveDir(dirname(key), null).dir;
          if (own) walked = r;
          else if (r !== null) {
            // `dir` is missing: the nearest entry of it that is there (the hop) may be a link to
            // something missing (runit's supervise → /run/runit/supervise.foo before runsv has
            // started), which inotify_add_watch(2) could not follow: followed to where it points.
            const next = throughDangling(p, key, r);
            if (next !== null) {
              if (++links > MAX_LINKS) throw errnoError('ELOOP', f.path, 'cannot check');
              p = next;
              continue;
            }
          }
        }
        const st = probeEntry(p);
        if (st.kind === 'absent') break;
        if (st.kind === 'link') {
          if (++links > MAX_LINKS) throw errnoError('ELOOP', f.path, 'cannot check');
          const to = readlink(p);
          // A '..' in it goes up from where the links on the way led, not from their spelling
          // (path_resolution(7)); without one, the spelling names the same thing.
          p = shown = resolvePath(hasDotDot(to) ? (walked ?? resolveDir(dir, null).dir ?? dir) : dir, to);
          continue;
        }
        if (st.kind === 'dir') {
          if (source !== null) {
            watched(this.#hop(source, f, hops, p, 'supervise', mark));
            if (f.mode !== 'wait') setExtra(f, 'aux', watched(this.#hop(source, f, hops, p, 'run', mark)));
          }
          if (f.mode === 'wait' || isServiceDir(p)) {
            p = join(p, 'supervise', 'ok');
            shown = join(shown, 'supervise', 'ok');
            continue;
          }
          kind = f.mode === 'watch' ? DIRECTORY : NOTHING;
          if (kind === DIRECTORY && source !== null) {
            whole = watched(this.#watchWhole(source, f, p, mark));
            if (whole !== undefined) wholeAt = p.endsWith('/') ? p : `${p}/`;
          }
          break;
        }
        const fifo = st.kind === 'fifo';
        held = fifo && f.writer >= 0 && st.dev === f.dev && st.ino === f.ino;
        if (held && !died) {
          // The FIFO our write end is in epoll for: its EPOLLERR will say when that ends.
          state = 'alive';
          if (source !== null) watched(this.#watchFifo(source, f, p, ALIVE_FIFO_MASK));
          break;
        }
        this.#letGoWriter(f);
        if (fifo && source !== null) watched(this.#watchFifo(source, f, p, DEAD_FIFO_MASK));
        const w = probeWriter(p);
        state = w.state;
        if (w.state === 'alive') {
          if (source === null) closeWriter(w.fd);
          else {
            watched(this.#keepWriter(source, f, w));
            watched(this.#watchFifo(source, f, p, ALIVE_FIFO_MASK));
          }
        }
        break;
      }
    } catch (err) {
      state = 'unknown';
      error = err instanceof ProcAliveError ? err : new ProcAliveError('EIO', String(err), { path: f.path, cause: err });
    }
    if (state !== 'alive') this.#letGoWriter(f);
    if (state !== 'dead' && state !== 'alive' && f.fifo !== null) {
      this.#letGoFifo(f.fifo, f);
      f.fifo = null;
    }
    // Most targets have one hop, the path itself in its directory: no array for them.
    f.hops = hops.length === 0 ? null : hops.length === 2 && hops[1] === f.path ? (hops[0] as DirWatch) : hops.slice();
    // The old watches are let go of only once this look's wave has caught up (#leavingHops): those
    // still needed were added again above, so no watch is removed and added again (which would lose
    // what happens in between); and the ones this path no longer goes through (its directory removed or
    // renamed away, another made in its place) still carry what the kernel queued on them before this
    // look, which the catch-up reads after it (the removal, once a batch's look has followed the path
    // into the new directory).
    if (oldHops !== null && oldHops !== f.hops) this.#leavingHops.push({ f, hops: oldHops }); // (one hop, the same: nothing to let go of)
    if (oldFifo !== null && oldFifo !== f.fifo) this.#letGoFifo(oldFifo, f);
    if (oldWhole !== undefined && oldWhole !== whole) this.#leavingWholes.push({ w: oldWhole, f });
    setExtra(f, 'whole', whole);
    setExtra(f, 'wholeAt', wholeAt);
    if (error !== undefined && LIMIT_CODES.has(error.code)) fail ??= error.code;
    setExtra(f, 'final', shown === f.path ? undefined : shown);
    f.kind = kind;
    // A directory above it that a limit kept unwatched: its renaming would not be seen (README, Limits).
    if (this.#upsRefused && source !== null) fail ??= this.#upsFailing(source, f, wholeAt);
    this.#setPolled(f, fail === null ? undefined : pollReason(f.path, fail));
    f.lookMark = mark;
    return { state, error, mark, held };
  }

  /** Reports the states `evidence` proves (oldest first), then what `look` saw if that is a change. */
  #report(f: Followed, evidence: WatchState[] | null, look: Look): void {
    if (f.kind === DIRECTORY) {
      this.#tell(f, (s) => s.entries?.(f, null));
      return;
    }
    if (f.kind !== TARGET) return;
    if (evidence !== null) {
      for (const s of evidence) if (s !== f.state) this.#emit(f, s, undefined);
    }
    if (look.state !== f.state || look.error?.code !== f.error?.code) {
      f.changeMark = look.mark;
      this.#emit(f, look.state, look.error);
    }
  }

  /**
   * The symbolic links on the way to the hop just added at `at` (hops[at], hops[at + 1]): the kernel's
   * path walk and inotify_add_watch(2) follow a link in the middle of a path silently, and a link
   * removed or swapped is an event of the directory that holds it alone (inotify(7)). Each link met is
   * watched there as a hop of its own before it is read, and put before that hop in the chain: its
   * change ends what the old chain's further hops tell, as for a link at the end of the path. One
   * lstat(2) per component, on the first look through a spelling and after a directory on it moved
   * (#gone: it may be a link to where it went); on every look through a spelling with a link on it.
   * Returns the directory of that hop as the kernel resolves it (no link in it); or null, and the path
   * polled for a moment, if that could not be told (a component gone or changed since the hop, too many
   * links) or is not the directory the hop watches (#isWatch).
   */
  #links(source: EventSource, f: Followed, hops: Array<DirWatch | string>, at: number, mark: number, watched: (r: DirWatch | string) => DirWatch | undefined): string | null {
    const w = hops[at] as DirWatch;
    const key = hops[at + 1] as string;
    const prefix = key.slice(0, key.lastIndexOf('/') + 1);
    const spelt = prefix.length > 1 ? prefix.slice(0, -1) : prefix;
    if (w.free[w.prefixes.indexOf(prefix)] === true) return spelt;
    const { dir, links, id } = resolveDir(spelt, (parent, name) => watched(this.#hop(source, f, hops, parent, name, mark)));
    if (links < 0) return null; // (through procfs: see resolveDir)
    if (links > 0) hops.push(...hops.splice(at, 2));
    // The walk came after the hop's inotify_add_watch(2): the directory it found must be the one
    // watched. A link swapped for a directory (or removed) in between was followed by the one and not
    // seen by the other, and nothing watches its name: look again soon (polled until a look agrees).
    if (dir === null || !this.#isWatch(source, w, dir, id)) {
      watched('EAGAIN');
      return null;
    }
    if (links === 0) {
      const i = w.prefixes.indexOf(prefix);
      if (i >= 0) w.free[i] = true;
    }
    return dir;
  }

  /**
   * Whether directory `dir` is the one `w` watches, and the one a walk found there (`id`, from its
   * lstat(2); null: the walk had no component to look at, `/` or `.`). The directory is opened and
   * asked about through /proc/self/fd/N, so that the inode compared is the one inotify answers for
   * (IN_MASK_ADD of a bit all of ours have: no mask changes); where /proc cannot, by its path. One
   * that cannot be opened has changed since (or cannot be watched either).
   */
  #isWatch(source: EventSource, w: DirWatch, dir: string, id: { dev: number; ino: number } | null): boolean {
    const open = openWatchable(dir);
    if (open === null) return false;
    let wd: number | string = 'ESTALE';
    try {
      if (id === null || (open.dev === id.dev && open.ino === id.ino)) wd = source.addWatch(open.path, UP_MASK);
    } finally {
      open.close();
    }
    if (wd === w.wd) return true;
    if (typeof wd === 'number' && !this.#watches.has(wd)) source.removeWatch(wd); // (one we did not have)
    return false;
  }

  /**
   * Watches directory `dir` for `name` (or the nearest ancestor that exists, for the first missing
   * component), as a hop of `f` added to `hops`. Returns the watch, or the errno name if none could be
   * added.
   */
  #hop(source: EventSource, f: Followed, hops: Array<DirWatch | string>, dir: string, name: string, mark: number): DirWatch | string {
    for (;;) {
      const wd = source.addWatch(dir, DIR_MASK);
      if (typeof wd === 'number') {
        const prefix = dir.endsWith('/') ? dir : `${dir}/`;
        const w = this.#dirWatch(source, wd, prefix, mark, true);
        if (w === null) return 'EAGAIN'; // replaced under us by something we watch otherwise: look again soon
        const spelt = prefix + name;
        const key = spelt === f.path ? f.path : spelt;
        this.#hopKey = key;
        if (hasHop(f, hops, w, key)) return w;
        hops.push(w, key);
        // (Held already, by the chain before this look or by one let go of once its wave has caught up:
        // counted once.)
        addName(w, key, f);
        return w;
      }
      if ((wd !== 'ENOENT' && wd !== 'ENOTDIR') || dirname(dir) === dir) return wd;
      name = basename(dir);
      dir = dirname(dir);
    }
  }

  /**
   * The watch of directory `wd`, just found at the spelling `prefix` by the look of marker `mark`; a new
   * spelling also watches the directory above it (see DirWatch.ups), and so on up.
   */
  #dirWatch(source: EventSource, wd: number, prefix: string, mark: number, wide = false): DirWatch | null {
    let w = this.#watches.get(wd);
    if (w === undefined) {
      w = new DirWatch(wd, prefix, mark);
      this.#watches.set(wd, w);
    } else if (!(w instanceof DirWatch)) return null;
    else {
      if (wide) w.wide = true;
      const i = w.prefixes.indexOf(prefix);
      if (i >= 0) {
        // Found there again. (Not said of the directories above: this look did not go through them,
        // and the one above may not be the one it was, see #rebindUp.)
        this.#foundAt(w, i, mark);
        return w;
      }
      w.prefixes = [...w.prefixes, prefix];
      w.marks = [...w.marks, mark];
      w.unread = [...w.unread, [mark]];
      w.ups = [...w.ups, null];
      w.free = [...w.free, false];
    }
    // (Before anything below could narrow it: its mask is DIR_MASK from now.)
    if (wide) w.wide = true;
    // Held while those above are watched: one refused there (a cycle through a link, see #watchUp) is
    // dropped, and with it its use of this one, before the caller has counted its own.
    w.uses++;
    const up = this.#watchUp(source, w, prefix, mark);
    w.uses--;
    // (Looked up again: watching those above may have given this one another spelling, through a link.)
    const i = w.prefixes.indexOf(prefix);
    if (i >= 0 && w.ups[i] === null) this.#setUp(w, i, up);
    else if (typeof up !== 'string' && up !== null) this.#unwatch(up);
    return w;
  }

  /** A look of marker `mark` found `w` at its spelling `i` (see DirWatch.marks, DirWatch.unread). */
  #foundAt(w: DirWatch, i: number, mark: number): void {
    if ((w.marks[i] as number) < mark) w.marks[i] = mark;
    const unread = w.unread[i] as number[];
    while (unread.length > 0 && (unread[0] as number) <= this.#seenMark) unread.shift();
    // (Markers only grow; one shared by the looks of a turn is kept once. Past the bound, a move is
    // taken to end at the latest look: more is unplaced, nothing wrongly placed.)
    if (unread.at(-1) !== mark && unread.length < UNREAD_LOOKS) unread.push(mark);
  }

  /** Sets the directory above spelling `i` of `w` to what #watchUp gave (a limit's code: undefined, tried again). */
  #setUp(w: DirWatch, i: number, up: DirWatch | null | string): void {
    if (typeof up !== 'string') {
      w.ups[i] = up;
      return;
    }
    w.ups[i] = undefined;
    this.#upsRefused = true;
    // Refused outside a look (#rebindUp, from a move read or an overflow's respelling, and the
    // directories above it it watches): no look of the paths below would try it again or poll them.
    // Every path is looked at again (#handle): rare (a limit and a move).
    if (!this.#looking) this.#rearm = true;
  }

  /**
   * The code of a limit that keeps a directory above a hop of `f` (or above its directory of targets,
   * spelt `wholeAt`) unwatched, or null. Each one refused so far is tried again first: once the limit is
   * freed, the path is watched by events again (its polling ends), as a path past the limit is.
   */
  #upsFailing(source: EventSource, f: Followed, wholeAt: string | undefined): string | null {
    let code: string | null = null;
    const climb = (w: DirWatch, prefix: string): void => {
      // (Bounded: PATH_MAX is 4,096 bytes, so a spelling has at most 2,048 directories above it.)
      for (let d: DirWatch | null = w, p: string | null = prefix, depth = 0; d !== null && p !== null && depth < 2048; depth++) {
        const i = d.prefixes.indexOf(p);
        if (i < 0) return;
        let up: DirWatch | null | undefined = d.ups[i];
        if (up === undefined) {
          d.uses++; // (held, as in #dirWatch)
          const r = this.#watchUp(source, d, p, d.marks[i] as number);
          d.uses--;
          const j = d.prefixes.indexOf(p);
          if (typeof r === 'string') {
            code ??= r;
            return;
          }
          if (j >= 0 && d.ups[j] === undefined) d.ups[j] = r;
          else if (r !== null) this.#unwatch(r);
          up = r;
        }
        if (up === null) return;
        d = up;
        p = upPrefix(p);
      }
    };
    eachHop(f, f.hops, (w, key) => climb(w, key.slice(0, key.lastIndexOf('/') + 1)));
    const whole = f.extra?.whole;
    if (whole !== undefined && wholeAt !== undefined) climb(whole, wholeAt);
    return code;
  }

  /**
   * The watch of the directory above the spelling `prefix` of `w`, counted as a use, or null: none (the
   * root, or a relative spelling's first component, whose meaning a rename of the working directory
   * does not change; `w` itself, through a link), or it cannot be watched (no read permission on it:
   * EACCES; the inotify watch limit). Then a rename of a directory above is not seen (README, Limits),
   * as before there were these watches.
   */
  #watchUp(source: EventSource, w: DirWatch, prefix: string, mark: number): DirWatch | null | string {
    const spelt = upPrefix(prefix);
    if (spelt === null) return null;
    const wd = source.addWatch(spelt, UP_MASK);
    if (typeof wd !== 'number') return LIMIT_CODES.has(wd) ? wd : null;
    if (wd === w.wd) return null;
    const up = this.#dirWatch(source, wd, spelt, mark);
    if (up === null) return null;
    // Through a link back up (/d/sub/l with l → /d): `w` is above its own parent. Counted, the two would
    // hold each other for good: this spelling has none (README, Limits). (Cutting the way up into `w`
    // instead took it from other paths through d/sub, for good.)
    if (reaches(up, w)) {
      if (up.uses <= 0) this.#drop(up);
      return null;
    }
    up.uses++;
    up.below++;
    return up;
  }

  /**
   * Spelling `i` of `w` was found since a directory above it moved: it is still the path's, but the
   * directory above that spelling may be another one now (the old one renamed away, a new one made, `w`
   * moved into it). One inotify_add_watch(2), on a move only.
   */
  #rebindUp(w: DirWatch, i: number): void {
    const source = this.#source;
    const spelt = upPrefix(w.prefixes[i] as string);
    if (source === null || spelt === null) return;
    const wd = source.addWatch(spelt, UP_MASK);
    const old = w.ups[i] ?? null;
    const j = old !== null && old.wd === wd ? old.prefixes.indexOf(spelt) : -1;
    if (old !== null && j >= 0) {
      // Still there, as of the look that found `w` there.
      this.#foundAt(old, j, w.marks[i] as number);
      return;
    }
    w.uses++; // (held, as in #dirWatch)
    const up = typeof wd === 'number' ? this.#watchUp(source, w, w.prefixes[i] as string, w.marks[i] as number) : LIMIT_CODES.has(wd) ? wd : null;
    w.uses--;
    this.#setUp(w, i, up);
    if (old !== null) this.#unwatch(old);
  }

  /**
   * After the kernel dropped events (IN_Q_OVERFLOW), a directory's move may have been among them, and
   * every path has just been looked at again (after the marker `before`). The spellings none of those
   * looks found name nothing of ours any more: dropped, as a move read would drop them. The directories
   * above are checked from the deepest spelling up (one inotify_add_watch each: an overflow is rare),
   * so that one still above a spelling found is kept, at its spelling now.
   */
  #respell(before: number): void {
    this.#overflowed = -1;
    const dirs: DirWatch[] = [];
    for (const w of this.#watches.values()) if (w instanceof DirWatch) dirs.push(w);
    const spellings = dirs.flatMap((w) => w.prefixes.map((prefix) => ({ w, prefix }))).sort((a, b) => b.prefix.length - a.prefix.length);
    for (const { w, prefix } of spellings) {
      const i = w.prefixes.indexOf(prefix);
      if (w.wd >= 0 && i >= 0 && (w.marks[i] as number) > before) this.#rebindUp(w, i);
    }
    for (const w of dirs) {
      if (w.wd < 0) continue;
      this.#keepSpellings(w, w.marks.map((m) => m > before));
    }
  }

  /** Keeps the spellings of `w` that `keep` says (by index), letting go of the others' directories above. */
  #keepSpellings(w: DirWatch, keep: boolean[]): void {
    if (keep.every(Boolean)) return;
    for (let i = 0; i < keep.length; i++) if (!keep[i]) this.#unwatchUp(w, i);
    w.prefixes = w.prefixes.filter((_, i) => keep[i]);
    w.marks = w.marks.filter((_, i) => keep[i]);
    w.unread = w.unread.filter((_, i) => keep[i]);
    w.ups = w.ups.filter((_, i) => keep[i]);
    w.free = w.free.filter((_, i) => keep[i]);
  }

  /**
   * Whether an event counts for `f`: it came after the marker of its last look that reported a change.
   * One older than a later look that reported nothing still counts: what it proves is reported, then
   * the state that look saw, again, in order.
   */
  #fresh(f: Followed): boolean {
    return f.changeMark <= this.#seenMark;
  }

  /** Lets go of a use #watchUp took. */
  #unwatch(up: DirWatch): void {
    up.below--;
    this.#unuse(up);
  }

  /** Lets go of the directory above spelling `i` of `w`. */
  #unwatchUp(w: DirWatch, i: number): void {
    const up = w.ups[i];
    if (up === null || up === undefined) return;
    w.ups[i] = null;
    this.#unwatch(up);
  }

  /** Every entry of directory `dir`, for a directory of targets. */
  #watchWhole(source: EventSource, f: Followed, dir: string, mark: number): DirWatch | string {
    const wd = source.addWatch(dir, DIR_MASK);
    if (typeof wd !== 'number') return wd;
    const w = this.#dirWatch(source, wd, dir.endsWith('/') ? dir : `${dir}/`, mark, true);
    if (w === null) return 'EAGAIN';
    if (!w.whole.includes(f)) {
      w.whole = [...w.whole, f];
      w.uses++;
    }
    return w;
  }

  /**
   * The FIFO at `path`, watched with `mask` (DEAD_FIFO_MASK before it is looked at; ALIVE_FIFO_MASK
   * once it is seen alive), which replaces the mask of the one watch its inode has.
   */
  #watchFifo(source: EventSource, f: Followed, path: string, mask: number): FifoWatch | string {
    const wd = source.addWatch(path, mask);
    if (typeof wd !== 'number') return wd;
    let w = this.#watches.get(wd);
    if (w instanceof DirWatch) {
      // Replaced by a directory we watch since it was looked at: its mask put back; look again soon.
      source.addWatch(path, w.wide ? DIR_MASK : NARROW_MASK);
      return 'EAGAIN';
    }
    if (w === undefined) {
      w = new FifoWatch(wd, f);
      this.#watches.set(wd, w);
    } else if (!has(w.users, f)) w.users = Array.isArray(w.users) ? [...w.users, f] : [w.users, f];
    if (f.fifo !== null && f.fifo !== w) this.#unuseFifo(f.fifo, f);
    f.fifo = w;
    return w;
  }

  /** Keeps the write end of an alive FIFO in epoll. */
  #keepWriter(source: EventSource, f: Followed, w: { fd: number; dev: number; ino: number }): number | string {
    const serial = source.watchWriter(w.fd);
    if (typeof serial !== 'number') {
      closeWriter(w.fd);
      return serial;
    }
    this.#closed.delete(f);
    f.writer = w.fd;
    f.serial = serial;
    f.dev = w.dev;
    f.ino = w.ino;
    this.#writers[w.fd] = f;
    return w.fd;
  }

  /** Lets go of `f`'s write end once the batch a look is part of is handled (see #leaving). */
  #letGoWriter(f: Followed): void {
    if (f.writer < 0) return;
    this.#leaving.push({ f, fd: f.writer, serial: f.serial });
    f.writer = -1;
  }

  /** Lets go of a FIFO watch of `f`'s once the batch a look is part of is handled (see #leaving). */
  #letGoFifo(w: FifoWatch, f: Followed): void {
    this.#leavingFifos.push({ w, f });
  }

  /** Closes the write ends and lets go of the watches kept while a batch was handled. */
  #releaseLeaving(): void {
    for (const { f, fd } of this.#leaving.splice(0)) {
      this.#source?.unwatchWriter(fd);
      if (this.#writers[fd] === f && f.writer !== fd) this.#writers[fd] = undefined;
      closeWriter(fd);
    }
    for (const { w, f } of this.#leavingFifos.splice(0)) if (f.fifo !== w) this.#unuseFifo(w, f);
    // Against the chain the path has now (none, if it was let go of meanwhile): a hop it still goes
    // through stays; one let go of by two looks of the batch is let go of once (#releaseHops).
    for (const { f, hops } of this.#leavingHops.splice(0)) this.#releaseHops(f, hops, f.hops);
    for (const { w, f } of this.#leavingWholes.splice(0)) if (f.extra?.whole !== w) this.#unuseWhole(w, f);
  }

  #releaseWriter(f: Followed): void {
    if (f.writer < 0) return;
    this.#source?.unwatchWriter(f.writer);
    if (this.#writers[f.writer] === f) this.#writers[f.writer] = undefined;
    closeWriter(f.writer);
    f.writer = -1;
  }

  /** Lets `f` go of the hops in `old` that are not in `kept`. */
  #releaseHops(f: Followed, old: Followed['hops'], kept: Followed['hops']): void {
    eachHop(f, old, (w, key) => {
      if (hasHop(f, kept, w, key)) return;
      const users = w.names.get(key);
      if (users === undefined) return;
      if (users === f) w.names.delete(key);
      else if (Array.isArray(users) && users.includes(f)) {
        const rest = users.filter((u) => u !== f);
        w.names.set(key, rest.length === 1 ? (rest[0] as Followed) : rest);
      } else return;
      this.#unuse(w);
    });
  }

  #unuseFifo(w: FifoWatch, f: Followed): void {
    const users = w.users;
    if (users === f) this.#drop(w);
    else if (Array.isArray(users) && users.includes(f)) {
      const rest = users.filter((u) => u !== f);
      w.users = rest.length === 1 ? (rest[0] as Followed) : rest;
    }
  }

  #unuseWhole(w: DirWatch, f: Followed): void {
    if (!w.whole.includes(f)) return;
    w.whole = w.whole.filter((u) => u !== f);
    this.#unuse(w);
  }

  #unuse(w: DirWatch): void {
    if (--w.uses <= 0) this.#drop(w);
    else if (w.wide && w.uses === w.below) this.#narrow(w);
  }

  /**
   * A directory now watched only as one above others: its mask narrowed back to IN_MOVE_SELF, so that
   * what happens in it (a busy /tmp above a target) does not wake the worker. inotify_add_watch(2) takes
   * a path, not a watch, and the spelling may name another directory now (this one moved, which is not
   * read yet): the directory is opened first, and only the one whose watch is this one is changed.
   * Where /proc cannot reach an open directory, it stays as it is.
   */
  #narrow(w: DirWatch): void {
    const source = this.#source;
    if (source === null || w.wd < 0) return;
    for (const prefix of w.prefixes) {
      // Through a directory fd (/proc/self/fd/N): the inode asked about is the one changed. IN_MASK_ADD
      // of a bit every watch of ours has changes no mask of ours; the wd it returns says whose it is.
      const dir = openWatchable(prefix);
      if (dir === null) continue;
      if (!dir.exact) {
        dir.close();
        continue;
      }
      try {
        const wd = source.addWatch(dir.path, UP_MASK);
        if (wd === w.wd) {
          source.addWatch(dir.path, NARROW_MASK);
          w.wide = false;
          return;
        }
        // (Another directory is there now: one we did not watch loses the watch just made.)
        if (typeof wd === 'number' && !this.#watches.has(wd)) source.removeWatch(wd);
      } finally {
        dir.close();
      }
    }
  }

  /** Removes a watch nothing uses any more (one wd per inode: only when all its users are gone). */
  #drop(w: DirWatch | FifoWatch): void {
    if (w.wd < 0) return;
    if (this.#watches.get(w.wd) === w) this.#watches.delete(w.wd);
    this.#source?.removeWatch(w.wd);
    w.wd = -1;
    if (w instanceof DirWatch) for (let i = 0; i < w.ups.length; i++) this.#unwatchUp(w, i);
  }

  #setPolled(f: Followed, reason: ProcAliveError | undefined): void {
    const was = f.polled;
    setExtra(f, 'polled', reason);
    if (reason === undefined) {
      if (was !== undefined && this.#polled.delete(f)) {
        // The last path polled: whether a directory above is still refused (#upsFailing) is asked again.
        if (this.#polled.size === 0 && this.#upsRefused) {
          this.#upsRefused = [...this.#watches.values()].some((w) => w instanceof DirWatch && w.ups.includes(undefined));
        }
        this.#schedulePoll();
        this.#tell(f, (s) => s.degraded?.(f, null));
      }
      return;
    }
    if (!this.#polled.has(f)) {
      this.#polled.add(f);
      this.#schedulePoll();
    }
    if (was?.code !== reason.code) this.#tell(f, (s) => s.degraded?.(f, reason));
  }

  // ---------------------------------------------------------------------------------------------------
  // Reports.

  #emit(f: Followed, state: WatchState, error: ProcAliveError | undefined): void {
    const change: StateChange = { state, path: f.final, previous: f.state, time: now() };
    if (error !== undefined) change.error = error;
    f.state = state;
    setExtra(f, 'error', error);
    this.#tell(f, (s) => s.change(f, change));
  }

  /** Calls `fn` for each follower of `f`; one that throws does not stop the others (see #call). */
  #tell(f: Followed, fn: (s: Follower) => void): void {
    const subs = f.subs;
    if (subs === null) return;
    if (!Array.isArray(subs)) this.#call(() => fn(subs));
    else for (const s of [...subs]) this.#call(() => fn(s));
  }

  /**
   * Runs a follower's callback. If it throws (an application's listener), the rest of the batch of
   * kernel events is still handled, and the error is thrown again right after, where the application
   * sees it as an uncaught exception, as it would have without us in between.
   */
  #call(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      process.nextTick(() => {
        throw err;
      });
    }
  }

  // ---------------------------------------------------------------------------------------------------
  // Kernel events.

  /**
   * A batch of kernel events: what it proves of each followed path it touches is read, the paths are
   * looked at, and only then is what the kernel queued meanwhile read too (EventSource.catchUp: the
   * worker waits while a batch is handled), before anything is reported. Events queued before a look
   * would otherwise come in a later batch, older than the look's marker, and what they prove would be
   * lost (a watcher stopped between the worker's read and the handling of its batch: everything that
   * happened while it was stopped). A path those events touch is looked at again, after them; this goes
   * on until the kernel has nothing more (or for MAX_CATCH_UP rounds, under a flood). Paths armed while
   * the batch reports (a directory's listener following the names it was told of) are a next wave of
   * the same batch, looked at and caught up with in the same way: no look is reported before what the
   * kernel queued before it has been read (a stop between the last catch-up and a look made later
   * would otherwise lose what happened during the stop).
   */
  #onBatch(errored: number[], events: InotifyEvent[]): void {
    this.#handle(new Map(), errored, events);
  }

  /** Looks at the paths in `touched` and at those `errored` and `events` touch, then reports (see above). */
  #handle(first: Map<Followed, Told>, errored: number[], events: InotifyEvent[]): void {
    this.#handling = true;
    let rounds = 0; // of catching up, over all waves
    try {
      // A wave: the paths touched, looked at, caught up with, reported; then the paths armed meanwhile
      // (by the directories' listeners, by followers), as the next wave, until none is.
      for (let touched = first; ; ) {
        rounds = this.#wave(touched, errored, events, rounds);
        if (this.#rearm) {
          this.#rearm = false;
          for (const map of Object.values(this.#followed)) for (const f of map.values()) if (!this.#pending.has(f)) this.#pending.set(f, told(f));
        }
        if (this.#pending.size === 0) break;
        touched = this.#pending;
        this.#pending = new Map();
        errored = [];
        events = [];
      }
    } finally {
      // (Paths armed and not handled yet, if something threw, are handled with the next batch.)
      this.#handling = false;
      this.#unclaimed = null;
      this.#namedBy = null;
      this.#releaseLeaving();
    }
  }

  /** One wave of #handle; returns the rounds of catching up done so far. */
  #wave(touched: Map<Followed, Told>, errored: number[], events: InotifyEvent[], rounds: number): number {
    const entries = new Map<Followed, string[] | null>();
    const looks = new Map<Followed, Look>();
    let now = new Set(touched.keys());
    for (;;) {
      for (const f of this.#read(errored, events, touched, entries)) now.add(f);
      this.#turnMark = 0; // these looks come after everything read so far: a marker of their own
      for (const f of now) {
        if (!this.#isFollowed(f)) continue;
        const t = touched.get(f) as Told;
        // A reader's close harvested before its EPOLLERR (which would be lost with the write end, if the
        // look finds the FIFO gone): the write end says at once whether that was the last reader.
        if (t.closedAt >= 0 && !heldDied(t) && f.writer >= 0 && f.serial === t.serial && this.#source?.writerLost(f.writer)) t.lost.push(f.serial);
        // Whether the write end held now (perhaps one a look of this batch opened, on another FIFO) is
        // known to have lost its reader: the look then looks again rather than trusting it.
        looks.set(f, this.#look(f, f.writer >= 0 && t.lost.includes(f.serial)));
      }
      if (this.#overflowed >= 0) this.#respell(this.#overflowed);
      now = new Set();
      // At most MAX_CATCH_UP rounds in all, under a flood (20,000 FIFOs made at once): what comes after
      // waits for the next batch, ordered by the markers of these looks.
      const more = rounds < MAX_CATCH_UP ? this.#source?.catchUp() : null;
      if (more === null || more === undefined) break;
      rounds++;
      ({ errored, events } = more);
    }
    // A write end let go of in this batch whose reader's close was read, its EPOLLERR not (yet): the
    // write end says at once whether that close was the last reader's.
    for (const { f, fd, serial } of this.#leaving) {
      const t = touched.get(f);
      if (t !== undefined && t.closedAt >= 0 && !heldDied(t) && serial === t.serial && this.#source?.writerLost(fd)) t.lost.push(serial);
    }
    // What the kernel queued on the watches these looks let go of before they looked has been read: the
    // catch-up found nothing more. (Past its cap, or for looks outside a batch of the worker's, which
    // cannot catch up, the rest comes with the next batch, which does not hear those watches.) Anything
    // later on them is not these paths' any more: kept into a next wave, they told it of things that
    // were no longer the path's (a link swapped from a to b, then a removed, read by the next wave's
    // catch-up: absent, with the link alive throughout). What the reports below arm keeps the watch
    // that named it until the next wave has caught up (see #arm).
    this.#releaseLeaving();
    for (const [f, t] of touched) {
      const look = looks.get(f);
      if (!this.#isFollowed(f) || look === undefined) continue;
      // The death among the other evidence: where its last reader closed, if that is in the batch
      // (dropped if its name was removed or replaced before: then it was no longer this path's FIFO);
      // else first, if that close came in an earlier batch (a crash, then a removal) or the path still
      // names that FIFO.
      if (heldDied(t) && f.state === 'alive') {
        if (t.closedAt >= 0) {
          if (!t.closedRenamed) t.evidence.splice(t.closedAt, 0, 'dead');
        } else if ((look.held && f.dev === t.dev && f.ino === t.ino) || this.#closed.has(f)) t.evidence.unshift('dead');
        // Else no close placed it and the path no longer names that FIFO: its reader went and its name
        // left (removed, renamed over, its directory moved away) in one interval with nothing to order
        // them, which happens only where the FIFO itself cannot be watched (EACCES for a write-only
        // checker, an inotify limit: polled). A clean stop leaves its name first, then closes; a crash
        // and a removal can come in either order. Not proven the path's: not reported, rather than a
        // death invented for every clean stop.
      }
      if (heldDied(t)) this.#closed.delete(f);
      else if (t.closedAt >= 0 && !t.closedRenamed && f.writer >= 0 && f.serial === t.serial) this.#closed.add(f);
      this.#report(f, t.evidence, look);
    }
    for (const [f, names] of entries) {
      if (!this.#isFollowed(f) || names === null) continue;
      // Listed again by its own arming above if it was touched; else told the names. Names the batch
      // proved a life of are told in any case, even if the directory is gone by now.
      const told = f.kind === DIRECTORY && !touched.has(f) ? names : names.filter((name) => this.hasEvidence(join(f.path, name)));
      if (told.length > 0) this.#tell(f, (s) => s.entries?.(f, told));
    }
    return rounds;
  }

  /**
   * Reads what kernel events say of each followed path they touch into `touched` (adding to what earlier
   * events of the same batch said), and the names of directories of targets into `entries`. Returns the
   * paths these events touched.
   */
  #read(errored: number[], events: InotifyEvent[], touched: Map<Followed, Told>, entries: Map<Followed, string[] | null>): Set<Followed> {
    const now = new Set<Followed>();
    const touch = (f: Followed): Told => {
      now.add(f);
      let t = touched.get(f);
      if (t === undefined) touched.set(f, (t = told(f)));
      return t;
    };
    for (let i = 0; i + 1 < errored.length; i += 2) {
      const fd = errored[i] as number;
      const f = this.#writers[fd];
      if (f !== undefined && f.writer === fd && f.serial === errored[i + 1]) touch(f).lost.push(f.serial);
      else {
        // A write end a look of this batch let go of: its FIFO's death is still the path's news.
        const gone = this.#leaving.find((l) => l.fd === fd && l.serial === errored[i + 1]);
        if (gone !== undefined) touch(gone.f).lost.push(gone.serial);
      }
    }
    let overflow = false;
    for (const e of events) {
      if (e.mask & IN.Q_OVERFLOW) {
        overflow = true;
        continue;
      }
      const mark = this.#marks.get(e.wd);
      if (mark !== undefined) {
        this.#marks.delete(e.wd);
        this.#seenMark = Math.max(this.#seenMark, mark);
        continue;
      }
      const w = this.#watches.get(e.wd);
      if (w === undefined) continue;
      if (w instanceof FifoWatch) {
        if (e.mask & IN.IGNORED) this.#forget(w);
        for (const f of Array.isArray(w.users) ? w.users : [w.users]) {
          if (!this.#fresh(f)) continue;
          const t = touch(f);
          // A reader's close places the death among the evidence. After an entry on the way was removed
          // or replaced (rebound), this FIFO may no longer be the path's: an open proves nothing of the
          // path, and a death at that close is of a FIFO that had already left it (not reported).
          // (Only the FIFO held when the batch began: the death placed is its own.)
          if (e.mask & IN.CLOSE_NOWRITE && w === t.fifo) {
            t.closedAt = t.evidence.length;
            t.closedRenamed = t.renamed || t.rebound !== Infinity;
          }
          if (t.rebound !== Infinity) continue;
          // A directory it went through moved after a look of this wave had left it and this FIFO (a
          // hop it still went through set rebound, above): a holder opening this FIFO there is not a
          // life of this path.
          if (t.moved !== null && w !== f.fifo) continue;
          // (Nor, through a directory whose events cannot be placed now, is an open of its FIFO; nor for
          // a path polled, whose way is not all watched: the FIFO may have been elsewhere then, its
          // directory moved away and back between two polls.)
          if (e.mask & IN.OPEN && f.state !== 'alive' && f.polled === undefined && !this.#throughUnplaced(f)) t.evidence.push('alive');
        }
        continue;
      }
      if (e.mask & (IN.IGNORED | IN.DELETE_SELF | IN.MOVE_SELF | IN.UNMOUNT)) {
        // The directory went (or, IN_IGNORED alone, its watch did): whoever goes through it looks again.
        if (e.mask & IN.IGNORED) this.#forget(w);
        const gone = (e.mask & (IN.DELETE_SELF | IN.MOVE_SELF)) !== 0;
        // The directories watched below it went with it, and inotify tells them nothing. Each path
        // through them is told as through it (by its own last look, see #gone), whatever looks of other
        // paths found since.
        const from = gone && w.below > 0 ? w.prefixes : [];
        this.#gone(w, gone, null, touch);
        for (const prefix of from) {
          for (const d of this.#watches.values()) {
            if (d === w || !(d instanceof DirWatch)) continue;
            for (const q of d.prefixes) if (q !== prefix && q.startsWith(prefix)) this.#gone(d, true, q, touch);
          }
        }
        continue;
      }
      if (e.name === '') continue;
      let paired = false;
      if (e.mask & IN.MOVED_FROM && e.name.startsWith('.') && e.name.endsWith('.new')) {
        if (this.#moves.size >= 256) this.#moves.delete(this.#moves.keys().next().value as number);
        this.#moves.set(e.cookie, { wd: e.wd, name: e.name });
      } else if (e.mask & IN.MOVED_TO) {
        const from = this.#moves.get(e.cookie);
        if (from !== undefined) {
          this.#moves.delete(e.cookie);
          paired = from.wd === e.wd && isFreshNameOf(from.name, e.name);
        }
      }
      if (w.whole.length > 0) {
        // A name only a directory's listener watches: what a rename proves, and a removal after it, is
        // kept for the target it may become in this batch (a holder that renamed its FIFO into place
        // and died, its FIFO perhaps removed too, before we look); and which watch named it (#arm).
        // Each under the path its directory's listener will follow it at; only for a directory that
        // still goes through this watch at a spelling it still has, and whose way here nothing in this
        // batch has replaced. One renamed away (its spelling dropped, #gone), or whose path leads
        // elsewhere now (a link on it swapped: rebound; looked at since: this watch is leaving it),
        // hears nothing more here: a holder starting in the old one is no life of its members.
        for (const d of w.whole) {
          const at = d.extra?.wholeAt;
          if (at === undefined || d.extra?.whole !== w || !w.prefixes.includes(at) || this.#isUnplaced(w, at)) continue;
          const td = touched.get(d);
          if (td !== undefined && (td.rebound !== Infinity || td.moved !== null)) continue;
          const path = join(d.path, e.name);
          (this.#namedBy ??= new Map()).set(path, { w, key: at + e.name });
          const told = this.#unclaimed?.get(path);
          if (paired) (this.#unclaimed ??= new Map()).set(path, [...(told ?? []), 'alive']);
          else if (told !== undefined && e.mask & (IN.DELETE | IN.MOVED_FROM)) told.push('absent');
        }
      }
      for (const prefix of w.prefixes) {
        const users = w.names.get(prefix + e.name);
        if (users === undefined) continue;
        const unplaced = this.#isUnplaced(w, prefix);
        for (const f of Array.isArray(users) ? users : [users]) {
          if (!this.#fresh(f)) continue;
          const t = touch(f);
          if (unplaced) continue; // (looked at again, after: what it proves happened elsewhere)
          if (t.moved?.includes(w)) continue; // in a directory it was told had moved: not this path's
          if (f.extra?.aux === w && e.name === 'run') continue; // what the directory is changes, not whether it is there
          const hop = hopIndex(f, w, prefix + e.name);
          if (hop > t.rebound) continue; // behind an entry replaced earlier in this batch: not this path's any more
          if (e.mask & (IN.DELETE | IN.MOVED_FROM | IN.MOVED_TO)) {
            t.renamed = true;
            t.rebound = Math.min(t.rebound, hop);
          }
          if (e.mask & (IN.DELETE | IN.MOVED_FROM)) t.evidence.push('absent');
          // (A holder's FIFO renamed into place: at the entry the path's state is of, not at a link or
          // a directory on the way renamed into place under such a name, also on a hop a look has just
          // left, as the hop to a missing directory once it is made.)
          else if (paired && resolvePath(prefix + e.name) === resolvePath(f.final)) t.evidence.push('alive');
        }
      }
      for (const f of w.whole) {
        if (!this.#fresh(f)) continue;
        const names = entries.get(f);
        if (names === undefined) entries.set(f, [e.name]);
        else if (names !== null) names.push(e.name);
      }
    }
    if (overflow) {
      // The kernel dropped events (markers among them, perhaps): look at everything again.
      this.#marks.clear();
      this.#moves.clear();
      this.#seenMark = this.#nextMark - 1;
      this.#overflowed = this.#seenMark;
      // (A directory's move among the events dropped: any spelling may go through a link now.)
      for (const w of this.#watches.values()) if (w instanceof DirWatch) w.free.fill(false);
      for (const map of Object.values(this.#followed)) {
        for (const f of map.values()) {
          touch(f);
          if (f.kind === DIRECTORY) entries.set(f, null);
        }
      }
    }
    // (The spellings placed again since: forgotten, also those of watches gone since.)
    for (const [w, at] of this.#unplaced ?? []) for (const prefix of at.keys()) this.#isUnplaced(w, prefix);
    return now;
  }

  /**
   * What the going of directory `w` tells the paths through it: its IN_MOVE_SELF or IN_DELETE_SELF
   * (`gone`), or its watch's end (IN_IGNORED, IN_UNMOUNT: they only look again). With `under`, one of
   * its spellings went, taken along by a directory above it: only the paths through that spelling, each
   * judged by its own last look, as for its own move.
   */
  #gone(w: DirWatch, gone: boolean, under: string | null, touch: (f: Followed) => Told): void {
    if (under !== null && !w.prefixes.includes(under)) return;
    for (const [key, users] of w.names) {
      if (under !== null && !key.startsWith(under)) continue;
      for (const f of Array.isArray(users) ? users : [users]) {
        if (!this.#fresh(f)) continue;
        const t = touch(f);
        if (!gone) continue;
        const hop = hopIndex(f, w, key);
        // News for a path whose last look came before it went (whatever looks of other paths found
        // since: back at its old name, what happened in between is still not this path's); and, on
        // a hop that look has left, for one whose look came after (what was queued before it).
        const lookedSince = f.lookMark > this.#seenMark;
        if (hop === Infinity ? !lookedSince : lookedSince) continue;
        if (hop > t.rebound) continue; // behind an entry replaced earlier in this batch: not this path's
        t.evidence.push('absent');
        t.renamed = true;
        // Nor is what happens from now on in that directory, wherever it went (a holder opening
        // the FIFO there, renaming one into place), in this wave: a directory moved back cannot be
        // told from one gone. (A hop a look of this wave has left: Infinity, the chain it has now
        // is still its.)
        t.rebound = Math.min(t.rebound, hop);
        (t.moved ??= []).push(w);
      }
    }
    for (const f of w.whole) if (this.#fresh(f)) touch(f);
    if (!gone) return;
    // The spellings it had when it went, found by looks whose markers have been read, name it no
    // more (inotify says that it moved, not where to): what happens in it afterwards is no news of
    // their names, in this batch or later. Those a look found it at since (its new name, or its
    // old one again) stay; the paths through the others, touched above, look again and add theirs
    // back if it is there.
    const keep = w.marks.map((m, i) => m > this.#seenMark || (under !== null && w.prefixes[i] !== under));
    for (let i = 0; i < keep.length; i++) {
      if ((w.marks[i] as number) <= this.#seenMark || (under !== null && w.prefixes[i] !== under)) continue;
      // Until the first look that found it there since the move (its marker the first not read yet).
      const m = (w.unread[i] as number[]).find((u) => u > this.#seenMark) ?? (w.marks[i] as number);
      const at = ((this.#unplaced ??= new Map()).get(w) ?? new Map<string, number>()).set(w.prefixes[i] as string, m);
      this.#unplaced.set(w, at);
    }
    // Found there since: the directory above that spelling may be another one now, and the spelling may
    // go through a link to where it went (d/real renamed to d/real2, d/real made a link to it), which a
    // look that trusted its flag did not watch (#links).
    for (let i = 0; i < keep.length; i++) {
      if (!keep[i] || (under !== null && w.prefixes[i] !== under)) continue;
      if (w.free[i]) {
        w.free[i] = false;
        // Walked again by a look of each: also those a look found there since (fresh or not, see
        // above), which may have trusted the flag.
        const prefix = w.prefixes[i] as string;
        for (const [key, users] of w.names) if (key.startsWith(prefix)) for (const f of Array.isArray(users) ? users : [users]) touch(f);
        for (const f of w.whole) touch(f);
      }
      this.#rebindUp(w, i);
    }
    this.#keepSpellings(w, keep);
    // A name no one follows yet whose life this batch proved in that directory (a holder's rename
    // into place) left with it: that, in order, is its evidence too (alive, absent, then whatever a
    // new directory holds at that name). Only where this directory was the last to name it: a new
    // directory made at the same path may have named it since.
    if (this.#unclaimed !== null) {
      for (const [key, by] of this.#namedBy ?? []) {
        const told = by.w === w && (under === null || by.key.startsWith(under)) ? this.#unclaimed.get(key) : undefined;
        if (told !== undefined && told.at(-1) !== 'absent') told.push('absent');
      }
    }
  }

  /** Whether a batch being handled proves something of `path`, an entry no one follows yet. */
  hasEvidence(path: string): boolean {
    return this.#unclaimed?.has(path) ?? false;
  }

  /** The names in directory `dir` that a batch being handled proves something of (see hasEvidence). */
  evidenceIn(dir: string): string[] {
    // (Compared as the keys are spelt, normalized by join(): `./d/` is `d`, and `./` is `.`.)
    const at = join(dir, '.');
    const names: string[] = [];
    for (const key of this.#unclaimed?.keys() ?? []) if (dirname(key) === at) names.push(basename(key));
    return names;
  }

  /** Whether a hop of `f` is at a spelling whose events cannot be placed now (see #unplaced). */
  #throughUnplaced(f: Followed): boolean {
    if (this.#unplaced === null) return false;
    let through = false;
    // (Any spelling of a directory on its way: one that moved moved under every spelling through it.)
    eachHop(f, f.hops, (w) => {
      for (const prefix of [...(this.#unplaced?.get(w)?.keys() ?? [])]) through ||= this.#isUnplaced(w, prefix);
    });
    return through;
  }

  /** Whether events of `w` at spelling `prefix` cannot be placed now (see #unplaced); forgets those that can. */
  #isUnplaced(w: DirWatch, prefix: string): boolean {
    const at = this.#unplaced?.get(w);
    const mark = at?.get(prefix);
    if (at === undefined || mark === undefined) return false;
    if (mark > this.#seenMark) return true;
    at.delete(prefix);
    if (at.size === 0) this.#unplaced?.delete(w);
    if (this.#unplaced?.size === 0) this.#unplaced = null;
    return false;
  }

  /** A watch the kernel has dropped (IN_IGNORED): its wd is no longer ours to remove. */
  #forget(w: DirWatch | FifoWatch): void {
    if (this.#watches.get(w.wd) === w) this.#watches.delete(w.wd);
    w.wd = -1;
    if (w instanceof DirWatch) for (let i = 0; i < w.ups.length; i++) this.#unwatchUp(w, i);
  }

  /** The serial of a marker placed before any look still to come in this turn (see the top of this file). */
  #markNow(source: EventSource): number {
    if (this.#turnMark !== 0) return this.#turnMark;
    const serial = this.#nextMark++;
    const wd = source.mark();
    // No marker (no /dev/null to put it on): events cannot be ordered against looks; none is taken for
    // older than a look, at the risk of an event just before a look being reported after it.
    if (wd < 0) this.#seenMark = serial;
    else this.#marks.set(wd, serial);
    this.#turnMark = serial;
    queueMicrotask(() => {
      this.#turnMark = 0;
    });
    return serial;
  }

  // ---------------------------------------------------------------------------------------------------
  // Any fd, readable.

  /**
   * Calls `callback` on the main thread whenever `fd` is readable (epoll EPOLLIN, through the event
   * worker; unless `readable` is false), or in error (EPOLLERR, EPOLLHUP: the write end of a pipe whose
   * reader has gone, a socket whose peer has); where there are no kernel events, every DEFAULT_POLL_MS
   * with `'poll'` instead. The callback must read what is there without blocking (a non-blocking fd).
   * Keeps the process alive unless `refd` is false.
   */
  watchFd(fd: number, callback: (kind: ReadyKind) => void, { readable = true, refd = true } = {}): WatchedFd {
    const lease = this.lease(refd);
    const entry: FdEntry = { fd, readable, callback, handle: null };
    this.#fds.add(entry);
    if (this.#source !== null) this.#registerFd(entry);
    this.#schedulePoll();
    let open = true;
    return {
      close: () => {
        if (!open) return;
        open = false;
        entry.handle?.close();
        this.#fds.delete(entry);
        this.#schedulePoll();
        void lease.release();
      },
    };
  }

  #registerFd(entry: FdEntry): void {
    try {
      entry.handle = this.#source?.watchFd(entry.fd, (kind) => this.#call(() => entry.callback(kind)), entry.readable) ?? null;
    } catch {
      entry.handle = null; // polled, as without events
    }
  }
}

function follows(f: Followed, sub: Follower): boolean {
  return f.subs === sub || (Array.isArray(f.subs) && f.subs.includes(sub));
}

function has(users: Followed | Followed[], f: Followed): boolean {
  return users === f || (Array.isArray(users) && users.includes(f));
}

/** Whether the hops array `hops` holds [w, name]. */
function heldAt(hops: Array<DirWatch | string> | null, w: DirWatch, name: string): boolean {
  if (hops === null) return false;
  for (let i = 0; i + 1 < hops.length; i += 2) if (hops[i] === w && hops[i + 1] === name) return true;
  return false;
}

/** Whether `to` is `from` or above it, through the watches of the directories above. */
function reaches(from: DirWatch, to: DirWatch): boolean {
  // (Each once: a directory with several spellings has as many ways up, which multiply with the depth.)
  const seen = new Set<DirWatch>([from]);
  const next: DirWatch[] = [from];
  for (let w = next.pop(); w !== undefined; w = next.pop()) {
    if (w === to) return true;
    for (const up of w.ups) {
      if (up === null || up === undefined || seen.has(up)) continue;
      seen.add(up);
      next.push(up);
    }
  }
  return false;
}

/**
 * Walks directory `spelt` component by component, as the kernel does (path_resolution(7)), calling
 * `onLink(dir, name)` for each symbolic link met before it is read (#links watches it there). Returns
 * the directory it leads to, with no link in it (so that a '..' after it is its parent), or null if
 * that cannot be told (a component gone or not a directory, unreadable, too many links); and how many
 * links it met (-1: a link of procfs, which cannot be followed by reading it).
 */
function resolveDir(spelt: string, onLink: ((dir: string, name: string) => void) | null): { dir: string | null; links: number; id: { dev: number; ino: number } | null } {
  const todo = spelt.split('/').reverse();
  let base = spelt.startsWith('/') ? '/' : '.';
  let links = 0;
  let id: { dev: number; ino: number } | null = null; // the last directory's, as lstat(2) found it
  while (todo.length > 0) {
    const name = todo.pop() as string;
    if (name === '' || name === '.') continue;
    const path = join(base, name);
    if (name === '..') {
      base = path;
      id = null;
      continue;
    }
    let st: { kind: string; dev: number; ino: number };
    try {
      st = probeEntry(path);
    } catch {
      return { dir: null, links, id: null };
    }
    if (st.kind === 'dir') {
      base = path;
      id = { dev: st.dev, ino: st.ino };
      continue;
    }
    // (Not a directory or a link: changed since the hop was added.)
    if (st.kind !== 'link' || ++links > MAX_LINKS) return { dir: null, links, id: null };
    // A "magic" link of procfs (/proc/PID/root, /proc/PID/cwd, /proc/self/fd/N: proc(5)) leads where its
    // text does not say (another mount namespace, a deleted directory): the kernel's walk cannot be
    // followed by reading it. Only the hop's own watch, then, as before links on the way were watched.
    if (path.startsWith('/proc/')) return { dir: null, links: -1, id: null };
    onLink?.(base, name);
    let to: string;
    try {
      to = readlink(path); // (after onLink: a change from now on is heard)
    } catch {
      return { dir: null, links, id: null };
    }
    if (to.startsWith('/')) {
      base = '/';
      id = null;
    }
    todo.push(...to.split('/').reverse());
  }
  return { dir: base, links, id };
}

function hasDotDot(path: string): boolean {
  return path === '..' || path.startsWith('../') || path.endsWith('/..') || path.includes('/../');
}

/**
 * Path `p`, through `entry` (the nearest entry of it that is there, in directory `dir` as the kernel
 * resolves it), if that entry is a symbolic link: what p names through where it points; else null.
 */
function throughDangling(p: string, entry: string, dir: string): string | null {
  const spelt = entry.startsWith('./') && !p.startsWith('./') ? entry.slice(2) : entry;
  // (Not a link of procfs: where it leads is not what it reads, see resolveDir.)
  if (!p.startsWith(`${spelt}/`) || join(dir, basename(spelt)).startsWith('/proc/')) return null;
  try {
    if (probeEntry(spelt).kind !== 'link') return null;
    return join(resolvePath(dir, readlink(spelt)), p.slice(spelt.length + 1));
  } catch {
    return null;
  }
}

/**
 * The spelling of the directory above the one spelt `prefix` (both end in '/'), or null: `prefix` is
 * the root, or the first component of a relative path (what it names does not change when the working
 * directory is renamed: the process keeps its inode).
 */
function upPrefix(prefix: string): string | null {
  const dir = prefix.length > 1 ? prefix.slice(0, -1) : prefix;
  const up = dirname(dir);
  // A spelling through '.' or '..' means what it means from the working directory or the directory
  // below, whatever the name of the one spelt so: a rename of it is not a move of what is below.
  if (up === dir || up === '.' || [basename(dir), basename(up)].some((b) => b === '.' || b === '..')) return null;
  return up.endsWith('/') ? up : `${up}/`;
}

/** Whether `from` is the private name a proc-alive holder makes `name` under: `.<name>.<digits>.new`. */
function isFreshNameOf(from: string, name: string): boolean {
  if (!from.startsWith(`.${name}.`) || !from.endsWith('.new')) return false;
  const digits = from.slice(name.length + 2, -4);
  return digits.length > 0 && /^\d+$/.test(digits);
}

function pollReason(path: string, code: string): ProcAliveError {
  const why: Record<string, string> = {
    EACCES: 'no read permission for inotify',
    ENOSPC: 'the inotify watch limit is reached (fs.inotify.max_user_watches)',
    EMFILE: 'the open-file limit is reached',
    ENFILE: "the system's open-file limit is reached",
    ENOMEM: 'out of kernel memory for watches',
  };
  return new ProcAliveError(code, `polled instead of watched: ${why[code] ?? 'it cannot be watched'} (${code})`, { path });
}

function readlink(path: string): string {
  try {
    return decodeName(fs.readlinkSync(fsPath(path), { encoding: 'buffer' }));
  } catch (err) {
    throw errnoError((err as NodeJS.ErrnoException).code ?? 'EIO', path, 'cannot check', err);
  }
}

/** The one monitor of this process: created on first use, so importing proc-alive starts nothing. */
let monitor: Monitor | undefined;

export function theMonitor(): Monitor {
  monitor ??= new Monitor();
  return monitor;
}

export type { Monitor };
