// A short soak (the long one is `npm run soak`): SIGKILL/restart cycles of `run` under a looping checker.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { soak } from '../scripts/soak.js';

test('30 SIGKILL/restart cycles with a checker looping and a watcher: no wrong answer, no missed or invented transition', async () => {
  const r = await soak({ cycles: 30 });
  assert.ok(r.checks > 0, 'the checker ran');
  assert.deepEqual(
    { aliveInGap: r.aliveInGap, notAliveWhileHeld: r.notAliveWhileHeld, errors: r.errors, failures: r.failures },
    { aliveInGap: 0, notAliveWhileHeld: 0, errors: 0, failures: [] },
    r.firstWrong ?? '',
  );
  assert.equal(r.transitions.firstDifference, null, JSON.stringify(r.transitions));
  assert.equal(r.transitions.reported, 1 + 2 * 30);
});
