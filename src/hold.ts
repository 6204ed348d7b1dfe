// Makes the calling process the runner: it holds the target's FIFO open for reading until it closes
// the holder or dies. The kernel drops the reader however the process ends, SIGKILL included.
//
// `Claim` is the mechanics of holding, shared by hold() and wrap(): the target's directory (opened once,
// everything made relative to it), its lock, a reader of its FIFO, the record, the clean stop, and the
// guard that puts back what a cleaner or an operator removes.

import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import { basename } from 'node:path';
import { checkFd, checkOptions, invalidArgument, targetArgument } from './arguments.js';
import { ProcAliveError, aboutPath } from './errors.js';
import { isFifo, kindOf } from './kernel.js';
import {
  closeDir,
  closeIfSame,
  dirMoved,
  dirRemoved,
  euid,
  flockFd,
  lockAt,
  lockInPlace,
  lstatAt,
  makeReaderAt,
  moveFd,
  openReaderAt,
  pause,
  pinDir,
  probeAt,
  readSmallFileAt,
  renameAt,
  shown,
  unlinkAt,
  watchable,
  writeFileAt,
  type Dir,
  type Lock,
  type Reader,
} from './kernel-files.js';
import { upward, type Upward } from './notify.js';
import { newRecord, parseRecord, RECORD_MAX_BYTES, recordNameOf, recordProcessGone, recordText, type HolderRecord } from './record.js';
import { placeOf } from './target.js';
import { decodeName, escapeText } from './text.js';

export interface HoldOptions {
  /**
   * Mode of the FIFO, set exactly whatever the umask. Default `0o600`, or, where a FIFO of yours is
   * already there, its mode without read for group and others. Owner read and write are required; write
   * for group (`0o620`) or others (`0o602`) lets them check. Read for group or others is refused:
   * whoever can read the FIFO can hold it and fake liveness.
   */
  mode?: number;
  /** Leave the FIFO in place on close, so checkers see `'dead'` rather than `'absent'`. Default false. */
  keep?: boolean;
  /**
   * Hold along with other shared holders (a pool of workers): the target is alive while any of them
   * lives. Default false: exclusive, a second holder fails with `EHELD` while this one lives.
   */
  shared?: boolean;
  /**
   * Tell this process's service manager, if `$NOTIFY_SOCKET` is in the environment (a systemd
   * `Type=notify` service): `READY=1` once the target is alive, `STOPPING=1` on `close()`. Default false.
   * Failures to send are `'warning'` events. (To say more, `sdNotify()`.)
   */
  notify?: boolean;
  /**
   * Write a newline to this fd, and close it, once the target is alive (s6's notification-fd, dinit's
   * pipefd, OpenRC's ready=fd). Made close-on-exec at once. A bad fd throws EBADF before anything is held.
   */
  notifyFd?: number;
}

/** Something about a held target that changed behind the holder's back. */
export interface HolderIncident {
  /** What was touched: the FIFO, the lock file, or the directory they are in. */
  what: 'fifo' | 'lock' | 'directory';
  /** One line saying what happened. */
  message: string;
}

/** Events of a {@link Holder} (and of a wrapped command, {@link Wrapped}). */
export interface HolderEvents {
  /** Something was removed (an operator's `rm`, a `/tmp` cleaner) and has been put back. */
  restored: [HolderIncident];
  /**
   * Something was removed or replaced and could not be put back: checks may now say `absent`, or
   * another holder may hold the target. Like proper-lockfile's `onCompromised`.
   */
  compromised: [HolderIncident];
  /** A failure that does not stop holding: the record could not be written or removed, the guard could not start. */
  warning: [ProcAliveError];
}

export interface Holder extends Disposable, EventEmitter<HolderEvents> {
  /** The target as given. */
  readonly target: string;
  /** The FIFO's path. */
  readonly path: string;
  /**
   * The reader's file descriptor: a plain number, never closed behind your back (e.g. on GC). It stays
   * the same number if the FIFO has to be put back, except without koffi (see the 'restored' event).
   */
  readonly fd: number;
  /** The lock file's descriptor (`.<name>.lock` next to the FIFO), a plain number too. */
  readonly lockFd: number;
  /** Whether held with `shared`. */
  readonly shared: boolean;
  /** True once `close()` has run. */
  readonly closed: boolean;
  /**
   * Stops holding. The last holder to leave removes the FIFO first, then lets go of its reader, so
   * checkers see alive → absent, never an instant of dead (unless `keep` was asked: then dead); then
   * the record and the lock file. A FIFO that another process still reads (a child that inherited the
   * fd) is put back. Idempotent. Throws the first failure, after doing all the rest.
   */
  close(): void;
}

const ALLOWED_MODE_BITS = 0o622;

/** Refuses a mode that is not a number, or that lets group or others read (they could fake liveness). */
export function checkMode(mode: unknown, what = 'options.mode'): asserts mode is number {
  if (typeof mode !== 'number') {
    const hint = typeof mode === 'string' && /^0?o?[0-7]{3}$/.test(mode) ? ` (write 0o${mode.replace(/^0?o?/, '')})` : '';
    throw invalidArgument(what, 'a number such as 0o600', mode, hint);
  }
  if (!Number.isInteger(mode) || (mode & ~ALLOWED_MODE_BITS) !== 0 || (mode & 0o600) !== 0o600) {
    const shown = Number.isInteger(mode) && mode >= 0 ? `0${mode.toString(8)}` : String(mode);
    throw new ProcAliveError(
      'EINVAL',
      `mode ${shown} is not allowed: it must be 0600, plus write for group (0620) or others (0602) at most; ` +
        'read for them would let them hold the FIFO and fake liveness',
    );
  }
}

/** The lock file's name next to the FIFO `name`. */
const lockNameOf = (name: string): string => `.${name}.lock`;

/**
 * A private name for the FIFO next to `name`: `.<name>.<pid>.new` for one being made before it is
 * renamed into place (watchers rely on the pattern, digits between the dots: a rename from it to
 * `<name>` proves a reader was there, see monitor.ts), `.<name>.<pid>.old` for one being removed. What
 * a crash of ours left there is removed; if another user put something there (to stop us starting),
 * random digits follow the pid instead.
 */
function privateName(dir: Dir, name: string, kind: 'new' | 'old'): string {
  for (let i = 0; ; i++) {
    const candidate = `.${name}.${process.pid}${i === 0 ? '' : String(Math.floor(Math.random() * 1e9)).padStart(9, '0')}.${kind}`;
    const st = lstatAt(dir, candidate, 'cannot hold');
    if (st === undefined) return candidate;
    if (isFifo(st.mode) && st.uid === euid()) {
      unlinkAt(dir, candidate, st, 'cannot remove a leftover FIFO');
      return candidate;
    }
    if (i === 4) throw new ProcAliveError('EEXIST', `cannot hold: ${shown(dir, candidate)} is in the way (a ${kindOf(st.mode)} of uid ${st.uid})`);
  }
}

// A start that finds the lock taken waits out, a quarter of a second at most, a holder that only holds
// it for an instant: the last shared holder to leave cleans up under it, exclusively.
const RETRY_MS = [1, 2, 4, 8, 16, 32, 64, 128];

/** How a claim ends (see Claim.release). */
export interface Ending {
  /** A clean stop: remove the FIFO (absent). Otherwise leave it (dead: crashed). */
  clean: boolean;
  /** With `clean`: leave the FIFO anyway (dead). */
  keep?: boolean;
  /** Not clean: how the command ended, into the record. */
  exit?: HolderRecord['exit'];
}

/**
 * A target held, or being held: see the top of this file. The FIFO is made under a private name
 * (`.<name>.<pid>.new`), opened, and renamed into place (exclusive: once ready; shared: at once, without
 * replacing one another holder placed first), so a start is absent → alive, never through a dead
 * instant; and a watcher that sees the rename knows a reader was there.
 */
export class Claim {
  readonly path: string;
  readonly shared: boolean;
  readonly #dir: Dir;
  readonly #name: string;
  #lock: Lock;
  #reader: Reader;
  #placed: boolean;
  readonly #fresh: string;
  /** The record before this claim (exclusive), put back if the start fails. */
  readonly #previous: HolderRecord | undefined;
  /** The record this claim wrote last, rewritten if removed. */
  #record: HolderRecord | undefined;
  #watcher: fs.FSWatcher | undefined;
  #checking = false;
  #released = false;
  #emit: <K extends keyof HolderEvents>(event: K, ...args: HolderEvents[K]) => void = () => {};

  private constructor(path: string, dir: Dir, name: string, shared: boolean, lock: Lock, reader: Reader, placed: boolean, fresh: string, previous: HolderRecord | undefined) {
    this.path = path;
    this.#dir = dir;
    this.#name = name;
    this.shared = shared;
    this.#lock = lock;
    this.#reader = reader;
    this.#placed = placed;
    this.#fresh = fresh;
    this.#previous = previous;
  }

  /**
   * Takes `target`: its lock (waiting out a holder's clean-up), then makes sure no one holds the FIFO
   * without it (a C runner, runsv, a command whose wrapper was killed) — race-free, since every
   * proc-alive holder takes the lock first — then a reader. Exclusive claims are placed by `place()`;
   * shared ones are placed at once. Throws EHELD if the target is taken.
   */
  static take(target: string, mode: number | undefined, shared: boolean): Claim {
    const { path, dir, name, own } = placeOf(target);
    try {
      if (own) pinDir(dir);
      // Before a lock file is made next to it (`run /dev/null` must leave nothing in /dev).
      const st = lstatAt(dir, name, 'cannot hold');
      if (st !== undefined && !isFifo(st.mode)) throw notFifo(path, st.mode);
      if (st !== undefined) refuseForeign(path, st);
      if (!shared) {
        const lock = takeLock(dir, name, path, true);
        try {
          return Claim.#takeExclusive(path, dir, name, mode, lock);
        } catch (err) {
          releaseLock(dir, lock, true);
          throw err;
        }
      }
      // Shared: a reader of the FIFO there before the lock. A holder that leaves while we start, and
      // sees our shared lock, is not the last and lets go; we must be reading by then, or the FIFO reads
      // dead until we are. A FIFO others could read (never one a proc-alive pool made) that is alive
      // may be read by another user: that is refused, as for an exclusive start.
      const suspect = st !== undefined && (st.mode & 0o044) !== 0 && probeAt(dir, name, 'cannot hold') === 'alive';
      if (suspect) throw heldError(dir, name, path, true);
      const early = st === undefined ? undefined : openExisting(dir, name, path);
      let lock: Lock;
      try {
        lock = takeLock(dir, name, path, false);
      } catch (err) {
        if (early !== undefined) closeIfSame(early.fd, early);
        throw err;
      }
      try {
        return Claim.#takeShared(path, dir, name, mode, lock, early);
      } catch (err) {
        releaseLock(dir, lock, false);
        throw err;
      }
    } catch (err) {
      closeDir(dir);
      // Said of the target: the user knows it by its own path, not by `.web.lock` or `.web.123.new`.
      throw aboutPath(err, path);
    }
  }

  static #takeExclusive(path: string, dir: Dir, name: string, mode: number | undefined, lock: Lock): Claim {
    const st = lstatAt(dir, name, 'cannot hold');
    let gid: number | undefined;
    if (st !== undefined) {
      if (!isFifo(st.mode)) throw notFifo(path, st.mode);
      refuseForeign(path, st);
      if (probeAt(dir, name, 'cannot hold') === 'alive') throw heldError(dir, name, path, true);
      // What a crash left: a new FIFO replaces it, with its mode (less read for others) and its group.
      mode ??= (st.mode & 0o622) | 0o600;
      gid = st.gid;
    }
    const previous = readTrustedRecord(dir, name, st?.uid);
    const fresh = privateName(dir, name, 'new');
    const reader = makeReaderAt(dir, fresh, mode ?? 0o600, gid, 'cannot create the FIFO');
    return new Claim(path, dir, name, false, lock, reader, false, fresh, previous);
  }

  static #takeShared(path: string, dir: Dir, name: string, mode: number | undefined, lock: Lock, early: Reader | undefined): Claim {
    if (early !== undefined) {
      // Still the FIFO at the name (a last holder may have removed it meanwhile): ours to keep.
      const now = lstatAt(dir, name, 'cannot hold');
      if (now !== undefined && now.dev === early.dev && now.ino === early.ino) return new Claim(path, dir, name, true, lock, early, true, '', undefined);
      closeIfSame(early.fd, early);
    }
    const existing = openExisting(dir, name, path);
    if (existing !== undefined) return new Claim(path, dir, name, true, lock, existing, true, '', undefined);
    const fresh = privateName(dir, name, 'new');
    const reader = makeReaderAt(dir, fresh, mode ?? 0o600, undefined, 'cannot create the FIFO');
    try {
      renameAt(dir, fresh, name, true, 'cannot put the FIFO in place');
      return new Claim(path, dir, name, true, lock, reader, true, fresh, undefined);
    } catch (err) {
      // Another shared holder placed one first: join it.
      closeIfSame(reader.fd, reader);
      unlinkAt(dir, fresh, reader);
      if (!(err instanceof ProcAliveError && err.code === 'EEXIST')) throw err;
      const joined = openExisting(dir, name, path);
      if (joined === undefined) throw err;
      return new Claim(path, dir, name, true, lock, joined, true, fresh, undefined);
    }
  }

  /** The reader's fd (a wrapped command inherits it as its fd 3). */
  get readerFd(): number {
    return this.#reader.fd;
  }

  /** The lock's fd (a wrapped command inherits it as its fd 4). */
  get lockFd(): number {
    return this.#lock.fd;
  }

  /** Where events about this claim go (the Holder or the Wrapped). */
  set events(emit: <K extends keyof HolderEvents>(event: K, ...args: HolderEvents[K]) => void) {
    this.#emit = emit;
  }

  /** Renames the FIFO into place: the target turns alive (exclusive claims; shared ones are placed already). */
  place(): void {
    if (this.#placed) return;
    const st = lstatAt(this.#dir, this.#name, 'cannot put the FIFO in place');
    if (st !== undefined && !isFifo(st.mode)) throw notFifo(this.path, st.mode);
    renameAt(this.#dir, this.#fresh, this.#name, false, 'cannot put the FIFO in place');
    this.#placed = true;
  }

  /** Writes the record; a failure is a warning (said once per reason), never a reason to stop holding. */
  writeRecord(record: HolderRecord): void {
    this.#record = record;
    try {
      writeFileAt(this.#dir, recordNameOf(this.#name), recordText(record), 0o644, 'cannot write the holder record');
    } catch (err) {
      this.#warnRecord(err);
    }
  }

  #recordWarnings = new Set<string>();

  #warnRecord(err: unknown): void {
    const e = asError(err, this.path);
    if (this.#recordWarnings.has(e.code)) return;
    this.#recordWarnings.add(e.code);
    this.#emit('warning', e);
  }

  /**
   * Ends the claim. Returns what went wrong, first failure first; never throws, so the caller's own
   * outcome (a command's exit code) is never hidden by a clean-up error. See Holder.close for the order.
   */
  release(ending: Ending): ProcAliveError[] {
    if (this.#released) return [];
    this.#released = true;
    this.#watcher?.close();
    const problems: ProcAliveError[] = [];
    const attempt = (fn: () => void): void => {
      try {
        fn();
      } catch (err) {
        problems.push(asError(err, this.path));
      }
    };
    // The record is information only: failing to write or remove it is a warning, never a failure.
    const aboutRecord = (fn: () => void): void => {
      try {
        fn();
      } catch (err) {
        this.#warnRecord(err);
      }
    };
    const dir = this.#dir;
    const name = this.#name;
    const recordName = recordNameOf(name);
    if (!this.#placed) {
      // A start that did not happen (exclusive: shared claims are placed at once): the target is left as
      // it was, record included.
      attempt(() => this.#closeReader());
      attempt(() => unlinkAt(dir, this.#fresh, this.#reader, 'cannot remove the FIFO'));
      if (lockInPlace(dir, this.#lock)) {
        aboutRecord(() => {
          if (this.#previous === undefined) unlinkAt(dir, recordName, undefined, 'cannot remove the holder record');
          else writeFileAt(dir, recordName, recordText(this.#previous), 0o644, 'cannot put the holder record back');
        });
        attempt(() => unlinkAt(dir, this.#lock.name, this.#lock, 'cannot remove the lock file'));
      }
    } else {
      let last = !this.shared;
      if (this.shared) {
        // Shared holders leave one at a time, each under an exclusive flock(2) on its reader of the FIFO
        // (only leaving holders take that one): the last is the one that can then lock the lock file
        // exclusively, and a holder that is not the last closes its reader before the next one looks.
        // Without the turns, two that leave together each see the other, neither removes the FIFO, and
        // the last reader's close leaves it dead. (A failed conversion to exclusive drops the shared
        // lock: flock(2), "converting a lock ... is not guaranteed to be atomic".)
        takeTurn(this.#reader.fd, this.path);
        attempt(() => (last = flockFd(this.#lock.fd, true, this.path)));
      }
      if (last && ending.clean && !ending.keep) attempt(() => this.#stopCleanly());
      else attempt(() => this.#closeReader());
      // The record and the lock file are ours to tidy only if no one has taken the lock since (see #check).
      if (last && lockInPlace(dir, this.#lock)) {
        const record = this.#record;
        const exit = ending.exit;
        if (ending.clean) aboutRecord(() => unlinkAt(dir, recordName, undefined, 'cannot remove the holder record'));
        else if (exit !== undefined && record !== undefined) {
          aboutRecord(() => writeFileAt(dir, recordName, recordText({ ...record, exit }), 0o644, 'cannot write the holder record'));
        }
        attempt(() => unlinkAt(dir, this.#lock.name, this.#lock, 'cannot remove the lock file'));
      }
    }
    closeIfSame(this.#lock.fd, this.#lock);
    closeDir(dir);
    return problems;
  }

  /**
   * Removes the FIFO while still reading it, then lets go: checkers see alive, then absent. It is
   * renamed to a private name first rather than unlinked, so that if a process that is not a
   * proc-alive holder still reads it (a child that inherited the fd), it can be put back.
   */
  #stopCleanly(): void {
    const dir = this.#dir;
    let away: string | undefined;
    try {
      const st = lstatAt(dir, this.#name, 'cannot remove the FIFO');
      if (st !== undefined && st.dev === this.#reader.dev && st.ino === this.#reader.ino) {
        try {
          away = privateName(dir, this.#name, 'old');
          renameAt(dir, this.#name, away, false, 'cannot remove the FIFO');
        } catch {
          // No private name to keep it under: removed outright (a child that inherited the reader then
          // reads a FIFO without a name).
          away = undefined;
          unlinkAt(dir, this.#name, this.#reader, 'cannot remove the FIFO');
        }
      }
    } finally {
      // Whatever failed above, the reader goes: a holder that was closed must not keep the target alive.
      this.#closeReader();
    }
    if (away === undefined) return;
    if (probeAt(dir, away, 'cannot remove the FIFO') === 'alive') {
      try {
        renameAt(dir, away, this.#name, true, 'cannot put the FIFO back');
        return;
      } catch {
        // something new at the name: ours goes
      }
    }
    unlinkAt(dir, away, this.#reader, 'cannot remove the FIFO');
  }

  #closeReader(): void {
    if (!closeIfSame(this.#reader.fd, this.#reader)) {
      throw new ProcAliveError('EBADF', `fd ${this.#reader.fd} was closed behind the holder's back (it is not the FIFO any more); left open`, {
        path: this.path,
      });
    }
  }

  /**
   * Watches the directory (fs.watch: inotify on Linux, in the event loop, no thread) and puts back the
   * FIFO, the lock file or the record when they are removed, or says that it cannot. Not persistent:
   * it never keeps the process alive by itself.
   */
  guard(): void {
    const watched = watchable(this.#dir);
    // Events about the directory itself (moved, removed) carry the last component of what is watched.
    const names = new Set([this.#name, lockNameOf(this.#name), recordNameOf(this.#name), basename(String(watched))]);
    try {
      this.#watcher = fs.watch(watched, { persistent: false, encoding: 'buffer' }, (_event, file) => {
        if (file === null || names.has(decodeName(file))) this.#scheduleCheck();
      });
      this.#watcher.on('error', (err) => {
        this.#emit('warning', asError(err, this.path, 'the guard stopped watching the directory'));
        this.#scheduleCheck();
      });
    } catch (err) {
      this.#emit('warning', asError(err, this.path, 'cannot watch the directory for removals'));
    }
  }

  #scheduleCheck(): void {
    if (this.#checking || this.#released) return;
    this.#checking = true;
    setImmediate(() => {
      this.#checking = false;
      if (!this.#released) this.#check();
    });
  }

  /**
   * Compares what is in the directory with what we hold, and puts back what is missing. Runs on each
   * event of the guard's watch, and once when the holder has placed its FIFO (what was removed before
   * the watch was up is seen then).
   */
  check(): void {
    if (!this.#released) this.#check();
  }

  #check(): void {
    const dir = this.#dir;
    const moved = dirRemoved(dir) ? 'removed' : dirMoved(dir) ? 'moved or replaced' : undefined;
    if (moved !== undefined) {
      this.#watcher?.close();
      this.#emit('compromised', { what: 'directory', message: `its directory ${dir.path} was ${moved}: checks of ${this.path} do not see it` });
      return;
    }
    try {
      if (!lockInPlace(dir, this.#lock)) {
        const lock = lockAt(dir, this.#lock.name, !this.shared, 'cannot put the lock file back');
        if (lock === null) {
          this.#emit('compromised', { what: 'lock', message: 'its lock file was removed and another holder has taken the new one' });
        } else {
          closeIfSame(this.#lock.fd, this.#lock);
          this.#lock = lock;
          this.#emit('restored', { what: 'lock', message: 'its lock file was removed; made and locked again' });
        }
      }
      if (this.#placed) this.#checkFifo();
      if (this.#record !== undefined && lstatAt(dir, recordNameOf(this.#name), 'cannot check the record') === undefined) {
        this.writeRecord(this.#record);
      }
    } catch (err) {
      this.#emit('warning', asError(err, this.path));
    }
  }

  #checkFifo(): void {
    const dir = this.#dir;
    const st = lstatAt(dir, this.#name, 'cannot check the FIFO');
    if (st !== undefined && st.dev === this.#reader.dev && st.ino === this.#reader.ino) return;
    if (st !== undefined && !this.shared) {
      this.#emit('compromised', { what: 'fifo', message: `its FIFO was replaced by another ${kindOf(st.mode)}: checks now see that one` });
      return;
    }
    // Removed (or, shared, replaced by another holder's): a new FIFO, with the mode and group of ours.
    const ours = fs.fstatSync(this.#reader.fd);
    let next: Reader | undefined;
    if (st === undefined) {
      const fresh = privateName(dir, this.#name, 'new');
      next = makeReaderAt(dir, fresh, ours.mode & 0o7777, ours.gid, 'cannot put the FIFO back');
      try {
        renameAt(dir, fresh, this.#name, true, 'cannot put the FIFO back');
      } catch (err) {
        closeIfSame(next.fd, next);
        unlinkAt(dir, fresh, next);
        next = undefined;
        if (!(err instanceof ProcAliveError && err.code === 'EEXIST')) throw err;
      }
    }
    let joined = false;
    if (next === undefined && this.shared) {
      try {
        next = openExisting(dir, this.#name, this.path);
        joined = next !== undefined;
      } catch (err) {
        this.#emit('compromised', { what: 'fifo', message: `its FIFO was replaced, by one it will not join (${err instanceof Error ? err.message.replace(`${this.path}: `, '') : String(err)})` });
        return;
      }
    }
    if (next === undefined) {
      this.#emit('compromised', { what: 'fifo', message: 'its FIFO was removed and something else took its name' });
      return;
    }
    const was = this.#reader.fd;
    const fd = moveFd(next.fd, was);
    this.#reader = { fd, dev: next.dev, ino: next.ino };
    const moved = fd === was ? '' : ` (its reader is now fd ${fd}, not ${was})`;
    this.#emit('restored', { what: 'fifo', message: `its FIFO was ${joined ? `${st === undefined ? 'removed' : 'replaced'}; joined the one another holder put there` : 'removed; made again'}${moved}` });
  }
}

function notFifo(path: string, mode: number): ProcAliveError {
  return new ProcAliveError('ENOTFIFO', `not a FIFO (${kindOf(mode)})`, { path });
}

/** A FIFO made by another user could be opened for reading by them, and kept alive after we are gone. */
function refuseForeign(path: string, st: fs.Stats): void {
  if (st.uid !== euid()) {
    throw new ProcAliveError('EFOREIGN', `the FIFO is owned by uid ${st.uid}, not by you (uid ${euid()}): refusing to hold a FIFO another user could keep alive`, { path });
  }
}

/** Opens the FIFO at `name` (one of ours) as a reader, or undefined if there is none. */
function openExisting(dir: Dir, name: string, path: string): Reader | undefined {
  try {
    return openReaderAt(dir, name, 'cannot hold');
  } catch (err) {
    if (err instanceof ProcAliveError && err.code === 'EFOREIGN') {
      const st = lstatAt(dir, name, 'cannot hold');
      if (st !== undefined) refuseForeign(path, st);
    }
    throw err;
  }
}

/** Takes the lock, waiting out (briefly) a holder that takes it only to clean up. */
function takeLock(dir: Dir, name: string, path: string, exclusive: boolean): Lock {
  for (let i = 0; ; i++) {
    const lock = lockAt(dir, lockNameOf(name), exclusive, `cannot create its lock file ${lockNameOf(name)}`);
    if (lock !== null) return lock;
    const delay = RETRY_MS[i];
    if (delay === undefined || evidentlyHeld(dir, name)) throw heldError(dir, name, path, false);
    pause(delay);
  }
}

/** A live exclusive holder: its FIFO is alive and its record says exclusive. No point waiting. */
function evidentlyHeld(dir: Dir, name: string): boolean {
  try {
    if (probeAt(dir, name, 'cannot check') !== 'alive') return false;
    return readRecordAt(dir, name)?.shared === false;
  } catch {
    return false;
  }
}

/**
 * Waits, a second at most, for this leaving holder's turn (see Claim.release). A holder stopped while
 * it leaves (SIGSTOP), or a child that inherited a wrapper's reader and took the turn with it, would
 * keep it: then leave without one.
 */
function takeTurn(fd: number, path: string): void {
  for (const delay of [...RETRY_MS, 256, 512]) {
    try {
      if (flockFd(fd, true, path)) return;
    } catch {
      return; // flock(2) on a FIFO is not supported everywhere (macOS: ENOTSUP)
    }
    pause(delay);
  }
}

/** Lets go of a lock taken for a claim that did not happen. */
function releaseLock(dir: Dir, lock: Lock, exclusive: boolean): void {
  try {
    if ((exclusive || flockFd(lock.fd, true, dir.path)) && lockInPlace(dir, lock)) unlinkAt(dir, lock.name, lock);
  } catch {
    // the failure being reported is the one that matters
  } finally {
    closeIfSame(lock.fd, lock);
  }
}

/** Owners a record may have to be believed: root, us, and the owner of the FIFO (or of the directory). */
function trustedOwners(dir: Dir, fifoUid: number | undefined): number[] {
  return [...new Set([0, euid(), fifoUid ?? dir.uid])];
}

/** The record next to FIFO `name`, if it is a trusted, valid one. */
function readRecordAt(dir: Dir, name: string): HolderRecord | undefined {
  const fifoUid = lstatAt(dir, name, 'cannot check')?.uid;
  const file = readSmallFileAt(dir, recordNameOf(name), RECORD_MAX_BYTES, trustedOwners(dir, fifoUid));
  if (file === undefined || !('data' in file)) return undefined;
  const parsed = parseRecord(file.data);
  return 'record' in parsed ? parsed.record : undefined;
}

/**
 * The record there now, to put back if a start fails: only one that is trusted (one link, a trusted
 * owner) and valid, and it is put back as a record (re-serialised), never as the bytes that were there.
 */
function readTrustedRecord(dir: Dir, name: string, fifoUid: number | undefined): HolderRecord | undefined {
  const file = readSmallFileAt(dir, recordNameOf(name), RECORD_MAX_BYTES, trustedOwners(dir, fifoUid));
  if (file === undefined || !('data' in file)) return undefined;
  const parsed = parseRecord(file.data);
  return 'record' in parsed ? parsed.record : undefined;
}

/** The error for a target someone else holds, naming them when their record does. */
function heldError(dir: Dir, name: string, path: string, foreign: boolean): ProcAliveError {
  const record = readRecordAt(dir, name);
  // Not escaped here: whoever prints it escapes it (the CLI does), and a program gets the text as is.
  const gone = record !== undefined && recordProcessGone(record) ? ', which is gone: a child it started holds it' : '';
  const who = record === undefined ? '' : ` by pid ${record.pid} (${record.command.join(' ')})${gone}`;
  const reason = foreign && record === undefined ? 'already held by a process that keeps no record (not proc-alive)' : `already held${who}`;
  return new ProcAliveError('EHELD', reason, { path });
}

function asError(err: unknown, path: string, doing?: string): ProcAliveError {
  if (err instanceof ProcAliveError) return err;
  const code = (err as NodeJS.ErrnoException | null)?.code ?? 'EIO';
  return new ProcAliveError(code, `${doing ?? 'failed'}: ${err instanceof Error ? err.message : String(err)}`, { path, cause: err });
}

class FifoHolder extends EventEmitter<HolderEvents> implements Holder {
  readonly target: string;
  readonly #claim: Claim;
  readonly #keep: boolean;
  #closed = false;
  /** The supervisor to tell, if asked (hold's `notify` and `notifyFd`). */
  up: Upward | null = null;

  constructor(target: string, claim: Claim, keep: boolean) {
    super();
    this.target = target;
    this.#claim = claim;
    this.#keep = keep;
    // Delivered on the next tick: what happens inside hold() reaches listeners attached right after it.
    claim.events = (event, ...args) => process.nextTick(() => (this.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args));
  }

  get path(): string {
    return this.#claim.path;
  }

  get shared(): boolean {
    return this.#claim.shared;
  }

  get fd(): number {
    return this.#claim.readerFd;
  }

  get lockFd(): number {
    return this.#claim.lockFd;
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.up?.stopping();
    const [first] = this.#claim.release({ clean: true, keep: this.#keep });
    if (first !== undefined) throw first;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Holds `target`: makes its FIFO (replacing one a crash left, with its mode and group), refuses and
 * leaves untouched anything at the path that is not a FIFO and a FIFO another user made, and opens it
 * read-only, non-blocking and close-on-exec; it never reads it. Exclusive unless `shared`: a target
 * that another process holds throws `EHELD`. Writes the holder record (`.<name>.json`) and watches the
 * directory so that what is removed is put back (see the Holder's events). Throws a
 * {@link ProcAliveError} when the target cannot be held.
 *
 * The first call loads the FFI (koffi) synchronously, ~12–17 ms: a server that cannot block its loop
 * that long should hold before it starts serving.
 */
export function hold(target: string, options?: HoldOptions): Holder {
  targetArgument(target);
  options = checkOptions(options, { mode: checkMode, keep: 'boolean', shared: 'boolean', notify: 'boolean', notifyFd: checkFd });
  const shared = options.shared ?? false;
  // Before the target is touched: a notification fd that is not open is refused up front.
  let warn = (_err: ProcAliveError): void => {};
  const up = upward({ notify: options.notify, notifyFd: options.notifyFd }, (err) => warn(err));
  const claim = Claim.take(target, options.mode, shared);
  const holder = new FifoHolder(target, claim, options.keep ?? false);
  holder.up = up;
  warn = (err) => process.nextTick(() => holder.emit('warning', err));
  // The watch first: what is removed from now on is seen. Then the record, before the FIFO turns alive,
  // so that a contender turned away by the lock can name us (for a shared claim, alive already, only
  // now that it holds). Then one look, for what was removed before the watch was up.
  claim.guard();
  claim.writeRecord(newRecord(process.pid, process.argv, shared));
  try {
    claim.place();
  } catch (err) {
    claim.release({ clean: true });
    throw err;
  }
  claim.check();
  up?.ready(claim.path, process.pid);
  return holder;
}
