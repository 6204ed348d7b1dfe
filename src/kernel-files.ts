// Files next to a target, in a directory that others may be able to write (/tmp): the FIFO, its lock,
// its holder record and their temporaries. Part of the kernel layer (with kernel.ts, which checks, and
// kernel-events.ts, which watches): everything here is made, opened, renamed, locked and removed
// relative to a directory that proc-alive opened and checked, never through a path another user could
// redirect, and read only once checked (type, owner, size), never blocking.
//
// The rules, after what OpenSSH and systemd do with files in shared places:
// - A directory is opened once (O_DIRECTORY) and its entries are reached through that fd. Linux has no
//   openat(2) in Node, but /proc/self/fd/N/<name> resolves through the directory fd N itself, whatever
//   happens to the directory's path afterwards (proc(5), /proc/pid/fd; systemd's FORMAT_PROC_FD_PATH).
//   Where /proc is missing (macOS, the BSDs), the directory's path is used and the inode is compared.
// - Nothing is created except with O_CREAT|O_EXCL|O_NOFOLLOW (or mkfifo(3), rename(2), link(2), which
//   never follow a symlink at the new name): a planted symlink or file makes creation fail, never
//   redirects it.
// - Nothing is opened before it is checked: on Linux an O_PATH handle (open(2): it opens nothing, so no
//   device driver runs and no FIFO end is taken) is fstat'ed, and only then reopened through
//   /proc/self/fd, so the inode opened is the inode checked. Elsewhere: lstat, open with O_NOFOLLOW and
//   O_NONBLOCK, and fstat must show the same inode.

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { ProcAliveError, aboutPath, errnoError } from './errors.js';
import { cPath, codeOf, errnoName, isFifo, kindOf, loadLibc, type State } from './kernel.js';
import { decodeName, fsPath } from './text.js';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_NOCTTY, O_DIRECTORY } = fs.constants;
const errnos = osConstants.errno;
/** open(2), Linux: a handle on an inode that opens nothing. */
const O_PATH = 0o10000000;
const AT_FDCWD = -100;
const RENAME_NOREPLACE = 1; // renameat2(2)
const O_CLOEXEC_LINUX = 0o2000000;

/** The effective uid: whose files proc-alive may trust and make. */
export function euid(): number {
  return process.geteuid?.() ?? 0;
}

// ---------------------------------------------------------------------------------------------------
// Directories.

/** A directory opened and checked once; its entries are reached through `fd`. */
export interface Dir {
  /** Its path, for messages. */
  readonly path: string;
  readonly fd: number;
  readonly dev: number;
  readonly ino: number;
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
}

let procFd: boolean | undefined;

/** Whether /proc/self/fd/N reaches the directory open as fd N (Linux with /proc mounted). */
function viaProc(fd: number, st: fs.Stats): boolean {
  if (procFd === undefined) {
    try {
      const p = fs.statSync(`/proc/self/fd/${fd}`);
      procFd = p.dev === st.dev && p.ino === st.ino;
    } catch {
      procFd = false;
    }
  }
  return procFd;
}

/** What to hand to fs for entry `name` of `d`. */
export function at(d: Dir, name: string): string | Buffer {
  if (procFd === true) return fsPath(`/proc/self/fd/${d.fd}/${name}`);
  // Without /proc the directory is reached by its path again: it must still be the one opened. (A window
  // remains between this look and the call that follows: see README, "Security".)
  const now = fs.statSync(fsPath(d.path), { throwIfNoEntry: false });
  if (now === undefined || now.dev !== d.dev || now.ino !== d.ino) {
    throw new ProcAliveError('EMOVED', 'its directory was moved or replaced since it was opened', { path: d.path });
  }
  return fsPath(join(d.path, name));
}

/** The path of entry `name` of `d`, for messages. */
export function shown(d: Dir, name: string): string {
  return join(d.path, name);
}

/** What to give fs.watch to watch `d` itself. */
export function watchable(d: Dir): string | Buffer {
  return procFd === true ? `/proc/self/fd/${d.fd}` : fsPath(d.path);
}

/**
 * Directory `path`, opened, as a path that reaches that very inode for as long as it is open
 * (/proc/self/fd/N; `exact`): for calls that take a path where the directory may be renamed meanwhile
 * (inotify_add_watch(2)). Where /proc does not reach it, `path` itself (not exact). Null if it cannot
 * be opened.
 */
export function openWatchable(path: string): { path: string; exact: boolean; dev: number; ino: number; close(): void } | null {
  let d: Dir;
  try {
    d = openDir(path, false, 'cannot watch');
  } catch {
    return null;
  }
  const exact = procFd === true;
  return { path: exact ? `/proc/self/fd/${d.fd}` : path, exact, dev: d.dev, ino: d.ino, close: () => closeDir(d) };
}

/**
 * Opens directory `path`. With `nofollow`, a symlink at its last component is refused (ELOOP);
 * components before it are followed, as the user who named them chose.
 */
export function openDir(path: string, nofollow: boolean, doing: string): Dir {
  let fd: number;
  try {
    fd = fs.openSync(fsPath(path), O_RDONLY | O_DIRECTORY | O_NONBLOCK | (nofollow ? O_NOFOLLOW : 0));
  } catch (err) {
    const code = codeOf(err);
    if (code === 'ENOTDIR') throw new ProcAliveError('ENOTDIR', `${doing}: not a directory`, { path, cause: err });
    throw errnoError(code, path, doing, err);
  }
  const st = fs.fstatSync(fd);
  viaProc(fd, st);
  return { path, fd, dev: st.dev, ino: st.ino, uid: st.uid, gid: st.gid, mode: st.mode };
}

export function closeDir(d: Dir): void {
  closeIfSame(d.fd, d);
}

/**
 * A new directory that only this user can enter, under `parent` (os.tmpdir(), which others can write):
 * mkdtemp(3) makes it with mode 0700 (the umask can only take bits away) under a random name, and fails
 * rather than take anything already there (mkdir(2) never follows a symlink at the new name). It is then
 * opened without following a link and checked: a directory, ours, 0700. In a sticky directory such as
 * /tmp, no one but us (and root) can rename or remove it afterwards.
 */
export function makeTempDir(parent: string, prefix: string, doing: string): Dir {
  let path: string;
  try {
    path = fs.mkdtempSync(join(parent, prefix));
  } catch (err) {
    throw errnoError(codeOf(err), parent, doing, err);
  }
  const d = openDir(path, true, doing);
  if (d.uid !== euid() || (d.mode & 0o7777) !== 0o700) {
    closeDir(d);
    throw new ProcAliveError('EUNSAFEDIR', `${doing}: made with owner uid ${d.uid} and mode ${(d.mode & 0o7777).toString(8)}, not ours and 0700`, { path });
  }
  return d;
}

/** Removes a directory made by makeTempDir, with `names` in it, and closes it; what fails is left. */
export function removeTempDir(d: Dir, names: readonly string[]): void {
  try {
    for (const name of names) unlinkAt(d, name);
    if (!dirMoved(d)) fs.rmdirSync(fsPath(d.path));
  } catch {
    // left for the system's cleaner of os.tmpdir(): a private, empty or nearly empty directory
  } finally {
    closeDir(d);
  }
}

/** Whether `d` still has a name (it was not removed: rm -r, a cleaner). */
export function dirRemoved(d: Dir): boolean {
  try {
    return fs.fstatSync(d.fd).nlink === 0;
  } catch {
    return true;
  }
}

/** Whether `d`'s path now names another directory, or none (it was moved, or replaced). */
export function dirMoved(d: Dir): boolean {
  try {
    const now = fs.statSync(fsPath(d.path), { throwIfNoEntry: false });
    return now === undefined || now.dev !== d.dev || now.ino !== d.ino;
  } catch {
    return true;
  }
}

/**
 * Checks that `st` (of the default directory, not followed if a symlink) is a directory a holder can
 * trust: not a symlink, owned by this user or by root, not writable by group or others. Anyone who can
 * write there can put a FIFO of theirs in place of ours, and so fake liveness or hide it.
 */
function refuseUnsafe(path: string, st: fs.Stats): void {
  if (st.isSymbolicLink()) {
    const whose = st.uid === euid() ? '' : ` of uid ${st.uid}`;
    throw new ProcAliveError('EUNSAFEDIR', `default directory is a symbolic link${whose}: remove it, or set PROC_ALIVE_DIR to a directory of yours`, { path });
  }
  if (!st.isDirectory()) throw new ProcAliveError('ENOTDIR', `default directory is a ${kindOf(st.mode)}`, { path });
  const uid = euid();
  if (st.uid !== uid && st.uid !== 0) {
    throw new ProcAliveError('EUNSAFEDIR', `default directory is owned by uid ${st.uid}, not by uid ${uid} or root`, { path });
  }
  if ((st.mode & 0o022) !== 0) {
    throw new ProcAliveError(
      'EUNSAFEDIR',
      `default directory is writable by ${['', 'others', 'group', 'group and others'][((st.mode & 0o020) >> 3) | ((st.mode & 0o002) >> 1)]} (mode ${(st.mode & 0o7777).toString(8)}); chmod go-w it`,
      { path },
    );
  }
}

/** For a checker: whether the default directory exists, refusing an unsafe one (lstat: never followed). */
export function checkPrivateDir(path: string): boolean {
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(fsPath(path), { throwIfNoEntry: false });
  } catch (err) {
    throw errnoError(codeOf(err), path, 'cannot use the default directory', err);
  }
  if (st === undefined) return false;
  refuseUnsafe(path, st);
  return true;
}

/**
 * For a holder: opens the default directory, creating it 0700 if missing (mkdir(2) never follows a
 * symlink at the new name; the mode is set with fchmod on the fd, so neither the umask nor a race
 * with a planted symlink can widen or redirect it), then checks what was actually opened.
 */
export function openPrivateDir(path: string): Dir {
  let made = false;
  try {
    made = fs.mkdirSync(fsPath(path), { recursive: true, mode: 0o700 }) !== undefined;
  } catch (err) {
    if (codeOf(err) !== 'EEXIST') throw errnoError(codeOf(err), path, 'cannot create the default directory', err);
  }
  let d: Dir;
  try {
    d = openDir(path, true, 'cannot use the default directory');
  } catch (err) {
    // O_NOFOLLOW on a symlink gives ELOOP, or ENOTDIR with O_DIRECTORY (open(2)): say which it is.
    const st = fs.lstatSync(fsPath(path), { throwIfNoEntry: false });
    if (st !== undefined && (st.isSymbolicLink() || !st.isDirectory())) refuseUnsafe(path, st);
    const code = err instanceof ProcAliveError ? err.code : codeOf(err);
    if (st === undefined && (code === 'ENOTDIR' || code === 'ELOOP')) {
      // Gone again by the lstat: someone is swapping a link or file in and out of the name.
      throw new ProcAliveError(code, 'default directory changed while it was opened: something that is not a directory was there, and is gone', { path, cause: err });
    }
    throw err;
  }
  try {
    const st = fs.fstatSync(d.fd);
    if (made && st.uid === euid()) {
      fs.fchmodSync(d.fd, 0o700);
      refuseUnsafe(path, fs.fstatSync(d.fd));
    } else {
      refuseUnsafe(path, st);
    }
  } catch (err) {
    closeDir(d);
    throw err instanceof ProcAliveError ? err : errnoError(codeOf(err), path, 'cannot use the default directory', err);
  }
  return d;
}

// ---------------------------------------------------------------------------------------------------
// Entries.

/** lstat(2) of entry `name`; undefined if nothing is there. */
export function lstatAt(d: Dir, name: string, doing: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(at(d, name), { throwIfNoEntry: false });
  } catch (err) {
    throw errnoError(codeOf(err), shown(d, name), doing, err);
  }
}

/** What an entry must be before it is opened. */
export interface Expect {
  kind: 'file' | 'fifo';
  /**
   * Owners it may have (uids); any if omitted. An entry trusted by its owner must also have one link:
   * a hard link another user made to a file of root's (fs.protected_hardlinks=0) has root's owner, and
   * would make a holder read, lock or chmod a file outside the directory.
   */
  owners?: readonly number[];
  /** Take read permission for group and others off a FIFO before opening it (see openReaderAt). */
  tighten?: boolean;
}

function refuseKind(path: string, st: fs.Stats, expect: Expect): void {
  const ok = expect.kind === 'fifo' ? isFifo(st.mode) : st.isFile();
  if (!ok) {
    const code = expect.kind === 'fifo' ? 'ENOTFIFO' : 'ENOTFILE';
    throw new ProcAliveError(code, `not a ${expect.kind === 'fifo' ? 'FIFO' : 'regular file'} (${kindOf(st.mode)})`, { path });
  }
  if (expect.owners !== undefined && !expect.owners.includes(st.uid)) {
    throw new ProcAliveError('EFOREIGN', `owned by uid ${st.uid}, not by ${expect.owners.map((u) => `uid ${u}`).join(' or ')}`, { path });
  }
  if (expect.owners !== undefined && st.nlink !== 1) {
    throw new ProcAliveError('EFOREIGN', `has ${st.nlink} hard links (another name for it may be someone else's)`, { path });
  }
}

/**
 * Opens entry `name` with `flags`, only if it is what `expect` says (see the top of this file for how).
 * Returns undefined if nothing is there. Errno failures of the open itself (ENXIO for a FIFO's write
 * end without a reader, EACCES...) throw with their code.
 */
export function openAt(d: Dir, name: string, flags: number, expect: Expect, doing: string): { fd: number; st: fs.Stats } | undefined {
  const path = shown(d, name);
  const fail = (err: unknown): never => {
    throw err instanceof ProcAliveError ? err : errnoError(codeOf(err), path, doing, err);
  };
  if (procFd === true) {
    let handle: number;
    try {
      handle = fs.openSync(at(d, name), O_PATH | O_NOFOLLOW);
    } catch (err) {
      if (codeOf(err) === 'ENOENT') return undefined;
      if (codeOf(err) === 'ELOOP') fail(new ProcAliveError('ENOTFIFO', `not a ${expect.kind === 'fifo' ? 'FIFO' : 'regular file'} (symbolic link)`, { path }));
      return fail(err);
    }
    try {
      const st = fs.fstatSync(handle);
      // No link left: removed between the open and the fstat (a leaving holder unlinking the FIFO or
      // the lock file as a starter comes): as if it had been removed before, so nothing is there.
      if (st.nlink === 0) return undefined;
      refuseKind(path, st, expect);
      const inode = `/proc/self/fd/${handle}`;
      // chmod(2) on the O_PATH handle's /proc link changes the inode we checked (fchmod does not take an
      // O_PATH fd); before the open, so no reader can get in between.
      if (expect.tighten && (st.mode & 0o044) !== 0) fs.chmodSync(inode, st.mode & 0o7733);
      const fd = fs.openSync(inode, flags | O_NOCTTY);
      return { fd, st };
    } catch (err) {
      return fail(err);
    } finally {
      fs.closeSync(handle);
    }
  }
  const st = lstatAt(d, name, doing);
  if (st === undefined) return undefined;
  try {
    refuseKind(path, st, expect);
    const fd = fs.openSync(at(d, name), flags | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    const now = fs.fstatSync(fd);
    if (now.nlink === 0) {
      // Removed since the open (as above, with /proc): nothing is there.
      fs.closeSync(fd);
      return undefined;
    }
    if (now.dev !== st.dev || now.ino !== st.ino) {
      fs.closeSync(fd);
      throw new ProcAliveError('ENOTFIFO', 'replaced while being opened', { path });
    }
    // Without /proc there is no handle to chmod before opening: on the fd, so never through a name
    // someone swapped a symlink in at since the lstat.
    if (expect.tighten && (st.mode & 0o044) !== 0) fs.fchmodSync(fd, st.mode & 0o7733);
    return { fd, st };
  } catch (err) {
    if (codeOf(err) === 'ENOENT') return undefined;
    return fail(err);
  }
}

/** Creates entry `name` as a new regular file, opened for writing: never an existing file, never a symlink's target. */
export function createFileAt(d: Dir, name: string, mode: number, doing: string): number {
  try {
    const fd = fs.openSync(at(d, name), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, mode & 0o600);
    fs.fchmodSync(fd, mode); // exact, whatever the umask
    return fd;
  } catch (err) {
    throw errnoError(codeOf(err), shown(d, name), doing, err);
  }
}

/**
 * Replaces entry `name` with a new file holding `text`, atomically: written under a fresh temporary
 * name (O_EXCL, so a symlink planted for a predicted name only makes this fail), then rename(2)d over
 * `name`, which replaces the entry itself, never what a symlink there points to.
 */
export function writeFileAt(d: Dir, name: string, text: string, mode: number, doing: string): void {
  const temp = `${name}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  let fd: number;
  try {
    fd = createFileAt(d, temp, mode, doing);
  } catch (err) {
    throw aboutPath(err, shown(d, name)); // said of the file being written, not of its temporary
  }
  try {
    const data = Buffer.from(text);
    for (let off = 0; off < data.length; ) off += fs.writeSync(fd, data, off);
    fs.closeSync(fd);
    fs.renameSync(at(d, temp), at(d, name));
  } catch (err) {
    try {
      fs.closeSync(fd);
    } catch {
      // closed above already
    }
    unlinkAt(d, temp);
    throw errnoError(codeOf(err), shown(d, name), doing, err);
  }
}

/** What reading a small file found: its bytes, or why it was not read. */
export type SmallFile = { data: Buffer; uid: number } | { problem: string };

/**
 * Reads entry `name` if it is a regular file owned by one of `owners`, of at most `max` bytes; never
 * blocks (a planted FIFO is refused unopened) and never reads more than `max` + 1 bytes (a symlink to
 * /dev/zero or a sparse file of gigabytes cannot grow the process). Undefined if nothing is there.
 */
export function readSmallFileAt(d: Dir, name: string, max: number, owners: readonly number[]): SmallFile | undefined {
  let opened: { fd: number; st: fs.Stats } | undefined;
  try {
    opened = openAt(d, name, O_RDONLY | O_NONBLOCK, { kind: 'file', owners }, 'cannot read');
  } catch (err) {
    return { problem: err instanceof ProcAliveError ? err.message.replace(`${shown(d, name)}: `, '') : String(err) };
  }
  if (opened === undefined) return undefined;
  const { fd, st } = opened;
  try {
    if (st.size > max) return { problem: `larger than ${max} bytes (${st.size})` };
    const buf = Buffer.alloc(max + 1);
    let n = 0;
    for (;;) {
      const r = fs.readSync(fd, buf, n, buf.length - n, null);
      if (r === 0) break;
      n += r;
      if (n > max) return { problem: `larger than ${max} bytes` };
    }
    return { data: buf.subarray(0, n), uid: st.uid };
  } catch (err) {
    return { problem: `cannot read: ${codeOf(err)}` };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * rename(2) of entry `from` to `to`. With `noReplace`, fails with EEXIST rather than replace what is at
 * `to`: renameat2(2) RENAME_NOREPLACE, or, where that is not available, link(2) then unlink(2) (link
 * never replaces either).
 */
export function renameAt(d: Dir, from: string, to: string, noReplace: boolean, doing: string): void {
  const src = at(d, from);
  const dst = at(d, to);
  try {
    if (!noReplace) {
      fs.renameSync(src, dst);
      return;
    }
    const c = loadLibc();
    if (c !== null) {
      if (c.renameat2(AT_FDCWD, cPath(src), AT_FDCWD, cPath(dst), RENAME_NOREPLACE) === 0) return;
      const e = c.errno();
      // EINVAL: a filesystem without RENAME_NOREPLACE; ENOSYS: an old kernel. Then link + unlink.
      if (e !== errnos.EINVAL && e !== errnos.ENOSYS) throw Object.assign(new Error(errnoName(e)), { code: errnoName(e) });
    }
    fs.linkSync(src, dst);
    fs.unlinkSync(src);
  } catch (err) {
    throw errnoError(codeOf(err), shown(d, to), doing, err);
  }
}

/**
 * unlink(2) of entry `name`; with `only`, only if it is still that inode (a file someone put there
 * since is not ours to remove). True if removed. Already gone is not an error.
 */
export function unlinkAt(d: Dir, name: string, only?: { dev: number; ino: number }, doing = 'cannot remove'): boolean {
  try {
    if (only !== undefined) {
      const st = fs.lstatSync(at(d, name), { throwIfNoEntry: false });
      if (st === undefined || st.dev !== only.dev || st.ino !== only.ino) return false;
    }
    fs.unlinkSync(at(d, name));
    return true;
  } catch (err) {
    if (codeOf(err) === 'ENOENT') return false;
    throw errnoError(codeOf(err), shown(d, name), doing, err);
  }
}

// ---------------------------------------------------------------------------------------------------
// FIFOs.

/** A reader end a holder keeps: a plain fd number, and the inode it is, to never remove another's. */
export interface Reader {
  fd: number;
  dev: number;
  ino: number;
}

/** mkfifo(3) of entry `name` through the FFI, else the mkfifo(1) program. Throws EEXIST if taken. */
function mkfifoAt(d: Dir, name: string, doing: string): void {
  const c = loadLibc();
  if (c !== null) {
    if (c.mkfifo(cPath(at(d, name)), 0o600) === 0) return;
    throw errnoError(errnoName(c.errno()), shown(d, name), doing);
  }
  // The child is given our directory fd as its fd 3, so the name resolves in the directory we checked.
  // child_process is required here, not imported: ~3 ms at start-up that only this fallback needs.
  const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
  const target = procFd === true ? fsPath(`/proc/self/fd/3/${name}`) : at(d, name);
  // -m: the mode is set by mkfifo itself, never wider than asked whatever the umask (mkfifo(1)).
  // LC_ALL=C: its reason comes in words only, which we map back to an errno name below.
  const r = spawnSync('mkfifo', ['-m', '600', '--', target as string], {
    stdio: ['ignore', 'ignore', 'pipe', d.fd],
    env: { ...process.env, LC_ALL: 'C' },
  });
  if (r.error !== undefined) {
    throw new ProcAliveError('ENOMKFIFO', `${doing}: koffi did not load and no mkfifo program was found`, {
      path: shown(d, name),
      cause: r.error,
    });
  }
  if (r.status === 0) return;
  const stderr = String(r.stderr);
  const code = Object.entries(strerrors).find(([, text]) => stderr.includes(text))?.[0] ?? 'EIO';
  throw errnoError(code, shown(d, name), doing);
}

/** strerror(3) texts in the C locale, for the errors mkfifo(1) can report. */
const strerrors: Record<string, string> = {
  EEXIST: 'File exists',
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  ENOTDIR: 'Not a directory',
  ENAMETOOLONG: 'File name too long',
  ELOOP: 'Too many levels of symbolic links',
  EROFS: 'Read-only file system',
  ENOSPC: 'No space left on device',
  EPERM: 'Operation not permitted',
};

const READER_FLAGS = O_RDONLY | O_NONBLOCK;

/**
 * Makes a new FIFO at entry `name` (which must be free) and opens it as a reader: non-blocking (open(2)
 * of a FIFO for reading does not wait for a writer), close-on-exec (libuv adds it), never read. Its mode
 * is set exactly with fchmod, whatever the umask; `gid`, if given, is kept (checkers of that group).
 * Removed again if any step fails.
 */
export function makeReaderAt(d: Dir, name: string, mode: number, gid: number | undefined, doing: string): Reader {
  mkfifoAt(d, name, doing);
  try {
    const r = openAt(d, name, READER_FLAGS, { kind: 'fifo', owners: [euid()] }, doing);
    if (r === undefined) throw errnoError('ENOENT', shown(d, name), doing);
    try {
      if (gid !== undefined && gid !== r.st.gid) {
        try {
          fs.fchownSync(r.fd, -1, gid);
        } catch {
          // not a member of that group: the FIFO keeps ours, and its checkers will say EACCES
        }
      }
      fs.fchmodSync(r.fd, mode);
    } catch (err) {
      fs.closeSync(r.fd);
      throw errnoError(codeOf(err), shown(d, name), doing, err);
    }
    return { fd: r.fd, dev: r.st.dev, ino: r.st.ino };
  } catch (err) {
    try {
      unlinkAt(d, name);
    } catch {
      // the first failure is the one to report
    }
    throw err;
  }
}

/**
 * Opens the existing FIFO at entry `name` as a reader. Only one of this user's (another user's FIFO
 * could be opened for reading by them, and kept alive after we are gone); read permission for group and
 * others is taken off first, so no one else can join as a reader from now on. Undefined if absent.
 */
export function openReaderAt(d: Dir, name: string, doing: string): Reader | undefined {
  const r = openAt(d, name, READER_FLAGS, { kind: 'fifo', owners: [euid()], tighten: true }, doing);
  return r === undefined ? undefined : { fd: r.fd, dev: r.st.dev, ino: r.st.ino };
}

/**
 * What a check says of the FIFO at entry `name` (a symlink there is not followed: not a FIFO). The same
 * non-blocking open for writing as a check, on the inode that was checked.
 */
export function probeAt(d: Dir, name: string, doing: string): State {
  let r: { fd: number } | undefined;
  try {
    r = openAt(d, name, O_WRONLY | O_NONBLOCK, { kind: 'fifo' }, doing);
  } catch (err) {
    if (err instanceof ProcAliveError && err.code === 'ENXIO') return 'dead';
    throw err;
  }
  if (r === undefined) return 'absent';
  fs.closeSync(r.fd);
  return 'alive';
}

/**
 * Puts the descriptor `next` at the number `fd`, so a holder's fd number stays the same when its
 * reader is replaced (dup3(2), close-on-exec). Without the FFI the number changes: returns `next`.
 */
export function moveFd(next: number, fd: number): number {
  const c = loadLibc();
  if (c === null || c.dup3(next, fd, O_CLOEXEC_LINUX) < 0) {
    closeFd(fd);
    return next;
  }
  fs.closeSync(next);
  return fd;
}

/**
 * Closes `fd` only if it is still `inode`: an application that closed it behind our back may have
 * got the number back for a file of its own, which must not be closed. False if it was not ours.
 */
export function closeIfSame(fd: number, inode: { dev: number; ino: number }): boolean {
  try {
    const st = fs.fstatSync(fd);
    if (st.dev !== inode.dev || st.ino !== inode.ino) return false;
    fs.closeSync(fd);
    return true;
  } catch {
    return false;
  }
}

function closeFd(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed
  }
}

// ---------------------------------------------------------------------------------------------------
// Locks. A FIFO cannot carry its own lock: to lock it one must open it, and opening it for reading
// makes the target alive, which a holder that is not ready yet must not do. So the lock is a sibling
// file (`.<name>.lock`), as daemontools' and runit's `supervise/lock` are, locked with flock(2): the
// lock belongs to the open file description, dropped by the kernel however its holders end.

export interface Lock {
  fd: number;
  dev: number;
  ino: number;
  name: string;
}

const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4; // flock(2): fail with EWOULDBLOCK rather than wait
const FLOCK_BUSY = 75; // what we ask flock(1) to exit with when the lock is taken (-E)

/** flock(2) without waiting. True if taken, false if someone holds a conflicting lock. */
export function flockFd(fd: number, exclusive: boolean, path: string): boolean {
  const c = loadLibc();
  if (c !== null) {
    if (c.flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) === 0) return true;
    const e = c.errno();
    if (e === errnos.EWOULDBLOCK || e === errnos.EAGAIN) return false;
    throw errnoError(errnoName(e), path, 'cannot lock');
  }
  // No FFI: util-linux flock(1) locks the fd we hand it as its fd 3. It shares our open file description,
  // which owns the lock, so the lock outlives that short-lived child (flock(2), "NOTES").
  const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
  const r = spawnSync('flock', ['-n', exclusive ? '-x' : '-s', '-E', String(FLOCK_BUSY), '3'], {
    stdio: ['ignore', 'ignore', 'pipe', fd],
    env: { ...process.env, LC_ALL: 'C' },
  });
  if (r.error !== undefined) {
    const code = codeOf(r.error);
    if (code !== 'ENOENT') throw errnoError(code, path, 'cannot lock (koffi did not load, and flock(1) could not be run)', r.error);
    throw new ProcAliveError('ENOLOCK', 'cannot lock: koffi did not load and no flock program was found', { path, cause: r.error });
  }
  if (r.status === 0) return true;
  if (r.status === FLOCK_BUSY) return false;
  throw new ProcAliveError('ENOLOCK', `cannot lock: flock(1) said: ${String(r.stderr).trim() || `exit ${r.status}`}`, { path });
}

/**
 * Takes the lock file `name` of `d`, exclusive or shared, without waiting; null when another holder
 * has a conflicting lock. The file is made with O_EXCL, or, if it exists, opened only if it is a
 * regular file of ours (a lock file planted by another user could be held by them for ever). A
 * releasing holder removes the lock file; one who opened it just before finds, after locking, that the
 * name is another file or none, and starts again on the new one.
 */
export function lockAt(d: Dir, name: string, exclusive: boolean, doing: string): Lock | null {
  for (;;) {
    let fd: number;
    let st: fs.Stats;
    let made = false;
    try {
      fd = fs.openSync(at(d, name), O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0o600);
      made = true;
      st = fs.fstatSync(fd);
    } catch (err) {
      if (codeOf(err) !== 'EEXIST') throw errnoError(codeOf(err), shown(d, name), doing, err);
      let r: { fd: number; st: fs.Stats } | undefined;
      try {
        r = openAt(d, name, O_RDONLY | O_NONBLOCK, { kind: 'file', owners: [euid()] }, doing);
      } catch (e) {
        throw badLock(d, name, e);
      }
      if (r === undefined) continue; // removed since: make it again
      ({ fd, st } = r);
    }
    try {
      if (!flockFd(fd, exclusive, shown(d, name))) {
        fs.closeSync(fd);
        return null;
      }
      const now = lstatAt(d, name, doing);
      if (now !== undefined && now.dev === st.dev && now.ino === st.ino) return { fd, dev: st.dev, ino: st.ino, name };
    } catch (err) {
      fs.closeSync(fd);
      // A lock file this call made and could not lock (EMFILE for flock(1), ...) is not left behind.
      if (made) unlinkAt(d, name, st);
      throw err;
    }
    fs.closeSync(fd);
  }
}

/** A lock file that cannot be used: not a regular file, or another user's (who could hold it for ever). */
function badLock(d: Dir, name: string, err: unknown): unknown {
  if (!(err instanceof ProcAliveError)) return err;
  const st = fs.lstatSync(at(d, name), { throwIfNoEntry: false });
  if (err.code === 'ENOTFILE' && st !== undefined) {
    return new ProcAliveError('EBADLOCK', `lock file is a ${kindOf(st.mode)}, not a regular file`, { path: shown(d, name) });
  }
  if (err.code === 'EFOREIGN' && st !== undefined && st.uid !== euid()) {
    return new ProcAliveError('EBADLOCK', `lock file is owned by uid ${st.uid}, not by you (uid ${euid()}): another user could hold it for ever`, { path: shown(d, name) });
  }
  if (err.code === 'EFOREIGN' && st !== undefined) {
    return new ProcAliveError('EBADLOCK', `lock file has ${st.nlink} hard links: another name for it may be another program's lock`, { path: shown(d, name) });
  }
  return err;
}

/** Whether lock `lock` is still the file at its name in `d`. */
export function lockInPlace(d: Dir, lock: Lock): boolean {
  try {
    const now = fs.lstatSync(at(d, lock.name), { throwIfNoEntry: false });
    return now !== undefined && now.dev === lock.dev && now.ino === lock.ino;
  } catch {
    return false;
  }
}

/**
 * Tells systemd-tmpfiles not to age out the files of directory `d` while we hold them: it skips a
 * directory on which a BSD lock is held (tmpfiles.d(5), "Age"). A shared lock: every holder takes one.
 */
export function pinDir(d: Dir): void {
  try {
    flockFd(d.fd, false, d.path);
  } catch {
    // no FFI and no flock(1): the holder's guard still puts back what a cleaner removes
  }
}

/** `path` with every symlink resolved (realpath(3)), or as given if that fails (absent, a loop). */
export function resolveLinks(path: string): string {
  try {
    return decodeName(fs.realpathSync(fsPath(path), { encoding: 'buffer' }));
  } catch {
    return path;
  }
}

/** Sleeps `ms` milliseconds without returning to the event loop (for bounded retries in sync calls). */
export function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
