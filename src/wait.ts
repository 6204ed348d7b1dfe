// Waiting for targets to come up or go down: resolved by the kernel's events, not by polling.

import { ProcAliveError } from './errors.js';
import { isDirectory, serviceFifo, type State } from './kernel.js';
import { theMonitor, type Following, type WatchState } from './monitor.js';
import { targetPath } from './target.js';

export interface WaitOptions {
  /** Give up after this many milliseconds: the promise rejects with code `ETIMEDOUT`. Default: never. */
  timeout?: number;
  /** Give up when aborted: the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** With several targets: resolve when any one is reached, rather than all. Default false. */
  any?: boolean;
  /** Do not keep the process alive while waiting (as `timer.unref()`). Default false. */
  unref?: boolean;
}

/** A target as a watcher follows it: the FIFO's path, or a service directory's `supervise/ok`. */
export function watchPath(target: string): string {
  const path = targetPath(target);
  return isDirectory(path) ? serviceFifo(path) : path;
}

/** What a wait that timed out was still waiting for. */
export interface Pending {
  target: string;
  state: WatchState | null;
}

function waitFor(
  targets: string | string[],
  want: (s: State) => boolean,
  goal: string,
  options: WaitOptions,
): Promise<State[]> {
  const list = typeof targets === 'string' ? [targets] : [...targets];
  if (list.length === 0) return Promise.reject(new ProcAliveError('EINVAL', 'nothing to wait for: no target'));
  const { timeout, signal } = options;
  if (timeout !== undefined && (!Number.isFinite(timeout) || timeout < 0)) {
    return Promise.reject(new ProcAliveError('EINVAL', `timeout must be a non-negative number of milliseconds, not ${timeout}`));
  }
  let paths: string[];
  try {
    paths = list.map(watchPath);
  } catch (err) {
    return Promise.reject(err);
  }
  if (signal?.aborted) return Promise.reject(signal.reason);

  return new Promise<State[]>((resolve, reject) => {
    const states: Array<WatchState | null> = list.map(() => null);
    const followings: Following[] = [];
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (settle: () => void): void => {
      if (done) return;
      done = true;
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      // Closed after the current report is delivered: follow() reports synchronously.
      queueMicrotask(() => {
        for (const f of followings) f.close();
      });
      settle();
    };
    const onAbort = (): void => finish(() => reject(signal?.reason));
    const evaluate = (): void => {
      const reached = states.map((s) => s !== null && s !== 'unknown' && want(s));
      if (options.any ? reached.some(Boolean) : reached.every(Boolean)) {
        finish(() => resolve(states as State[]));
      }
    };
    list.forEach((target, i) => {
      if (done) return;
      const following = theMonitor().follow(
        paths[i] as string,
        (change) => {
          if (done) return;
          states[i] = change.state;
          if (change.state === 'unknown') {
            const err = change.error ?? new ProcAliveError('EIO', 'cannot tell', { path: paths[i] });
            finish(() => reject(err));
            return;
          }
          evaluate();
        },
        !options.unref,
      );
      followings.push(following);
      if (done) queueMicrotask(() => following.close());
    });
    if (done) return;
    signal?.addEventListener('abort', onAbort, { once: true });
    if (timeout !== undefined) {
      timer = setTimeout(() => {
        const pending = list
          .map((target, i): Pending => ({ target, state: states[i] ?? null }))
          .filter((p) => p.state === null || p.state === 'unknown' || !want(p.state));
        const what = pending.map((p) => `${p.target} is ${p.state ?? 'unknown'}`).join(', ');
        const err = new ProcAliveError('ETIMEDOUT', `not ${goal} after ${timeout / 1000}s: ${what}`) as ProcAliveError & {
          pending: Pending[];
        };
        err.pending = pending;
        finish(() => reject(err));
      }, timeout);
      if (options.unref) timer.unref();
    }
  });
}

/**
 * Resolves when `target` is alive (at once if it is), or when all of several are (any, with `any`).
 * Rejects with a ProcAliveError: `ETIMEDOUT` after `timeout` ms, naming what is not alive yet and its
 * last state (in `err.pending` too); the error of a target whose state cannot be told; or the abort
 * reason of `signal`.
 */
export async function waitAlive(targets: string | string[], options: WaitOptions = {}): Promise<void> {
  await waitFor(targets, (s) => s === 'alive', 'alive', options);
}

/**
 * Resolves when `target` is dead or absent (its FIFO removed on a clean stop), at once if it is; with
 * several, when all are (any, with `any`). Resolves to the states reached. Rejects as {@link waitAlive}.
 */
export async function waitDead(targets: string | string[], options: WaitOptions = {}): Promise<Array<'dead' | 'absent'>> {
  return (await waitFor(targets, (s) => s !== 'alive', 'down', options)) as Array<'dead' | 'absent'>;
}
