// Who holds a target: its state (from the FIFO, always) and what its holder recorded (information only).

import { isDirectory, probe, probeSync, listTargets, type State } from './kernel.js';
import {
  readRecord,
  readRecordAsync,
  readSupervisorStatus,
  recordProcessGone,
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
   * directory, what its supervisor wrote in `supervise/status`; null if nothing.
   */
  holder: HolderRecord | null;
  /**
   * True if `holder` does not describe a live holder: the target is not alive, or the recorded process
   * is gone (this host, this PID namespace, no such pid). A stale record is history, never liveness.
   */
  stale: boolean;
}

function staleness(state: State, holder: HolderRecord | null): boolean {
  return holder !== null && (state !== 'alive' || (holder.supervisor === undefined && recordProcessGone(holder)));
}

/**
 * The state of `target` and who holds it. Throws a ProcAliveError when the state cannot be told, as
 * `checkSync` does.
 */
export function statusSync(target: string): Status {
  const path = targetPath(target);
  const state = probeSync(path);
  const holder = isDirectory(path) ? readSupervisorStatus(path) : readRecord(path);
  return { target, path, state, holder, stale: staleness(state, holder) };
}

/** {@link statusSync} on libuv's thread pool. */
export async function status(target: string): Promise<Status> {
  const path = targetPath(target);
  const state = await probe(path);
  const holder = isDirectory(path) ? readSupervisorStatus(path) : await readRecordAsync(path);
  return { target, path, state, holder, stale: staleness(state, holder) };
}

/**
 * The targets in `dir` (default: the default directory): its FIFOs and service directories, sorted,
 * as paths. Hidden names (proc-alive's lock and record files) are skipped. A missing directory has none.
 */
export function listTargetsIn(dir: string = defaultDir()): string[] {
  return listTargets(dir);
}
