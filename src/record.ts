// The holder record: what a person wants to know about who holds a target, kept next to its FIFO as
// `.<name>.json`. It is information only. Liveness always comes from the FIFO; a record never makes a
// target alive, and one left by a holder that died is reported as stale.

import * as fs from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { errnoError } from './errors.js';
import { version } from './version.js';

export interface HolderRecord {
  /** The process that holds the FIFO: the holder itself, or the command `run` wraps. */
  pid: number;
  /** When it started holding, ISO 8601. */
  started: string;
  /** Its command line. */
  command: string[];
  hostname: string;
  /** The PID namespace `pid` belongs to (Linux: `pid:[4026531836]`), when known. */
  pidns?: string;
  /** The `proc-alive run` process that wraps `pid`, if any. */
  wrapper?: number;
  /** True if held with `shared`: the record then names the latest of the holders. */
  shared: boolean;
  /** Version of proc-alive that wrote it. */
  version: string;
  /** How the command ended, when a wrapper saw it end abnormally (the record is then stale). */
  exit?: { code: number | null; signal: string | null; at: string };
  /** Which supervisor holds a service directory's `supervise/ok` (from its `supervise/status`). */
  supervisor?: 'daemontools' | 'runit';
}

/** The record of the FIFO at `path`. */
export function recordPathOf(path: string): string {
  return join(dirname(path), `.${basename(path)}.json`);
}

let pidns: string | undefined | null;
function ownPidns(): string | undefined {
  if (pidns === undefined) {
    try {
      pidns = fs.readlinkSync('/proc/self/ns/pid');
    } catch {
      pidns = null; // not Linux, or /proc not mounted
    }
  }
  return pidns ?? undefined;
}

/** A record for process `pid` (in our PID namespace) running `command`, starting now. */
export function newRecord(pid: number, command: string[], shared: boolean, wrapper?: number): HolderRecord {
  const ns = ownPidns();
  return {
    pid,
    started: new Date().toISOString(),
    command,
    hostname: hostname(),
    ...(ns === undefined ? {} : { pidns: ns }),
    ...(wrapper === undefined ? {} : { wrapper }),
    shared,
    version: version(),
  };
}

/**
 * Writes the record atomically: to a temporary name, then rename(2) over the record, so a reader sees
 * the old record or the new one, never half of one. Mode 0644: what it says, `ps` shows anyway.
 */
export function writeRecord(path: string, record: HolderRecord): void {
  const file = recordPathOf(path);
  const temp = `${file}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(temp, `${JSON.stringify(record)}\n`, { mode: 0o644, flag: 'w' });
    fs.renameSync(temp, file);
  } catch (err) {
    fs.rmSync(temp, { force: true });
    throw errnoError((err as NodeJS.ErrnoException).code ?? 'EIO', file, 'cannot write the holder record', err);
  }
}

/** A record's text, checked for the fields we show; null if it is not one. */
function parseRecord(text: string): HolderRecord | null {
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value !== 'object' || value === null) return null;
    const r = value as HolderRecord;
    if (!Number.isInteger(r.pid) || typeof r.started !== 'string' || !Array.isArray(r.command)) return null;
    return r;
  } catch {
    return null;
  }
}

/** The record of the FIFO at `path`, or null if there is none or it cannot be read as one. */
export function readRecord(path: string): HolderRecord | null {
  try {
    return parseRecord(fs.readFileSync(recordPathOf(path), 'utf8'));
  } catch {
    return null; // no record, or an unreadable one: information only, never a reason to fail
  }
}

/** {@link readRecord} on libuv's thread pool. */
export async function readRecordAsync(path: string): Promise<HolderRecord | null> {
  try {
    return parseRecord(await fs.promises.readFile(recordPathOf(path), 'utf8'));
  } catch {
    return null;
  }
}

export function removeRecord(path: string): void {
  fs.rmSync(recordPathOf(path), { force: true });
}

/** Puts back the record that was there before a start that failed (or removes ours if there was none). */
export function restoreRecord(path: string, previous: HolderRecord | null): void {
  if (previous === null) removeRecord(path);
  else writeRecord(path, previous);
}

/**
 * Whether `record`'s process can be shown to be gone: it was on this host, in our PID namespace, and no
 * process has its pid (kill(2) with signal 0: ESRCH). Anything else (another host or namespace, EPERM
 * for another user's process) proves nothing.
 */
export function recordProcessGone(record: HolderRecord): boolean {
  if (record.hostname !== hostname()) return false;
  const ns = ownPidns();
  if (ns === undefined || record.pidns !== ns) return false;
  try {
    process.kill(record.pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * What a daemontools or runit supervisor says in `<service>/supervise/status` (its binary format: a TAI64N
 * time of the last change, then the service's pid as 4 bytes, least significant first; 18 bytes for
 * daemontools, 20 for runit). Null if absent or not that format.
 */
export function readSupervisorStatus(serviceDir: string): HolderRecord | null {
  let data: Buffer;
  try {
    data = fs.readFileSync(join(serviceDir, 'supervise', 'status'));
  } catch {
    return null;
  }
  if (data.length !== 18 && data.length !== 20) return null;
  // TAI64 label: 2^62 + seconds since 1970 TAI; TAI was 10 s ahead of UTC in 1972, which daemontools folds
  // in (its tai_now adds 4611686018427387914). Leap seconds since then are not counted: close enough.
  const seconds = Number(data.readBigUInt64BE(0) - 4611686018427387914n);
  const pid = data.readUInt32LE(12);
  return {
    pid,
    started: new Date(seconds * 1000).toISOString(),
    command: [join(serviceDir, 'run')],
    hostname: hostname(),
    shared: false,
    version: '',
    supervisor: data.length === 20 ? 'runit' : 'daemontools',
  };
}
