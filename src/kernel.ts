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
import { ProcAliveError, errnoError } from './errors.js';

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

/** The path named a FIFO at our stat, and something else once opened: renamed over in between. */
function replaced(path: string, during: 'checked' | 'opened'): ProcAliveError {
  return new ProcAliveError('ENOTFIFO', `not a FIFO (replaced while being ${during})`, { path });
}

function isFifo(mode: number): boolean {
  return (mode & S_IFMT) === S_IFIFO;
}

function codeOf(err: unknown): string {
  return (err as NodeJS.ErrnoException | null)?.code ?? 'EIO';
}

// ---------------------------------------------------------------------------------------------------
// The FFI back end (Linux only). statx(2) is used rather than stat(2) because its buffer has one layout
// on every Linux architecture (stx_mode is a __u16 at offset 28), where struct stat differs per arch.

interface Libc {
  statx(dirfd: number, path: string, flags: number, mask: number, buf: Buffer): number;
  open(path: string, flags: number): number;
  fcntl(fd: number, cmd: number): number;
  close(fd: number): number;
  mkfifo(path: string, mode: number): number;
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

/** The FFI, loaded on first use; null where it is off, not Linux, or cannot load. */
function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  libc = null;
  if (process.platform !== 'linux' || process.env['PROC_ALIVE_FFI'] === '0') return null;
  try {
    const koffi = load('koffi') as typeof import('koffi');
    const lib = loadFirst(koffi, ['libc.so.6', `libc.musl-${muslArch()}.so.1`, 'libc.so']);
    const candidate: Libc = {
      statx: lib.func('int statx(int dirfd, const char *path, int flags, unsigned int mask, void *buf)'),
      // open(2) and fcntl(2) are variadic: declared so, since a fixed extra argument is passed differently
      // on some ABIs. We never pass the optional argument (no O_CREAT, no F_SETxx).
      open: lib.func('int open(const char *path, int flags, ...)'),
      fcntl: lib.func('int fcntl(int fd, int cmd, ...)'),
      close: lib.func('int close(int fd)'),
      mkfifo: lib.func('int mkfifo(const char *path, uint32_t mode)'),
      errno: () => koffi.errno(),
      buf: Buffer.alloc(256),
    };
    // statx(2) needs Linux >= 4.11 and glibc >= 2.28 (musl >= 1.2.5): prove it works before relying on it.
    if (candidate.statx(AT_FDCWD, '/', 0, STATX_TYPE, candidate.buf) !== 0) return null;
    libc = candidate;
  } catch {
    // koffi missing, or its prebuilt binary is not there for this platform: the fs back end does the work.
  }
  return libc;
}

function loadFirst(koffi: typeof import('koffi'), names: string[]): ReturnType<typeof koffi.load> {
  let last: unknown;
  for (const name of names) {
    try {
      return koffi.load(name);
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
function errnoName(n: number): string {
  for (const [name, value] of Object.entries(errnos)) if (value === n) return name;
  return `errno ${n}`;
}

/** A check through the FFI: statx, then open + fcntl + close only if a FIFO is there. */
export function probeFfi(path: string): State {
  const c = loadLibc();
  if (c === null) return probeFs(path);
  if (c.statx(AT_FDCWD, path, 0, STATX_TYPE, c.buf) !== 0) {
    const e = c.errno();
    if (e === errnos.ENOENT) return 'absent';
    throw errnoError(errnoName(e), path, 'cannot check');
  }
  const mode = c.buf.readUInt16LE(STATX_MODE_OFFSET);
  if (!isFifo(mode)) throw notFifo(path, mode);
  const fd = c.open(path, CHECK_FLAGS | O_CLOEXEC_LINUX);
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

// ---------------------------------------------------------------------------------------------------
// The fs back end (every platform).

/**
 * A check through Node's fs. Why stat first, when open(2) alone answers for a FIFO: open(2) for writing
 * has effects on what is not a FIFO. A regular file opens fine (a checker that trusts it says "alive"
 * forever, and watchers see IN_CLOSE_WRITE); a device runs its driver's open (/dev/watchdog arms); a
 * socket fails with ENXIO like a dead FIFO. So nothing but a FIFO is ever opened.
 */
export function probeFs(path: string): State {
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(path, { throwIfNoEntry: false }); // undefined for ENOENT only: ENOTDIR still throws
  } catch (err) {
    throw errnoError(codeOf(err), path, 'cannot check', err);
  }
  if (st === undefined) return 'absent';
  if (!isFifo(st.mode)) throw notFifo(path, st.mode);
  let fd: number;
  try {
    fd = fs.openSync(path, CHECK_FLAGS);
  } catch (err) {
    const code = codeOf(err);
    if (code === 'ENXIO') return 'dead';
    if (code === 'ENOENT') return 'absent';
    throw errnoError(code, path, 'cannot check', err);
  }
  try {
    const mode = fs.fstatSync(fd).mode;
    if (!isFifo(mode)) throw replaced(path, 'checked');
  } finally {
    fs.closeSync(fd);
  }
  return 'alive';
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
export async function probe(path: string): Promise<State> {
  let st: fs.Stats;
  try {
    st = await new Promise<fs.Stats>((resolve, reject) => fs.stat(path, (e, s) => (e ? reject(e) : resolve(s))));
  } catch (err) {
    if (codeOf(err) === 'ENOENT') return 'absent';
    throw errnoError(codeOf(err), path, 'cannot check', err);
  }
  if (!isFifo(st.mode)) throw notFifo(path, st.mode);
  let fd: number;
  try {
    fd = await new Promise<number>((resolve, reject) =>
      fs.open(path, CHECK_FLAGS, (e, n) => (e ? reject(e) : resolve(n))),
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
 * Closes a holder's reader, then removes the FIFO if `remove`, if the path still names the inode we held
 * (a FIFO recreated by someone else is not ours to remove), and if no other reader holds it (checked by
 * the same non-blocking open a checker does, once our own reader is closed).
 */
export function closeReader(path: string, reader: Reader, remove: boolean): void {
  let ours = false;
  if (remove) {
    const st = fs.lstatSync(path, { throwIfNoEntry: false });
    ours = st !== undefined && st.dev === reader.dev && st.ino === reader.ino;
  }
  try {
    fs.closeSync(reader.fd);
  } catch (err) {
    // EBADF: the fd was closed behind the holder's back, and the FIFO may already be held by a new reader
    // that got the same number; removing it now could remove someone else's. Report, remove nothing.
    throw errnoError(codeOf(err), path, 'cannot close the FIFO', err);
  }
  if (!ours) return;
  let others: State;
  try {
    others = probeFs(path);
  } catch {
    return; // replaced by something that is not a FIFO since the lstat: not ours any more
  }
  if (others !== 'dead') return;
  try {
    fs.unlinkSync(path);
  } catch (err) {
    if (codeOf(err) !== 'ENOENT') throw errnoError(codeOf(err), path, 'cannot remove the FIFO', err);
  }
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
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(dir, { throwIfNoEntry: false });
  } catch (err) {
    throw errnoError(codeOf(err), dir, 'cannot use the default directory', err);
  }
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
