// Exclusive start and shared holding: real processes racing on one target.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmp, cli, state, start, startRunner, kill, until, compileC, BIN, ROOT } from './helpers.js';

/** Starts n contender processes; each answers one line per command sent. */
async function contenders(t, n, path, mode = 'exclusive') {
  const all = [];
  for (let i = 0; i < n; i++) {
    const child = spawn(process.execPath, [join(ROOT, 'test', 'fixtures', 'contender.js'), path, mode], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const lines = [];
    const waiting = [];
    createInterface({ input: child.stdout }).on('line', (l) => (waiting.length ? waiting.shift()(l) : lines.push(l)));
    child.next = () => (lines.length ? Promise.resolve(lines.shift()) : new Promise((r) => waiting.push(r)));
    t.after(() => child.kill('SIGKILL'));
    all.push(child);
  }
  await Promise.all(all.map((c) => once(c, 'spawn')));
  return {
    all,
    /** Sends `line` to every contender as close together as possible; resolves to their answers. */
    async send(line) {
      for (const c of all) c.stdin.write(`${line}\n`);
      return Promise.all(all.map((c) => c.next()));
    },
  };
}

test('30 contenders released together, 50 rounds: exactly one holds each round', async (t) => {
  const path = join(tmp(t), 'p');
  const pool = await contenders(t, 30, path);
  for (let round = 0; round < 50; round++) {
    const answers = await pool.send('go');
    const held = answers.filter((a) => a === 'held').length;
    assert.equal(held, 1, `round ${round}: ${held} holders (${answers.join(' ')})`);
    assert.deepEqual(answers.filter((a) => a !== 'held' && a !== 'EHELD'), [], `round ${round}: only EHELD refusals`);
    assert.equal(state(path).state, 'alive');
    await pool.send('release');
    assert.equal(state(path).state, 'absent', `round ${round}: released cleanly`);
  }
});

test('30 `proc-alive run` at once: one holds, the others exit 75 naming the target and the pid', async (t) => {
  const path = join(tmp(t), 'p');
  const runs = [];
  for (let i = 0; i < 30; i++) {
    const child = spawn(process.execPath, [BIN, 'run', path, '30'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    // 'close', not 'exit': stderr may still hold data when the process has exited.
    child.result = once(child, 'close').then(([code]) => ({ code, stderr }));
    t.after(() => child.kill('SIGKILL'));
    runs.push(child);
  }
  // All but one exit on their own; the one left is the holder.
  await until(() => runs.filter((c) => c.exitCode !== null).length === 29, '29 refusals', 30000);
  const winner = runs.find((c) => c.exitCode === null);
  assert.equal(state(path).state, 'alive');
  let named = 0;
  for (const c of runs.filter((r) => r !== winner)) {
    const { code, stderr } = await c.result;
    assert.equal(code, 75, stderr);
    assert.equal(stderr.trim().split('\n').length, 1);
    // The pid when the winner's record is there; a contender turned away in the microseconds before it
    // is written says "already held" alone. A pid named is the winner's.
    const m = new RegExp(`^proc-alive: cannot hold ${path}: already held(?: by pid (\\d+) \\(.*\\))?\n$`).exec(stderr);
    assert.ok(m, stderr);
    if (m[1] !== undefined) {
      assert.equal(Number(m[1]), winner.pid);
      named++;
    }
  }
  assert.ok(named > 0, 'the refusals name the holder');
  winner.kill('SIGTERM');
  assert.equal((await winner.result).code, 0);
  assert.equal(state(path).state, 'absent');
});

test('a SIGKILLed holder frees the target at once: no timeout, no cleanup', async (t) => {
  const path = join(tmp(t), 'p');
  for (let i = 0; i < 5; i++) {
    const runner = await startRunner(t, path);
    await kill(runner);
    assert.equal(state(path).state, 'dead');
    const next = cli(['run', path, '0']); // holds, then releases at once
    assert.equal(next.code, 0, next.stderr);
  }
  assert.equal(state(path).state, 'absent');
  assert.deepEqual(readdirSync(join(path, '..')), [], 'FIFO, lock and record all removed');
});

test('a FIFO held by a process that is not proc-alive (the C runner) is not taken over', async (t) => {
  const path = join(tmp(t), 'p');
  const runner = await start(t, compileC('runner'), [path, '30']);
  await until(() => state(path).state === 'alive', 'C runner');
  const r = cli(['run', path, '1']);
  assert.equal(r.code, 75);
  assert.deepEqual(r.errLines, [`proc-alive: cannot hold ${path}: already held by a process that keeps no record (not proc-alive)`]);
  assert.equal(state(path).state, 'alive');
  await kill(runner);
});

test('--shared: a pool is alive while any member lives; exclusive and shared exclude each other', async (t) => {
  const path = join(tmp(t), 'p');
  const pool = [];
  for (let i = 0; i < 3; i++) pool.push(await startRunner(t, path, ['--shared', '60']));
  const excl = cli(['run', path, '1']);
  assert.equal(excl.code, 75, 'exclusive refused while shared holders live');
  await kill(pool[0]);
  await kill(pool[1]);
  assert.equal(state(path).state, 'alive', 'the third still holds');
  // A shared member that leaves cleanly while another holds removes nothing.
  const brief = await startRunner(t, path, ['--shared', '60']);
  await kill(brief, 'SIGTERM');
  assert.equal(state(path).state, 'alive');
  // The last one to leave cleanly removes the FIFO, the record and the lock file.
  assert.deepEqual((await kill(pool[2], 'SIGTERM')).code, 0);
  assert.equal(state(path).state, 'absent');
  assert.deepEqual(readdirSync(join(path, '..')), []);

  const only = await startRunner(t, path, ['30']);
  const shared = cli(['run', path, '--shared', '1']);
  assert.equal(shared.code, 75, 'shared refused while an exclusive holder lives');
  await kill(only);
});

test('shared contenders: 30 at once all hold, and the target is absent once all let go', async (t) => {
  const path = join(tmp(t), 'p');
  const pool = await contenders(t, 30, path, 'shared');
  for (let round = 0; round < 5; round++) {
    assert.deepEqual(new Set(await pool.send('go')), new Set(['held']), `round ${round}`);
    assert.equal(state(path).state, 'alive');
    await pool.send('release');
    assert.equal(state(path).state, 'absent', `round ${round}`);
  }
});
