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
import { constants as osConstants } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { ProcAliveError, aboutPath, errnoError } from './errors.js';
import { decodeName, fsPath } from './text.js';

// koffi is loaded on demand with require(), not imported: it costs ~12 ms, which would otherwise slow every
// `proc-alive check` (the library is CommonJS, so require is the module's own).

export type State = 'alive' | 'dead' | 'absent';

/**
 * koffi's API, as a type. koffi's types sit in a `"type": "module"` package, so a CommonJS file must say
 * how they are resolved, or TypeScript users on `module: node16` get TS1542 from our declarations.
 */
export type Koffi = typeof import('koffi', { with: { 'resolution-mode': 'import' } });

const { O_RDONLY, O_WRONLY, O_NONBLOCK, O_NOCTTY, S_IFMT, S_IFIFO } = fs.constants;
const errnos = osConstants.errno;

// O_NOCTTY: if a terminal were swapped in between our stat and our open, it must not become our
// controlling terminal (open(2)). O_NONBLOCK: open(2) of a FIFO for writing fails with ENXIO at once when
// there is no reader, instead of waiting for one (fifo(7)). Never O_RDWR: on Linux it would make the
// checker a reader, and so make the target look alive (fifo(7)).
const CHECK_FLAGS = O_WRONLY | O_NONBLOCK | O_NOCTTY;

/** What is at a path, in words, for error messages. */
export function kindOf(mode: number): string {
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

export function isFifo(mode: number): boolean {
  return (mode & S_IFMT) === S_IFIFO;
}

function isDir(mode: number): boolean {
  return (mode & S_IFMT) === fs.constants.S_IFDIR;
}

export function codeOf(err: unknown): string {
  return (err as NodeJS.ErrnoException | null)?.code ?? 'EIO';
}

// ---------------------------------------------------------------------------------------------------
// The FFI back end (Linux only). statx(2) is used rather than stat(2) because its buffer has one layout
// on every Linux architecture (stx_mode is a __u16 at offset 28), where struct stat differs per arch.

export interface Libc {
  statx(dirfd: number, path: string | Buffer, flags: number, mask: number, buf: Buffer): number;
  open(path: string | Buffer, flags: number): number;
  fcntl(fd: number, cmd: number): number;
  close(fd: number): number;
  mkfifo(path: string | Buffer, mode: number): number;
  flock(fd: number, operation: number): number;
  renameat2(olddirfd: number, oldpath: string | Buffer, newdirfd: number, newpath: string | Buffer, flags: number): number;
  dup3(oldfd: number, newfd: number, flags: number): number;
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
  koffi: Koffi;
  lib: ReturnType<Koffi['load']>;
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
export function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  libc = null;
  if (process.platform !== 'linux' || process.env['PROC_ALIVE_FFI'] === '0') return null;
  try {
    const koffi = require('koffi') as Koffi;
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
      // renameat2(2), Linux >= 3.15, glibc >= 2.28: RENAME_NOREPLACE places a FIFO without replacing one.
      renameat2: lib.func('int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags)'),
      dup3: lib.func('int dup3(int oldfd, int newfd, int flags)'),
      errno: () => koffi.errno(),
      buf: Buffer.alloc(256),
    };
    // statx(2) needs Linux >= 4.11 and glibc >= 2.28 (musl >= 1.2.5): prove it works before relying on it.
    if (candidate.statx(AT_FDCWD, '/', 0, STATX_TYPE, candidate.buf) !== 0) return null;
    libc = candidate;
    ffi = { koffi, lib, libName, koffiPath: require.resolve('koffi') };
  } catch {
    // koffi missing, or its prebuilt binary is not there for this platform: the fs back end does the work.
  }
  return libc;
}

function loadFirst(koffi: Koffi, names: string[]): [ReturnType<typeof koffi.load>, string] {
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
export function cPath(path: string | Buffer): string | Buffer {
  if (typeof path !== 'string') return Buffer.concat([path, Buffer.of(0)]);
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
// Processes (for holder records, which are information only).

/**
 * `args` (the end of process.argv) as the kernel has them: Node decodes arguments as UTF-8 and puts
 * U+FFFD for what is not, so a path given in bytes that are not UTF-8 would name another file. From
 * /proc/self/cmdline, decoded so that such bytes round-trip (text.ts); `args` itself where that is not
 * available or does not line up.
 */
export function rawArguments(args: string[]): string[] {
  let data: Buffer;
  try {
    data = fs.readFileSync('/proc/self/cmdline');
  } catch {
    return args;
  }
  const all: Buffer[] = [];
  for (let start = 0; start < data.length; ) {
    const end = data.indexOf(0, start);
    all.push(data.subarray(start, end < 0 ? data.length : end));
    start = end < 0 ? data.length : end + 1;
  }
  const raw = all.slice(all.length - args.length);
  if (raw.length !== args.length || raw.some((b, i) => b.toString('utf8') !== args[i])) return args;
  return raw.map((b) => decodeName(b));
}

let pidns: string | undefined | null;

/** The PID namespace this process is in (Linux: `pid:[4026531836]`), when known. */
export function pidNamespace(): string | undefined {
  if (pidns === undefined) {
    try {
      pidns = fs.readlinkSync('/proc/self/ns/pid');
    } catch {
      pidns = null; // not Linux, or /proc not mounted
    }
  }
  return pidns ?? undefined;
}

/** Whether no process has `pid` here: kill(2) with signal 0 fails with ESRCH (EPERM means one exists). */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return codeOf(err) === 'ESRCH';
  }
}

/** Whether the FFI back end works here (loading it if needed). For the tests and the benchmark. */
export function ffiLoaded(): boolean {
  return loadLibc() !== null;
}
