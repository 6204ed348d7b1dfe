// Targets: a path (it contains a '/'), or a bare name that lives in the default directory.

import { statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { targetArgument } from './arguments.js';
import { ProcAliveError, aboutPath } from './errors.js';
import { checkPrivateDir, openDir, openPrivateDir, type Dir } from './kernel-files.js';

let runIsDir: boolean | undefined;

/**
 * The directory bare names live in: `$PROC_ALIVE_DIR`, else `/run/proc-alive` for root (where /run
 * exists), else `/tmp/proc-alive-<uid>`. Not `$XDG_RUNTIME_DIR` nor `$TMPDIR`: a systemd service and a
 * cron job have neither, and logind removes the runtime directory when the user's last session ends;
 * the same user's shells, services, cron jobs and containers (sharing /tmp or /run) must see the same
 * names, and a target must outlive a logout.
 */
export function defaultDir(): string {
  const own = process.env['PROC_ALIVE_DIR'];
  if (own) return resolve(own);
  const uid = process.geteuid?.();
  if (uid === 0) {
    runIsDir ??= statSync('/run', { throwIfNoEntry: false })?.isDirectory() ?? false;
    if (runIsDir) return '/run/proc-alive';
  }
  return `/tmp/proc-alive-${uid ?? 'user'}`;
}

/** Refuses what is not a target before anything is touched: a JavaScript caller may pass anything. */
function refuseBadTarget(target: unknown): asserts target is string {
  targetArgument(target);
  if (target === '') throw new ProcAliveError('EINVAL', 'empty target: give a path or a name');
  if (target.includes('\0')) throw new ProcAliveError('EINVAL', 'a target cannot contain a NUL byte');
}

// Default directories already found safe in this process: a check of a bare name then costs no extra stat.
const trusted = new Set<string>();

/**
 * The path of `target`. For a bare name, the default directory is verified (not a symlink; owner,
 * mode) without being created: a checker never creates it (a checker running as another user would
 * own it, and the holder would then rightly refuse it).
 */
export function targetPath(target: string): string {
  refuseBadTarget(target);
  if (target.includes('/')) return target;
  if (target === '.' || target === '..') {
    throw new ProcAliveError('EINVAL', `'${target}' is not a valid name (use a path such as ./name)`);
  }
  const dir = defaultDir();
  if (!trusted.has(dir) && checkPrivateDir(dir)) trusted.add(dir);
  return join(dir, target);
}

/** Where a holder works: the target's directory, opened and checked, and the FIFO's name in it. */
export interface Place {
  path: string;
  dir: Dir;
  name: string;
  /** True for the default directory, which is proc-alive's own. */
  own: boolean;
}

/**
 * Opens the directory `target` lives in, for a holder. A bare name's default directory is created
 * 0700 if missing and must not be a symlink; a path's directory is the user's choice and is only
 * opened (it must exist). Everything the holder makes is then made relative to that directory.
 */
export function placeOf(target: string): Place {
  refuseBadTarget(target);
  if (!target.includes('/')) {
    if (target === '.' || target === '..') {
      throw new ProcAliveError('EINVAL', `'${target}' is not a valid name (use a path such as ./name)`);
    }
    const dir = openPrivateDir(defaultDir());
    return { path: join(dir.path, target), dir, name: target, own: true };
  }
  const name = basename(target);
  if (name === '' || name === '.' || name === '..' || target.endsWith('/')) {
    throw new ProcAliveError('EINVAL', `'${target}' does not name a file (give the FIFO's path, such as /run/app/alive)`);
  }
  let dir: Dir;
  try {
    dir = openDir(dirname(target), false, `directory ${dirname(target)}`);
  } catch (err) {
    throw aboutPath(err, target);
  }
  return { path: target, dir, name, own: false };
}
