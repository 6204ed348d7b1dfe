// watch(): every change of state, in order, without duplicates, whoever the runner is.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, openSync, readSync, closeSync, readFileSync, renameSync, rmSync, writeFileSync, constants } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { tmp, cli, state, start, startRunner, kill, until, compileC, BIN } from './helpers.js';
import { watch, hold } from '../dist/index.js';
import { parsed } from './schema.js';

/** Collects a watcher's events; `next(n)` waits until n more have come (hang guard: 10 s). */
function recorder(w) {
  const events = [];
  w.on('change', (e) => events.push(e));
  return {
    events,
    states: (target) => events.filter((e) => target === undefined || e.target === target).map((e) => e.state),
    until: (fn, what) => until(() => fn(events), what),
  };
}

const lastState = (r, target) => r.states(target).at(-1);

test('absent → alive → dead → alive → absent → recreated → replaced → removed, each once and in order', async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'p');
  const w = watch(path);
  t.after(() => w.close());
  const r = recorder(w);
  await r.until(() => r.events.length === 1, 'first report');
  assert.equal(w.mechanism, 'events');
  const runner = await startRunner(t, path);
  await r.until(() => lastState(r) === 'alive', 'alive');
  await kill(runner);
  await r.until(() => lastState(r) === 'dead', 'dead');
  const again = await startRunner(t, path);
  await r.until(() => lastState(r) === 'alive', 'alive again');
  await kill(again, 'SIGTERM');
  await r.until(() => lastState(r) === 'absent', 'absent');
  // A clean stop removes the FIFO while it still holds it, then closes the reader: never dead.
  assert.deepEqual(r.states().slice(3), ['alive', 'absent']);
  const seen = r.events.length;

  execFileSync('mkfifo', [path]); // recreated: a new inode, no reader
  await r.until(() => lastState(r) === 'dead', 'recreated');
  const c = await start(t, compileC('runner'), [path, '30']); // a runner that is not proc-alive
  await r.until(() => lastState(r) === 'alive', 'C runner');
  const other = join(dir, 'other');
  execFileSync('mkfifo', [other]);
  renameSync(other, path); // replaced by another FIFO while the C runner holds the old one
  await r.until(() => lastState(r) === 'dead', 'replaced by a new FIFO');
  writeFileSync(join(dir, 'file'), 'x');
  renameSync(join(dir, 'file'), path); // replaced by something that is not a FIFO
  await r.until(() => lastState(r) === 'unknown', 'not a FIFO');
  assert.equal(r.events.at(-1).code, 'ENOTFIFO');
  rmSync(path);
  await r.until(() => lastState(r) === 'absent', 'removed');
  assert.deepEqual(r.states().slice(seen), ['dead', 'alive', 'dead', 'unknown', 'absent']);
  for (let i = 1; i < r.events.length; i++) {
    assert.notEqual(r.events[i].state, r.events[i - 1].state, 'no duplicate');
    assert.equal(r.events[i].previous, r.events[i - 1].state, 'previous is the state reported before');
    assert.ok(r.events[i].time >= r.events[i - 1].time);
  }
  await kill(c);
});

test('a clean stop is never a death: hold().close(), run and SIGTERM, a wrapped command that exits 0', async (t) => {
  const dir = tmp(t);
  const stops = {
    'hold().close()': async (path) => {
      const h = hold(path);
      return () => h.close();
    },
    'run, SIGTERM': async (path) => {
      const runner = await startRunner(t, path);
      return () => kill(runner, 'SIGTERM');
    },
    'run -- sleep, exit 0': async (path) => {
      const child = await start(t, process.execPath, [BIN, 'run', path, '--', 'sleep', '0.3']);
      return () => child.exited;
    },
  };
  for (const [how, begin] of Object.entries(stops)) {
    for (let i = 0; i < 5; i++) {
      const path = join(dir, `${how.replace(/\W+/g, '-')}${i}`);
      const w = watch(path);
      const r = recorder(w);
      await once(w, 'ready');
      const stop = await begin(path);
      await r.until(() => lastState(r) === 'alive', `${how}: alive`);
      await stop();
      await r.until(() => lastState(r) === 'absent', `${how}: absent`);
      await new Promise((resolve) => setTimeout(resolve, 50)); // anything reported late comes now
      await w.close();
      assert.deepEqual(r.states(), ['absent', 'alive', 'absent'], how);
    }
  }
});

test('SIGKILL of 100 runners at once: 100 dead events, one per target', async (t) => {
  const dir = tmp(t);
  const paths = Array.from({ length: 100 }, (_, i) => join(dir, `r${i}`));
  const runners = await Promise.all(paths.map((p) => start(t, compileC('runner'), [p, '60'])));
  await until(() => paths.every((p) => state(p).state === 'alive'), '100 runners', 30000);
  const w = watch(paths);
  t.after(() => w.close());
  const r = recorder(w);
  await r.until(() => r.events.length === 100, '100 first reports');
  assert.ok(r.events.every((e) => e.state === 'alive'));
  for (const runner of runners) runner.kill('SIGKILL');
  await r.until(() => r.events.length >= 200, '100 deaths');
  await new Promise((resolve) => setTimeout(resolve, 100)); // nothing more may come
  const deaths = r.events.slice(100);
  assert.equal(deaths.length, 100);
  assert.deepEqual(new Set(deaths.map((e) => e.state)), new Set(['dead']));
  assert.equal(new Set(deaths.map((e) => e.target)).size, 100);
});

test('a watched directory: its targets appear and disappear with it', async (t) => {
  const dir = tmp(t, 0o700);
  const w = watch(dir);
  t.after(() => w.close());
  const r = recorder(w);
  const env = { ...process.env, PROC_ALIVE_DIR: dir };
  const api = await startRunner(t, 'api', ['60'], { env });
  await r.until(() => lastState(r, join(dir, 'api')) === 'alive', 'api appears');
  writeFileSync(join(dir, 'notes.txt'), 'not a target');
  mkdirSync(join(dir, 'svc', 'supervise'), { recursive: true });
  await r.until(() => lastState(r, join(dir, 'svc')) === 'absent', 'a service directory appears (never supervised)');
  const svcRunner = await startRunner(t, join(dir, 'svc', 'supervise', 'ok'), ['60']);
  await r.until(() => lastState(r, join(dir, 'svc')) === 'alive', 'its supervise/ok held');
  await kill(api, 'SIGTERM');
  await r.until(() => lastState(r, join(dir, 'api')) === 'absent', 'api disappears');
  await kill(svcRunner);
  await r.until(() => lastState(r, join(dir, 'svc')) === 'dead', 'svc dies');
  assert.ok(!r.events.some((e) => e.target.endsWith('notes.txt') || e.target.includes('.lock') || e.target.includes('.json')));
  // A new name after the old one left is followed again.
  const web = await startRunner(t, 'web', ['60'], { env });
  await r.until(() => lastState(r, join(dir, 'web')) === 'alive', 'web appears');
  await kill(web);
});

test('a watcher changes nothing a checker sees, and writes nothing', async (t) => {
  const path = join(tmp(t), 'p');
  const runner = await startRunner(t, path);
  const w = watch(path);
  t.after(() => w.close());
  const r = recorder(w);
  await r.until(() => lastState(r) === 'alive', 'alive');
  // Our own reader, next to the runner's: nothing is ever there to read.
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  assert.throws(() => readSync(fd, Buffer.alloc(16)), { code: 'EAGAIN' }, 'no byte written, and a writer is open');
  closeSync(fd);
  await kill(runner);
  await r.until(() => lastState(r) === 'dead', 'dead');
  assert.equal(state(path).state, 'dead', "the watcher's write end is no reader");
  assert.equal(cli(['check', path]).code, 1);
});

test('a runsv the watcher did not start is noticed coming up and going down', { skip: !hasCmd('runsv') && 'needs runsv' }, async (t) => {
  const dir = join(tmp(t), 'svc');
  mkdirSync(dir);
  writeFileSync(join(dir, 'run'), '#!/bin/sh\nexec sleep 120\n', { mode: 0o755 });
  const w = watch(dir);
  t.after(() => w.close());
  const r = recorder(w);
  await r.until(() => r.events.length === 1, 'first report');
  const sup = await start(t, 'runsv', [dir]);
  await r.until(() => lastState(r) === 'alive', 'runsv up');
  // The service's pid, once runsv has written it (an empty or missing file is not a pid: 0 would
  // signal our whole process group).
  let pid = 0;
  await until(() => {
    try {
      pid = Number(readFileSync(join(dir, 'supervise', 'pid'), 'utf8').trim());
    } catch {
      return false;
    }
    return Number.isInteger(pid) && pid > 1;
  }, 'runsv started the service');
  t.after(() => {
    if (pid > 1) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
  });
  await kill(sup);
  await r.until(() => lastState(r) === 'dead', 'runsv gone');
  // runsv makes supervise/ok, then opens it: a watcher that looks in between (a loaded machine) truly
  // sees it dead first.
  const states = r.states();
  if (states[1] === 'dead') states.splice(1, 1);
  assert.deepEqual(states, ['absent', 'alive', 'dead'], r.states().join(' '));
});

test('async iteration, close() ends it; AbortSignal closes the watcher', async (t) => {
  const path = join(tmp(t), 'p');
  const w = watch(path);
  const seen = [];
  const holder = hold(path);
  for await (const e of w) {
    seen.push(e.state);
    if (seen.length === 1) holder.close();
    if (e.state === 'absent' && seen.length > 1) w.close();
  }
  assert.equal(seen[0], 'alive');
  assert.equal(seen.at(-1), 'absent');
  const ac = new AbortController();
  const w2 = watch(path, { signal: ac.signal });
  ac.abort();
  assert.equal(w2.closed, true);
  w2.close(); // idempotent
});

test('CLI watch: a line per change, JSON lines with --json, exit 0 on SIGINT and SIGTERM', async (t) => {
  const path = join(tmp(t), 'p');
  for (const [flags, signal] of [[[], 'SIGINT'], [['--json'], 'SIGTERM']]) {
    const child = spawn(process.execPath, [BIN, 'watch', ...flags, path], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    t.after(() => child.kill('SIGKILL'));
    await until(() => out.split('\n').length > 1, 'first line');
    const runner = await startRunner(t, path);
    await until(() => out.split('\n').length > 2, 'second line');
    await kill(runner, 'SIGTERM');
    await until(() => /absent[^\n]*\n$/.test(out) && out.split('\n').length > 3, 'absent line');
    child.kill(signal);
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
    const lines = out.trim().split('\n');
    if (flags.length === 0) {
      assert.match(lines[0], new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z  ${path}  absent$`));
      assert.match(lines[1], new RegExp(`  ${path}  alive  \\(was absent\\)$`));
    } else {
      const events = lines.map((l) => parsed(l, 'watch-event'));
      assert.deepEqual(events.slice(0, 2).map((e) => [e.state, e.previous]), [['absent', null], ['alive', 'absent']]);
      assert.ok(events[0].time <= Date.now() && events[1].time >= events[0].time, 'milliseconds since the epoch');
    }
  }
});

function hasCmd(cmd) {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
