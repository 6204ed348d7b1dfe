// Is the target alive right now? One stat and, for a FIFO, one non-blocking open for writing.

import { probe, probeSync, type State } from './kernel.js';
import { targetPath } from './target.js';

export type { State };

/**
 * Says whether `target` is held: `'alive'` for a FIFO with a reader, `'dead'` for a FIFO without one (its
 * holder crashed or was killed), `'absent'` when nothing is at the path (stopped cleanly, or never
 * started). Anything else — not a FIFO, permission denied, a symlink loop, a name too long, an I/O
 * error — throws a {@link ProcAliveError}: the answer cannot be told. Never blocks, never writes a byte,
 * opens nothing but a FIFO, and closes what it opened before it returns.
 */
export function checkSync(target: string): State {
  return probeSync(targetPath(target));
}

/** {@link checkSync} on libuv's thread pool, so a stat on a hung filesystem does not stall the loop. */
export async function check(target: string): Promise<State> {
  return probe(targetPath(target));
}
