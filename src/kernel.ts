// The one module that talks to the kernel: it stats, opens, creates and removes FIFOs and the default
// directory. Everything else in proc-alive goes through it, and everything that differs between Linux,
// macOS and the BSDs is here.
//
// Two back ends answer the same questions:
// - Node's `fs`, everywhere. Its cost is the exception object Node builds for every failed call
//   (ENXIO for a dead FIFO), not the system call.
// - koffi, an FFI to libc, on Linux: the same system calls, with `errno` read as a number, so a dead or
//   absent answer costs what it costs in C. Loading koffi takes ~12 ms, more than a thousand checks save,
//   so it is loaded only once a process has shown it checks often (see `probeSync`), or to create a FIFO.
//   `PROC_ALIVE_FFI=0` turns it off; if it cannot load, the `fs` back end does all the work.

import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { ProcAliveError, aboutPath, errnoError } from './errors.js';
import { decodeName, fsPath } from './text.js';

// Loaded on demand with this, not imported: koffi (~12 ms) and child_process (~3 ms at start-up, and only
// the mkfifo(1) fallback needs it) would otherwise slow every `proc-alive check`.
const load = createRequire(import.meta.url);

export type State = 'alive' | 'dead' | 'absent';

const { O_RDONLY, O_WRONLY, O_NONBLOCK, O_NOCTTY, S_IFMT, S_IFIFO } = fs.constants;
const errnos = osConstants.errno;

// O_NOCTTY: if a terminal were swapped in between our stat and our open, it must not become our
// controlling terminal (open(2)). O_NONBLOCK: open(2) of a FIFO for writing fails with ENXIO at once when
// there is no reader, instead of waiting for one (fifo(7)). Never O_RDWR: on Linux it would make the
// checker a reader, and so make the target look alive (fifo(7)).
const CHECK_FLAGS = O_WRONLY | O_NONBLOCK | O_NOCTTY;
// The holder's end: a reader that never reads. libuv adds O_CLOEXEC to every open, so children do not
// inherit it and cannot keep a dead holder "alive".
const HOLD_FLAGS = O_RDONLY | O_NONBLOCK | O_NOCTTY;

/** What is at a path, in words, for error messages. */
function kindOf(mode: number): string {
  switch (mode & S_IFMT) {
    case fs.constants.S_IFREG: return 'regular file';
    case fs.constants.S_IFDIR: return 'directory';
    case fs.constants.S_IFSOCK: return 'socket';
    case fs.constants.S_IFCHR: return 'character device';
    case fs.constants.S_IFBLK: return 'block device';
    case fs.constants.S_IFLNK: return 'symbolic link';
    case S_IFIFO: return 'FIFO';
    default: return 'file of unknown type';
  }
}

function notFifo(path: string, mode: number): ProcAliveError {
  return new ProcAliveError('ENOTFIFO', `not a FIFO (${kindOf(mode)})`, { path });
}

/** stat(2) following links; undefined if nothing is there (ENOENT only: ENOTDIR still throws). */
function statOrNone(path: string, doing: string): fs.Stats | undefined {
  try {
    return fs.statSync(fsPath(path), { throwIfNoEntry: false });
  } catch (err) {
    throw errnoError(codeOf(err), path, doing, err);
  }
}

/** Whether directory `dir` is a daemontools or runit service directory: a `run` file or `supervise`. */
export function isServiceDir(dir: string): boolean {
  return fs.existsSync(fsPath(join(dir, 'run'))) || fs.existsSync(fsPath(join(dir, 'supervise')));
}

/**
 * The FIFO a daemontools or runit service directory is checked by: its supervisor (supervise, runsv)
 * holds `supervise/ok` open for reading while it runs, which is what svok(8) and `sv check` test. A
 * directory is taken for a service directory if it has a `run` file or a `supervise` entry; any other
 * directory cannot be told.
 */
export function serviceFifo(dir: string): string {
  if (isServiceDir(dir)) return join(dir, 'supervise', 'ok');
  throw new ProcAliveError('ENOTFIFO', 'not a FIFO (directory), nor a service directory (no run file, no supervise/)', {
    path: dir,
  });
}

/** The path named a FIFO at our stat, and something else once opened: renamed over in between. */
function replaced(path: string, during: 'checked' | 'opened'): ProcAliveError {
  return new ProcAliveError('ENOTFIFO', `not a FIFO (replaced while being ${during})`, { path });
}

function isFifo(mode: number): boolean {
  return (mode & S_IFMT) === S_IFIFO;
}

function isDir(mode: number): boolean {
  return (mode & S_IFMT) === fs.constants.S_IFDIR;
}

function codeOf(err: unknown): string {
  return (err as NodeJS.ErrnoException | null)?.code ?? 'EIO';
}

// ---------------------------------------------------------------------------------------------------
// The FFI back end (Linux only). statx(2) is used rather than stat(2) because its buffer has one layout
// on every Linux architecture (stx_mode is a __u16 at offset 28), where struct stat differs per arch.

interface Libc {
  statx(dirfd: number, path: string | Buffer, flags: number, mask: number, buf: Buffer): number;
  open(path: string | Buffer, flags: number): number;
  fcntl(fd: number, cmd: number): number;
  close(fd: number): number;
  mkfifo(path: string | Buffer, mode: number): number;
  flock(fd: number, operation: number): number;
  errno(): number;
  /** One statx buffer, reused: the calls are synchronous, on the main thread. */
  buf: Buffer;
}

const AT_FDCWD = -100;
const STATX_TYPE = 0x1;
const STATX_MODE_OFFSET = 28;
const O_CLOEXEC_LINUX = 0o2000000; // open(2): the FFI bypasses libuv, so it must ask for O_CLOEXEC itself
const F_GETPIPE_SZ = 1032; // fcntl(2), Linux >= 2.6.35: fails with EBADF on anything that is not a pipe

let libc: Libc | null | undefined;

/** The loaded FFI, for kernel-events.ts, which binds epoll and inotify from the same library. */
export interface Ffi {
  koffi: typeof import('koffi');
  lib: ReturnType<typeof import('koffi').load>;
  /** What to load the same libc and koffi by from a worker thread. */
  libName: string;
  koffiPath: string;
}
let ffi: Ffi | null = null;

/** The FFI, or null where it is off, not Linux, or cannot load. */
export function loadFfi(): Ffi | null {
  return loadLibc() === null ? null : ffi;
}

/** The FFI, loaded on first use; null where it is off, not Linux, or cannot load. */
function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  libc = null;
  if (process.platform !== 'linux' || process.env['PROC_ALIVE_FFI'] === '0') return null;
  try {
    const koffi = load('koffi') as typeof import('koffi');
    const [lib, libName] = loadFirst(koffi, ['libc.so.6', `libc.musl-${muslArch()}.so.1`, 'libc.so']);
    const candidate: Libc = {
      statx: lib.func('int statx(int dirfd, const char *path, int flags, unsigned int mask, void *buf)'),
      // open(2) and fcntl(2) are variadic: declared so, since a fixed extra argument is passed differently
      // on some ABIs. We never pass the optional argument (no O_CREAT, no F_SETxx).
      open: lib.func('int open(const char *path, int flags, ...)'),
      fcntl: lib.func('int fcntl(int fd, int cmd, ...)'),
      close: lib.func('int close(int fd)'),
      mkfifo: lib.func('int mkfifo(const char *path, uint32_t mode)'),
      flock: lib.func('int flock(int fd, int operation)'),
      errno: () => koffi.errno(),
      buf: Buffer.alloc(256),
    };
    // statx(2) needs Linux >= 4.11 and glibc >= 2.28 (musl >= 1.2.5): prove it works before relying on it.
    if (candidate.statx(AT_FDCWD, '/', 0, STATX_TYPE, candidate.buf) !== 0) return null;
    libc = candidate;
    ffi = { koffi, lib, libName, koffiPath: load.resolve('koffi') };
  } catch {
    // koffi missing, or its prebuilt binary is not there for this platform: the fs back end does the work.
  }
  return libc;
}

function loadFirst(koffi: typeof import('koffi'), names: string[]): [ReturnType<typeof koffi.load>, string] {
  let last: unknown;
  for (const name of names) {
    try {
      return [koffi.load(name), name];
    } catch (err) {
      last = err;
    }
  }
  throw last;
}

function muslArch(): string {
  return ({ x64: 'x86_64', arm64: 'aarch64', ia32: 'i386', arm: 'armhf', riscv64: 'riscv64' } as Record<string, string>)[
    process.arch
  ] ?? process.arch;
}

/** Name of an errno number (the FFI gives numbers, Node gives names). */
export function errnoName(n: number): string {
  for (const [name, value] of Object.entries(errnos)) if (value === n) return name;
  return `errno ${n}`;
}

/** A path for the FFI: the string (koffi encodes it), or its bytes with the NUL that C needs. */
function cPath(path: string): string | Buffer {
  const p = fsPath(path);
  return typeof p === 'string' ? p : Buffer.concat([p, Buffer.of(0)]);
}

/** A check through the FFI: statx, then open + fcntl + close only if a FIFO is there. */
export function probeFfi(path: string, inService = false): State {
  const c = loadLibc();
  if (c === null) return probeFs(path, inService);
  if (c.statx(AT_FDCWD, cPath(path), 0, STATX_TYPE, c.buf) !== 0) {
    const e = c.errno();
    if (e === errnos.ENOENT) return 'absent';
    throw errnoError(errnoName(e), path, 'cannot check');
  }
  const mode = c.buf.readUInt16LE(STATX_MODE_OFFSET);
  if (!isFifo(mode)) {
    if (isDir(mode) && !inService) return probeFfi(serviceFifo(path), true);
    throw notFifo(path, mode);
  }
  const fd = c.open(cPath(path), CHECK_FLAGS | O_CLOEXEC_LINUX);
  if (fd < 0) {
    const e = c.errno();
    if (e === errnos.ENXIO) return 'dead';
    if (e === errnos.ENOENT) return 'absent'; // removed since the statx: a clean exit in between
    throw errnoError(errnoName(e), path, 'cannot check');
  }
  // Something else may have been renamed over the FIFO since the statx; F_GETPIPE_SZ tells a FIFO from
  // anything else on the fd we hold, in one call that copies no struct.
  const pipe = c.fcntl(fd, F_GETPIPE_SZ);
  c.close(fd);
  if (pipe < 0) throw replaced(path, 'checked');
  return 'alive';
}

// What a watcher asks at each look, through the FFI where it is loaded (watching loads it): no JS object
// per call. Node's Stats carries four Date objects (~850 bytes each time), and a dead FIFO's ENXIO is an
// exception with a stack: at 10,000 targets, tens of megabytes of garbage for one look at all of them.

const AT_SYMLINK_NOFOLLOW = 0x100;
const AT_EMPTY_PATH = 0x1000;
const STATX_INO = 0x100;
const STATX_INO_OFFSET = 32; // __u64 stx_ino
const STATX_DEV_OFFSET = 136; // __u32 stx_dev_major, stx_dev_minor

/** What is at a path itself (not following a last symbolic link): its kind, and which inode it is. */
export interface Entry {
  kind: 'absent' | 'link' | 'dir' | 'fifo' | 'other';
  dev: number;
  ino: number;
}

/** st_dev as Node's Stats gives it (glibc's makedev), from statx's major and minor. */
function makedev(major: number, minor: number): number {
  return (minor & 0xff) + (major & 0xfff) * 0x100 + Math.floor(minor / 0x100) * 0x100000 + Math.floor(major / 0x1000) * 2 ** 44;
}

function kindOfMode(mode: number): Entry['kind'] {
  const type = mode & S_IFMT;
  return type === fs.constants.S_IFLNK ? 'link' : type === fs.constants.S_IFDIR ? 'dir' : type === S_IFIFO ? 'fifo' : 'other';
}

/** lstat(2) of `path`: absent if nothing is there; other failures throw, as a check's would. */
export function probeEntry(path: string): Entry {
  const c = loadLibc();
  if (c === null) {
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(fsPath(path), { throwIfNoEntry: false });
    } catch (err) {
      throw errnoError(codeOf(err), path, 'cannot check', err);
    }
    return st === undefined ? { kind: 'absent', dev: 0, ino: 0 } : { kind: kindOfMode(st.mode), dev: st.dev, ino: st.ino };
  }
  if (c.statx(AT_FDCWD, cPath(path), AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_INO, c.buf) !== 0) {
    const e = c.errno();
    if (e === errnos.ENOENT) return { kind: 'absent', dev: 0, ino: 0 };
    throw errnoError(errnoName(e), path, 'cannot check');
  }
  return { kind: kindOfMode(c.buf.readUInt16LE(STATX_MODE_OFFSET)), ...statxId(c.buf) };
}

function statxId(buf: Buffer): { dev: number; ino: number } {
  return { dev: makedev(buf.readUInt32LE(STATX_DEV_OFFSET), buf.readUInt32LE(STATX_DEV_OFFSET + 4)), ino: Number(buf.readBigUInt64LE(STATX_INO_OFFSET)) };
}

/**
 * {@link openWriter} through the FFI where it is loaded (the same calls: statx, then open of a FIFO only,
 * then F_GETPIPE_SZ on the fd to be sure it is one, and its identity from the fd), else openWriter.
 */
export function probeWriter(path: string): Writer {
  const c = loadLibc();
  if (c === null) return openWriter(path);
  if (c.statx(AT_FDCWD, cPath(path), 0, STATX_TYPE, c.buf) !== 0) {
    const e = c.errno();
    if (e === errnos.ENOENT) return { state: 'absent' };
    throw errnoError(errnoName(e), path, 'cannot check');
  }
  const mode = c.buf.readUInt16LE(STATX_MODE_OFFSET);
  if (!isFifo(mode)) throw notFifo(path, mode);
  const fd = c.open(cPath(path), CHECK_FLAGS | O_CLOEXEC_LINUX);
  if (fd < 0) {
    const e = c.errno();
    if (e === errnos.ENXIO) return { state: 'dead' };
    if (e === errnos.ENOENT) return { state: 'absent' }; // removed since the statx: a clean exit in between
    throw errnoError(errnoName(e), path, 'cannot check');
  }
  if (c.fcntl(fd, F_GETPIPE_SZ) < 0 || c.statx(fd, '', AT_EMPTY_PATH, STATX_INO, c.buf) !== 0) {
    c.close(fd);
    throw replaced(path, 'checked');
  }
  return { state: 'alive', fd, ...statxId(c.buf) };
}

// ---------------------------------------------------------------------------------------------------
// The fs back end (every platform).

/**
 * A check through Node's fs. Why stat first, when open(2) alone answers for a FIFO: open(2) for writing
 * has effects on what is not a FIFO. A regular file opens fine (a checker that trusts it says "alive"
 * forever, and watchers see IN_CLOSE_WRITE); a device runs its driver's open (/dev/watchdog arms); a
 * socket fails with ENXIO like a dead FIFO. So nothing but a FIFO is ever opened.
 */
export function probeFs(path: string, inService = false): State {
  const w = openWriter(path, !inService);
  if (w.state === 'alive') fs.closeSync(w.fd);
  return w.state;
}

// A check through the fs back end costs ~10 µs more than through the FFI when the answer is "dead", and
// loading the FFI costs ~12 ms: it pays for itself after about a thousand checks. A CLI checks once.
const FFI_AFTER = 1000;
let checks = 0;

/** Checks `path` once, synchronously; picks the back end as described above. */
export function probeSync(path: string): State {
  return ++checks > FFI_AFTER ? probeFfi(path) : probeFs(path);
}

/**
 * The same check on libuv's thread pool: a stat on a hung network filesystem does not stall the event
 * loop. Callback APIs rather than fs.promises, whose FileHandle would be closed behind our back on GC.
 */
export async function probe(path: string, inService = false): Promise<State> {
  let st: fs.Stats;
  try {
    st = await new Promise<fs.Stats>((resolve, reject) => fs.stat(fsPath(path), (e, s) => (e ? reject(e) : resolve(s))));
  } catch (err) {
    if (codeOf(err) === 'ENOENT') return 'absent';
    throw errnoError(codeOf(err), path, 'cannot check', err);
  }
  if (!isFifo(st.mode)) {
    if (isDir(st.mode) && !inService) return probe(serviceFifo(path), true);
    throw notFifo(path, st.mode);
  }
  let fd: number;
  try {
    fd = await new Promise<number>((resolve, reject) =>
      fs.open(fsPath(path), CHECK_FLAGS, (e, n) => (e ? reject(e) : resolve(n))),
    );
  } catch (err) {
    const code = codeOf(err);
    if (code === 'ENXIO') return 'dead';
    if (code === 'ENOENT') return 'absent';
    throw errnoError(code, path, 'cannot check', err);
  }
  let mode: number;
  try {
    mode = await new Promise<number>((resolve, reject) => fs.fstat(fd, (e, s) => (e ? reject(e) : resolve(s.mode))));
  } finally {
    await new Promise<void>((resolve) => fs.close(fd, () => resolve()));
  }
  if (!isFifo(mode)) throw replaced(path, 'checked');
  return 'alive';
}

/** What a check learns by opening a FIFO's write end: the state, and the fd if alive. */
export type Writer = { state: 'alive'; fd: number; dev: number; ino: number } | { state: 'dead' | 'absent' };

/**
 * The fs back end's check, keeping the fd when the answer is "alive" (see probeFs for why it stats
 * first). A watcher holds that write end: the kernel flags it with EPOLLERR when the last reader goes
 * (pipe(7), poll(2)); it is never written to, so a check by anyone else sees exactly what it would see
 * without the watcher. With `services`, a service directory at the path is checked through its
 * `supervise/ok`; a watcher, which follows that FIFO itself, passes false. Throws as a check does.
 */
export function openWriter(path: string, services = false): Writer {
  const st = statOrNone(path, 'cannot check');
  if (st === undefined) return { state: 'absent' };
  if (!isFifo(st.mode)) {
    if (services && isDir(st.mode)) return openWriter(serviceFifo(path));
    throw notFifo(path, st.mode);
  }
  let fd: number;
  try {
    fd = fs.openSync(fsPath(path), CHECK_FLAGS);
  } catch (err) {
    const code = codeOf(err);
    if (code === 'ENXIO') return { state: 'dead' };
    if (code === 'ENOENT') return { state: 'absent' }; // removed since the stat: a clean exit in between
    throw errnoError(code, path, 'cannot check', err);
  }
  let opened: fs.Stats;
  try {
    // Something else may have been renamed over the FIFO since the stat.
    opened = fs.fstatSync(fd);
    if (!isFifo(opened.mode)) throw replaced(path, 'checked');
  } catch (err) {
    fs.closeSync(fd);
    throw err instanceof ProcAliveError ? err : errnoError(codeOf(err), path, 'cannot check', err);
  }
  // Which FIFO it is: a watcher keeps its write end for as long as the path names that FIFO.
  return { state: 'alive', fd, dev: opened.dev, ino: opened.ino };
}

/** Closes a watcher's write end (it never wrote to it). */
export function closeWriter(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // EBADF only: nothing to release
  }
}

/** Whether `path` is a directory (following symlinks); false if it cannot be told. */
export function isDirectory(path: string): boolean {
  try {
    return fs.statSync(fsPath(path)).isDirectory();
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------
// Holding.

/** The reader end a holder keeps: a plain fd number, and the inode it is, to never remove another's. */
export interface Reader {
  fd: number;
  dev: number;
  ino: number;
}

/**
 * Creates the FIFO at `path` unless one is there, and opens it as a reader. Refuses, without opening or
 * changing it, anything at `path` that is not a FIFO. `mode` is set exactly (fchmod, so the umask does not
 * apply) when this call created the FIFO; an existing FIFO keeps its mode, which its creator chose.
 */
export function openReader(path: string, mode: number): Reader {
  const created = makeFifo(path, mode & 0o600);
  let fd: number;
  try {
    // Stat before open, for the reason given at probeFs: open(2) of a device runs its driver.
    const st = fs.statSync(path);
    if (!isFifo(st.mode)) throw notFifo(path, st.mode);
    fd = fs.openSync(path, HOLD_FLAGS);
  } catch (err) {
    if (err instanceof ProcAliveError) throw err;
    throw errnoError(codeOf(err), path, 'cannot open the FIFO', err);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!isFifo(st.mode)) throw replaced(path, 'opened');
    if (created) fs.fchmodSync(fd, mode);
    return { fd, dev: st.dev, ino: st.ino };
  } catch (err) {
    fs.closeSync(fd);
    if (err instanceof ProcAliveError) throw err;
    throw errnoError(codeOf(err), path, 'cannot set the FIFO up', err);
  }
}

/** The private name a holder makes a new FIFO under, before renaming it into place. */
export function freshPathOf(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.new`);
}

/**
 * Like {@link openReader}, but a FIFO that has to be created is made under a private name, opened, and
 * only then renamed into place: the target goes from absent to alive, never through a "dead" instant
 * that a watcher would report. An existing FIFO (one a crash left) is opened in place. Only for a holder
 * with the exclusive lock: two shared holders renaming at once would each orphan the other's FIFO.
 */
export function openFreshReader(path: string, mode: number): Reader {
  if (fs.lstatSync(path, { throwIfNoEntry: false }) !== undefined) return openReader(path, mode);
  const fresh = freshPathOf(path);
  let reader: Reader;
  try {
    unlinkQuiet(fresh, 'cannot remove a leftover FIFO');
    reader = openReader(fresh, mode);
  } catch (err) {
    throw aboutPath(err, path);
  }
  try {
    renameOver(fresh, path);
  } catch (err) {
    fs.closeSync(reader.fd);
    unlinkQuiet(fresh, 'cannot remove the FIFO');
    throw err;
  }
  return reader;
}

/** mkfifo(3) through the FFI, else the mkfifo(1) program. True if created, false if something is there. */
function makeFifo(path: string, mode: number): boolean {
  const c = loadLibc();
  if (c !== null) {
    if (c.mkfifo(path, mode) === 0) return true;
    const e = c.errno();
    if (e === errnos.EEXIST) return false;
    throw errnoError(errnoName(e), path, 'cannot create the FIFO');
  }
  // No FFI: look first, so that the usual case (a FIFO already there) spawns nothing.
  try {
    fs.lstatSync(path);
    return false;
  } catch (err) {
    if (codeOf(err) !== 'ENOENT') throw errnoError(codeOf(err), path, 'cannot create the FIFO', err);
  }
  const { execFileSync } = load('node:child_process') as typeof import('node:child_process');
  try {
    // -m: the mode is set by mkfifo itself, never wider than asked whatever the umask (mkfifo(1)).
    // LC_ALL=C: its reason comes in words only, which we map back to an errno name below.
    execFileSync('mkfifo', ['-m', mode.toString(8), '--', path], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
    });
    return true;
  } catch (err) {
    if (codeOf(err) === 'ENOENT' && (err as { path?: string }).path === 'mkfifo') {
      throw new ProcAliveError('ENOMKFIFO', 'cannot create the FIFO: koffi did not load and no mkfifo program was found', {
        path,
        cause: err,
      });
    }
    if (fs.existsSync(path)) return false; // another process created it first
    const stderr = String((err as { stderr?: unknown }).stderr ?? '');
    const code = Object.entries(strerrors).find(([, text]) => stderr.includes(text))?.[0] ?? 'EIO';
    throw errnoError(code, path, 'cannot create the FIFO', err);
  }
}

/** strerror(3) texts in the C locale, for the errors mkfifo(1) can report. */
const strerrors: Record<string, string> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  ENOTDIR: 'Not a directory',
  ENAMETOOLONG: 'File name too long',
  ELOOP: 'Too many levels of symbolic links',
  EROFS: 'Read-only file system',
  ENOSPC: 'No space left on device',
  EPERM: 'Operation not permitted',
};

/**
 * Refuses, before anything is created next to it, a path where something that is not a FIFO is (so that
 * `run /dev/null` does not leave a lock file in /dev). A missing path is fine: the holder creates it.
 */
export function refuseNonFifo(path: string): void {
  const st = statOrNone(path, 'cannot hold');
  if (st !== undefined && !isFifo(st.mode)) throw notFifo(path, st.mode);
}

/** Closes a holder's reader fd. */
export function closeReader(path: string, reader: Reader): void {
  try {
    fs.closeSync(reader.fd);
  } catch (err) {
    // EBADF: the fd was closed behind the holder's back; its number may now be someone else's.
    throw errnoError(codeOf(err), path, 'cannot close the FIFO', err);
  }
}

/**
 * Removes the FIFO at `path` if it is still the inode `reader` held (a FIFO recreated by someone else is
 * not ours to remove) and no reader holds it any more (the same non-blocking open a checker does).
 * Called by the last holder, under the exclusive lock, so no proc-alive holder is about to open it.
 */
export function removeIfDead(path: string, reader: Reader): void {
  const st = fs.lstatSync(path, { throwIfNoEntry: false });
  if (st === undefined || st.dev !== reader.dev || st.ino !== reader.ino) return;
  let state: State;
  try {
    state = probeFs(path, true);
  } catch {
    return; // replaced by something that is not a FIFO since the lstat: not ours any more
  }
  if (state === 'dead') unlinkQuiet(path, 'cannot remove the FIFO');
}

/** unlink(2), where "already gone" is success. */
export function unlinkQuiet(path: string, doing: string): void {
  try {
    fs.unlinkSync(path);
  } catch (err) {
    if (codeOf(err) !== 'ENOENT') throw errnoError(codeOf(err), path, doing, err);
  }
}

/** rename(2): atomic on one filesystem; the new name replaces what was there. */
export function renameOver(from: string, to: string): void {
  try {
    fs.renameSync(from, to);
  } catch (err) {
    throw errnoError(codeOf(err), to, 'cannot put the FIFO in place', err);
  }
}

// ---------------------------------------------------------------------------------------------------
// Exclusive start. A FIFO cannot carry its own lock for every use: to lock it one must open it, and
// opening it for reading makes the target alive, which a holder that is not ready yet must not do. So
// the lock is a sibling file (`.<name>.lock`), as daemontools' and runit's `supervise/lock` are. It is
// locked with flock(2): the lock belongs to the open file description, so it is dropped by the kernel
// however its holders end, SIGKILL included, and it is shared with children that inherit the fd.

/** The lock file of the FIFO at `path`. */
export function lockPathOf(path: string): string {
  return join(dirname(path), `.${basename(path)}.lock`);
}

export interface Lock {
  fd: number;
  dev: number;
  ino: number;
  path: string;
}

const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4; // flock(2): fail with EWOULDBLOCK rather than wait
const FLOCK_BUSY = 75; // what we ask flock(1) to exit with when the lock is taken (-E)

/** flock(2) without waiting. True if taken, false if someone holds a conflicting lock. */
function flock(fd: number, exclusive: boolean, path: string): boolean {
  const c = loadLibc();
  if (c !== null) {
    if (c.flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) === 0) return true;
    const e = c.errno();
    if (e === errnos.EWOULDBLOCK || e === errnos.EAGAIN) return false;
    throw errnoError(errnoName(e), path, 'cannot lock');
  }
  // No FFI: util-linux flock(1) locks the fd we hand it as its fd 3. It shares our open file description,
  // which owns the lock, so the lock outlives that short-lived child (flock(2), "NOTES").
  const { spawnSync } = load('node:child_process') as typeof import('node:child_process');
  const r = spawnSync('flock', ['-n', exclusive ? '-x' : '-s', '-E', String(FLOCK_BUSY), '3'], {
    stdio: ['ignore', 'ignore', 'pipe', fd],
    env: { ...process.env, LC_ALL: 'C' },
  });
  if (r.error !== undefined) {
    throw new ProcAliveError('ENOLOCK', 'cannot lock: koffi did not load and no flock program was found', {
      path,
      cause: r.error,
    });
  }
  if (r.status === 0) return true;
  if (r.status === FLOCK_BUSY) return false;
  throw new ProcAliveError('ENOLOCK', `cannot lock: flock(1) said: ${String(r.stderr).trim() || `exit ${r.status}`}`, {
    path,
  });
}

/**
 * Takes the lock of the FIFO at `path`, exclusive or shared, without waiting. Returns null when another
 * holder has a conflicting lock. A releasing holder removes the lock file; one who opened that file just
 * before finds, after locking, that the path names another file or none, and starts again on the new one.
 */
export function acquireLock(path: string, exclusive: boolean): Lock | null {
  const lockPath = lockPathOf(path);
  for (;;) {
    let fd: number;
    let st: fs.Stats;
    try {
      // O_CREAT on a FIFO would open it, and a reader we did not mean to be: refuse anything else first.
      const before = fs.lstatSync(lockPath, { throwIfNoEntry: false });
      if (before !== undefined && !before.isFile()) throw notLockFile(lockPath, before.mode);
      fd = fs.openSync(lockPath, LOCK_FLAGS, 0o600);
      st = fs.fstatSync(fd);
    } catch (err) {
      if (err instanceof ProcAliveError) throw err;
      throw errnoError(codeOf(err), path, `cannot create its lock file ${basename(lockPath)}`, err);
    }
    try {
      if (!st.isFile()) throw notLockFile(lockPath, st.mode);
      if (!flock(fd, exclusive, path)) {
        fs.closeSync(fd);
        return null;
      }
      const now = fs.lstatSync(lockPath, { throwIfNoEntry: false });
      if (now !== undefined && now.dev === st.dev && now.ino === st.ino) return { fd, dev: st.dev, ino: st.ino, path: lockPath };
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    fs.closeSync(fd);
  }
}

const LOCK_FLAGS = O_RDONLY | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW | O_NONBLOCK | O_NOCTTY;

function notLockFile(path: string, mode: number): ProcAliveError {
  return new ProcAliveError('EBADLOCK', `lock file is a ${kindOf(mode)}, not a regular file`, { path });
}

/**
 * Lets go of a lock. The last holder tidies up: `tidy` runs (remove the FIFO if dead, the record), then
 * the lock file is removed. A holder is the last if it can lock exclusively; in exclusive mode it already
 * does. (flock(2) may drop a shared lock before granting the exclusive one; a contender that gets in
 * between is then the last, and tidies up itself.)
 */
export function releaseLock(lock: Lock, exclusive: boolean, tidy: () => void): void {
  try {
    if (exclusive || flock(lock.fd, true, lock.path)) {
      const now = fs.lstatSync(lock.path, { throwIfNoEntry: false });
      if (now !== undefined && now.dev === lock.dev && now.ino === lock.ino) {
        tidy();
        unlinkQuiet(lock.path, 'cannot remove the lock file');
      }
    }
  } finally {
    fs.closeSync(lock.fd);
  }
}

// ---------------------------------------------------------------------------------------------------
// Listing a directory of targets.

/** The targets in `dir`: FIFOs and service directories, not hidden (our lock and record files are). */
export function listTargets(dir: string): string[] {
  let entries: fs.Dirent<Buffer>[];
  try {
    // Names as bytes: one that is not UTF-8 must still name its file (see text.ts).
    entries = fs.readdirSync(fsPath(dir), { withFileTypes: true, encoding: 'buffer' });
  } catch (err) {
    if (codeOf(err) === 'ENOENT') return [];
    throw errnoError(codeOf(err), dir, 'cannot list', err);
  }
  const out: string[] = [];
  for (const e of entries) {
    const name = decodeName(e.name);
    if (name.startsWith('.')) continue;
    const path = join(dir, name);
    if (e.isFIFO()) out.push(path);
    else if (e.isDirectory() && isServiceDir(path)) out.push(path);
  }
  return out.sort();
}

// ---------------------------------------------------------------------------------------------------
// The default directory.

/**
 * Makes sure `dir` is a directory a holder can trust: owned by this user or by root, and not writable by
 * group or others (anyone who can write there can put a FIFO of theirs in place of ours, and so fake
 * liveness or hide it). With `create`, a missing directory is created 0700 (chmod after mkdir, so the
 * umask does not matter). Returns false if it does not exist and `create` is false.
 */
export function ensurePrivateDir(dir: string, create: boolean): boolean {
  let st = statOrNone(dir, 'cannot use the default directory');
  if (st === undefined) {
    if (!create) return false;
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      fs.chmodSync(dir, 0o700);
      st = fs.statSync(dir);
    } catch (err) {
      throw errnoError(codeOf(err), dir, 'cannot create the default directory', err);
    }
  }
  if (!st.isDirectory()) throw new ProcAliveError('ENOTDIR', `default directory is a ${kindOf(st.mode)}`, { path: dir });
  const uid = process.getuid?.() ?? 0;
  if (st.uid !== uid && st.uid !== 0) {
    throw new ProcAliveError('EUNSAFEDIR', `default directory is owned by uid ${st.uid}, not by uid ${uid} or root`, {
      path: dir,
    });
  }
  if ((st.mode & 0o022) !== 0) {
    throw new ProcAliveError(
      'EUNSAFEDIR',
      `default directory is writable by ${st.mode & 0o020 ? 'group' : 'others'} (mode ${(st.mode & 0o7777).toString(8)}); chmod go-w it`,
      { path: dir },
    );
  }
  return true;
}

/** Whether the FFI back end works here (loading it if needed). For the tests and the benchmark. */
export function ffiLoaded(): boolean {
  return loadLibc() !== null;
}
