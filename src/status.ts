// Who holds a target: its state (from the FIFO, always) and what its holder recorded (information only).

import { basename, dirname, join } from 'node:path';
import { invalidArgument } from './arguments.js';
import { isDirectory, listTargets, probe, probeSync, type State } from './kernel.js';
import { checkPrivateDir, closeDir, euid, lstatAt, openDir, readSmallFileAt, resolveLinks, type Dir } from './kernel-files.js';
import {
  parseRecord,
  parseSupervisorStatus,
  RECORD_MAX_BYTES,
  recordNameOf,
  recordProcessGone,
  SUPERVISE_STATUS_BYTES,
  type HolderRecord,
} from './record.js';
import { defaultDir, targetPath } from './target.js';

export type { HolderRecord };

export interface Status {
  /** The target as given. */
  target: string;
  /** Its path: the FIFO's, or the service directory's. */
  path: string;
  /** What a check says now. */
  state: State;
  /**
   * What the holder recorded (`.<name>.json` next to the FIFO), or, for a daemontools/runit service
   * directory, what its supervisor wrote in `supervise/status`; null if nothing, or nothing to trust.
   */
  holder: HolderRecord | null;
  /**
   * True if `holder` does not describe a live holder: the target is not alive, or the recorded process
   * is gone (this host, this PID namespace, no such pid). A stale record is history, never liveness.
   */
  stale: boolean;
  /**
   * Why a record that is there was not used: not a regular file, owned by a user who does not hold the
   * target, too large, not valid. It never changes the state.
   */
  recordProblem?: string;
}

function staleness(state: State, holder: HolderRecord | null): boolean {
  return holder !== null && (state !== 'alive' || (holder.supervisor === undefined && recordProcessGone(holder)));
}

/**
 * The holder record of the target at `path`: read only if it is a regular file of at most 64 KiB owned
 * by root, by us, or by the owner of the FIFO (anyone else's file in a shared directory is a plant),
 * without blocking, and validated against the record's schema.
 */
function readHolder(path: string): { holder: HolderRecord | null; problem?: string } {
  const real = resolveLinks(path);
  let dir: Dir;
  let name: string;
  let max = RECORD_MAX_BYTES;
  const service = isDirectory(real);
  try {
    if (service) {
      dir = openDir(join(real, 'supervise'), false, 'cannot read');
      name = 'status';
      max = SUPERVISE_STATUS_BYTES;
    } else {
      dir = openDir(dirname(real), false, 'cannot read');
      name = recordNameOf(basename(real));
    }
  } catch {
    return { holder: null };
  }
  try {
    const fifoUid = lstatAt(dir, service ? 'ok' : basename(real), 'cannot read')?.uid;
    const file = readSmallFileAt(dir, name, max, [...new Set([0, euid(), fifoUid ?? dir.uid])]);
    if (file === undefined) return { holder: null };
    if (!('data' in file)) return { holder: null, problem: `${service ? 'supervise/status' : 'record'}: ${file.problem}` };
    const parsed = service ? parseSupervisorStatus(file.data, real) : parseRecord(file.data);
    return 'record' in parsed ? { holder: parsed.record } : { holder: null, problem: `${service ? '' : 'record: '}${parsed.problem}` };
  } catch {
    return { holder: null };
  } finally {
    closeDir(dir);
  }
}

function statusOf(target: string, path: string, state: State): Status {
  const { holder, problem } = readHolder(path);
  return { target, path, state, holder, stale: staleness(state, holder), ...(problem === undefined ? {} : { recordProblem: problem }) };
}

/**
 * The state of `target` and who holds it. Throws a ProcAliveError when the state cannot be told, as
 * `checkSync` does; a record that cannot be used never throws (see `recordProblem`).
 */
export function statusSync(target: string): Status {
  const path = targetPath(target);
  return statusOf(target, path, probeSync(path));
}

/**
 * {@link statusSync} with the check on libuv's thread pool. The record is read synchronously: a few
 * non-blocking calls on a file of at most 64 KiB.
 */
export async function status(target: string): Promise<Status> {
  const path = targetPath(target);
  return statusOf(target, path, await probe(path));
}

/**
 * The targets in `dir`, or, by default, in the default directory (refused, as checks refuse it, if it
 * is a symlink, another user's, or writable by others): its FIFOs and service directories, sorted, as
 * paths. Hidden names (proc-alive's lock and record files) are skipped. A missing directory has none.
 */
export function listTargetsIn(dir?: string): string[] {
  if (dir === undefined) {
    const own = defaultDir();
    return checkPrivateDir(own) ? listTargets(own) : [];
  }
  if (typeof dir !== 'string') throw invalidArgument('dir', 'a string', dir);
  return listTargets(dir);
}
