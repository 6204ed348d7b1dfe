// The seed's walk-through, through the CLI: run, check, SIGKILL, restart over the stale FIFO, SIGTERM.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tmp, cli, state, startRunner, start, kill, BIN, HANG_GUARD_MS } from './helpers.js';
import { parsedLines } from './schema.js';

test('run PATH 120, check, SIGKILL, restart over the stale FIFO, SIGTERM', async (t) => {
  const path = join(tmp(t), 'mah-pipe');
  assert.deepEqual(state(path), { code: 3, state: 'absent', stderr: '' });

  const first = await startRunner(t, path);
  assert.equal(cli(['check', path]).code, 0);
  assert.equal(cli(['checker', path]).stdout, `${path}: alive\n`);

  // The reader is gone before the parent can reap the runner: dead at once, no waiting.
  await kill(first, 'SIGKILL');
  assert.deepEqual(state(path), { code: 1, state: 'dead', stderr: '' });
  assert.ok(statSync(path).isFIFO(), 'a SIGKILLed runner leaves its FIFO behind');

  const second = await startRunner(t, path);
  assert.equal(cli(['check', path]).code, 0);

  const { code } = await kill(second, 'SIGTERM');
  assert.equal(code, 0, 'SIGTERM is a clean stop: exit 0');
  assert.equal(existsSync(path), false, 'a clean stop removes the FIFO');
  assert.deepEqual(state(path), { code: 3, state: 'absent', stderr: '' });
});

test('SIGINT is a clean stop too', async (t) => {
  const path = join(tmp(t), 'p');
  const runner = await startRunner(t, path);
  assert.equal((await kill(runner, 'SIGINT')).code, 0);
  assert.equal(existsSync(path), false);
});

test('run PATH 1 ends by itself, exit 0, FIFO removed', async (t) => {
  const path = join(tmp(t), 'p');
  const runner = await start(t, process.execPath, [BIN, 'run', path, '1']);
  const [code] = await runner.exited;
  assert.equal(code, 0);
  assert.equal(existsSync(path), false);
  assert.equal(state(path).code, 3);
});

test('the runner alias and fractional seconds', async (t) => {
  const path = join(tmp(t), 'p');
  const runner = await start(t, process.execPath, [BIN, 'runner', path, '0.2']);
  assert.deepEqual(await runner.exited, [0, null]);
});

test('check with several targets: 4 beats 1 beats 3 beats 0', async (t) => {
  const dir = tmp(t);
  const alive = join(dir, 'alive');
  const dead = join(dir, 'dead');
  const absent = join(dir, 'absent');
  await startRunner(t, alive);
  await kill(await startRunner(t, dead));
  assert.equal(cli(['check', alive, alive]).code, 0);
  assert.equal(cli(['check', alive, absent]).code, 3);
  assert.equal(cli(['check', absent, dead, alive]).code, 1);
  const all = cli(['check', alive, dead, absent, dir]);
  assert.equal(all.code, 4);
  assert.equal(all.stdout, `${alive}: alive\n${dead}: dead\n${absent}: absent\n`);
  assert.equal(all.errLines.length, 1);

  const json = cli(['check', '--json', alive, dead, absent, dir]);
  const records = parsedLines(json.stdout, 'check');
  assert.deepEqual(
    records.map((r) => [r.target, r.path, r.state]),
    [[alive, alive, 'alive'], [dead, dead, 'dead'], [absent, absent, 'absent'], [dir, dir, 'unknown']],
  );
  assert.equal(records[3].code, 'ENOTFIFO');

  const quiet = cli(['check', '-q', alive, dead, dir]);
  assert.deepEqual([quiet.code, quiet.stdout, quiet.stderr], [4, '', '']);
  assert.deepEqual(cli(['check', '--quiet', alive]).stdout, '');
});

test('--help and --version', () => {
  const help = cli(['--help']);
  assert.equal(help.code, 0);
  for (const word of ['run <target> [duration]', 'check <target>...']) {
    assert.ok(help.stdout.includes(word), `--help mentions ${word}`);
  }
  const check = cli(['check', '--help']);
  for (const word of ['--json', '--quiet', '3  absent', '4  unknown']) {
    assert.ok(check.stdout.includes(word), `check --help mentions ${word}`);
  }
  assert.match(cli(['--version']).stdout, /^\d+\.\d+\.\d+\n$/);
});

test('a closed stdout is no error: the answer is in the exit code', (t) => {
  const path = join(tmp(t), 'p');
  // `exec 1>&-` runs proc-alive with its stdout closed: every write fails (EBADF), like EPIPE, at once.
  const r = spawnSync('/bin/sh', ['-c', `exec 1>&-; exec "${process.execPath}" "${BIN}" check "${path}"`], { encoding: 'utf8', timeout: HANG_GUARD_MS });
  assert.deepEqual([r.status, r.stderr], [3, '']);
  const help = spawnSync('/bin/sh', ['-c', `"${process.execPath}" "${BIN}" --help | head -c 0`], { encoding: 'utf8', timeout: HANG_GUARD_MS });
  assert.deepEqual([help.status, help.stderr], [0, '']);
});
