// Unix datagram sockets, for the readiness protocol of systemd (sd_notify(3)): the part of the kernel
// layer (next to kernel.ts, kernel-files.ts and kernel-events.ts) that Node has no call for. Node's
// `dgram` knows UDP only and `net` knows stream sockets only, so socket(2), bind(2), setsockopt(2),
// recvmsg(2) and sendmsg(2) are bound through koffi, from the libc kernel.ts loaded.
//
// 64-bit Linux only (x86_64, aarch64, and the other architectures with the generic socket constants):
// the layouts below are LP64's. struct msghdr is 56 bytes (msg_name 0, msg_namelen 8, msg_iov 16,
// msg_iovlen 24, msg_control 32, msg_controllen 40, msg_flags 48), struct iovec 16, struct cmsghdr 16
// (cmsg_len is a size_t) with its data 8-byte aligned (CMSG_ALIGN), struct ucred 12 ({pid, uid, gid}).
// Elsewhere (32-bit, MIPS, PowerPC, SPARC, whose SO_PASSCRED differs; macOS and the BSDs, which have no
// SCM_CREDENTIALS) these calls throw ENOTSUP and the readiness forms that need them are refused.
//
// The memory the kernel reads and writes through pointers inside struct msghdr is allocated once with
// koffi.alloc (native memory that never moves: a small Buffer lives on V8's heap, which the GC moves)
// and reached from JS through koffi.view. Every call is synchronous, on the main thread, so one area
// for receiving and one for sending are enough.

import * as fs from 'node:fs';
import { constants as osConstants } from 'node:os';
import { ProcAliveError, errnoError } from './errors.js';
import { errnoName, loadFfi } from './kernel.js';

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_PASSCRED = 16; // socket(7); 20 on PowerPC, 17 on MIPS: refused there (see supported())
const SO_SNDTIMEO = 21;
const SCM_RIGHTS = 1;
const SCM_CREDENTIALS = 2;
const MSG_TRUNC = 0x20;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const MSG_CMSG_CLOEXEC = 0x40000000; // fds passed to us are close-on-exec from the moment they exist
const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;
const errnos = osConstants.errno;

/** sun_path's size: a path (with its NUL) or an abstract name (with its leading NUL) fits in it. */
export const SUN_PATH_MAX = 108;
/** The largest datagram read whole: sd_notify messages are a few assignments (systemd reads 4 KiB too, less a byte). */
export const DATAGRAM_MAX = 4096;
/** SCM_MAX_FD (include/net/scm.h): the most fds one message can carry. */
const SCM_MAX_FD = 253;

// Layout of the receiving area: msghdr, iovec, the sender's address, the control buffer, the data.
const MSGHDR = 0;
const IOVEC = 64;
const NAME = 80;
const NAME_SIZE = 112;
const CONTROL = 192;
/** Room for SCM_CREDENTIALS (CMSG_SPACE(12) = 32) and one SCM_RIGHTS of SCM_MAX_FD fds (16 + 1016). */
const CONTROL_SIZE = 32 + 16 + Math.ceil((SCM_MAX_FD * 4) / 8) * 8;
const DATA = CONTROL + CONTROL_SIZE + 8;
/** One byte more than DATAGRAM_MAX: a datagram that fills it is too long, whatever MSG_TRUNC says. */
const AREA_SIZE = DATA + DATAGRAM_MAX + 1;

interface SocketCalls {
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: Buffer, len: number): number;
  setsockopt(fd: number, level: number, name: number, value: Buffer, len: number): number;
  recvmsg(fd: number, msg: unknown, flags: number): number | bigint;
  sendmsg(fd: number, msg: unknown, flags: number): number | bigint;
  fcntl(fd: number, cmd: number, ...rest: unknown[]): number;
  errno(): number;
  koffi: typeof import('koffi');
  recv: { ptr: unknown; buf: Buffer };
  send: { ptr: unknown; buf: Buffer };
}

let calls: SocketCalls | null | undefined;

/** Whether this system has what the socket calls here assume (see the top of this file). */
export function socketsSupported(): boolean {
  return process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64' || process.arch === 'riscv64');
}

function bind(): SocketCalls {
  if (calls) return calls;
  const why = !socketsSupported()
    ? `unix datagram sockets with credentials are supported on 64-bit Linux only (x86_64, aarch64), not ${process.platform} ${process.arch}`
    : 'the FFI (koffi) is needed for unix datagram sockets and is not loaded (PROC_ALIVE_FFI=0, or it cannot load)';
  if (calls === null || !socketsSupported()) throw new ProcAliveError('ENOTSUP', why);
  const f = loadFfi();
  if (f === null) {
    calls = null;
    throw new ProcAliveError('ENOTSUP', why);
  }
  const { koffi, lib } = f;
  const area = (): { ptr: unknown; buf: Buffer } => {
    const ptr = koffi.alloc('uint8_t', AREA_SIZE);
    return { ptr, buf: Buffer.from(koffi.view(ptr, AREA_SIZE)) };
  };
  const recv = area();
  const send = area();
  // The pointers inside the two msghdr structs never change: set once.
  for (const a of [recv, send]) {
    const base = koffi.address(a.ptr);
    a.buf.writeBigUInt64LE(base + BigInt(NAME), MSGHDR + 0);
    a.buf.writeBigUInt64LE(base + BigInt(IOVEC), MSGHDR + 16);
    a.buf.writeBigUInt64LE(1n, MSGHDR + 24);
    a.buf.writeBigUInt64LE(base + BigInt(DATA), IOVEC + 0);
  }
  recv.buf.writeBigUInt64LE(koffi.address(recv.ptr) + BigInt(CONTROL), MSGHDR + 32);
  calls = {
    socket: lib.func('int socket(int domain, int type, int protocol)'),
    bind: lib.func('int bind(int fd, const void *addr, uint32_t len)'),
    setsockopt: lib.func('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)'),
    recvmsg: lib.func('long recvmsg(int fd, void *msg, int flags)'),
    sendmsg: lib.func('long sendmsg(int fd, const void *msg, int flags)'),
    fcntl: lib.func('int fcntl(int fd, int cmd, ...)'),
    errno: () => koffi.errno(),
    koffi,
    recv,
    send,
  };
  return calls;
}

/**
 * struct sockaddr_un for `address`: a path, or an abstract name written `@name` (systemd's notation; the
 * kernel's is a leading NUL byte, and the name is exactly the bytes after it: no NUL is added).
 */
export function socketAddress(address: string): Buffer {
  const abstract = address.startsWith('@');
  const name = Buffer.from(abstract ? address.slice(1) : address);
  const length = abstract ? 1 + name.length : name.length + 1;
  if (name.length === 0 || length > SUN_PATH_MAX) {
    throw new ProcAliveError('EINVAL', `not a unix socket address: ${name.length === 0 ? 'empty' : `longer than ${SUN_PATH_MAX - 1} bytes`}`, { path: address });
  }
  if (!abstract && name.includes(0)) throw new ProcAliveError('EINVAL', 'not a unix socket address: a NUL byte in the path', { path: address });
  const addr = Buffer.alloc(2 + length);
  addr.writeUInt16LE(AF_UNIX, 0);
  name.copy(addr, abstract ? 3 : 2);
  return addr;
}

function fail(c: SocketCalls, what: string, path: string, fd?: number): never {
  const e = c.errno();
  if (fd !== undefined) fs.closeSync(fd);
  throw errnoError(errnoName(e), path, what);
}

/**
 * A datagram socket bound at `path` (a path only: the caller makes its directory private), non-blocking
 * and close-on-exec, with SO_PASSCRED set before it is bound, so every message that can reach it carries
 * its sender's pid, uid and gid as the kernel knows them (unix(7): a sender may state credentials, but
 * the kernel refuses a pid or uid that is not its own unless it has CAP_SYS_ADMIN or CAP_SETUID).
 */
export function bindDatagram(path: string): number {
  const c = bind();
  const addr = socketAddress(path);
  const fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(c, 'cannot make a socket', path);
  const one = Buffer.alloc(4);
  one.writeInt32LE(1);
  if (c.setsockopt(fd, SOL_SOCKET, SO_PASSCRED, one, 4) !== 0) fail(c, 'cannot ask for credentials (SO_PASSCRED)', path, fd);
  if (c.bind(fd, addr, addr.length) !== 0) fail(c, 'cannot bind the socket', path, fd);
  return fd;
}

/** One datagram as received. */
export interface Datagram {
  /** Its bytes; empty when `oversized`. */
  data: Buffer;
  /** Longer than DATAGRAM_MAX: dropped unread. */
  oversized: boolean;
  /** The sender as the kernel knows it (SCM_CREDENTIALS), or null if the message carried none. */
  sender: { pid: number; uid: number; gid: number } | null;
  /**
   * The fds that came with it (SCM_RIGHTS), close-on-exec: the caller must close them, after it has
   * looked at the sender (see {@link closeFds}). systemd-notify passes one with BARRIER=1 and ends as
   * soon as it is closed, after which its pid can no longer be looked up.
   */
  fds: number[];
}

/**
 * Reads one datagram from non-blocking `fd` without waiting, or returns null when there is none
 * (EAGAIN). The fds passed with it are returned, to be closed by the caller at once (anyone could pass
 * hundreds to exhaust our fd table). Fds that did not fit the control buffer are never installed
 * (MSG_CTRUNC): the kernel drops them. Other failures throw.
 */
export function receiveDatagram(fd: number): Datagram | null {
  const c = bind();
  const b = c.recv.buf;
  b.writeUInt32LE(NAME_SIZE, MSGHDR + 8);
  b.writeBigUInt64LE(BigInt(DATAGRAM_MAX + 1), IOVEC + 8);
  b.writeBigUInt64LE(BigInt(CONTROL_SIZE), MSGHDR + 40);
  b.writeInt32LE(0, MSGHDR + 48);
  const r = Number(c.recvmsg(fd, c.recv.ptr, MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC));
  if (r < 0) {
    const e = c.errno();
    if (e === errnos.EAGAIN || e === errnos.EWOULDBLOCK) return null;
    if (e === errnos.EINTR) return receiveDatagram(fd);
    throw errnoError(errnoName(e), `fd ${fd}`, 'cannot receive');
  }
  const flags = b.readInt32LE(MSGHDR + 48);
  const controlLength = Math.min(Number(b.readBigUInt64LE(MSGHDR + 40)), CONTROL_SIZE);
  let sender: Datagram['sender'] = null;
  const passed: number[] = [];
  for (let at = CONTROL; at + 16 <= CONTROL + controlLength; ) {
    const length = Number(b.readBigUInt64LE(at));
    if (length < 16 || at + length > CONTROL + controlLength) break;
    const level = b.readInt32LE(at + 8);
    const type = b.readInt32LE(at + 12);
    if (level === SOL_SOCKET && type === SCM_CREDENTIALS && length >= 16 + 12) {
      sender = { pid: b.readInt32LE(at + 16), uid: b.readUInt32LE(at + 20), gid: b.readUInt32LE(at + 24) };
    } else if (level === SOL_SOCKET && type === SCM_RIGHTS) {
      for (let i = at + 16; i + 4 <= at + length; i += 4) passed.push(b.readInt32LE(i));
    }
    at += Math.ceil(length / 8) * 8;
  }
  const oversized = r > DATAGRAM_MAX || (flags & MSG_TRUNC) !== 0;
  return { data: oversized ? Buffer.alloc(0) : Buffer.from(b.subarray(DATA, DATA + r)), oversized, sender, fds: passed };
}

/** Closes the fds a datagram brought. */
export function closeFds(d: Datagram): void {
  for (const fd of d.fds.splice(0)) {
    try {
      fs.closeSync(fd);
    } catch {
      // EBADF: cannot happen for an fd the kernel just installed; nothing to release
    }
  }
}

/**
 * Sends `data` as one datagram to the socket at `address` (a path, or `@name` for an abstract one),
 * from a socket made for the purpose and closed after. The kernel attaches our credentials where the
 * receiver asks for them (SO_PASSCRED: systemd does). Waits up to a second if the receiver's queue is
 * full, as sd_notify(3) itself blocks, rather than lose the message. Throws a ProcAliveError with the
 * errno (ENOENT, ECONNREFUSED: nothing listens there; EACCES; EAGAIN: still full after the second).
 */
export function sendDatagram(address: string, data: Buffer): void {
  const c = bind();
  if (data.length > DATAGRAM_MAX) throw new ProcAliveError('EINVAL', `a message longer than ${DATAGRAM_MAX} bytes`, { path: address });
  const addr = socketAddress(address);
  const fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(c, 'cannot make a socket', address);
  try {
    const timeout = Buffer.alloc(16); // struct timeval { time_t tv_sec; suseconds_t tv_usec; }
    timeout.writeBigInt64LE(1n, 0);
    c.setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, timeout, 16);
    const b = c.send.buf;
    addr.copy(b, NAME);
    b.writeUInt32LE(addr.length, MSGHDR + 8);
    data.copy(b, DATA);
    b.writeBigUInt64LE(BigInt(data.length), IOVEC + 8);
    b.writeBigUInt64LE(0n, MSGHDR + 32);
    b.writeBigUInt64LE(0n, MSGHDR + 40);
    b.writeInt32LE(0, MSGHDR + 48);
    for (;;) {
      if (Number(c.sendmsg(fd, c.send.ptr, MSG_NOSIGNAL)) >= 0) return;
      if (c.errno() !== errnos.EINTR) break;
    }
    throw errnoError(errnoName(c.errno()), address, 'cannot notify');
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Marks `fd` close-on-exec, so that a command started later does not inherit it: a supervisor's
 * notification fd is ours to write, and a child that had it could say "ready" in our place. (Node marks
 * the fds it inherits close-on-exec itself at start-up, fcntl(F_SETFD) on each: this makes sure.)
 * Throws EBADF if `fd` is not open.
 */
export function setCloseOnExec(fd: number): void {
  const c = bind();
  const flags = c.fcntl(fd, F_GETFD);
  if (flags < 0 || c.fcntl(fd, F_SETFD, 'int', flags | FD_CLOEXEC) < 0) fail(c, 'cannot use the fd', `fd ${fd}`);
}

/**
 * Why `fd` is evidently one of this process's own rather than one a supervisor gave it, or null: an
 * anonymous inode (libuv's and the event worker's epoll fd, eventfd, inotify, io_uring), or one end of a
 * pipe whose other end this process also has (libuv's signal pipes). A notification fd given by mistake
 * must not be written to and closed under Node. From /proc/self/fd; null where /proc is not there.
 */
export function ownFd(fd: number): string | null {
  let target: string;
  try {
    target = fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return null;
  }
  if (target.startsWith('anon_inode:')) return `it is ${target}, one of this process's own`;
  if (target.startsWith('pipe:')) {
    for (const other of fs.readdirSync('/proc/self/fd')) {
      if (Number(other) === fd) continue;
      try {
        if (fs.readlinkSync(`/proc/self/fd/${other}`) === target) return `this process holds both ends of that ${target}: one of its own`;
      } catch {
        // closed meanwhile (the fd of readdir itself)
      }
    }
  }
  return null;
}

/**
 * The parent of process `pid` (from /proc/<pid>/stat, its fourth field, after the command name in
 * parentheses, which may itself hold spaces and parentheses: proc(5)), or null when it cannot be read
 * (the process is gone, or /proc is not there).
 */
export function parentOf(pid: number): number | null {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ppid = Number(fields[1]);
  return Number.isInteger(ppid) && ppid >= 0 ? ppid : null;
}

/**
 * Whether process `pid` is `ancestor` or one of its descendants, by the chain of parents in /proc (as
 * systemd's NotifyAccess=all accepts the processes of the service's cgroup). A process whose parent
 * ended was adopted by init or a subreaper and is no longer found under `ancestor`; one that has ended
 * cannot be told and is not.
 */
export function isDescendant(pid: number, ancestor: number): boolean {
  for (let p: number | null = pid, hops = 0; p !== null && p > 1 && hops < 4096; hops++) {
    if (p === ancestor) return true;
    p = parentOf(p);
  }
  return false;
}
