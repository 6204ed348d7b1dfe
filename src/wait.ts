// Waiting for targets to come up or go down: resolved by the kernel's events, not by polling.

import { checkOptions, targetsArgument } from './arguments.js';
import { ProcAliveError, type Pending, type WaitTimeoutError } from './errors.js';
import { probeSync, type State } from './kernel.js';
import { LIMIT_CODES, theMonitor, type Followed, type Follower, type StateChange, type WatchState } from './monitor.js';
import { targetPath } from './target.js';
import { setLongTimeout, type LongTimeout } from './timeout.js';

export type { Pending, WaitTimeoutError };

export interface WaitOptions {
  /**
   * Give up after this many milliseconds (any length: longer than Node's 2^31 - 1 ms timer limit too):
   * the promise rejects with code `ETIMEDOUT` and `err.pending`. Default: never.
   */
  timeout?: number;
  /** Give up when aborted: the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** With several targets: resolve when any one is reached, rather than all. Default false. */
  any?: boolean;
  /** Do not keep the process alive while waiting (as `timer.unref()`). Default false. */
  unref?: boolean;
}

/** The state of each path as a check tells it now (as the monitor would: see probe), or null if one cannot be told. */
function checkedNow(paths: readonly string[]): State[] | null {
  try {
    return paths.map((p) => probeSync(p));
  } catch {
    return null;
  }
}

function waitFor(
  targets: string | readonly string[],
  want: (s: State) => boolean,
  goal: string,
  given: WaitOptions | undefined,
): Promise<State[]> {
  let list: string[];
  let options: WaitOptions;
  let paths: string[];
  try {
    list = targetsArgument(targets);
    options = checkOptions(given, { timeout: 'nonNegative', signal: 'AbortSignal', any: 'boolean', unref: 'boolean' });
    if (list.length === 0) throw new ProcAliveError('EINVAL', 'nothing to wait for: no target');
    paths = list.map((t) => targetPath(t));
  } catch (err) {
    return Promise.reject(err);
  }
  const { timeout, signal } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  // Reached already (`wait` in a script, after the service was started): one check per target tells,
  // with no event source started (a worker thread that loads koffi: about as long again as the check).
  // A target a check cannot tell, or a goal not reached yet, is followed as below.
  const now = checkedNow(paths);
  if (now !== null && (options.any ? now.some(want) : now.every(want))) return Promise.resolve(now);

  return new Promise<State[]>((resolve, reject) => {
    const monitor = theMonitor();
    const states: Array<WatchState | null> = list.map(() => null);
    const followed: Followed[] = [];
    const index = new Map<Followed, number[]>();
    const lease = monitor.lease(!options.unref);
    let done = false;
    let timer: LongTimeout | undefined;
    const finish = (settle: () => void): void => {
      if (done) return;
      done = true;
      timer?.clear();
      signal?.removeEventListener('abort', onAbort);
      // Let go after the current report is delivered: follow() reports synchronously.
      queueMicrotask(() => {
        for (const f of followed) monitor.unfollow(f, sub);
        void lease.release();
      });
      settle();
    };
    const onAbort = (): void => finish(() => reject(signal?.reason));
    const evaluate = (): void => {
      const reached = states.map((s) => s !== null && s !== 'unknown' && want(s));
      if (options.any ? reached.some(Boolean) : reached.every(Boolean)) finish(() => resolve(states as State[]));
    };
    // One follower for every target of the wait; the monitor says which followed path changed.
    const sub: Follower = {
      change: (f: Followed, change: StateChange) => {
        if (done) return;
        for (const i of index.get(f) ?? []) {
          states[i] = change.state;
          const err = change.error;
          // A target that cannot be told rejects, as a check would say so; a limit reached (EMFILE,
          // ENOSPC) is not about the target: the wait goes on, polling, until it can tell.
          if (change.state === 'unknown' && (err === undefined || !LIMIT_CODES.has(err.code))) {
            finish(() => reject(err ?? new ProcAliveError('EIO', 'cannot tell', { path: paths[i] })));
            return;
          }
        }
        evaluate();
      },
    };
    list.forEach((_, i) => {
      if (done) return;
      const known = monitor.followedBy(paths[i] as string, 'wait', sub);
      if (known !== undefined) {
        // The same path twice: one followed path, both indexes.
        index.get(known)?.push(i);
        states[i] = known.state;
        return;
      }
      monitor.follow(paths[i] as string, 'wait', sub, (f) => {
        followed.push(f);
        index.set(f, [i]);
      });
    });
    if (done) return;
    evaluate(); // a target given twice: its second index was filled in above, not by a report
    if (done) return;
    signal?.addEventListener('abort', onAbort, { once: true });
    if (timeout !== undefined) {
      timer = setLongTimeout(() => {
        const pending = list
          .map((target, i): Pending => ({ target, state: states[i] ?? null }))
          .filter((p) => p.state === null || p.state === 'unknown' || !want(p.state));
        const what = pending.map((p) => `${p.target} is ${p.state ?? 'unknown'}`).join(', ');
        const err = new ProcAliveError('ETIMEDOUT', `not ${goal} after ${timeout / 1000}s: ${what}`) as ProcAliveError & { pending: Pending[] };
        err.pending = pending;
        finish(() => reject(err as WaitTimeoutError));
      }, timeout);
      if (options.unref) timer.unref();
    }
  });
}

/**
 * For `wait --json`: waits as waitAlive (`up`) or waitDead does, and resolves to the last state of each
 * target, in order (with `any`, the ones not reached may be anything, or null if not seen yet).
 */
export function waitStates(targets: string | readonly string[], up: boolean, options?: WaitOptions): Promise<Array<WatchState | null>> {
  return waitFor(targets, up ? (s) => s === 'alive' : (s) => s !== 'alive', up ? 'alive' : 'down', options) as Promise<unknown> as Promise<Array<WatchState | null>>;
}

/**
 * Resolves when `target` is alive (at once if it is), or when all of several are (any, with `any`).
 * A directory is a service directory, in the making if it has no `run` or `supervise` yet: its
 * `supervise/ok` is waited for. Rejects with a ProcAliveError: `ETIMEDOUT` after `timeout` ms, naming
 * what is not alive yet and its last state (in `err.pending` too, see {@link WaitTimeoutError}); the
 * error of a target whose state cannot be told (as a check would throw it: `ENOTFIFO`, ...); or the
 * abort reason of `signal`. A path that cannot be watched (no read permission, a limit reached) is
 * polled instead, and never turns a wait into an error.
 */
export async function waitAlive(targets: string | readonly string[], options?: WaitOptions): Promise<void> {
  await waitFor(targets, (s) => s === 'alive', 'alive', options);
}

/**
 * Resolves when `target` is dead or absent (its FIFO removed on a clean stop), at once if it is; with
 * several, when all are (any, with `any`). Resolves to the states reached. Rejects as {@link waitAlive}.
 */
export async function waitDead(targets: string | readonly string[], options?: WaitOptions): Promise<Array<'dead' | 'absent'>> {
  return (await waitFor(targets, (s) => s !== 'alive', 'down', options)) as Array<'dead' | 'absent'>;
}
