// The holder: created mode, the fd's flags, children, stale FIFOs, refusal, release, and the library.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { tmp, cli, state, startRunner, start, kill, until, fdOf, DIST, BIN, SYNC_GUARD_MS } from './helpers.js';
import { hold, check, checkSync, ProcAliveError } from '../dist/index.js';

const modeOf = (path) => statSync(path).mode & 0o7777;

test('the FIFO is created 0600 under umask 000, and --mode is exact under umask 077', async (t) => {
  const dir = tmp(t);
  const a = join(dir, 'a');
  const loose = await start(t, '/bin/sh', ['-c', `umask 000; exec "${process.execPath}" "${BIN}" run "${a}" 120`]);
  await until(() => state(a).state === 'alive', `${a} alive`);
  assert.equal(modeOf(a), 0o600);
  const b = join(dir, 'b');
  const tight = await start(t, '/bin/sh', ['-c', `umask 077; exec "${process.execPath}" "${BIN}" run --mode 0620 "${b}" 120`]);
  await until(() => state(b).state === 'alive', `${b} alive`);
  assert.equal(modeOf(b), 0o620);
  await kill(loose);
  await kill(tight);
});

test("the holder's fd is read-only, non-blocking and close-on-exec (/proc/PID/fdinfo)", async (t) => {
  const path = join(tmp(t), 'p');
  const runner = await startRunner(t, path);
  const fd = fdOf(runner.pid, path);
  assert.ok(fd !== undefined, 'the runner has the FIFO open');
  const flags = Number.parseInt(/^flags:\s+(\d+)$/m.exec(readFileSync(`/proc/${runner.pid}/fdinfo/${fd}`, 'utf8'))[1], 8);
  assert.equal(flags & 0o3, 0, 'O_RDONLY');
  assert.ok(flags & 0o4000, 'O_NONBLOCK');
  assert.ok(flags & 0o2000000, 'O_CLOEXEC');
});

test('a child spawned by the holder does not keep it alive after the holder is SIGKILLed', async (t) => {
  const path = join(tmp(t), 'p');
  const script = `
    import { hold } from ${JSON.stringify(join(DIST, 'index.js'))};
    import { spawn } from 'node:child_process';
    hold(process.argv[1]);
    const child = spawn('sleep', ['120'], { stdio: ['ignore', 'inherit', 'inherit'], detached: true });
    child.unref();
    process.stdout.write(child.pid + '\\n');
    setInterval(() => {}, 1e6);`;
  const holder = await start(t, process.execPath, ['--input-type=module', '-e', script, path], { stdio: ['ignore', 'pipe', 'pipe'] });
  const childPid = await new Promise((resolve) => holder.stdout.once('data', (d) => resolve(Number(String(d).trim()))));
  t.after(() => { try { process.kill(childPid, 'SIGKILL'); } catch {} });
  assert.equal(state(path).state, 'alive');
  assert.equal(fdOf(childPid, path), undefined, 'the child did not inherit the reader');
  await kill(holder);
  process.kill(childPid, 0); // the child still runs
  assert.equal(state(path).state, 'dead');
});

test('a path that is not a FIFO is refused and left untouched', async (t) => {
  const file = join(tmp(t), 'file');
  writeFileSync(file, 'precious\n');
  chmodSync(file, 0o644);
  const before = statSync(file);
  const r = cli(['run', file, '1']);
  assert.equal(r.code, 125);
  assert.deepEqual(r.errLines, [`proc-alive: cannot hold ${file}: not a FIFO (regular file)`]);
  const after = statSync(file);
  assert.equal(readFileSync(file, 'utf8'), 'precious\n');
  assert.deepEqual([after.mode, after.ino, after.mtimeMs], [before.mode, before.ino, before.mtimeMs]);
  assert.throws(() => hold(file), (e) => e instanceof ProcAliveError && e.code === 'ENOTFIFO' && e.path === file);
});

test('library: hold, check, checkSync, close, keep, dispose', async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'p');
  assert.equal(checkSync(path), 'absent');
  assert.equal(await check(path), 'absent');
  const holder = hold(path);
  assert.equal(typeof holder.fd, 'number');
  assert.equal(holder.path, path);
  assert.equal(checkSync(path), 'alive');
  assert.equal(await check(path), 'alive');
  assert.equal(state(path).state, 'alive', 'another process sees it too');
  holder.close();
  holder.close(); // idempotent
  assert.equal(holder.closed, true);
  assert.equal(existsSync(path), false);
  assert.equal(checkSync(path), 'absent');

  const kept = hold(path, { keep: true });
  kept[Symbol.dispose]();
  assert.equal(checkSync(path), 'dead', 'keep: the FIFO stays, without a reader');
  assert.equal(await check(path), 'dead');
  const again = hold(path); // reuses the stale FIFO
  assert.equal(checkSync(path), 'alive');
  again.close();
  assert.equal(existsSync(path), false);
});

test('close() never removes a FIFO another holder still holds, nor one that replaced ours', async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'p');
  const other = await startRunner(t, path, ['--shared', '120']);
  const mine = hold(path, { shared: true });
  mine.close();
  assert.equal(checkSync(path), 'alive', 'the other holder still holds it, so it stays');
  await kill(other, 'SIGTERM');
  assert.equal(existsSync(path), false, 'the last clean exit removes it');

  const replaced = hold(path);
  const elsewhere = join(dir, 'new');
  const newer = hold(elsewhere, { keep: true });
  const newIno = statSync(elsewhere).ino;
  renameSync(elsewhere, path);
  replaced.close();
  assert.equal(statSync(path).ino, newIno);
  assert.equal(checkSync(path), 'alive', 'the FIFO renamed over ours was left alone');
  newer.close();
});

test('hold refuses modes that let others read, and bad options', () => {
  for (const mode of [0o644, 0o640, 0o604, 0o700, 0o400, 0o4600, -1, 1.5]) {
    assert.throws(() => hold('/tmp/never-created-proc-alive', { mode }), (e) => e instanceof ProcAliveError && e.code === 'EINVAL');
  }
  assert.equal(existsSync('/tmp/never-created-proc-alive'), false);
  const r = cli(['run', '--mode', '0644', '/tmp/never-created-proc-alive', '1']);
  assert.equal(r.code, 2);
  assert.equal(r.errLines.length, 3, 'the reason, then the two synopsis lines of run');
  assert.match(r.errLines[0], /mode 0644 is not allowed/);
});

test('importing the package has no side effects', () => {
  // Resources are sampled after a timer tick: the module loader's own file reads are still closing
  // right after an import (a 'CloseReq' shows for any module, even an empty one).
  const probe = `
    const events = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR1', 'exit', 'beforeExit', 'uncaughtException'];
    const settle = () => new Promise((r) => setTimeout(r, 10));
    const sample = () => ({ resources: process.getActiveResourcesInfo(), listeners: events.map((e) => process.listenerCount(e)) });
    await settle();
    const before = sample();
    await import(${JSON.stringify(join(DIST, 'index.js'))});
    await settle();
    const after = sample();
    const { createRequire } = await import('node:module');
    const koffi = Object.keys(createRequire(import.meta.url).cache).some((f) => f.includes('koffi'));
    console.log(JSON.stringify({ before, after, koffi }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { encoding: 'utf8', timeout: 5000 });
  assert.equal(r.status, 0, r.stderr);
  const { before, after, koffi } = JSON.parse(r.stdout);
  assert.deepEqual(after, before);
  assert.deepEqual(after.resources, []);
  assert.equal(koffi, false, 'the FFI is not loaded by an import');
});

test('preload() loads the FFI now, so the first hold() does not; with PROC_ALIVE_FFI=0 it says false', () => {
  const probe = (env) => spawnSync(process.execPath, ['--input-type=module', '-e', `
    const { preload } = await import(${JSON.stringify(join(DIST, 'index.js'))});
    const { createRequire } = await import('node:module');
    // koffi is loaded through require(): it is in the (process-wide) require cache once loaded.
    const koffiLoaded = () => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('/node_modules/koffi/'));
    console.log(JSON.stringify([koffiLoaded(), preload(), koffiLoaded(), preload()]));
  `], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: SYNC_GUARD_MS });
  const on = probe({});
  assert.equal(on.status, 0, on.stderr);
  assert.deepEqual(JSON.parse(on.stdout), [false, true, true, true], 'not loaded by the import; loaded by preload(); once');
  const off = probe({ PROC_ALIVE_FFI: '0' });
  assert.deepEqual(JSON.parse(off.stdout), [false, false, false, false]);
});
