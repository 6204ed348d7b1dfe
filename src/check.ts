// Is the target alive right now? One stat and, for a FIFO, one non-blocking open for writing.

import { targetsArgument } from './arguments.js';
import { probe, probeSync, type State } from './kernel.js';
import { targetPath } from './target.js';

export type { State };

/**
 * Says whether `target` is held: `'alive'` for a FIFO with a reader, `'dead'` for a FIFO without one (its
 * holder crashed or was killed), `'absent'` when nothing is at the path (stopped cleanly, or never
 * started). Anything else — not a FIFO, permission denied, a symlink loop, a name too long, an I/O
 * error — throws a {@link ProcAliveError}: the answer cannot be told. Never blocks, never writes a byte,
 * opens nothing but a FIFO, and closes what it opened before it returns.
 *
 * With an array of targets: their states, in the same order; the first target (in that order) whose
 * state cannot be told throws, as it would alone.
 */
export function checkSync(target: string): State;
export function checkSync(targets: readonly string[]): State[];
export function checkSync(targets: string | readonly string[]): State | State[] {
  // One target, the common case and the hot one: no array made (targetPath checks the type).
  if (typeof targets === 'string') return probeSync(targetPath(targets));
  const list = targetsArgument(targets);
  return list.map((t) => probeSync(targetPath(t)));
}

/**
 * {@link checkSync} on libuv's thread pool, so a stat on a hung filesystem does not stall the loop.
 * Several targets are checked at once; the first (in their order) that cannot be told rejects.
 */
export async function check(target: string): Promise<State>;
export async function check(targets: readonly string[]): Promise<State[]>;
export async function check(targets: string | readonly string[]): Promise<State | State[]> {
  if (typeof targets === 'string') return probe(targetPath(targets));
  const list = targetsArgument(targets);
  const settled = await Promise.allSettled(list.map(async (t) => probe(targetPath(t))));
  return settled.map((s) => {
    if (s.status === 'rejected') throw s.reason;
    return s.value;
  });
}

/**
 * True only when `target` is a FIFO with a reader (every target, given several); false for everything
 * else: dead, absent, and whatever {@link checkSync} would throw for (not a FIFO, permission denied, a
 * target that is not a string). Never throws. For `if (isAliveSync('web'))`; when "cannot tell" must
 * not read as "not alive", use {@link checkSync}.
 */
export function isAliveSync(targets: string | readonly string[]): boolean {
  try {
    const list = targetsArgument(targets);
    return list.length > 0 && list.every((t) => probeSync(targetPath(t)) === 'alive');
  } catch {
    return false;
  }
}

/** {@link isAliveSync} on libuv's thread pool. Never rejects. */
export async function isAlive(targets: string | readonly string[]): Promise<boolean> {
  try {
    const list = targetsArgument(targets);
    const states = await Promise.all(list.map(async (t) => probe(targetPath(t))));
    return list.length > 0 && states.every((s) => s === 'alive');
  } catch {
    return false;
  }
}
