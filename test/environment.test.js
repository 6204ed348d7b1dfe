// Where targets live, and the environments a runner meets: default directories, another PID namespace,
// a machine where the FFI cannot load.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { tmp, cli, cliAs, state, start, startRunner, kill, until, as, publicDist, BIN, NOBODY, AS_ROOT } from './helpers.js';
import { parsed } from './schema.js';

const envWith = (vars) => {
  const env = { ...process.env };
  for (const k of ['PROC_ALIVE_DIR', 'XDG_RUNTIME_DIR', 'TMPDIR']) delete env[k];
  return { ...env, ...vars };
};

test('bare names: $PROC_ALIVE_DIR, else /run/proc-alive for root, else /tmp/proc-alive-<uid>; XDG_RUNTIME_DIR and TMPDIR play no part', async (t) => {
  const dir = tmp(t);
  const name = `web-${process.pid}`; // other test runs may use the real default directories at the same time
  const own = join(dir, 'own');
  const ignored = { XDG_RUNTIME_DIR: join(dir, 'xdg'), TMPDIR: join(dir, 'tmp') };
  mkdirSync(join(dir, 'xdg'), { mode: 0o700 });
  mkdirSync(join(dir, 'tmp'));
  const root = process.getuid() === 0;
  const cases = [
    [{ PROC_ALIVE_DIR: own, ...ignored }, own],
    [ignored, root ? '/run/proc-alive' : `/tmp/proc-alive-${process.getuid()}`],
  ];
  for (const [vars, expected] of cases) {
    const env = envWith(vars);
    const before = cli(['check', '--json', name], { env });
    assert.equal(before.code, 3);
    const { time, ...said } = parsed(before.stdout, 'check');
    assert.deepEqual(said, { target: name, path: join(expected, name), state: 'absent' });
    assert.ok(time <= Date.now());
    if (expected === own) assert.equal(existsSync(expected), false, `a check never creates ${expected}`);
    // The runner creates it 0700, whatever the umask.
    const runner = await start(t, '/bin/sh', ['-c', `umask 000; exec "${process.execPath}" "${BIN}" run ${name}`], { env });
    await until(() => cli(['check', name], { env }).code === 0, `${name} alive in ${expected}`);
    assert.equal(statSync(expected).mode & 0o777, 0o700);
    assert.equal(statSync(join(expected, name)).mode & 0o777, 0o600);
    assert.equal(cli(['check', join(expected, name)]).code, 0, 'the same FIFO by its path');
    await kill(runner, 'SIGTERM');
    assert.equal(cli(['check', name], { env }).code, 3);
  }
  assert.equal(existsSync(join(dir, 'xdg', 'proc-alive')), false);
  assert.match(cli(['--help'], { env: envWith({ PROC_ALIVE_DIR: own }) }).stdout, new RegExp(`\\(here: ${own}\\)`));
});

test('another user: their shells, services and cron jobs share /tmp/proc-alive-<uid>', { skip: AS_ROOT }, async (t) => {
  const dist = publicDist(t);
  const name = `web-${process.pid}`;
  const home = `/tmp/proc-alive-${NOBODY}`;
  const [cmd, ...pre] = as(NOBODY);
  // A "login shell" (XDG_RUNTIME_DIR set) holds; a "service" (none set) checks it by name.
  const runner = await start(t, 'env', [`XDG_RUNTIME_DIR=/run/user/${NOBODY}`, cmd, ...pre, process.execPath, join(dist, 'bin.cjs'), 'run', name, '60']);
  await until(() => cliAs(NOBODY, dist, ['check', name], { env: envWith({}) }).code === 0, 'held by name');
  assert.equal(cli(['check', join(home, name)]).code, 0);
  await kill(runner, 'SIGTERM');
});

test('a default directory that is a symlink is refused, and nothing is made through it', async (t) => {
  const dir = tmp(t);
  const victim = join(dir, 'victim');
  mkdirSync(victim, { mode: 0o755 });
  symlinkSync(victim, join(dir, 'link'));
  const env = envWith({ PROC_ALIVE_DIR: join(dir, 'link') });
  for (const args of [['run', 'web', '1'], ['check', 'web'], ['status']]) {
    const r = cli(args, { env });
    assert.equal(r.code, args[0] === 'run' ? 125 : 4, `${args[0]}: ${r.stderr}`);
    assert.match(r.stderr, /default directory is a symbolic link: remove it, or set PROC_ALIVE_DIR to a directory of yours\n$/);
  }
  assert.deepEqual(readdirSync(victim), []);
  assert.equal(statSync(victim).mode & 0o777, 0o755);
});

test('another user racing a symlink in for the default directory never redirects a holder', { skip: AS_ROOT }, async (t) => {
  // The default directory in a sticky, world-writable place (as /tmp is); nobody swaps a symlink to a
  // directory of root's in and out of its name while root starts and stops holders there.
  const shared = tmp(t, 0o1777);
  const victim = join(tmp(t, 0o755), 'etc');
  mkdirSync(victim, { mode: 0o755 });
  writeFileSync(join(victim, 'passwd'), 'root:x:0:0\n', { mode: 0o644 });
  const pa = join(shared, 'pa');
  const racer = start(t, 'setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', process.execPath, '-e',
    `const fs = require('fs'); for (;;) { try { fs.symlinkSync(${JSON.stringify(victim)}, ${JSON.stringify(pa)}); } catch {} try { fs.unlinkSync(${JSON.stringify(pa)}); } catch {} }`]);
  const r = await racer;
  const env = envWith({ PROC_ALIVE_DIR: pa });
  // A command that fails leaves its FIFO and record behind (a crash): evidence of where they were made.
  let held = 0;
  for (let i = 0; i < 40; i++) {
    const run = cli(['run', 'web', '--', 'false'], { env });
    if (run.code === 1) held++;
    else assert.match(run.stderr, /default directory (is a symbolic link|is owned by uid|changed while it was opened)|no such file/, run.stderr);
  }
  await kill(r);
  assert.deepEqual(readdirSync(victim), ['passwd'], 'nothing made in the directory the symlink points to');
  assert.equal(statSync(join(victim, 'passwd')).mode & 0o777, 0o644);
  assert.equal(statSync(victim).mode & 0o777, 0o755);
  // Not vacuous: unraced, the same run holds, in a real directory of root's at that name (under load the
  // racer may win all 40 rounds above: each was refused for one of the reasons allowed there).
  if (held === 0) {
    if (lstatSync(pa, { throwIfNoEntry: false })?.isSymbolicLink()) rmSync(pa); // the racer's last
    assert.equal(cli(['run', 'web', '--', 'false'], { env }).code, 1, 'unraced, the command runs (and fails: 1)');
  }
  assert.ok(lstatSync(pa).isDirectory() && lstatSync(pa).uid === 0, 'the default directory is a real directory of root\'s');
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
  assert.equal(noParent.stderr, `proc-alive: cannot hold ${missing}: directory ${join(missing, '..')}: no such file or directory (ENOENT)\n`);

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
