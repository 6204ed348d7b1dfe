// daemontools and runit: their supervisors hold `supervise/ok`, and svok(8) checks a FIFO we hold.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmp, cli, state, start, startRunner, kill, until } from './helpers.js';
import { statusSync } from '../dist/index.js';

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const missing = (cmds) => (cmds.every(has) ? false : `needs ${cmds.join(', ')} (.ci/run installs daemontools and runit)`);

/** A service directory whose run script execs a long sleep. */
function service(t, name) {
  const dir = join(tmp(t), name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'run'), '#!/bin/sh\nexec sleep 120\n', { mode: 0o755 });
  return dir;
}

/** The service's own pid, from the supervisor's status file, once it runs. */
async function servicePid(dir) {
  let pid = 0;
  await until(() => (pid = statusSync(dir).holder?.pid ?? 0) > 0, `service in ${dir}`);
  return pid;
}

for (const [name, supervisor, extra] of [
  ['daemontools', 'supervise', 'svok'],
  ['runit', 'runsv', 'sv'],
]) {
  test(`${name}: a service directory is alive while ${supervisor} runs, as ${extra} says`, { skip: missing([supervisor, extra]) }, async (t) => {
    const dir = service(t, 'svc');
    assert.equal(cli(['check', dir]).code, 3, 'never supervised: absent');
    const sup = await start(t, supervisor, [dir]);
    await until(() => state(dir).state === 'alive', `${supervisor} up`);
    const pid = await servicePid(dir);
    t.after(() => spawnSync('kill', ['-9', String(pid)]));
    const svok = () => (name === 'daemontools' ? spawnSync('svok', [dir]).status : spawnSync('sv', ['check', dir]).status);
    assert.equal(svok(), 0);
    const st = statusSync(dir);
    assert.deepEqual([st.state, st.holder.supervisor, st.stale], ['alive', name, false]);
    const line = cli(['status', dir]);
    assert.equal(line.code, 0);
    assert.match(line.stdout, new RegExp(`^${dir}  alive    ${name}  service pid ${pid}  up \\d+s\\n$`));

    await kill(sup); // SIGKILL: supervise/ok stays, with no reader
    assert.equal(state(dir).state, 'dead');
    assert.equal(cli(['check', dir]).code, 1);
    assert.notEqual(svok(), 0, `${extra} agrees it is down`);
  });
}

test('svok says 0 for a service directory whose supervise/ok `proc-alive run` holds', { skip: missing(['svok']) }, async (t) => {
  const dir = join(tmp(t), 'svc');
  mkdirSync(join(dir, 'supervise'), { recursive: true });
  const ok = join(dir, 'supervise', 'ok');
  const runner = await startRunner(t, ok);
  assert.equal(spawnSync('svok', [dir]).status, 0);
  assert.equal(cli(['check', dir]).code, 0, 'and check, given the service directory, agrees');
  await kill(runner);
  assert.equal(spawnSync('svok', [dir]).status, 100, 'SIGKILLed: not running');
  const again = await startRunner(t, ok);
  await kill(again, 'SIGTERM');
  assert.equal(spawnSync('svok', [dir]).status, 100, 'stopped cleanly: not running');
});
