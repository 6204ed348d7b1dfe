// The records of the kernel's event interfaces, read in one place: by the event worker
// (kernel-events-worker.ts), which blocks in epoll_wait(2), and by the main thread's drain() before that
// worker waits (kernel-events.ts). Both harvest the same epoll set and inotify instance through
// harvest() below, so a fix to how a record is read is made once.

import { decodeName } from './text.js';

/** inotify(7) masks. */
export const IN = {
  CLOSE_NOWRITE: 0x10,
  OPEN: 0x20,
  MOVED_FROM: 0x40,
  MOVED_TO: 0x80,
  CREATE: 0x100,
  DELETE: 0x200,
  DELETE_SELF: 0x400,
  MOVE_SELF: 0x800,
  UNMOUNT: 0x2000,
  Q_OVERFLOW: 0x4000,
  IGNORED: 0x8000,
  ONLYDIR: 0x01000000,
  /** Add to an existing watch's mask instead of replacing it. */
  MASK_ADD: 0x20000000,
  /** Fail with EEXIST if the inode is watched already (Linux >= 4.18; ignored before). */
  MASK_CREATE: 0x10000000,
} as const;

/** epoll(7) and epoll_ctl(2) values. */
export const EPOLL = {
  IN: 0x1,
  ERR: 0x8,
  HUP: 0x10,
  ONESHOT: 1 << 30,
  CTL_ADD: 1,
  CTL_DEL: 2,
  CTL_MOD: 3,
} as const;

export const O_CLOEXEC = 0o2000000; // EPOLL_CLOEXEC, IN_CLOEXEC and EFD_CLOEXEC have the same value
export const O_NONBLOCK = 0o4000; // IN_NONBLOCK, EFD_NONBLOCK
export const EINTR = 4;
export const EAGAIN = 11;

/** The event worker's koffi load, in its control slot 3 (see EventSource's exit listener). */
export const LOAD = {
  notBegun: 0,
  loading: 1,
  /** Loaded, or failed to: either way past koffi's init. */
  done: 2,
  /** The process ends, or the source is closed, before the load began: the worker loads nothing, ends. */
  cancelled: 3,
} as const;

// struct epoll_event is packed on x86-64 (12 bytes, data at offset 4) and naturally aligned elsewhere
// (16 bytes, data at offset 8): <sys/epoll.h>, __EPOLL_PACKED.
export const EVENT_SIZE = process.arch === 'x64' ? 12 : 16;
const DATA_OFFSET = process.arch === 'x64' ? 4 : 8;
/** How many epoll records one harvest takes at most; the rest stay queued for the next one. */
export const MAX_EVENTS = 1024;
/** inotify reads: a multiple of any record's size (16 bytes + NAME_MAX + 1 at most). */
const READ_SIZE = 64 * 1024;

/** A struct epoll_event whose 64-bit data is the fd (low half) and a serial (high half), in `b` if given. */
export function epollEvent(events: number, fd: number, serial: number, b: Buffer = Buffer.alloc(EVENT_SIZE)): Buffer {
  b.writeUInt32LE(events >>> 0, 0);
  b.writeInt32LE(fd, DATA_OFFSET);
  b.writeUInt32LE(serial >>> 0, DATA_OFFSET + 4);
  return b;
}

/** The calls a harvest makes, bound by whichever thread harvests. */
export interface HarvestCalls {
  epoll_wait(epfd: number, events: Buffer, maxevents: number, timeout: number): number;
  read(fd: number, buf: Buffer, count: number): number | bigint;
  errno(): number;
}

export interface HarvestFds {
  epfd: number;
  inotifyFd: number;
  wakeFd: number;
}

/** Buffers a thread harvests into, allocated once per thread. */
export interface HarvestBuffers {
  events: Buffer;
  data: Buffer;
}

export function harvestBuffers(): HarvestBuffers {
  return { events: Buffer.alloc(EVENT_SIZE * MAX_EVENTS), data: Buffer.alloc(READ_SIZE) };
}

/** What one epoll_wait(2) returned. */
export interface Harvest {
  /** errno of a failed epoll_wait (EINTR included), else 0. */
  error: number;
  /** fd, serial and events of every record that is neither the inotify fd nor the wake-up eventfd. */
  ready: number[];
  /** Everything read from the inotify fd, in the kernel's order; null if it had nothing. */
  inotify: Uint8Array | null;
  /** The wake-up eventfd was readable (and was read, if `readWake`). */
  woken: boolean;
}

/**
 * One epoll_wait(2) with `timeout` (-1: until something happens; 0: what is there now), then the inotify
 * queue read until empty. The wake-up eventfd is read only with `readWake`: the main thread's drain must
 * leave it, so that a stop asked meanwhile still reaches the worker.
 */
export function harvest(c: HarvestCalls, fds: HarvestFds, bufs: HarvestBuffers, timeout: number, readWake: boolean): Harvest {
  const n = c.epoll_wait(fds.epfd, bufs.events, MAX_EVENTS, timeout);
  const out: Harvest = { error: n < 0 ? c.errno() : 0, ready: [], inotify: null, woken: false };
  const chunks: Buffer[] = [];
  let total = 0;
  for (let i = 0; i < n; i++) {
    const at = i * EVENT_SIZE;
    const events = bufs.events.readUInt32LE(at);
    const fd = bufs.events.readInt32LE(at + DATA_OFFSET);
    const serial = bufs.events.readUInt32LE(at + DATA_OFFSET + 4);
    if (fd === fds.inotifyFd) {
      for (;;) {
        const r = Number(c.read(fds.inotifyFd, bufs.data, bufs.data.length));
        if (r <= 0) break; // EAGAIN: the queue is empty (the fd is non-blocking)
        chunks.push(Buffer.from(bufs.data.subarray(0, r)));
        total += r;
      }
    } else if (fd === fds.wakeFd) {
      out.woken = true;
      if (readWake) c.read(fds.wakeFd, bufs.data, 8);
    } else {
      out.ready.push(fd, serial, events);
    }
  }
  if (total > 0) {
    // A fresh, unpooled buffer: the worker transfers it to the main thread without a copy.
    const all = new Uint8Array(total);
    let off = 0;
    for (const chunk of chunks) {
      all.set(chunk, off);
      off += chunk.length;
    }
    out.inotify = all;
  }
  return out;
}

export interface InotifyEvent {
  wd: number;
  mask: number;
  cookie: number;
  /** The entry's name (bytes that are not UTF-8 escaped as text.ts does), or '' for the watched object itself. */
  name: string;
}

/** struct inotify_event { int wd; uint32_t mask, cookie, len; char name[len]; } (inotify(7)). */
export function parseInotify(bytes: Uint8Array): InotifyEvent[] {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: InotifyEvent[] = [];
  for (let off = 0; off + 16 <= data.length; ) {
    const len = data.readUInt32LE(off + 12);
    const raw = data.subarray(off + 16, off + 16 + len);
    const nul = raw.indexOf(0); // the name is padded with NULs to an alignment boundary
    out.push({
      wd: data.readInt32LE(off),
      mask: data.readUInt32LE(off + 4),
      cookie: data.readUInt32LE(off + 8),
      name: len === 0 ? '' : decodeName(raw.subarray(0, nul < 0 ? raw.length : nul)),
    });
    off += 16 + len;
  }
  return out;
}
