// Shared by the tests: temp dirs, the CLI as a real process, runners, the C fixtures. Everything here
// spawns real processes on the real kernel; nothing is mocked.

import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readlinkSync, rmSync, chmodSync, cpSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import { parsed } from './schema.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const BIN = join(ROOT, 'dist', 'bin.cjs');
export const DIST = join(ROOT, 'dist');

/** Children started by each test (see start()), killed before its temp directories are removed. */
const children = new WeakMap();

/**
 * A fresh temp directory, removed when the test ends: after the test's children are gone, since a
 * holder that still runs puts back what is removed under it (its guard), and rm -r would race it.
 */
export function tmp(t, mode) {
  const dir = mkdtempSync(join(tmpdir(), 'proc-alive-test-'));
  if (mode !== undefined) chmodSync(dir, mode);
  t.after(async () => {
    await Promise.all([...(children.get(t) ?? [])].map(async (child) => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await once(child, 'exit');
      }
    }));
    rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
  });
  return dir;
}

// A hang guard, not a speed assertion: a check that blocked (a blocking open on a FIFO) would never
// return. Timings are measured by `npm run bench`, never asserted here.
export const HANG_GUARD_MS = 10_000; // generous: a loaded machine can take seconds to start a node
/**
 * The same for a synchronous run of something that ends by itself (a wrapper, a program that talks to
 * ours): a test's own timeout cannot interrupt a spawnSync, and a file blocked in one hangs the run.
 */
export const SYNC_GUARD_MS = 30_000;

/** Runs the CLI to completion: { code, stdout, stderr, lines }. */
export function cli(args, options = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: HANG_GUARD_MS, ...options });
  if (r.error) throw r.error;
  if (r.signal) throw new Error(`proc-alive ${args.join(' ')} was killed by ${r.signal} (hung?)`);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, errLines: r.stderr.split('\n').filter(Boolean) };
}

/** The state the CLI reports for one path, and its exit code. */
export function state(path, env) {
  const r = cli(['check', '--json', path], env ? { env: { ...process.env, ...env } } : {});
  const line = r.stdout.trim().split('\n').at(-1);
  return { code: r.code, state: line ? parsed(line, 'check').state : undefined, stderr: r.stderr };
}

/**
 * Polls `fn` until it returns true; fails after `ms`. For waiting on a process we did not start. A hang
 * guard too: generous, since what it waits for never comes when something is wrong.
 */
export async function until(fn, what, ms = 30_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** Starts a child and resolves once it is spawned; the test kills it if still running at the end. */
export async function start(t, file, args, options = {}) {
  const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'], ...options });
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr += d));
  child.stderrText = () => stderr;
  child.exited = once(child, 'exit');
  if (!children.has(t)) children.set(t, new Set());
  children.get(t).add(child);
  await once(child, 'spawn');
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    // A grandchild that outlives it (a tracee strace let go, a daemon it started) may hold the other
    // end of these pipes: open here, they would keep this test file's process from ever exiting.
    for (const s of child.stdio) s?.destroy();
  });
  return child;
}

/** Starts `proc-alive run <path> [seconds]` and waits until a check sees it alive. */
export async function startRunner(t, path, args = ['120'], options = {}) {
  const child = await start(t, process.execPath, [BIN, 'run', path, ...args], options);
  await until(() => child.exitCode !== null || state(path, options.env).state === 'alive', `runner on ${path}`);
  if (child.exitCode !== null) throw new Error(`runner exited ${child.exitCode}: ${child.stderrText()}`);
  return child;
}

/** Kills `child` with `signal` and waits until it has been reaped. */
export async function kill(child, signal = 'SIGKILL') {
  child.kill(signal);
  const [code, sig] = await child.exited;
  return { code, signal: sig };
}

/** Compiles test/fixtures/<name>.c once per test process. */
const compiled = new Map();
export function compileC(name) {
  if (!compiled.has(name)) {
    const dir = mkdtempSync(join(tmpdir(), 'proc-alive-c-'));
    const out = join(dir, name);
    execFileSync('cc', ['-O2', '-Wall', '-o', out, join(ROOT, 'test', 'fixtures', `${name}.c`)]);
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    compiled.set(name, out);
  }
  return compiled.get(name);
}

/** The fd number under which process `pid` has `path` open, from /proc/PID/fd. */
export function fdOf(pid, path) {
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) === path) return Number(fd);
    } catch {}
  }
  return undefined;
}

/** Another user for the tests that need one (root only: setpriv). */
export const NOBODY = 65534;
export const AS_ROOT = process.getuid() === 0 ? false : 'needs root (setpriv, chown)';

/** A copy of dist/ (and package.json) that another user can read: the checkout may sit in a private directory. */
export function publicDist(t) {
  const top = tmp(t, 0o755);
  const dist = join(top, 'dist');
  cpSync(DIST, dist, { recursive: true });
  writeFileSync(join(top, 'package.json'), readFileSync(join(ROOT, 'package.json')));
  execFileSync('chmod', ['-R', 'a+rX', top]);
  return dist;
}

/** setpriv's arguments to run as `uid` (its own group, no others). */
export const as = (uid) => ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--'];

/** Runs the CLI as another user, from a public copy of dist/ (see publicDist). */
export function cliAs(uid, dist, args, options = {}) {
  const [cmd, ...pre] = as(uid);
  const r = spawnSync(cmd, [...pre, process.execPath, join(dist, 'bin.cjs'), ...args], { encoding: 'utf8', timeout: HANG_GUARD_MS, ...options });
  if (r.error || r.signal) throw r.error ?? new Error(`killed by ${r.signal}`);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, errLines: r.stderr.split('\n').filter(Boolean) };
}

/** Runs a command as another user; returns what it printed (throws if it fails). */
export function runAs(uid, file, args, options = {}) {
  const [cmd, ...pre] = as(uid);
  return execFileSync(cmd, [...pre, file, ...args], { encoding: 'utf8', timeout: SYNC_GUARD_MS, ...options });
}
