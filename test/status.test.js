// `status` and the holder record: who holds a target, and what is left of one that died.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmp, cli, state, start, startRunner, kill, until, compileC, BIN } from './helpers.js';
import { status, statusSync, listTargetsIn } from '../dist/index.js';
import { parsed } from './schema.js';

test('an alive target: pid, uptime and command, in a line and in JSON', async (t) => {
  const path = join(tmp(t), 'web');
  const wrapper = await start(t, process.execPath, [BIN, 'run', path, '--', 'sleep', '60']);
  // The wrapper's first record names itself; the command's replaces it once the command runs.
  // (The command's record may be written an instant before the FIFO is in place: wait for both.)
  await until(() => {
    const s = statusSync(path);
    return s.state === 'alive' && s.holder !== null && s.holder.pid !== s.holder.wrapper;
  }, "the command's record, alive");
  const st = statusSync(path);
  assert.equal(st.state, 'alive');
  assert.equal(st.stale, false);
  assert.deepEqual(st.holder.command, ['sleep', '60']);
  assert.equal(st.holder.wrapper, wrapper.pid);
  assert.notEqual(st.holder.pid, wrapper.pid, 'the pid is the command, not the wrapper');
  assert.deepEqual(await status(path), st, 'the async twin agrees');
  const r = cli(['status', path]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, new RegExp(`^${path}  alive    pid ${st.holder.pid}  up \\d+s  sleep 60\\n$`));
  const j = cli(['status', '--json', path]);
  const record = parsed(j.stdout, 'status');
  assert.equal(record.state, 'alive');
  assert.equal(record.holder.pid, st.holder.pid);
  assert.equal(typeof record.holder.hostname, 'string');
  assert.equal(typeof record.holder.version, 'string');
  assert.ok(Date.parse(record.holder.started) <= Date.now());
  await kill(wrapper, 'SIGTERM');
});

test('a record left by a holder that died is stale, never alive', async (t) => {
  const path = join(tmp(t), 'web');
  const runner = await startRunner(t, path);
  await kill(runner);
  const st = statusSync(path);
  assert.deepEqual([st.state, st.stale, st.holder.pid], ['dead', true, runner.pid]);
  const r = cli(['status', path]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, new RegExp(`^${path}  dead     stale record: pid ${runner.pid}, started \\d+s ago  `));

  // A runner that keeps no record (the C one) now holds the FIFO: alive, and the old record is stale.
  const c = await start(t, compileC('runner'), [path, '30']);
  await until(() => state(path).state === 'alive', 'C runner');
  const now = statusSync(path);
  assert.deepEqual([now.state, now.stale], ['alive', true]);
  await kill(c);
});

test('with no target, status lists every target in the default directory', async (t) => {
  const dir = tmp(t, 0o700);
  const env = { ...process.env, PROC_ALIVE_DIR: dir };
  const empty = cli(['status'], { env });
  assert.deepEqual([empty.code, empty.stdout, empty.errLines], [0, '', [`proc-alive: no targets in ${dir}`]]);
  const a = await startRunner(t, 'api', ['60'], { env });
  const w = await startRunner(t, 'web', ['60'], { env });
  await kill(w);
  writeFileSync(join(dir, 'notes.txt'), 'not a target\n');
  mkdirSync(join(dir, 'svc'));
  writeFileSync(join(dir, 'svc', 'run'), '#!/bin/sh\n');
  assert.deepEqual(listTargetsIn(dir), [join(dir, 'api'), join(dir, 'svc'), join(dir, 'web')]);
  const r = cli(['status'], { env });
  assert.equal(r.code, 1, 'web is dead');
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 3);
  assert.match(lines[0], new RegExp(`^api  alive    pid ${a.pid}  up `));
  assert.match(lines[1], /^svc  absent$/);
  assert.match(lines[2], /^web  dead     stale record: /);
  await kill(a);
});
