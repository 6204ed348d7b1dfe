// waitAlive / waitDead and `proc-alive wait`: timeouts, aborts, exits, the thread pool, unref, fallback.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs';
import { join } from 'node:path';
import { tmp, cli, state, start, startRunner, kill, until, compileC, HANG_GUARD_MS, DIST, BIN } from './helpers.js';
import { child } from './child.js';
import { parsedLines } from './schema.js';
import { waitAlive, waitDead, hold, ProcAliveError } from '../dist/index.js';

const INDEX = JSON.stringify(join(DIST, 'index.js'));

/** Runs an ES module script in a new node process; returns { code, signal, stdout, stderr }. */
function script(source, args = [], env = {}) {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', source, ...args], {
    encoding: 'utf8',
    timeout: 10000,
    env: { ...process.env, ...env },
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

test('waits resolve at once when the state already holds, and when it is reached', async (t) => {
  const path = join(tmp(t), 'p');
  await waitDead(path); // absent counts as down
  const waiting = waitAlive(path);
  const runner = await start(t, compileC('runner'), [path, '30']);
  await waiting;
  await waitAlive(path);
  const down = waitDead(path);
  await kill(runner);
  assert.deepEqual(await down, ['dead']);
});

test('a wait already reached starts no event worker (a check tells); one not reached yet does', async (t) => {
  // The threads of the process before and after each wait (/proc/self/task): the event worker is one
  // more, and lingers a second after its last user.
  const dir = tmp(t);
  const alive = join(dir, 'alive');
  const runner = await start(t, compileC('runner'), [alive, '30']);
  await until(() => state(alive).state === 'alive', 'the runner');
  const r = script(
    `import { waitAlive, waitDead } from ${INDEX};
     import { readdirSync } from 'node:fs';
     const threads = () => readdirSync('/proc/self/task').length;
     const [alive, absent, later] = process.argv.slice(1);
     const before = threads();
     await waitAlive(alive);
     await waitDead([absent, absent + '2']);
     await waitAlive([alive, absent], { any: true });
     const reached = threads();
     const pending = waitAlive(later, { timeout: 1000 }).catch((e) => e.code);
     const waiting = threads();
     console.log(JSON.stringify({ before, reached, waiting, pending: await pending }));`,
    [alive, join(dir, 'absent'), join(dir, 'later')],
  );
  assert.equal(r.code, 0, r.stderr);
  const { before, reached, waiting, pending } = JSON.parse(r.stdout);
  assert.equal(reached, before, 'no thread started for waits already reached');
  assert.ok(waiting > before, `a thread started for a wait not reached (${before} → ${waiting})`);
  assert.equal(pending, 'ETIMEDOUT');
  await kill(runner);
});

test('timeout: ETIMEDOUT naming each target not there yet and its last state; abort: the signal reason', async (t) => {
  const dir = tmp(t);
  const alive = join(dir, 'alive');
  const holder = hold(alive);
  t.after(() => holder.close());
  const err = await waitAlive([alive, join(dir, 'a'), join(dir, 'b')], { timeout: 50 }).catch((e) => e);
  assert.ok(err instanceof ProcAliveError);
  assert.equal(err.code, 'ETIMEDOUT');
  assert.equal(err.message, `not alive after 0.05s: ${join(dir, 'a')} is absent, ${join(dir, 'b')} is absent`);
  assert.deepEqual(err.pending, [{ target: join(dir, 'a'), state: 'absent' }, { target: join(dir, 'b'), state: 'absent' }]);
  await waitAlive([alive, join(dir, 'a')], { any: true, timeout: 1000 });

  const ac = new AbortController();
  const waiting = waitAlive(join(dir, 'a'), { signal: ac.signal });
  ac.abort(new Error('stop waiting'));
  await assert.rejects(waiting, { message: 'stop waiting' });
  await assert.rejects(waitAlive(join(dir, 'a'), { signal: AbortSignal.abort() }), { name: 'AbortError' });
  await assert.rejects(waitAlive([]), { code: 'EINVAL' });
  await assert.rejects(waitAlive(join(dir, 'a'), { timeout: -1 }), { code: 'EINVAL' });
  await assert.rejects(waitAlive('/etc/passwd'), { code: 'ENOTFIFO' });
});

test('process.exit() and an uncaught exception while waiting both exit at once', (t) => {
  const dir = tmp(t);
  const viaExit = script(
    `import { waitAlive } from ${INDEX};
     waitAlive(process.argv[1]);
     setTimeout(() => process.exit(7), 100);`,
    [join(dir, 'never')],
  );
  assert.deepEqual([viaExit.code, viaExit.signal], [7, null], 'process.exit() did not hang');
  const viaThrow = script(
    `import { waitAlive } from ${INDEX};
     waitAlive(process.argv[1]);
     setTimeout(() => { throw new Error('boom'); }, 100);`,
    [join(dir, 'never')],
  );
  assert.deepEqual([viaThrow.code, viaThrow.signal], [1, null], 'the uncaught exception did not hang the exit');
  assert.match(viaThrow.stderr, /Error: boom/);
});

test('unref: a wait or watch that is unref\'d does not keep the process up; close() lets it exit', (t) => {
  const dir = tmp(t);
  const r = script(
    `import { waitAlive, watch } from ${INDEX};
     waitAlive(process.argv[1], { unref: true });
     watch(process.argv[1], { unref: true });
     const w = watch(process.argv[1]);
     setTimeout(() => w.close(), 100);`,
    [join(dir, 'never')],
  );
  assert.deepEqual([r.code, r.signal, r.stderr], [0, null, '']);
});

test('50 pending waits leave the thread pool free: fs.readFile completes', async (t) => {
  const dir = tmp(t);
  const waits = Array.from({ length: 50 }, (_, i) => waitAlive(join(dir, `w${i}`), { unref: true }).catch(() => {}));
  const read = new Promise((resolve, reject) => readFile(BIN, (err, data) => (err ? reject(err) : resolve(data))));
  const guard = new Promise((_, reject) => setTimeout(() => reject(new Error('readFile starved')), HANG_GUARD_MS).unref());
  const data = await Promise.race([read, guard]);
  assert.ok(data.length > 0);
  void waits;
});

test('without the FFI (PROC_ALIVE_FFI=0), waits fall back to polling and still see both changes', async (t) => {
  const path = join(tmp(t), 'p');
  const c = child(
    t,
    `import { waitAlive, waitDead, watch } from ${INDEX};
     const out = (o) => console.log(JSON.stringify(o));
     const w = watch(process.argv[1], { unref: true });
     w.once('ready', () => out({ waiting: w.mechanism }));
     await waitAlive(process.argv[1], { timeout: 20000 });
     out({ up: w.mechanism });
     await waitDead(process.argv[1], { timeout: 20000 });
     out({ down: true });`,
    [path],
    { env: { PROC_ALIVE_FFI: '0' } },
  );
  await c.until((l) => l.some((x) => x.waiting), 'the waiter waits');
  const runner = await startRunner(t, path);
  await c.until((l) => l.some((x) => x.up), 'up');
  await kill(runner, 'SIGTERM');
  await c.until((l) => l.some((x) => x.down), 'down');
  assert.deepEqual(c.lines, [{ waiting: 'polling' }, { up: 'polling' }, { down: true }]);
  assert.deepEqual(await c.exited, [0, null]);
});

test('CLI wait: 0 reached, 99 timed out naming the target, 4 cannot tell, 2 usage; --down, --any', async (t) => {
  const dir = tmp(t);
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  const runner = await startRunner(t, a);
  assert.equal(cli(['wait', a]).code, 0);
  assert.equal(cli(['wait', '--up', '--any', a, b]).code, 0);
  const timedOut = cli(['wait', '--timeout', '0.2', a, b]);
  assert.equal(timedOut.code, 99);
  assert.deepEqual(timedOut.errLines, [`proc-alive: timed out: not alive after 0.2s: ${b} is absent`]);
  assert.equal(cli(['wait', '--down', b]).code, 0);
  const notDown = cli(['wait', '--down', '--timeout', '0.1', a]);
  assert.deepEqual([notDown.code, notDown.errLines], [99, [`proc-alive: timed out: not down after 0.1s: ${a} is alive`]]);
  const down = start(t, process.execPath, [BIN, 'wait', '--down', a], { stdio: ['ignore', 'ignore', 'pipe'] });
  const waiter = await down;
  await kill(runner);
  assert.equal((await waiter.exited)[0], 0);
  assert.equal(state(a).state, 'dead');

  const unknown = cli(['wait', '/etc/passwd']);
  assert.deepEqual([unknown.code, unknown.errLines], [4, ['proc-alive: /etc/passwd: not a FIFO (regular file)']]);
  for (const [args, message] of [
    [['wait'], 'wait needs at least one target'],
    [['wait', '--up', '--down', a], '--up and --down cannot be combined'],
    [['wait', '--any', '--all', a], '--any and --all cannot be combined'],
    [['wait', '--timeout', 'soon', a], "--timeout: 'soon' is not a duration: give seconds (30, 0.5), or 500ms, 5s, 2m, 1h, 1d, 1m30s"],
    [['wait', '--timeout', '-1', a], "--timeout: '-1' is not a duration: give seconds (30, 0.5), or 500ms, 5s, 2m, 1h, 1d, 1m30s"],
    [['wait', ''], 'empty target: give a path or a name'],
    [['watch'], 'watch needs at least one target or directory'],
    [['watch', '--frob', a], "unknown option '--frob'"],
  ]) {
    const r = cli(args);
    // The reason, then the command's synopsis.
    assert.deepEqual([r.code, r.errLines[0], r.errLines.length], [2, `proc-alive: ${message}`, 2], args.join(' '));
    assert.match(r.errLines[1], new RegExp(`^usage: proc-alive ${args[0]} `));
  }
});

test('wait --json: a line per target reached; on a timeout, one per target not reached; the one that cannot be told', async (t) => {
  const dir = tmp(t);
  const [a, b] = [join(dir, 'a'), join(dir, 'b')];
  await startRunner(t, a);
  const up = cli(['wait', '--json', '--any', a, b]);
  assert.equal(up.code, 0, up.stderr);
  assert.deepEqual(parsedLines(up.stdout, 'wait').map((l) => [l.target, l.path, l.state]), [[a, a, 'alive']]);
  const late = cli(['wait', '--json', '--timeout', '0.1', a, b]);
  assert.equal(late.code, 99);
  assert.deepEqual(parsedLines(late.stdout, 'wait').map((l) => [l.target, l.state]), [[b, 'absent']]);
  const down = cli(['wait', '--down', '--json', b]);
  assert.deepEqual([down.code, parsedLines(down.stdout, 'wait').map((l) => l.state)], [0, ['absent']]);
  const bad = cli(['wait', '--json', '/dev/null']);
  assert.equal(bad.code, 4);
  assert.deepEqual(parsedLines(bad.stdout, 'wait').map((l) => [l.target, l.state, l.code]), [['/dev/null', 'unknown', 'ENOTFIFO']]);
});
