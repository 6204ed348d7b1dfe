// The holder record: what a person wants to know about who holds a target, kept next to its FIFO as
// `.<name>.json`. It is information only. Liveness always comes from the FIFO; a record never makes a
// target alive, never changes a state or an exit code, and one left by a holder that died is reported
// as stale. Records are read from directories others may write: each is validated against the schema
// below before any field is used, and one that does not validate is reported as such, never trusted.

import { hostname } from 'node:os';
import { join } from 'node:path';
import { pidNamespace, processGone } from './kernel.js';
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
  /** What the holder last said of itself (`STATUS=` of the readiness protocol), when it did. */
  status?: string;
  /** Which supervisor holds a service directory's `supervise/ok` (from its `supervise/status`). */
  supervisor?: 'daemontools' | 'runit';
}

/** A record file is never read beyond this: a command line longer than this is cut when written. */
export const RECORD_MAX_BYTES = 64 * 1024;

/** The record's name next to the FIFO `name`. */
export function recordNameOf(name: string): string {
  return `.${name}.json`;
}

/** A record for process `pid` (in our PID namespace) running `command`, starting now. */
export function newRecord(pid: number, command: string[], shared: boolean, wrapper?: number): HolderRecord {
  const ns = pidNamespace();
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

/** The record as written: one line of JSON within RECORD_MAX_BYTES (the command line cut to fit). */
export function recordText(record: HolderRecord): string {
  let text = `${JSON.stringify(record)}\n`;
  if (Buffer.byteLength(text) <= RECORD_MAX_BYTES) return text;
  const command: string[] = [];
  let room = RECORD_MAX_BYTES - Buffer.byteLength(JSON.stringify({ ...record, command: ['…'] })) - 64;
  for (const arg of record.command) {
    const cut = arg.length > room / 2 ? `${arg.slice(0, Math.max(0, Math.floor(room / 2)))}…` : arg;
    room -= Buffer.byteLength(JSON.stringify(cut)) + 1;
    if (room < 0) break;
    command.push(cut);
  }
  command.push('…');
  text = `${JSON.stringify({ ...record, command })}\n`;
  return text;
}

const MAX_PID = 2 ** 22; // pid_max's ceiling on Linux (proc(5)); other systems stay below it
const isPid = (v: unknown): v is number => Number.isInteger(v) && (v as number) > 0 && (v as number) <= MAX_PID;
const isText = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max;
const isTime = (v: unknown): v is string => isText(v, 64) && Number.isFinite(Date.parse(v));

/**
 * Checks a parsed record against the schema; returns the record (known fields only) or the first
 * problem found. Field by field, with types checked before any use: a record is attacker-controlled
 * in a shared directory, and nothing in it may throw, recurse or print raw later.
 */
export function validateRecord(value: unknown): { record: HolderRecord } | { problem: string } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { problem: 'not a JSON object' };
  const v = value as Record<string, unknown>;
  if (!isPid(v['pid'])) return { problem: '"pid" is not a process id' };
  if (!isTime(v['started'])) return { problem: '"started" is not a time' };
  const command = v['command'];
  if (!Array.isArray(command) || command.length > 4096 || !command.every((a) => isText(a, RECORD_MAX_BYTES))) {
    return { problem: '"command" is not a list of strings' };
  }
  if (!isText(v['hostname'], 255)) return { problem: '"hostname" is not a string' };
  if (v['pidns'] !== undefined && !isText(v['pidns'], 64)) return { problem: '"pidns" is not a string' };
  if (v['wrapper'] !== undefined && !isPid(v['wrapper'])) return { problem: '"wrapper" is not a process id' };
  if (typeof v['shared'] !== 'boolean') return { problem: '"shared" is not true or false' };
  if (!isText(v['version'], 64)) return { problem: '"version" is not a string' };
  if (v['status'] !== undefined && !isText(v['status'], 1024)) return { problem: '"status" is not a string' };
  if (v['supervisor'] !== undefined) return { problem: '"supervisor" does not belong in a record file' };
  const record: HolderRecord = {
    pid: v['pid'],
    started: v['started'],
    command: command as string[],
    hostname: v['hostname'],
    ...(v['pidns'] === undefined ? {} : { pidns: v['pidns'] as string }),
    ...(v['wrapper'] === undefined ? {} : { wrapper: v['wrapper'] as number }),
    shared: v['shared'],
    version: v['version'],
    ...(v['status'] === undefined ? {} : { status: v['status'] as string }),
  };
  const exit = v['exit'];
  if (exit !== undefined) {
    if (typeof exit !== 'object' || exit === null || Array.isArray(exit)) return { problem: '"exit" is not an object' };
    const e = exit as Record<string, unknown>;
    const code = e['code'];
    const signal = e['signal'];
    if (code !== null && !(Number.isInteger(code) && (code as number) >= 0 && (code as number) <= 255)) {
      return { problem: '"exit.code" is not an exit code or null' };
    }
    if (signal !== null && !(isText(signal, 16) && /^SIG[A-Z0-9+]+$/.test(signal))) return { problem: '"exit.signal" is not a signal name or null' };
    if ((code === null) === (signal === null)) return { problem: '"exit" needs exactly one of "code" and "signal"' };
    if (!isTime(e['at'])) return { problem: '"exit.at" is not a time' };
    record.exit = { code: code as number | null, signal: signal as string | null, at: e['at'] };
  }
  return { record };
}

/** A record file's bytes, parsed and validated. */
export function parseRecord(data: Buffer): { record: HolderRecord } | { problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(data.toString('utf8'));
  } catch {
    return { problem: 'not valid JSON' };
  }
  return validateRecord(value);
}

/**
 * Whether `record`'s process can be shown to be gone: it was on this host, in our PID namespace, and no
 * process has its pid. Anything else (another host or namespace, EPERM for another user's process)
 * proves nothing.
 */
export function recordProcessGone(record: HolderRecord): boolean {
  if (record.hostname !== hostname()) return false;
  const ns = pidNamespace();
  if (ns === undefined || record.pidns !== ns) return false;
  return processGone(record.pid);
}

/** Bytes in a daemontools (18) or runit (20) `supervise/status`. */
export const SUPERVISE_STATUS_BYTES = 20;

/**
 * What a daemontools or runit supervisor says in `<service>/supervise/status` (its binary format: a TAI64N
 * time of the last change, then the service's pid as 4 bytes, least significant first; 18 bytes for
 * daemontools, 20 for runit), or the problem with it.
 */
export function parseSupervisorStatus(data: Buffer, serviceDir: string): { record: HolderRecord } | { problem: string } {
  if (data.length !== 18 && data.length !== 20) return { problem: `supervise/status is ${data.length} bytes, not 18 (daemontools) or 20 (runit)` };
  // TAI64 label: 2^62 + seconds since 1970 TAI; TAI was 10 s ahead of UTC in 1972, which daemontools folds
  // in (its tai_now adds 4611686018427387914). Leap seconds since then are not counted: close enough.
  const seconds = Number(data.readBigUInt64BE(0) - 4611686018427387914n);
  const started = new Date(seconds * 1000);
  if (!Number.isFinite(started.getTime())) return { problem: 'supervise/status holds no valid time' };
  return {
    record: {
      pid: data.readUInt32LE(12),
      started: started.toISOString(),
      command: [join(serviceDir, 'run')],
      hostname: hostname(),
      shared: false,
      version: '',
      supervisor: data.length === 20 ? 'runit' : 'daemontools',
    },
  };
}
