// Targets: a path (it contains a '/'), or a bare name that lives in the default directory.

import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { ProcAliveError } from './errors.js';
import { ensurePrivateDir } from './kernel.js';

/**
 * The directory bare names live in: `$PROC_ALIVE_DIR`, else `$XDG_RUNTIME_DIR/proc-alive`, else
 * `<os tmpdir>/proc-alive-<uid>`. Computing it touches nothing.
 */
export function defaultDir(): string {
  const own = process.env['PROC_ALIVE_DIR'];
  if (own) return resolve(own);
  const xdg = process.env['XDG_RUNTIME_DIR'];
  // The XDG Base Directory spec says a relative XDG_RUNTIME_DIR is invalid and must be ignored.
  if (xdg && isAbsolute(xdg)) return join(xdg, 'proc-alive');
  return join(tmpdir(), `proc-alive-${process.getuid?.() ?? 'user'}`);
}

// Directories already found safe in this process: a check of a bare name then costs no extra stat.
const trusted = new Set<string>();

/**
 * The path of `target`. For a bare name, the default directory is verified (owner, mode) and, with
 * `create`, created 0700; a checker never creates it (a checker running as another user would own it,
 * and the holder would then rightly refuse it).
 */
export function targetPath(target: string, create = false): string {
  if (typeof target !== 'string' || target === '') {
    throw new ProcAliveError('EINVAL', 'empty target: give a path or a name');
  }
  if (target.includes('\0')) throw new ProcAliveError('EINVAL', 'a target cannot contain a NUL byte');
  if (target.includes('/')) return target;
  if (target === '.' || target === '..') {
    throw new ProcAliveError('EINVAL', `'${target}' is not a valid name (use a path such as ./name)`);
  }
  const dir = defaultDir();
  if (!trusted.has(dir) && ensurePrivateDir(dir, create)) trusted.add(dir);
  return join(dir, target);
}
