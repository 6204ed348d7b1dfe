// Interop both ways with a minimal C runner and C checker (the seed's semantics), compiled with cc.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tmp, state, startRunner, start, kill, until, compileC, HANG_GUARD_MS } from './helpers.js';

/** One run of the C checker: [exit code, what it printed]. */
const cChecker = (path) => {
  const r = spawnSync(compileC('checker'), [path], { encoding: 'utf8', timeout: HANG_GUARD_MS });
  return [r.status, r.stdout];
};

test('proc-alive checks a C runner', async (t) => {
  const path = join(tmp(t), 'c-runner');
  const runner = await start(t, compileC('runner'), [path, '120']);
  await until(() => state(path).state === 'alive', 'the C runner to hold its FIFO');
  await kill(runner);
  assert.equal(state(path).state, 'dead');
  // and proc-alive's runner takes over the C runner's stale FIFO
  await startRunner(t, path);
  assert.equal(state(path).state, 'alive');
});

test('a C checker checks proc-alive run', async (t) => {
  const path = join(tmp(t), 'node-runner');
  assert.deepEqual(cChecker(path), [3, 'absent\n']);
  const runner = await startRunner(t, path);
  assert.deepEqual(cChecker(path), [0, 'alive\n']);
  await kill(runner);
  assert.deepEqual(cChecker(path), [1, 'dead\n']);
});
