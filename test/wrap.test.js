// `proc-alive run <target> -- <command>`: the target reports the command's life, however it ends.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmp, cli, state, start, kill, until, fdOf, BIN } from './helpers.js';
import { wrap, statusSync } from '../dist/index.js';

/** Starts `proc-alive run path [opts] -- cmd...` and returns the wrapper child. */
function startWrapper(t, path, command, options = [], stdio = ['ignore', 'pipe', 'pipe']) {
  return start(t, process.execPath, [BIN, 'run', path, ...options, '--', ...command], { stdio });
}

/** The pid of the wrapped command, from the holder record (the wrapper's first record names itself). */
async function commandPid(path) {
  let pid;
  await until(() => {
    const h = statusSync(path).holder;
    pid = h?.pid;
    return h !== null && h.pid !== h.wrapper;
  }, `record of ${path}`);
  return pid;
}

const pidAlive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('the command runs with stdio passed through, and its exit code is the exit code', (t) => {
  const dir = tmp(t);
  const r = spawnSync(process.execPath, [BIN, 'run', join(dir, 'p'), '--', 'sh', '-c', 'echo out; echo err >&2; read x; echo "got $x"; exit 7'], {
    input: 'in\n',
    encoding: 'utf8',
  });
  assert.equal(r.status, 7);
  assert.equal(r.stdout, 'out\ngot in\n');
  assert.equal(r.stderr, 'err\n');
  // Exit 7 is a crash: the FIFO stays, dead, and the record says how it ended.
  assert.equal(state(join(dir, 'p')).state, 'dead');
  const st = statusSync(join(dir, 'p'));
  assert.equal(st.stale, true);
  assert.deepEqual([st.holder.exit.code, st.holder.exit.signal], [7, null]);
});

test('alive while the command runs; SIGKILL of the command → dead once the wrapper sees it, wrapper exits 137', async (t) => {
  const path = join(tmp(t), 'p');
  const wrapper = await startWrapper(t, path, ['sleep', '60']);
  await until(() => state(path).state === 'alive', 'alive');
  const pid = await commandPid(path);
  assert.equal(fdOf(pid, path), 3, 'the command holds the reader as fd 3');
  // The wrapper keeps the same reader until it has seen the command end: so it can remove the FIFO
  // before the last reader goes on a clean stop (alive → absent, never an instant of dead).
  assert.notEqual(fdOf(wrapper.pid, path), undefined, 'the wrapper holds the reader too');
  process.kill(pid, 'SIGKILL');
  const [code] = await wrapper.exited;
  assert.equal(code, 128 + 9);
  assert.equal(state(path).state, 'dead');
  const st = statusSync(path);
  assert.deepEqual([st.stale, st.holder.exit.signal], [true, 'SIGKILL']);
});

test('SIGKILL of the wrapper first: alive while the command runs, dead once it ends', async (t) => {
  const path = join(tmp(t), 'p');
  const wrapper = await startWrapper(t, path, ['sleep', '60']);
  await until(() => state(path).state === 'alive', 'alive');
  const pid = await commandPid(path);
  await kill(wrapper);
  assert.ok(pidAlive(pid), 'the command outlives its wrapper');
  assert.equal(state(path).state, 'alive', 'a command that runs is not reported dead');
  assert.equal(cli(['run', path, '1']).code, 75, 'and it still holds the lock');
  process.kill(pid, 'SIGKILL');
  await until(() => !pidAlive(pid) || readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] === 'Z', 'command gone');
  assert.equal(state(path).state, 'dead', 'a command that is gone is not reported alive');
});

test('the six signals are forwarded; one that ends the command leaves the target absent', async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'p');
  const log = join(dir, 'log');
  // A command that logs each signal it gets, and exits on SIGTERM.
  // It says it is ready (fd 5) once its handlers are installed: the target turns alive only then.
  const script = `
    const fs = require('node:fs');
    for (const s of ['SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2']) process.on(s, () => fs.appendFileSync(${JSON.stringify(log)}, s + '\\n'));
    process.on('SIGTERM', () => { fs.appendFileSync(${JSON.stringify(log)}, 'SIGTERM\\n'); process.exit(0); });
    fs.writeSync(Number(process.env.PROC_ALIVE_READY_FD), '\\n');
    setInterval(() => {}, 1e6);`;
  const wrapper = await startWrapper(t, path, [process.execPath, '-e', script], ['--ready']);
  await until(() => state(path).state === 'alive', 'alive');
  await commandPid(path);
  const order = ['SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];
  for (const [i, s] of order.entries()) {
    wrapper.kill(s);
    await until(() => existsSync(log) && readFileSync(log, 'utf8').split('\n').length > i + 1, `${s} forwarded`);
  }
  wrapper.kill('SIGTERM');
  const [code] = await wrapper.exited;
  assert.equal(readFileSync(log, 'utf8'), [...order, 'SIGTERM', ''].join('\n'));
  assert.equal(code, 0, 'the command exited 0 on SIGTERM');
  assert.equal(state(path).state, 'absent');
});

test('SIGTERM to the wrapper ends a command that does not catch it: exit 143, target absent', async (t) => {
  const path = join(tmp(t), 'p');
  const wrapper = await startWrapper(t, path, ['sleep', '60']);
  await until(() => state(path).state === 'alive', 'alive');
  await commandPid(path);
  wrapper.kill('SIGTERM');
  const [code] = await wrapper.exited;
  assert.equal(code, 143);
  assert.equal(state(path).state, 'absent');
  assert.deepEqual(readdirSync(join(path, '..')), [], 'FIFO, record and lock file removed');
});

test('a command that cannot start leaves a dead target dead and creates nothing', async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'p');
  const runner = await start(t, process.execPath, [BIN, 'run', path, '30']);
  await until(() => state(path).state === 'alive', 'alive');
  await kill(runner);
  assert.equal(state(path).state, 'dead');
  const before = readdirSync(dir).sort();
  const r = cli(['run', path, '--', join(dir, 'missing')]);
  assert.equal(r.code, 127);
  assert.deepEqual(r.errLines, [`proc-alive: ${path}: cannot run '${join(dir, 'missing')}': command not found`]);
  assert.equal(state(path).state, 'dead');
  assert.deepEqual(readdirSync(dir).filter((n) => !n.endsWith('.lock')).sort(), before.filter((n) => !n.endsWith('.lock')));
});

test('--ready: absent until the command writes a line to fd 5, then alive', async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'p');
  const go = join(dir, 'go');
  const running = join(dir, 'running');
  const wrapper = await startWrapper(t, path, ['sh', '-c', `touch ${running}; while [ ! -e ${go} ]; do sleep 0.02; done; echo ready >&$PROC_ALIVE_READY_FD; exec sleep 60`], ['--ready']);
  await until(() => existsSync(running), 'the command runs');
  assert.equal(state(path).state, 'absent', 'not alive before it is ready');
  spawnSync('touch', [go]);
  await until(() => state(path).state === 'alive', 'alive once ready');
  await kill(wrapper);
});

test('--ready: a command that ends before it is ready exits with its code and leaves the target as it was', (t) => {
  const dir = tmp(t);
  const r = cli(['run', join(dir, 'p'), '--ready', '--', 'sh', '-c', 'exit 4']);
  assert.equal(r.code, 4);
  assert.deepEqual(r.errLines, [`proc-alive: ${join(dir, 'p')}: 'sh' ended before it was ready`]);
  assert.equal(state(join(dir, 'p')).state, 'absent');
  assert.deepEqual(readdirSync(dir), []);
});

test("a child that inherits fd 3 keeps the target alive; closing fds 3 and 4 in it avoids that", async (t) => {
  const dir = tmp(t);
  const kept = join(dir, 'kept');
  const r1 = cli(['run', kept, '--', 'sh', '-c', 'sleep 60 >/dev/null 2>&1 & echo $!'], { timeout: 5000 });
  const leftover = Number(r1.stdout.trim());
  t.after(() => process.kill(leftover, 'SIGKILL'));
  assert.equal(r1.code, 0);
  assert.equal(state(kept).state, 'alive', 'the background sleep holds the inherited reader');
  const clean = join(dir, 'clean');
  const r2 = cli(['run', clean, '--', 'sh', '-c', 'sleep 60 >/dev/null 2>&1 3<&- 4<&- & echo $!'], { timeout: 5000 });
  const other = Number(r2.stdout.trim());
  t.after(() => process.kill(other, 'SIGKILL'));
  assert.equal(r2.code, 0);
  assert.equal(state(clean).state, 'absent');
});

test('the command sees where its descriptors are; the library gives the child and the exit', async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'p');
  const w = wrap(path, 'sh', ['-c', 'echo "$PROC_ALIVE_TARGET $PROC_ALIVE_FD $PROC_ALIVE_LOCK_FD ${PROC_ALIVE_READY_FD-none}" > ' + join(dir, 'env')]);
  await w.alive;
  const exit = await w.exited;
  assert.deepEqual(exit, { code: 0, signal: null, status: 0, clean: true });
  assert.equal(readFileSync(join(dir, 'env'), 'utf8'), `${path} 3 4 none\n`);
  assert.equal(state(path).state, 'absent');
  await assert.rejects(wrap(join(dir, 'q'), join(dir, 'nope'), []).exited, { code: 'ENOENT' });
});
