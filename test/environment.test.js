// Where targets live, and the environments a runner meets: default directories, another PID namespace,
// a machine where the FFI cannot load.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, statSync, symlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { tmp, cli, state, start, startRunner, kill, until, BIN } from './helpers.js';

const envWith = (vars) => {
  const env = { ...process.env };
  for (const k of ['PROC_ALIVE_DIR', 'XDG_RUNTIME_DIR', 'TMPDIR']) delete env[k];
  return { ...env, ...vars };
};

test('bare names: $PROC_ALIVE_DIR, else $XDG_RUNTIME_DIR/proc-alive, else <tmpdir>/proc-alive-<uid>', async (t) => {
  const dir = tmp(t);
  const cases = [
    [{ PROC_ALIVE_DIR: join(dir, 'own'), XDG_RUNTIME_DIR: join(dir, 'xdg') }, join(dir, 'own')],
    [{ XDG_RUNTIME_DIR: join(dir, 'xdg'), TMPDIR: dir }, join(dir, 'xdg', 'proc-alive')],
    [{ XDG_RUNTIME_DIR: 'relative/ignored', TMPDIR: dir }, join(dir, `proc-alive-${process.getuid()}`)],
    [{ TMPDIR: join(dir, 'tmp') }, join(dir, 'tmp', `proc-alive-${process.getuid()}`)],
  ];
  mkdirSync(join(dir, 'xdg'), { mode: 0o700 });
  mkdirSync(join(dir, 'tmp'));
  for (const [vars, expected] of cases) {
    const env = envWith(vars);
    // A check never creates the directory: a checker of another user would own it.
    const before = cli(['check', '--json', 'web'], { env });
    assert.equal(before.code, 3);
    assert.deepEqual(JSON.parse(before.stdout), { target: 'web', path: join(expected, 'web'), state: 'absent' });
    assert.equal(existsSync(expected), false, `check created ${expected}`);
    // The runner creates it 0700, whatever the umask.
    const runner = await start(t, '/bin/sh', ['-c', `umask 000; exec "${process.execPath}" "${BIN}" run web`], { env });
    await until(() => cli(['check', 'web'], { env }).code === 0, `web alive in ${expected}`);
    assert.equal(statSync(expected).mode & 0o777, 0o700);
    assert.equal(statSync(join(expected, 'web')).mode & 0o777, 0o600);
    assert.equal(cli(['check', join(expected, 'web')]).code, 0, 'the same FIFO by its path');
    await kill(runner, 'SIGTERM');
    assert.equal(cli(['check', 'web'], { env }).code, 3);
  }
  assert.match(cli(['--help'], { env: envWith({ PROC_ALIVE_DIR: join(dir, 'own') }) }).stdout, new RegExp(`\\(here: ${join(dir, 'own')}\\)`));
});

test('a default directory reached through a symlink is judged by what it points to', async (t) => {
  const dir = tmp(t);
  mkdirSync(join(dir, 'real'), { mode: 0o700 });
  symlinkSync(join(dir, 'real'), join(dir, 'link'));
  const env = envWith({ PROC_ALIVE_DIR: join(dir, 'link') });
  const runner = await startRunner(t, 'web', ['120'], { env });
  assert.equal(cli(['check', join(dir, 'real', 'web')]).code, 0);
  await kill(runner, 'SIGTERM');
});

test('a runner in another PID namespace is seen alive, then dead', { skip: process.getuid() !== 0 && 'needs root (unshare --pid)' }, async (t) => {
  const path = join(tmp(t), 'p');
  // --kill-child: SIGKILL of unshare SIGKILLs its child, PID 1 of the new namespace, and so the runner.
  const ns = await start(t, 'unshare', ['--pid', '--fork', '--kill-child', process.execPath, BIN, 'run', path, '120']);
  await until(() => state(path).state === 'alive', 'the namespaced runner');
  // The runner's PID in its namespace is 1: no PID could name it from here, the FIFO does.
  await kill(ns, 'SIGKILL');
  await until(() => state(path).state !== 'alive', 'the namespaced runner to die');
  assert.equal(state(path).state, 'dead');
});

test('without the FFI (PROC_ALIVE_FFI=0), run creates the FIFO with the mkfifo program', async (t) => {
  const path = join(tmp(t), 'p');
  const env = { ...process.env, PROC_ALIVE_FFI: '0' };
  const runner = await start(t, '/bin/sh', ['-c', `umask 000; exec "${process.execPath}" "${BIN}" run "${path}" 120`], { env });
  await until(() => state(path).state === 'alive', 'the runner');
  assert.equal(statSync(path).mode & 0o777, 0o600);
  await kill(runner);
  assert.equal(state(path).state, 'dead');
  const again = await startRunner(t, path, ['120'], { env });
  await kill(again, 'SIGTERM');
  assert.equal(existsSync(path), false);

  // A failure is reported with its errno name, as the FFI's would be.
  const missing = join(tmp(t), 'no', 'p');
  const noParent = cli(['run', missing, '1'], { env });
  assert.equal(noParent.code, 125);
  assert.equal(noParent.stderr, `proc-alive: cannot hold ${missing}: cannot create its lock file .p.lock: no such file or directory (ENOENT)\n`);

  // Neither the FFI nor a flock program, then no mkfifo program: one clear line each. Checks still
  // work (they need neither).
  const bare = { ...env, PATH: tmp(t) };
  const r = cli(['run', path, '1'], { env: bare });
  assert.equal(r.code, 125);
  assert.equal(r.stderr, `proc-alive: cannot hold ${path}: cannot lock: koffi did not load and no flock program was found\n`);
  assert.equal(cli(['check', path], { env: bare }).code, 3);
  const onlyFlock = tmp(t);
  symlinkSync(execFileSync('sh', ['-c', 'command -v flock'], { encoding: 'utf8' }).trim(), join(onlyFlock, 'flock'));
  const r2 = cli(['run', path, '1'], { env: { ...env, PATH: onlyFlock } });
  assert.equal(r2.code, 125);
  assert.equal(r2.stderr, `proc-alive: cannot hold ${path}: cannot create the FIFO: koffi did not load and no mkfifo program was found\n`);
});
