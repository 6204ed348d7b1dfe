// Watching and waiting never go deaf (issue 8): each fault found by review, with real processes. Each
// of these tests failed on the code before the fix (9d37f74).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, constants, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { once } from 'node:events';
import { tmp, state, start, startRunner, kill, until, compileC, BIN } from './helpers.js';
import { child, INDEX, statesOf } from './child.js';
import { watch, waitAlive, hold } from '../dist/index.js';
import koffi from 'koffi';

/** Collects a watcher's events. */
function recorder(w) {
  const events = [];
  w.on('change', (e) => events.push(e));
  const states = (target) => events.filter((e) => target === undefined || e.target === target).map((e) => e.state);
  return { events, states, last: (target) => states(target).at(-1), until: (fn, what) => until(() => fn(events), what) };
}

test('a handled uncaught exception leaves every watch and wait of the process working', async (t) => {
  const path = join(tmp(t), 'p');
  const c = child(
    t,
    `import { watch, waitAlive, hold } from ${INDEX};
     const out = (o) => console.log(JSON.stringify(o));
     process.on('uncaughtException', (e) => out({ handled: e.message }));
     const path = process.argv[1];
     watch(path).on('change', (e) => out({ target: 'w', state: e.state }));
     // Once the event worker surely waits (it starts in ~30 ms; until then the main thread reads the
     // kernel's queues itself, and an exception before that did not show the fault).
     setTimeout(() => { throw new Error('boom'); }, 500);
     process.stdin.on('data', async () => {
       // After the exception: a wait that needs an event, and a hold this process makes.
       const waiting = waitAlive(path, { timeout: 5000 }).then(() => 'resolved', (e) => e.code);
       const h = hold(path);
       out({ wait: await waiting });
       h.close();
     });`,
    [path],
  );
  await c.until((l) => l.some((x) => x.handled === 'boom') && statesOf(l, 'w').length === 1, 'the exception');
  c.send('go');
  await c.until((l) => l.some((x) => x.wait !== undefined) && statesOf(l, 'w').at(-1) === 'absent' && statesOf(l, 'w').length > 2, 'the wait and the watch');
  assert.equal(c.lines.find((x) => x.wait !== undefined).wait, 'resolved');
  assert.deepEqual(statesOf(c.lines, 'w').filter((s) => s !== 'dead'), ['absent', 'alive', 'absent']);
});

test("a 'change' listener that throws does not drop the rest of its batch; the app still sees the error", async (t) => {
  const dir = tmp(t);
  const n = 40;
  const c = child(
    t,
    `import { watch } from ${INDEX};
     import { spawn } from 'node:child_process';
     const out = (o) => console.log(JSON.stringify(o));
     let thrown = 0;
     process.on('uncaughtException', (e) => { if (e.message === 'listener') thrown++; });
     const [runner, dir, n] = process.argv.slice(1);
     const paths = Array.from({ length: Number(n) }, (_, i) => dir + '/r' + i);
     const kids = paths.map((p) => spawn(runner, [p, '60'], { stdio: 'ignore' }));
     const w = watch(paths);
     const states = new Map();
     w.on('change', (e) => states.set(e.target, e.state));
     w.on('change', (e) => { if (e.state === 'dead') throw new Error('listener'); });
     const alive = () => paths.every((p) => states.get(p) === 'alive');
     const dead = () => paths.every((p) => states.get(p) === 'dead');
     const iv = setInterval(() => {
       if (kids.length > 0 && alive()) { for (const k of kids.splice(0)) k.kill('SIGKILL'); }
       if (kids.length === 0 && dead()) { clearInterval(iv); setTimeout(() => { out({ dead: paths.length, thrown }); w.close(); }, 50); }
     }, 5);`,
    [compileC('runner'), dir, String(n)],
  );
  await c.until((l) => l.some((x) => x.dead !== undefined), `${n} deaths`);
  const r = c.lines.find((x) => x.dead !== undefined);
  assert.equal(r.dead, n);
  assert.equal(r.thrown, n, 'every throw reached uncaughtException');
});

test('a directory removed and made again is watched again; one that does not exist yet becomes a directory of targets', async (t) => {
  const base = tmp(t);
  const dir = join(base, 'targets');
  mkdirSync(dir);
  const later = join(base, 'later');
  const w = watch([dir, later]);
  t.after(() => w.close());
  const r = recorder(w);
  await r.until(() => r.last(later) === 'absent', 'first report of the missing directory');
  execFileSync('mkfifo', [join(dir, 'a')]);
  await r.until(() => r.last(join(dir, 'a')) === 'dead', 'a appears');
  rmSync(dir, { recursive: true });
  await r.until(() => r.last(join(dir, 'a')) === 'absent', 'a goes with its directory');
  mkdirSync(dir);
  execFileSync('mkfifo', [join(dir, 'b')]);
  await r.until(() => r.last(join(dir, 'b')) === 'dead', 'b, in the directory made again');

  mkdirSync(later);
  const env = { ...process.env, PROC_ALIVE_DIR: later };
  const web = await startRunner(t, 'web', ['60'], { env });
  await r.until(() => r.last(join(later, 'web')) === 'alive', 'web, in the directory that came later');
  assert.deepEqual(r.states(later), ['absent'], 'the directory itself is no target once it is one');
  assert.ok(!r.events.some((e) => e.state === 'unknown'), JSON.stringify(r.events.filter((e) => e.state === 'unknown')));
  await kill(web);
  await r.until(() => r.last(join(later, 'web')) === 'dead', 'web dies');
});

test('a service directory in the making: wait and watch follow its supervise/ok, and do not reject before run exists', async (t) => {
  const svc = join(tmp(t), 'svc');
  const w = watch(svc);
  t.after(() => w.close());
  const r = recorder(w);
  const waiting = waitAlive(svc, { timeout: 20000 });
  const cliWait = await start(t, process.execPath, [BIN, 'wait', '--timeout', '20', svc]);
  await r.until(() => r.states().length === 1, 'first report');
  mkdirSync(svc); // a directory, no run file yet: a wait must not reject
  await new Promise((resolve) => setTimeout(resolve, 50));
  writeFileSync(join(svc, 'run'), '#!/bin/sh\nexec sleep 60\n', { mode: 0o755 });
  mkdirSync(join(svc, 'supervise'));
  const sup = await startRunner(t, join(svc, 'supervise', 'ok'), ['60']);
  await waiting;
  assert.deepEqual(await cliWait.exited, [0, null], cliWait.stderrText());
  await r.until(() => r.last() === 'alive', 'alive');
  assert.deepEqual(r.states(), ['absent', 'alive']);
  assert.equal(r.events.at(-1).path, join(svc, 'supervise', 'ok'));
  await kill(sup);
  await r.until(() => r.last() === 'dead', 'dead');
});

test('symlinks: a link to a FIFO is followed, and so is what it points to; a swapped link is seen', async (t) => {
  const dir = tmp(t);
  const [a, b, link] = ['a', 'b', 'link'].map((n) => join(dir, n));
  symlinkSync('a', link);
  const w = watch(link);
  t.after(() => w.close());
  const r = recorder(w);
  const waiting = waitAlive(link, { timeout: 20000 });
  await r.until(() => r.states().length === 1, 'first report');
  const ra = await start(t, compileC('runner'), [a, '60']);
  await waiting;
  await r.until(() => r.last() === 'alive', 'alive through the link');
  assert.equal(r.events.at(-1).path, a);
  execFileSync('mkfifo', [join(dir, 'a2')]);
  renameSync(join(dir, 'a2'), a); // the FIFO it points to, replaced by a new one with no reader
  await r.until(() => r.last() === 'dead', 'dead: the FIFO pointed to was replaced');
  await kill(ra);
  const rb = await start(t, compileC('runner'), [b, '60']);
  await until(() => state(b).state === 'alive', 'b');
  symlinkSync('b', join(dir, 'link2'));
  renameSync(join(dir, 'link2'), link); // the link swapped to b, alive
  await r.until(() => r.last() === 'alive', 'alive after the swap');
  assert.equal(r.events.at(-1).path, b);
  await kill(rb);
  await r.until(() => r.last() === 'dead', 'b dies');
  rmSync(link);
  await r.until(() => r.last() === 'absent', 'link removed');
  // (The C runner makes its FIFO, then opens it: a look in between sees it dead, as it is.)
  assert.deepEqual(r.states().filter((s, i) => !(i === 1 && s === 'dead')), ['absent', 'alive', 'dead', 'alive', 'dead', 'absent']);
});

test('short lives: a holder that renames its FIFO into place and is SIGKILLed at once is seen alive, then dead', async (t) => {
  const path = join(tmp(t), 'p');
  const w = watch(path);
  t.after(() => w.close());
  const r = recorder(w);
  await r.until(() => r.states().length === 1, 'first report');
  const rounds = 15;
  for (let i = 0; i < rounds; i++) {
    const waiting = waitAlive(path, { timeout: 20000 });
    const c = spawn(process.execPath, ['--input-type=module', '-e', `import { hold } from ${INDEX}; hold(process.argv[1]); process.kill(process.pid, 'SIGKILL');`, path]);
    const [, signal] = await once(c, 'exit');
    assert.equal(signal, 'SIGKILL');
    await waiting;
    await r.until(() => r.last() === 'dead', `round ${i}: dead`);
    rmSync(path);
    await r.until(() => r.last() === 'absent', `round ${i}: absent`);
  }
  const expected = ['absent'];
  for (let i = 0; i < rounds; i++) expected.push('alive', 'dead', 'absent');
  assert.deepEqual(r.states(), expected);
});

test('names: a FIFO whose name is not UTF-8 is followed in a watched directory; names are printed escaped', async (t) => {
  const dir = tmp(t);
  // A name that is not UTF-8 (bytes 0xff 0xfe), made by the shell: Node's argv are strings.
  const bad = 'printf "%s/bad-\\377\\376-name" "$1"';
  const evil = 'x\r\u001b[2K web dead';
  execFileSync('mkfifo', [join(dir, 'first')]); // a first report for both watchers
  const watcher = spawn(process.execPath, [BIN, 'watch', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => watcher.kill('SIGKILL'));
  let out = '';
  watcher.stdout.on('data', (d) => (out += d));
  const w = watch(dir);
  t.after(() => w.close());
  const r = recorder(w);
  await r.until(() => r.states().length === 1, 'first report');
  await until(() => out.length > 0, 'first line');
  const held = await start(t, 'sh', ['-c', `exec "$0" "$(${bad})" 60`, compileC('runner'), dir]);
  const escaped = `${dir}/bad-\udcff\udcfe-name`;
  await r.until(() => r.last(escaped) === 'alive', 'the non-UTF-8 name, alive');
  execFileSync('mkfifo', [join(dir, evil)]);
  await r.until(() => r.last(join(dir, evil)) === 'dead', 'the name with controls');
  await kill(held);
  await r.until(() => r.last(escaped) === 'dead', 'dead');
  execFileSync('sh', ['-c', `rm "$(${bad})"`, 'sh', dir]);
  await r.until(() => r.last(escaped) === 'absent', 'removed');
  await until(() => out.split('\n').length > 4, 'the CLI lines');
  watcher.kill('SIGTERM');
  await once(watcher, 'exit');
  assert.doesNotMatch(out, /[\r\u001b\u00ff]/u, 'nothing raw reaches the terminal');
  assert.match(out, /bad-\\xff\\xfe-name {2}alive/);
  assert.match(out, /bad-\\xff\\xfe-name {2}absent {2}\(was dead\)/);
  assert.ok(out.includes('x\\r\\x1b[2K web dead  dead'), out);
});

/**
 * Starts `proc-alive watch dir` with its stdout on a pipe the test holds the read end of (a FIFO, as
 * a shell pipeline gives: Node's own child pipes are sockets), read only when asked.
 */
function watchIntoPipe(t, dir) {
  const fifo = join(tmp(t), 'out');
  execFileSync('mkfifo', [fifo]);
  const readFd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const writeFd = openSync(fifo, constants.O_WRONLY);
  const c = spawn(process.execPath, [BIN, 'watch', dir], { stdio: ['ignore', writeFd, 'pipe'] });
  closeSync(writeFd);
  let stderr = '';
  c.stderr.on('data', (d) => (stderr += d));
  t.after(() => {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    try {
      closeSync(readFd);
    } catch {}
  });
  const read = () => {
    const buf = Buffer.alloc(65536);
    try {
      return buf.subarray(0, readSync(readFd, buf)).toString();
    } catch {
      return ''; // EAGAIN
    }
  };
  return { c, readFd, read, stderr: () => stderr, exited: once(c, 'exit') };
}

test('output: `watch | head -1` ends (141, as SIGPIPE would), also with nothing more to say', async (t) => {
  const dir = tmp(t);
  execFileSync('mkfifo', [join(dir, 'a')]);
  const r = spawnSync('sh', ['-c', `"${process.execPath}" "${BIN}" watch "${dir}" | head -1`], { encoding: 'utf8', timeout: 10000 });
  assert.equal(r.signal, null, 'the pipeline ended');
  assert.match(r.stdout, /a {2}dead\n$/);
  const w = watchIntoPipe(t, dir);
  let out = '';
  await until(() => (out += w.read()).includes('\n'), 'first line');
  closeSync(w.readFd); // the reader goes, and nothing changes: watch must notice by itself
  assert.deepEqual(await w.exited, [141, null]);
});

test('output: a stalled reader neither blocks nor spins watch: SIGTERM ends it; past the bound it says so and exits 74', async (t) => {
  const dir = tmp(t);
  execFileSync('mkfifo', [join(dir, 'first')]);
  const stalled = watchIntoPipe(t, dir);
  await until(() => stalled.read().includes('\n'), 'first line');
  makeFifos(dir, 'a', 3000); // ~250 KB of lines, more than a pipe holds; never read
  await until(() => unread(stalled.readFd) >= 60 * 1024, 'the pipe is full: the writer is stuck');
  stalled.c.kill('SIGTERM');
  assert.deepEqual(await stalled.exited, [0, null]);

  const dir2 = tmp(t);
  execFileSync('mkfifo', [join(dir2, 'first')]);
  const flooded = watchIntoPipe(t, dir2);
  await until(() => flooded.read().includes('\n'), 'first line');
  makeFifos(dir2, 'target-with-a-long-name-', 20000); // ~1.8 MB of lines
  assert.deepEqual(await flooded.exited, [74, null]);
  assert.match(flooded.stderr(), /^proc-alive: output is not being read: \d+ bytes wait to be written; giving up\n$/);
});

/** Bytes waiting in a pipe, by its read end: ioctl(FIONREAD) (through koffi, which the package ships). */
function unread(fd) {
  ioctl ??= koffi.load('libc.so.6').func('int ioctl(int fd, unsigned long request, _Out_ int *n)');
  const n = [0];
  return ioctl(fd, 0x541b, n) === 0 ? n[0] : -1;
}
let ioctl;

function makeFifos(dir, prefix, n) {
  const names = Array.from({ length: n }, (_, i) => join(dir, `${prefix}${i}`));
  for (let i = 0; i < names.length; i += 2000) execFileSync('mkfifo', names.slice(i, i + 2000));
}

/**
 * A child that watches `path` (lines {target: 'w', state}) while a C runner holds it. Once the child has
 * seen it alive and its event worker surely waits (until then the main thread reads the kernel's queues
 * itself), it runs `first` (code), then keeps its main thread busy for 1.5 s: resolves then, with the
 * child and the runner.
 */
async function busyWatcher(t, path, first) {
  const c = child(
    t,
    `import { watch, waitAlive } from ${INDEX};
     const out = (o) => console.log(JSON.stringify(o));
     const w = watch(process.argv[1]);
     w.on('change', (e) => out({ target: 'w', state: e.state }));
     w.on('ready', () => setTimeout(() => out({ ready: true }), 500));
     process.stdin.on('data', async () => {
       ${first}
       out({ busy: true });
       const end = Date.now() + 1500;
       while (Date.now() < end);
     });`,
    [path],
  );
  const runner = await start(t, compileC('runner'), [path, '120']);
  await c.until((l) => l.some((x) => x.ready) && statesOf(l, 'w').at(-1) === 'alive', 'alive');
  c.send('go');
  await c.until((l) => l.some((x) => x.busy), 'busy');
  return { c, runner };
}

test('a watcher whose main thread is busy while a burst of changes happens reports every state the kernel kept, in order', async (t) => {
  // The event worker reads the kernel's queues while the main thread is busy (an application's loop,
  // or a process stopped just after the worker read). Events it read ahead reached the main thread
  // after the look made for the first batch (which saw the second runner), older than that look's
  // marker, and were dropped: the removal was lost (alive, dead, alive).
  const path = join(tmp(t), 'p');
  const { c, runner } = await busyWatcher(t, path, '');
  await kill(runner); // dead: the worker reads EPOLLERR and posts it
  await new Promise((r) => setTimeout(r, 300));
  rmSync(path); // absent: the kernel keeps IN_DELETE
  await start(t, compileC('runner'), [path, '120']); // alive again, by the time the main thread looks
  await until(() => state(path).state === 'alive', 'the second runner');
  await c.until((l) => l.some((x) => x.busy) && statesOf(l, 'w').at(-1) === 'alive' && statesOf(l, 'w').includes('dead'), 'alive, once the main thread is free');
  await new Promise((r) => setTimeout(r, 500)); // anything it would still report
  const states = statesOf(c.lines, 'w');
  assert.deepEqual(states.slice(states.indexOf('alive')), ['alive', 'dead', 'absent', 'alive']);
});

test('a look that finds a FIFO gone before its death was read still reports the death (a crash, then a removal, while the main thread is busy after a wait)', async (t) => {
  // A wait on the same path sets the FIFO's watch to IN_OPEN for its own look, and its own open is
  // queued: the worker reads it and posts it. While that batch waits for a busy main thread, the holder
  // is SIGKILLed and its FIFO removed. The batch's look then found the path gone and let go of the
  // write end and the FIFO's watch before reading what the kernel had queued since: EPOLLERR and the
  // reader's close were lost, and a crash read alive → absent.
  const path = join(tmp(t), 'p');
  const { c, runner } = await busyWatcher(t, path, 'await waitAlive(process.argv[1]);');
  await kill(runner); // dead
  rmSync(path); // then absent, both before the main thread looks
  await c.until((l) => statesOf(l, 'w').at(-1) === 'absent', 'absent, once the main thread is free');
  await new Promise((r) => setTimeout(r, 300)); // anything it would still report
  assert.deepEqual(statesOf(c.lines, 'w'), ['alive', 'dead', 'absent']);
});

/** A C runner holding `fifo` (it opens what is there), once a check says so. */
async function runnerOn(t, fifo) {
  const runner = await start(t, compileC('runner'), [fifo, '120']);
  await until(() => state(fifo).state === 'alive', 'the runner');
  return runner;
}

/** A runner holding a FIFO made under a private name, then renamed to `path`, as hold() does. */
async function renamedInto(t, path) {
  const fresh = join(dirname(path), `.${basename(path)}.1234.new`);
  const runner = await runnerOn(t, fresh);
  renameSync(fresh, path);
  return runner;
}

/**
 * Targets `watched` (name → path) are watched by a child, each by its own watch() in one process, and
 * reported dead. The child's main thread is then made busy; `makeHolder()` starts a holder (the worker
 * reads what that does and posts it, then waits); it is SIGKILLed and `change()` runs; then the main
 * thread is freed. Returns the states each target was reported in.
 */
async function busyAcross(t, watched, makeHolder, change) {
  const free = join(tmp(t), 'free');
  const names = Object.keys(watched);
  const c = child(
    t,
    `import { watch } from ${INDEX};
     import { existsSync } from 'node:fs';
     const out = (o) => console.log(JSON.stringify(o));
     const [free, ...pairs] = process.argv.slice(1);
     let ready = 0;
     for (let i = 0; i < pairs.length; i += 2) {
       const w = watch(pairs[i + 1]);
       w.on('change', (e) => out({ target: pairs[i], state: e.state }));
       w.on('ready', () => ++ready === pairs.length / 2 && setTimeout(() => out({ ready: true }), 500));
     }
     process.stdin.on('data', () => {
       out({ busy: true });
       const end = Date.now() + 30000;
       while (!existsSync(free) && Date.now() < end);
       out({ unbusy: true });
     });`,
    [free, ...names.flatMap((n) => [n, watched[n]])],
  );
  await c.until((l) => l.some((m) => m.ready) && names.every((n) => statesOf(l, n).at(-1) === 'dead'), 'dead');
  c.send('go');
  await c.until((l) => l.some((m) => m.busy), 'busy');
  const holder = await makeHolder();
  await new Promise((r) => setTimeout(r, 200)); // the worker reads what the holder did, posts it, and waits
  await kill(holder);
  change();
  writeFileSync(free, '');
  await c.until((l) => l.some((m) => m.unbusy) && names.every((n) => statesOf(l, n).length > 2), 'the states after the busy time');
  await new Promise((r) => setTimeout(r, 300)); // anything it would still report
  return Object.fromEntries(names.map((n) => [n, statesOf(c.lines, n)]));
}

test('a directory removed and made again while the main thread is busy: its removal is reported before what is there now', async (t) => {
  // The batch's look followed the path into the new directory and let go at once of the watch of the
  // old one, before the catch-up read what the kernel had queued on it: the removal was lost (dead,
  // alive, dead). Seen by the chaos soak, as a watcher SIGSTOPped just after the worker's read. Both a
  // watch of the directory (its member x) and one of the path itself.
  const dir = join(tmp(t), 's');
  const x = join(dir, 'x');
  mkdirSync(dir);
  execFileSync('mkfifo', [x]);
  const states = await busyAcross(t, { dir, x }, () => runnerOn(t, x), () => {
    renameSync(dir, `${dir}.gone`);
    rmSync(`${dir}.gone`, { recursive: true });
    mkdirSync(dir);
    execFileSync('mkfifo', [x]);
  });
  assert.deepEqual(states, { dir: ['dead', 'alive', 'absent', 'dead'], x: ['dead', 'alive', 'absent', 'dead'] });
});

test('a link swapped while the main thread is busy: the removal of what it pointed to is reported before what it points to now', async (t) => {
  // The same, one hop down: the look followed the swapped link to b and let go at once of the old
  // pointee's entry in its directory, so the removal of a was lost (dead, alive, dead).
  const dir = tmp(t);
  const [a, b, link] = ['a', 'b', 'link'].map((n) => join(dir, n));
  execFileSync('mkfifo', [a, b]);
  symlinkSync('a', link);
  const states = await busyAcross(t, { link }, () => runnerOn(t, a), () => {
    rmSync(a);
    symlinkSync('b', `${link}.new`);
    renameSync(`${link}.new`, link);
  });
  assert.deepEqual(states, { link: ['dead', 'alive', 'absent', 'dead'] });
});

/** The states a child reported for the member `name` of a watched directory (lines {target, state, path}). */
const memberStates = (lines, target, name) => lines.filter((m) => m.target === target && m.path && basename(m.path) === name).map((m) => m.state);

/**
 * A child that watches each of `watched` (name → path), each with its own watch(), and prints
 * {target, state, path} for every change. Resolves once all are ready, with the child and: `busy()`,
 * which makes its main thread busy (as a SIGSTOP would, the worker still reading) until `free()` (as
 * many times as asked); and,
 * with `busyWhen` (a name), `untilBusy2()` and `free2()`: that target's listener is busy the first time
 * it reports alive, during a batch's reports, until `free2()`.
 */
async function busyChild(t, watched, busyWhen = '', options = {}) {
  const dir = tmp(t);
  const [flag1, flag2] = [join(dir, 'free1'), join(dir, 'free2')];
  const c = child(
    t,
    `import { watch } from ${INDEX};
     import { existsSync } from 'node:fs';
     const out = (o) => console.log(JSON.stringify(o));
     const [pairs, flag1, flag2, busyWhen] = [JSON.parse(process.argv[1]), ...process.argv.slice(2)];
     const busy = (flag, what, round = true) => {
       out({ [what]: round });
       const end = Date.now() + 30000;
       while (!existsSync(flag) && Date.now() < end);
     };
     let round = 0;
     let ready = 0;
     let busied = false;
     for (const [name, path] of pairs) {
       const w = watch(path);
       w.on('change', (e) => {
         out({ target: name, state: e.state, path: e.path });
         if (name === busyWhen && e.state === 'alive' && !busied) {
           busied = true;
           busy(flag2, 'busy2');
         }
       });
       w.on('ready', () => ++ready === pairs.length && setTimeout(() => out({ ready: true }), 500));
     }
     process.stdin.on('data', () => busy(\`\${flag1}.\${++round}\`, 'busy1', round));`,
    [JSON.stringify(Object.entries(watched)), flag1, flag2, busyWhen],
    options,
  );
  await c.until((l) => l.some((m) => m.ready), 'ready');
  let round = 0;
  return Object.assign(c, {
    busy: async () => {
      c.send('go');
      const n = ++round;
      await c.until((l) => l.some((m) => m.busy1 === n), 'busy');
    },
    free: () => writeFileSync(`${flag1}.${round}`, ''),
    untilBusy2: () => c.until((l) => l.some((m) => m.busy2), 'the listener busy'),
    free2: () => writeFileSync(flag2, ''),
  });
}

test("a directory renamed away: what happens in it afterwards is not its old paths' (holders starting there, the main thread busy)", async (t) => {
  // x is a dead FIFO in s, y not there yet. While the watcher's main thread is busy, s is renamed away,
  // a holder opens x there and another renames y into place there, as hold() does. Read after the
  // IN_MOVE_SELF of s in the same batch, x's IN_OPEN and y's rename were taken for lives of s/x and s/y
  // (dead, absent, alive, absent; absent, alive, absent), though neither path has existed since.
  const s = join(tmp(t), 's');
  const [x, y] = ['x', 'y'].map((n) => join(s, n));
  mkdirSync(s);
  execFileSync('mkfifo', [x]);
  const c = await busyChild(t, { x, y, s });
  await c.busy();
  const gone = `${s}.gone`;
  renameSync(s, gone);
  await runnerOn(t, join(gone, 'x'));
  await renamedInto(t, join(gone, 'y'));
  c.free();
  await c.until((l) => statesOf(l, 'x').at(-1) === 'absent', 'x absent');
  await new Promise((r) => setTimeout(r, 300)); // anything it would still report
  assert.deepEqual({ x: statesOf(c.lines, 'x'), y: statesOf(c.lines, 'y') }, { x: ['dead', 'absent'], y: ['absent'] });
  // The same of s watched as a directory of targets: it and its member x went; no y came.
  const members = c.lines.filter((m) => m.target === 's').map((m) => `${basename(m.path)} ${m.state}`);
  assert.deepEqual(members.sort(), ['s absent', 'x absent', 'x dead']);
});

test('a directory renamed away after the batch was read: its IN_MOVE_SELF, read after the look, still ends what the path hears of it', async (t) => {
  // The worker reads a holder's open of s/x, posts it and waits (the main thread is busy). The holder is
  // killed, s renamed away, and a holder opens x there. The batch's look finds s/x absent and leaves s's
  // watch and x's; its catch-up then reads the IN_MOVE_SELF and the second open, which was taken for a
  // life of s/x (dead, alive, absent, alive, absent), though s/x has not existed since the rename.
  const s = join(tmp(t), 's');
  const x = join(s, 'x');
  mkdirSync(s);
  execFileSync('mkfifo', [x]);
  const c = await busyChild(t, { x });
  await c.busy();
  await kill(await runnerOn(t, x));
  await new Promise((r) => setTimeout(r, 200)); // the worker reads the open, posts it, and waits
  const gone = `${s}.gone`;
  renameSync(s, gone);
  await kill(await runnerOn(t, join(gone, 'x')));
  c.free();
  await c.until((l) => statesOf(l, 'x').at(-1) === 'absent', 'x absent');
  await new Promise((r) => setTimeout(r, 300)); // anything it would still report
  assert.deepEqual(statesOf(c.lines, 'x'), ['dead', 'alive', 'absent']);
});

test('a directory renamed, and watched at its new name before its IN_MOVE_SELF is read, is heard there', async (t) => {
  // One watch() follows s/y, so s has a watch. s is renamed to s2 and s2/x is watched at once: its look
  // shares s's watch, before the IN_MOVE_SELF is read. What the move ends is the old path's news, not
  // that watch: a holder of s2/x is then seen (a first version of the fix kept it deaf, absent for good).
  const base = tmp(t);
  const [s, s2] = ['s', 's2'].map((n) => join(base, n));
  mkdirSync(s);
  const c = child(
    t,
    `import { watch } from ${INDEX};
     import { renameSync } from 'node:fs';
     const out = (o) => console.log(JSON.stringify(o));
     const [s, s2] = process.argv.slice(1);
     const y = watch(s + '/y');
     y.on('change', (e) => out({ target: 'y', state: e.state }));
     y.on('ready', () => setTimeout(() => out({ ready: true }), 500));
     process.stdin.on('data', () => {
       renameSync(s, s2);
       const end = Date.now() + 200;
       while (Date.now() < end); // the worker reads the IN_MOVE_SELF and posts it
       watch(s2 + '/x').on('change', (e) => out({ target: 'x', state: e.state }));
     });`,
    [s, s2],
  );
  await c.until((l) => l.some((m) => m.ready), 'ready');
  c.send('go');
  await c.until((l) => statesOf(l, 'x').at(-1) === 'absent', 'x absent');
  await new Promise((r) => setTimeout(r, 500)); // the batch with the IN_MOVE_SELF handled
  await runnerOn(t, join(s2, 'x'));
  await c.until((l) => statesOf(l, 'x').at(-1) === 'alive', 'x alive');
  assert.deepEqual(statesOf(c.lines, 'x'), ['absent', 'alive']);
});

test('a directory moved away and back: what happened in it meanwhile is not its path\'s, though another path has looked at it since', async (t) => {
  // x is a dead FIFO in s. While the watcher's main thread is busy, s is renamed away, a holder renames
  // x into place there and is killed, and s is renamed back. Before the batch is handled, the process
  // watches s/y: that look finds s at its old name again, after the move. The rename in the moved
  // directory was taken for a life of s/x (dead, alive, dead): that look said nothing of s/x's past.
  const base = tmp(t);
  const [s, gone, free] = ['s', 's.gone', 'free'].map((n) => join(base, n));
  mkdirSync(s);
  execFileSync('mkfifo', [join(s, 'x')]);
  const c = child(
    t,
    `import { watch } from ${INDEX};
     import { existsSync } from 'node:fs';
     const out = (o) => console.log(JSON.stringify(o));
     const [s, free] = process.argv.slice(1);
     const w = watch(s + '/x');
     w.on('change', (e) => out({ target: 'x', state: e.state }));
     w.on('ready', () => setTimeout(() => out({ ready: true }), 500));
     process.stdin.on('data', () => {
       out({ busy: true });
       const end = Date.now() + 30000;
       while (!existsSync(free) && Date.now() < end);
       watch(s + '/y').on('change', (e) => out({ target: 'y', state: e.state })); // looked at before the batch
     });`,
    [s, free],
  );
  await c.until((l) => l.some((m) => m.ready) && statesOf(l, 'x').at(-1) === 'dead', 'ready');
  c.send('go');
  await c.until((l) => l.some((m) => m.busy), 'busy');
  renameSync(s, gone);
  const holder = await renamedInto(t, join(gone, 'x'));
  await kill(holder);
  renameSync(gone, s); // back: s/x is a dead FIFO again
  await new Promise((r) => setTimeout(r, 300)); // the worker reads what happened, posts it, and waits
  writeFileSync(free, '');
  await c.until((l) => statesOf(l, 'y').length > 0 && statesOf(l, 'x').length > 1, 'after the busy time');
  await new Promise((r) => setTimeout(r, 300)); // anything it would still report
  assert.deepEqual(statesOf(c.lines, 'x'), ['dead', 'absent', 'dead']);
});

test('a directory of targets renamed away just after a holder renamed its FIFO into place there: alive, then absent, then the new one', async (t) => {
  // While the watcher's main thread is busy, a holder renames x into place in s (a name no one follows
  // yet: its evidence is kept for the member it becomes), then s is renamed away and made again with a
  // dead x. The move was not added to that evidence: x was reported alive, then dead, as if its holder
  // had died at s/x (seen by the chaos soak). Its holder is killed last, in the old s.
  const s = join(tmp(t), 's');
  mkdirSync(s);
  const c = await busyChild(t, { s });
  await c.busy();
  const holder = await renamedInto(t, join(s, 'x'));
  renameSync(s, `${s}.gone`);
  mkdirSync(s);
  execFileSync('mkfifo', [join(s, 'x')]);
  await kill(holder);
  c.free();
  await c.until((l) => memberStates(l, 's', 'x').at(-1) === 'dead', 'the new x dead');
  await new Promise((r) => setTimeout(r, 300)); // anything it would still report
  assert.deepEqual(memberStates(c.lines, 's', 'x'), ['alive', 'absent', 'dead']);
});

test('a directory of targets watched through a link to it or on its way, or spelt with ./ or a trailing /, sees the life of a holder that renames its FIFO into place and dies before it looks', async (t) => {
  // The evidence of the rename was kept under the spelling the directory's watch was made at (where the
  // link led, `./` as given), and asked for at the member's path (the link's, normalized): not found, so
  // the member began at what its look found, dead, without the life.
  const base = tmp(t);
  const real = ['own', 'real', 'dd', 'tr', 'rel/run'];
  for (const d of real) mkdirSync(join(base, d), { recursive: true });
  symlinkSync('real', join(base, 'lk'));
  symlinkSync('rel', join(base, 'cur')); // a link in the middle: cur/run
  const dirs = { own: join(base, 'own'), lk: join(base, 'lk'), dd: `${base}/./dd`, tr: `${join(base, 'tr')}/`, mid: join(base, 'cur', 'run') };
  const c = await busyChild(t, dirs);
  await c.busy();
  const holders = [];
  for (const d of real) holders.push(await renamedInto(t, join(base, d, 'x')));
  for (const h of holders) await kill(h);
  c.free();
  await c.until((l) => Object.keys(dirs).every((d) => memberStates(l, d, 'x').at(-1) === 'dead'), 'every x dead');
  await new Promise((r) => setTimeout(r, 300)); // anything it would still report
  const got = Object.fromEntries(Object.keys(dirs).map((d) => [d, memberStates(c.lines, d, 'x')]));
  assert.deepEqual(got, { own: ['alive', 'dead'], lk: ['alive', 'dead'], dd: ['alive', 'dead'], tr: ['alive', 'dead'], mid: ['alive', 'dead'] });
});

test('a directory of targets renamed away, or a link to one re-pointed: a holder renaming its FIFO into place in the old one is no life of its members', async (t) => {
  // The evidence of such a rename was credited to every directory listed as a user of the old watch,
  // which the moved directory (until its watch was let go of) and the link's old target (until the
  // batch was done) still were: s/x and lk/x were reported alive, then absent or dead, though no FIFO
  // ever had a reader there (and serve counted a death).
  const base = tmp(t);
  const s = join(base, 's');
  for (const d of ['s', 'real1', 'real2']) mkdirSync(join(base, d));
  symlinkSync('real1', join(base, 'lk'));
  const c = await busyChild(t, { s, lk: join(base, 'lk') });
  await c.busy();
  renameSync(s, `${s}.gone`);
  mkdirSync(s);
  execFileSync('mkfifo', [join(s, 'x')]);
  symlinkSync('real2', join(base, 'lk.new'));
  renameSync(join(base, 'lk.new'), join(base, 'lk')); // as ln -sfn does
  execFileSync('mkfifo', [join(base, 'real2', 'x')]);
  const holders = [await renamedInto(t, join(`${s}.gone`, 'x')), await renamedInto(t, join(base, 'real1', 'x'))];
  c.free();
  await c.until((l) => memberStates(l, 's', 'x').includes('dead') && memberStates(l, 'lk', 'x').includes('dead'), 'both new x dead');
  for (const h of holders) await kill(h);
  await new Promise((r) => setTimeout(r, 500)); // anything it would still report
  assert.deepEqual({ s: memberStates(c.lines, 's', 'x'), lk: memberStates(c.lines, 'lk', 'x') }, { s: ['dead'], lk: ['dead'] });
});

test("a directory of targets spelt './' keeps a fast holder's life when the kernel drops events (IN_Q_OVERFLOW)", async (t) => {
  // After an overflow the directory is listed again with the names the batch proved a life of; those
  // were asked for under './', which the keys (normalized: 'x') never start with.
  const d = tmp(t);
  const c = await busyChild(t, { here: './' }, '', { shell: `cd '${d}' &&` });
  await c.busy();
  const holder = await renamedInto(t, join(d, 'x'));
  rmSync(join(d, 'x'));
  await kill(holder);
  const queued = Number(readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8'));
  for (let i = 0; i < queued + 4096; i++) writeFileSync(join(d, `.f${i}`), '');
  c.free();
  await c.until((l) => memberStates(l, 'here', 'x').at(-1) === 'absent', 'x absent');
  await new Promise((r) => setTimeout(r, 300)); // anything it would still report
  assert.deepEqual(memberStates(c.lines, 'here', 'x'), ['alive', 'absent']);
});

test('one watcher given the same directory under several spellings reports each member once, and keeps it when one spelling is let go of', async (t) => {
  const d = join(tmp(t), 'd');
  mkdirSync(d);
  const w = watch([d, `${d}/`, `${dirname(d)}/./d`]);
  t.after(() => w.close());
  const r = recorder(w);
  await once(w, 'ready');
  const x = join(d, 'x');
  const first = await startRunner(t, x);
  await r.until(() => r.events.some((e) => e.path === x && e.state === 'alive'), 'x alive');
  await kill(first);
  await r.until(() => r.events.some((e) => e.path === x && e.state === 'dead'), 'x dead');
  w.unwatch(d);
  const second = await startRunner(t, x);
  await r.until(() => r.events.filter((e) => e.path === x && e.state === 'alive').length === 2, 'x alive again, through another spelling');
  await kill(second);
  await r.until(() => r.events.filter((e) => e.path === x && e.state === 'dead').length === 2, 'x dead again');
  await new Promise((res) => setTimeout(res, 300)); // anything it would still report
  assert.deepEqual(r.events.filter((e) => e.path === x).map((e) => e.state), ['alive', 'dead', 'alive', 'dead']);
});

test('a directory moved away and back while the watcher is busy, looked at again before the move is read: what happened in it meanwhile is no news of its path', async (t) => {
  // A second watch of s (`s/`), made before the batch with the move is handled, looks first: the move's
  // IN_MOVE_SELF then found s's spelling looked at since, and kept it, and a holder's rename into place
  // in A2/b/s (never T/A/b/s) was taken for s/x's life: alive, then absent, for both watchers.
  const T = tmp(t);
  const s = join(T, 'A', 'b', 's');
  const flag = join(T, 'free');
  mkdirSync(s, { recursive: true });
  const c = child(
    t,
    `import { watch } from ${INDEX};
     import { existsSync } from 'node:fs';
     const out = (o) => console.log(JSON.stringify(o));
     const [s, flag] = process.argv.slice(1);
     const first = watch(s);
     first.on('change', (e) => out({ w: 1, path: e.path, state: e.state }));
     first.on('ready', () => setTimeout(() => out({ ready: true }), 300));
     process.stdin.on('data', () => {
       out({ busy: true });
       const end = Date.now() + 30000;
       while (!existsSync(flag) && Date.now() < end); // the worker reads what happens meanwhile, and posts it
       const second = watch(s + '/');
       second.on('change', (e) => out({ w: 2, path: e.path, state: e.state }));
       second.on('ready', () => out({ second: true }));
     });`,
    [s, flag],
  );
  await c.until((l) => l.some((m) => m.ready), 'ready');
  c.send('busy');
  await c.until((l) => l.some((m) => m.busy), 'busy');
  renameSync(join(T, 'A'), join(T, 'A2'));
  const holder = await renamedInto(t, join(T, 'A2', 'b', 's', 'x'));
  await kill(holder);
  rmSync(join(T, 'A2', 'b', 's', 'x'));
  renameSync(join(T, 'A2'), join(T, 'A'));
  writeFileSync(flag, '');
  await c.until((l) => l.some((m) => m.second), 'the second watch ready');
  execFileSync('mkfifo', [join(s, 'y')]); // something that did happen at s, after
  await c.until((l) => l.filter((m) => m.path === join(s, 'y')).length === 2, 'both watchers report s/y');
  await new Promise((r) => setTimeout(r, 300)); // anything it would still report
  assert.deepEqual(c.lines.filter((m) => m.path === join(s, 'x')), []);
});

test('a directory moved away and back, then looked at twice before the move is read: what happened between the two looks is its paths\' news (through a link)', async (t) => {
  // The move's window ended at the latest look through the spelling, not the first: a FIFO made and held
  // at L/s after the first look (watch(L/s), absent) and before the second (watch(L/t)) was dropped as
  // not placed, and s stayed absent while check said alive, then dead.
  const T = tmp(t);
  const A = join(T, 'A');
  mkdirSync(A);
  symlinkSync('A', join(T, 'L'));
  const [s, tt] = ['s', 't'].map((n) => join(T, 'L', n));
  const runnerBin = compileC('runner');
  const c = child(
    t,
    `import { watch } from ${INDEX};
     import { execFileSync, spawn } from 'node:child_process';
     const out = (o) => console.log(JSON.stringify(o));
     const [A, zz, s, tt, runnerBin] = process.argv.slice(1);
     const on = (w, n) => w.on('change', (e) => out({ w: n, path: e.path, state: e.state }));
     on(watch(zz), 0);
     setTimeout(() => out({ ready: true }), 500);
     process.stdin.on('data', async () => {
       // In one task: both moves stay unread until the looks below are made.
       execFileSync('sh', ['-c', 'mv "$1" "$1.2" && mv "$1.2" "$1"', 'sh', A]);
       on(watch(s), 1);
       for (let i = 0; i < 5; i++) await Promise.resolve();
       const r = spawn(runnerBin, [s, '120'], { stdio: 'ignore' });
       out({ runner: r.pid });
       execFileSync('sleep', ['0.3']); // the runner makes and holds s
       for (let i = 0; i < 5; i++) await Promise.resolve();
       on(watch(tt), 2);
     });`,
    [A, join(T, 'L', 'zz'), s, tt, runnerBin],
  );
  await c.until((l) => l.some((m) => m.ready), 'ready');
  c.send('go');
  await c.until((l) => l.some((m) => m.runner), 'the runner started');
  const pid = c.lines.find((m) => m.runner).runner;
  t.after(() => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  });
  await c.until((l) => l.some((m) => m.w === 2), 'the second look');
  await until(() => state(s).state === 'alive', 'check: s alive');
  await c.until((l) => l.filter((m) => m.w === 1).at(-1)?.state === 'alive', 's alive');
  process.kill(pid, 'SIGKILL');
  await c.until((l) => l.filter((m) => m.w === 1).at(-1)?.state === 'dead', 's dead');
  assert.deepEqual(c.lines.filter((m) => m.w === 1).map((m) => m.state), ['absent', 'alive', 'dead']);
});

test('a directory moved away and back between two looks of one busy task, the first before the move: a life at a path looked at after the move is its news', async (t) => {
  // The window a move leaves unplaced ended at the first look not read yet, which was one made before
  // the move (its marker read just before the move's IN_MOVE_SELF): it fell back to the latest look, and
  // a holder's whole life at s (renamed into place, killed, removed), after s's own look, was dropped.
  const A = join(tmp(t), 'A');
  mkdirSync(A);
  const s = join(A, 's');
  const fresh = join(A, '.s.1234.new');
  const runnerBin = compileC('runner');
  const states = [];
  const watchers = [];
  t.after(() => Promise.all(watchers.map((w) => w.close())));
  const look = (name, record) => {
    const w = watch(join(A, name));
    watchers.push(w);
    if (record) w.on('change', (e) => states.push(e.state));
  };
  const tick = async () => {
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };
  look('zz');
  await once(watchers[0], 'ready');
  await new Promise((r) => setTimeout(r, 500)); // the event worker started, zz's look read
  // From here on, one task: the worker reads meanwhile, the main thread handles nothing.
  look('t'); // a look before the move
  await tick();
  execFileSync('sh', ['-c', 'mv "$1" "$1.2" && mv "$1.2" "$1"', 'sh', A]);
  await tick();
  look('s', true); // the first look after the move: s absent
  await tick();
  const runner = spawn(runnerBin, [fresh, '120'], { stdio: 'ignore' });
  t.after(() => runner.kill('SIGKILL'));
  while (state(fresh).state !== 'alive') execFileSync('sleep', ['0.01']);
  renameSync(fresh, s);
  runner.kill('SIGKILL');
  while (state(s).state !== 'dead') execFileSync('sleep', ['0.01']);
  rmSync(s);
  await tick();
  look('v'); // a later look
  await new Promise((r) => setTimeout(r, 1000)); // handled
  await new Promise((r) => setTimeout(r, 300)); // anything it would still report
  // (No death: the watcher never held a write end on that FIFO, README Limits.)
  assert.deepEqual(states, ['absent', 'alive', 'absent']);
});

/**
 * Directories of targets `s` and `gone` are watched; `move()` renames s (or a directory above it) so that
 * s is at `gone`, and a new s is made. Later, while the watcher is busy, a holder renames x into place in
 * the old s and s/x is made dead: each is its own directory's member only. With `busy`, the watcher is
 * busy while `move()` runs too; `also` (name → path) is watched as well.
 */
async function oldNameDropped(t, s, gone, move, { busy = false, also = {} } = {}) {
  const c = await busyChild(t, { s, gone, ...also });
  if (busy) await c.busy();
  move();
  mkdirSync(s, { recursive: true });
  if (busy) c.free();
  await new Promise((r) => setTimeout(r, 1500)); // handled: gone is the old directory, s a new one
  await c.busy();
  await renamedInto(t, join(gone, 'x'));
  execFileSync('mkfifo', [join(s, 'x')]);
  c.free();
  await c.until((l) => memberStates(l, 's', 'x').at(-1) === 'dead' && memberStates(l, 'gone', 'x').at(-1) === 'alive', 'both x');
  await new Promise((r) => setTimeout(r, 300)); // anything it would still report
  assert.deepEqual({ s: memberStates(c.lines, 's', 'x'), gone: memberStates(c.lines, 'gone', 'x') }, { s: ['dead'], gone: ['alive'] });
}

test('a directory renamed away keeps no old name: what happens in it in a later batch is not news of its old paths', async (t) => {
  // s is renamed to s.gone and a new s made. The watch of s.gone kept its old spelling s/: the rename
  // into place there was taken for s/x too (alive, dead for s/x).
  const base = tmp(t);
  const [s, gone] = ['s', 's.gone'].map((n) => join(base, n));
  mkdirSync(s);
  await oldNameDropped(t, s, gone, () => renameSync(s, gone));
});

test('a member followed after its directory moved does not hear the moved directory in the next wave', async (t) => {
  // One batch: a holder renames x into place in s, s is renamed to s.gone, a new s is made with a dead
  // x, and y turns alive. Its listener is busy in the report phase, before s's listener follows s/x (in
  // a next wave); meanwhile a second holder renames x into place in s.gone. That rename was taken for
  // s/x's: alive, absent, alive, dead.
  const base = tmp(t);
  const [s, gone, y] = ['s', 's.gone', 'y'].map((n) => join(base, n));
  mkdirSync(s);
  execFileSync('mkfifo', [y]);
  const c = await busyChild(t, { s, gone, y }, 'y');
  await c.busy();
  await renamedInto(t, join(s, 'x'));
  renameSync(s, gone);
  mkdirSync(s);
  execFileSync('mkfifo', [join(s, 'x')]);
  await runnerOn(t, y);
  c.free();
  await c.untilBusy2();
  await renamedInto(t, join(gone, 'x'));
  c.free2();
  await c.until((l) => memberStates(l, 's', 'x').at(-1) === 'dead', 'the new x dead');
  await new Promise((r) => setTimeout(r, 300)); // anything it would still report
  assert.deepEqual(memberStates(c.lines, 's', 'x'), ['alive', 'absent', 'dead']);
});

test('a directory above a target renamed away: the target is reported absent, and so are a directory of targets below it and its members', async (t) => {
  // inotify tells only the directory renamed (IN_MOVE_SELF), not those below it: p/q/x stayed alive
  // (the holder lives on at p.gone/q/x), and p/q, watched as a directory of targets, stayed there.
  const base = tmp(t);
  const p = join(base, 'p');
  const [q, x] = [join(p, 'q'), join(p, 'q', 'x')];
  mkdirSync(q, { recursive: true });
  await runnerOn(t, x);
  const watchers = [watch(x), watch(q)];
  t.after(() => Promise.all(watchers.map((w) => w.close())));
  const [wx, wq] = watchers.map(recorder);
  await wx.until(() => wx.last() === 'alive', 'x alive');
  await wq.until(() => wq.last(x) === 'alive', 'q/x alive');
  renameSync(p, `${p}.gone`);
  await wx.until(() => wx.last() === 'absent', 'x absent');
  await wq.until(() => wq.last(x) === 'absent' && wq.last(q) === 'absent', 'q and q/x absent');
  // Made again, without a holder: what is there now.
  mkdirSync(q, { recursive: true });
  execFileSync('mkfifo', [x]);
  await wx.until(() => wx.last() === 'dead', 'the new x dead');
  assert.deepEqual(wx.states(), ['alive', 'absent', 'dead']);
  await wq.until(() => wq.last(x) === 'dead', 'the new q/x dead');
  assert.deepEqual(wq.states(x), ['alive', 'absent', 'dead']);
});

test('a directory whose parent was renamed away keeps no old name: what happens in it later is not news of its old paths', async (t) => {
  // p is renamed to p.gone and a new p/s made. The watch of the old s kept its spelling p/s/ (its parent
  // moved, not it): the rename into place in p.gone/s was taken for p/s/x too (alive, dead).
  const base = tmp(t);
  const [p, s] = [join(base, 'p'), join(base, 'p', 's')];
  mkdirSync(s, { recursive: true });
  await oldNameDropped(t, s, join(`${p}.gone`, 's'), () => renameSync(p, `${p}.gone`));
});

/** The mask of this process's inotify watch on `path`'s inode (/proc/self/fdinfo), or null: none. */
function inotifyMask(path) {
  const ino = ` ino:${statSync(path).ino.toString(16)} `;
  for (const fd of readdirSync('/proc/self/fd')) {
    let link;
    try {
      link = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue;
    }
    if (link !== 'anon_inode:inotify') continue;
    const line = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').split('\n').find((l) => l.includes(ino));
    if (line !== undefined) return Number.parseInt(/ mask:(\w+)/.exec(line)[1], 16);
  }
  return null;
}

test('a directory above a target is watched for its renaming only, once no path needs its entries', async (t) => {
  // base was watched for its entries while a was missing (for a/x to appear), and kept that mask as the
  // directory above a: everything made in it woke the watcher.
  const base = tmp(t);
  const IN_CREATE = 0x100;
  const IN_MOVE_SELF = 0x800;
  const w = watch(join(base, 'a', 'x'));
  t.after(() => w.close());
  await once(w, 'ready');
  assert.ok(inotifyMask(base) & IN_CREATE, 'watched for a to appear');
  mkdirSync(join(base, 'a'));
  await until(() => inotifyMask(join(base, 'a')) !== null && !(inotifyMask(base) & IN_CREATE), 'base narrowed');
  assert.equal(inotifyMask(base) & (IN_CREATE | IN_MOVE_SELF), IN_MOVE_SELF);
  // And still heard: base renamed away is a's, and x's, move.
  const r = recorder(w);
  execFileSync('mkfifo', [join(base, 'a', 'x')]);
  await r.until(() => r.last() === 'dead', 'x dead');
  renameSync(base, `${base}.gone`);
  t.after(() => rmSync(`${base}.gone`, { recursive: true, force: true }));
  await r.until(() => r.last() === 'absent', 'x absent');
});

test('a directory renamed away while the kernel drops events (IN_Q_OVERFLOW) keeps no old name either', async (t) => {
  // The move of s was among the events the kernel dropped: its watch kept its spelling s/, and a rename
  // into place in s.gone was taken for s/x (alive, dead for s/x) as in the test above.
  const base = tmp(t);
  const [s, gone, flood] = ['s', 's.gone', 'flood'].map((n) => join(base, n));
  mkdirSync(s);
  mkdirSync(flood);
  const queued = Number(readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8'));
  const move = () => {
    // One IN_CREATE each, more than the queue holds beyond what the worker read before it waited.
    for (let i = 0; i < queued + 4096; i++) writeFileSync(join(flood, `f${i}`), '');
    renameSync(s, gone);
  };
  await oldNameDropped(t, s, gone, move, { busy: true, also: { flood: join(flood, 't') } });
});

test('a path through a link back up to its own directory (d/sub/l → d) is heard, and so is another path through d/sub', async (t) => {
  // Watching the directories above d/sub/l made d and d/sub each other's: the cycle was broken by
  // dropping d/sub, and with it d, while d was being set up (deaf for good).
  const d = join(tmp(t), 'd');
  mkdirSync(join(d, 'sub'), { recursive: true });
  symlinkSync(d, join(d, 'sub', 'l'));
  const w = watch(join(d, 'sub', 'l', 'x'));
  t.after(() => w.close());
  const r = recorder(w);
  await once(w, 'ready');
  execFileSync('mkfifo', [join(d, 'x')]);
  await r.until(() => r.last() === 'dead', 'x dead');
  assert.deepEqual(r.states(), ['absent', 'dead']);
  // A path through d/sub itself keeps d above it, also once the other is let go of: d renamed is its move.
  execFileSync('mkfifo', [join(d, 'sub', 'y')]);
  const wy = watch(join(d, 'sub', 'y'));
  t.after(() => wy.close());
  const ry = recorder(wy);
  await ry.until(() => ry.last() === 'dead', 'y dead');
  await w.close();
  renameSync(d, `${d}.gone`);
  await ry.until(() => ry.last() === 'absent', 'd/sub/y absent');
  renameSync(`${d}.gone`, d);
  await ry.until(() => ry.last() === 'dead', 'd/sub/y back');
  // And a directory of targets through a relative link back up (sub/up → ..) hears its entries.
  symlinkSync('..', join(d, 'sub', 'up'));
  const wd = watch(join(d, 'sub', 'up'));
  t.after(() => wd.close());
  const rd = recorder(wd);
  await once(wd, 'ready');
  execFileSync('mkfifo', [join(d, 'y')]);
  await rd.until(() => rd.events.some((e) => basename(e.target) === 'y' && e.state === 'dead'), 'y dead');
});

/**
 * p/q/x is alive and watched, with p/q/y. The child's main thread is busy, y is made (its event read and
 * posted, so a look through q runs after what follows), then `moves()`. Returns the child once free.
 */
async function aboveMoved(t, moves) {
  const base = tmp(t);
  const [p, q] = [join(base, 'p'), join(base, 'p', 'q')];
  mkdirSync(q, { recursive: true });
  const [x, y] = [join(q, 'x'), join(q, 'y')];
  await runnerOn(t, x);
  const c = await busyChild(t, { x, y });
  await c.until((l) => statesOf(l, 'x').at(-1) === 'alive', 'x alive');
  await c.busy();
  execFileSync('mkfifo', [y]);
  await new Promise((r) => setTimeout(r, 200)); // read by the worker, which then waits
  moves(p, q);
  c.free();
  await c.until((l) => statesOf(l, 'y').at(-1) === 'dead', 'y');
  await new Promise((r) => setTimeout(r, 500)); // anything it would still report
  return Object.assign(c, { p });
}

test('a directory above moved away and back while the watcher is busy: the move is its paths\' news, though a look through it came since', async (t) => {
  // The look of y raised what p's and q's spellings said of when they were last found: x's move was lost.
  const c = await aboveMoved(t, (p) => {
    renameSync(p, `${p}.away`);
    renameSync(`${p}.away`, p);
  });
  assert.deepEqual(statesOf(c.lines, 'x'), ['alive', 'absent', 'alive']);
});

test('a directory moved into a new one made at the old name of the one above: the new one is watched, the old one no more', async (t) => {
  // p renamed away, a new p made and q moved into it, while busy with a look through q queued. q's watch
  // kept the old p as the directory above it: a rename of the old p was taken for a move of p/q/x
  // (absent, alive: invented), and one of the new p was not seen.
  const c = await aboveMoved(t, (p, q) => {
    renameSync(p, `${p}.old`);
    mkdirSync(p);
    renameSync(join(`${p}.old`, 'q'), q);
  });
  const before = statesOf(c.lines, 'x').length;
  renameSync(`${c.p}.old`, `${c.p}.old2`); // nothing of x's
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(statesOf(c.lines, 'x').slice(before), []);
  renameSync(c.p, `${c.p}.new`); // x gone from its path
  await c.until((l) => statesOf(l, 'x').at(-1) === 'absent', 'x absent');
  assert.deepEqual(statesOf(c.lines, 'x').slice(before), ['absent']);
});

test("a link swapped: what happens to its old pointee after the look that followed the swap is not the link's (a listener busy in that batch)", async (t) => {
  // One batch: the link is swapped from a to b (both alive), y turns alive and n is made in the watched
  // directory s. The look follows the link to b; the watch of a's entry is kept until the batch is
  // handled, for what the kernel queued on it before that look. y's listener is then busy, and a is
  // removed meanwhile; then s's listener follows n, which makes the batch go on (a next wave), whose
  // catch-up reads that removal. It was taken for the link's: alive, absent, alive, with the link alive
  // throughout. Seen by the chaos soak (a link swapped between two live FIFOs, a watcher stopped at the
  // worst moment).
  const base = tmp(t);
  const [a, b, link, y, s] = ['a', 'b', 'link', 'y', 's'].map((n) => join(base, n));
  execFileSync('mkfifo', [y]);
  mkdirSync(s);
  await runnerOn(t, a);
  await runnerOn(t, b);
  symlinkSync('a', link);
  const c = await busyChild(t, { link, s, y }, 'y');
  await c.busy();
  symlinkSync('b', `${link}.new`);
  renameSync(`${link}.new`, link); // the link swapped: alive throughout
  await runnerOn(t, y); // y alive, in the same batch
  execFileSync('mkfifo', [join(s, 'n')]); // followed once the batch has reported
  c.free();
  await c.untilBusy2();
  rmSync(a); // no longer the link's
  c.free2();
  await c.until((l) => memberStates(l, 's', 'n').at(-1) === 'dead', 'n followed');
  await new Promise((r) => setTimeout(r, 300)); // anything it would still report
  assert.deepEqual(statesOf(c.lines, 'link'), ['alive']);
});

test('an entry followed in a batch is looked at after what the kernel queued meanwhile (a listener busy before it is followed)', async (t) => {
  // One batch: y turns alive, and x is renamed into place in the watched directory s. Its reports come
  // first (y's listener is then busy, as an application's may be, or the process is stopped), and only
  // then is x followed. Meanwhile x's holder is SIGKILLed, x removed, and s removed and made again with
  // a dead x. x used to be looked at and reported at once, in the new s, after the batch had caught up
  // for the last time: the removal, queued on the old s's watch where x was not followed yet, came in
  // the next batch and was dropped as older than that look (alive, dead). Seen by a chaos soak that
  // stopped watchers often (a stop just after the directory's listener followed x).
  const base = tmp(t);
  const dir = join(base, 's');
  const x = join(dir, 'x');
  const fresh = join(dir, '.x.1234.new'); // held under the private name first, as hold() does
  const y = join(base, 'y');
  const [free1, free2] = [join(base, 'free1'), join(base, 'free2')];
  mkdirSync(dir);
  execFileSync('mkfifo', [y]);
  const holder = await runnerOn(t, fresh);
  const c = child(
    t,
    `import { watch } from ${INDEX};
     import { existsSync } from 'node:fs';
     const out = (o) => console.log(JSON.stringify(o));
     const [dir, y, free1, free2] = process.argv.slice(1);
     const busy = (flag, what) => {
       out({ [what]: true });
       const end = Date.now() + 30000;
       while (!existsSync(flag) && Date.now() < end);
     };
     let ready = 0;
     const onReady = () => ++ready === 2 && setTimeout(() => out({ ready: true }), 500);
     const wd = watch(dir);
     wd.on('change', (e) => out({ target: 'dir', state: e.state }));
     wd.on('ready', onReady);
     const wy = watch(y);
     wy.on('change', (e) => {
       out({ target: 'y', state: e.state });
       if (e.state === 'alive') busy(free2, 'busy2');
     });
     wy.on('ready', onReady);
     process.stdin.on('data', () => busy(free1, 'busy1'));`,
    [dir, y, free1, free2],
  );
  await c.until((l) => l.some((m) => m.ready) && statesOf(l, 'y').at(-1) === 'dead', 'ready');
  c.send('go');
  await c.until((l) => l.some((m) => m.busy1), 'busy');
  await runnerOn(t, y); // y alive
  renameSync(fresh, x); // x renamed into place: alive
  writeFileSync(free1, '');
  await c.until((l) => l.some((m) => m.busy2), "y's listener busy");
  await kill(holder);
  rmSync(x);
  renameSync(dir, `${dir}.gone`);
  rmSync(`${dir}.gone`, { recursive: true });
  mkdirSync(dir);
  execFileSync('mkfifo', [x]);
  writeFileSync(free2, '');
  await c.until((l) => statesOf(l, 'dir').at(-1) === 'dead', 'x dead, in the new s');
  await new Promise((r) => setTimeout(r, 300)); // anything it would still report
  assert.deepEqual(statesOf(c.lines, 'dir'), ['alive', 'absent', 'dead']);
});

test('a batch that sees a FIFO die and another held at its path reports the death and opens the new one once', { skip: !existsSync('/usr/bin/strace') && 'no strace' }, async (t) => {
  // The first FIFO's EPOLLERR was taken for the death of every write end of the batch: each look at the
  // new FIFO opened another write end, whose open (IN_OPEN, queued to the new FIFO's watch) made the
  // batch look again, 16 times; a reader's close of the new FIFO among them was then taken for where the
  // first one died. The watcher runs under strace, which counts its opens of the path for writing.
  const dir = tmp(t);
  const x = join(dir, 'x');
  const log = join(dir, 'strace.log');
  const free = join(dir, 'free');
  const first = await runnerOn(t, x);
  const c = child(
    t,
    `import { watch } from ${INDEX};
     import { existsSync } from 'node:fs';
     const out = (o) => console.log(JSON.stringify(o));
     const [x, free] = process.argv.slice(1);
     out({ pid: process.pid });
     const w = watch(x);
     w.on('change', (e) => out({ target: 'x', state: e.state }));
     w.on('ready', () => setTimeout(() => out({ ready: true }), 500));
     process.stdin.on('data', () => {
       out({ busy: true });
       const end = Date.now() + 60000;
       while (!existsSync(free) && Date.now() < end);
     });`,
    [x, free],
    { wrap: ['strace', '-f', '-qq', '-o', log, '-e', 'trace=open,openat'] },
  );
  // strace SIGKILLed lets its tracee go on: the traced node is killed by its own pid, read and checked.
  await c.until((l) => l.some((m) => Number.isInteger(m.pid) && m.pid > 1), 'its pid', 60_000);
  const pid = c.lines.find((m) => m.pid !== undefined).pid;
  t.after(() => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  });
  await c.until((l) => l.some((m) => m.ready) && statesOf(l, 'x').at(-1) === 'alive', 'alive', 60_000);
  c.send('go');
  await c.until((l) => l.some((m) => m.busy), 'busy', 60_000);
  await kill(first); // dead: EPOLLERR and the reader's close, read by the worker
  rmSync(x);
  execFileSync('mkfifo', [x]);
  await runnerOn(t, x); // another FIFO, held
  writeFileSync(free, '');
  await c.until((l) => statesOf(l, 'x').length >= 4, 'the states after the busy time', 60_000);
  await new Promise((r) => setTimeout(r, 500)); // anything it would still report, or open
  assert.deepEqual(statesOf(c.lines, 'x'), ['alive', 'dead', 'absent', 'alive']);
  // Opens of x for writing that succeeded: the first look, and the one look at the new FIFO (a look
  // more for what its own open queued finds it held, and opens nothing).
  const opens = readFileSync(log, 'utf8').split('\n').filter((l) => l.includes(JSON.stringify(x)) && l.includes('O_WRONLY') && !/= -1 /.test(l));
  assert.ok(opens.length <= 3, `${opens.length} opens of the path for writing:\n${opens.join('\n')}`);
});

/** Swaps link `link` to point at `to`, as `ln -sfn` does (a new link renamed over it: IN_MOVED_TO). */
function swapLink(link, to) {
  symlinkSync(to, `${link}.new`);
  renameSync(`${link}.new`, link);
}

test('a link in the middle of a path (cur → a release): swapped, removed and made again, each is seen, also through a link to it', async (t) => {
  // inotify_add_watch(2) and the kernel's path walk follow cur silently, and a change of cur is an
  // event of its directory alone: the path stayed on a/x (alive, and a's death taken for the path's).
  const base = tmp(t);
  const [a, b] = [join(base, 'a'), join(base, 'b')];
  mkdirSync(join(a, 'sub'), { recursive: true });
  mkdirSync(join(b, 'sub'), { recursive: true });
  const cur = join(base, 'cur');
  symlinkSync('a', cur);
  const ra = await runnerOn(t, join(a, 'x'));
  const rsub = await runnerOn(t, join(a, 'sub', 'y'));
  execFileSync('mkfifo', [join(b, 'x'), join(b, 'sub', 'y')]);
  // cur/x; cur/sub/y (the link two levels up); and top → cur/x (a link whose target goes through cur).
  symlinkSync('cur/x', join(base, 'top'));
  const watched = { x: join(cur, 'x'), y: join(cur, 'sub', 'y'), top: join(base, 'top') };
  const rs = Object.fromEntries(Object.entries(watched).map(([name, path]) => {
    const w = watch(path);
    t.after(() => w.close());
    return [name, recorder(w)];
  }));
  for (const r of Object.values(rs)) await r.until(() => r.last() === 'alive', 'alive through cur');
  swapLink(cur, 'b');
  for (const r of Object.values(rs)) await r.until(() => r.last() === 'dead', 'dead: cur swapped to b');
  await kill(ra); // a/x is no longer any of theirs
  await kill(rsub);
  const rb = await runnerOn(t, join(b, 'x'));
  await rs.x.until(() => rs.x.last() === 'alive', 'b/x alive');
  await rs.top.until(() => rs.top.last() === 'alive', 'top: b/x alive');
  rmSync(cur);
  for (const r of Object.values(rs)) await r.until(() => r.last() === 'absent', 'absent: cur removed');
  symlinkSync('b', cur);
  await rs.x.until(() => rs.x.last() === 'alive', 'cur made again');
  await rs.y.until(() => rs.y.last() === 'dead', 'cur made again: sub/y');
  await kill(rb);
  await rs.x.until(() => rs.x.last() === 'dead', 'b/x dies');
  await new Promise((r) => setTimeout(r, 300)); // anything it would still report
  assert.deepEqual(rs.x.states(), ['alive', 'dead', 'alive', 'absent', 'alive', 'dead']);
  assert.deepEqual(rs.top.states(), ['alive', 'dead', 'alive', 'absent', 'alive', 'dead']);
  assert.deepEqual(rs.y.states(), ['alive', 'dead', 'absent', 'dead']);
});

test('a directory on the way replaced by a link to it while the watcher is busy: the link is then watched (removed: absent)', async (t) => {
  // p/q moved to p/q2 and p/q made a link to it, while a look through p/q is queued: that look finds
  // the directory at its old spelling again; the move, read after, must not leave the path deaf to the
  // link.
  const c = await aboveMoved(t, (p, q) => {
    renameSync(q, `${q}2`);
    symlinkSync('q2', q);
  });
  const q = join(c.p, 'q');
  rmSync(q);
  await c.until((l) => statesOf(l, 'x').at(-1) === 'absent' && statesOf(l, 'y').at(-1) === 'absent', 'absent: the link removed');
  symlinkSync('q2', q);
  await c.until((l) => statesOf(l, 'x').at(-1) === 'alive' && statesOf(l, 'y').at(-1) === 'dead', 'the link made again');
});

test('a directory replaced by a link to it just before a path through it is first watched: the link is watched (swapped: seen), and so by a wait', async (t) => {
  // The first look of real/y came before the move was read and trusted real/'s "no link on it"; the
  // move, read after, did not look at y again (its look was newer than the move): y followed real2/ for
  // good (dead, then alive from a holder there, where real named other/ and y was absent).
  const d = tmp(t);
  const [real, other] = [join(d, 'real'), join(d, 'other')];
  mkdirSync(real);
  mkdirSync(other);
  execFileSync('mkfifo', [join(real, 'x'), join(real, 'y'), join(real, 'z')]);
  await runnerOn(t, join(other, 'z'));
  const wx = watch(join(real, 'x')); // another path through real/: its look finds no link on it
  t.after(() => wx.close());
  await once(wx, 'ready');
  await new Promise((r) => setTimeout(r, 500)); // (its look's marker read: the flag is trusted)
  renameSync(real, `${real}2`);
  symlinkSync('real2', real);
  const wy = watch(join(real, 'y'));
  t.after(() => wy.close());
  const ry = recorder(wy);
  const waiting = waitAlive(join(real, 'z'), { timeout: 20000 });
  await ry.until(() => ry.states().length === 1, 'y first');
  await new Promise((r) => setTimeout(r, 300)); // the move read
  swapLink(real, 'other');
  await ry.until(() => ry.last() === 'absent', 'y absent: real is other/ now');
  await waiting; // other/z is alive
  await runnerOn(t, join(d, 'real2', 'y')); // not y's any more
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(ry.states(), ['dead', 'absent']);
});

test('a link on the way renamed into place under a holder-like name (.cur.N.new) is no life of the path', async (t) => {
  // A rename into place from `.<name>.<digits>.new` proves a holder's FIFO: it was taken for one at
  // every hop of the chain, a link on the way included (dead, alive, dead).
  const d = tmp(t);
  for (const n of ['a', 'b']) mkdirSync(join(d, n));
  execFileSync('mkfifo', [join(d, 'a', 'x'), join(d, 'b', 'x')]);
  symlinkSync('a', join(d, 'cur'));
  symlinkSync('cur/x', join(d, 'top')); // and at the end of a path, through a link to it
  const ws = [join(d, 'cur', 'x'), join(d, 'top'), join(d, 'sub', 'x')].map((path) => {
    const w = watch(path);
    t.after(() => w.close());
    return recorder(w);
  });
  for (const r of ws) await r.until(() => r.states().length === 1, 'first');
  symlinkSync('b', join(d, '.cur.4242.new'));
  renameSync(join(d, '.cur.4242.new'), join(d, 'cur'));
  symlinkSync('cur/x', join(d, '.top.4242.new'));
  renameSync(join(d, '.top.4242.new'), join(d, 'top'));
  // And a directory renamed into place above a missing path (its hop is in d, for sub): no life either.
  mkdirSync(join(d, '.sub.4242.new'));
  execFileSync('mkfifo', [join(d, '.sub.4242.new', 'x')]);
  renameSync(join(d, '.sub.4242.new'), join(d, 'sub'));
  await ws[2].until(() => ws[2].last() === 'dead', 'sub/x dead');
  await new Promise((r) => setTimeout(r, 600));
  assert.deepEqual(ws.map((r) => r.states()), [['dead'], ['dead'], ['absent', 'dead']]);
});

test('a link on the way that points to nothing yet (runit: supervise → /run/runit/supervise.foo) is followed to where it points', async (t) => {
  // inotify_add_watch(2) cannot follow a dangling link: the look watched the link's name only, and
  // nothing saw its target made (absent for good).
  const d = tmp(t);
  const foo = join(d, 'sv', 'foo');
  mkdirSync(foo, { recursive: true });
  mkdirSync(join(d, 'run', 'runit'), { recursive: true });
  writeFileSync(join(foo, 'run'), '#!/bin/sh\n', { mode: 0o755 });
  const sup = join(d, 'run', 'runit', 'supervise.foo');
  symlinkSync(sup, join(foo, 'supervise'));
  symlinkSync('../run/runit/nothing', join(d, 'sv', 'cur')); // and a relative one, in the middle of a path
  const watched = { foo, cur: join(d, 'sv', 'cur', 'x') };
  const rs = Object.fromEntries(Object.entries(watched).map(([name, path]) => {
    const w = watch(path);
    t.after(() => w.close());
    return [name, recorder(w)];
  }));
  for (const r of Object.values(rs)) await r.until(() => r.states().length === 1, 'first');
  mkdirSync(sup); // runsv starts
  await runnerOn(t, join(sup, 'ok'));
  await rs.foo.until(() => rs.foo.last() === 'alive', 'foo alive');
  mkdirSync(join(d, 'run', 'runit', 'nothing'));
  execFileSync('mkfifo', [join(d, 'run', 'runit', 'nothing', 'x')]);
  await rs.cur.until(() => rs.cur.last() === 'dead', 'cur/x dead');
  assert.deepEqual(rs.foo.states(), ['absent', 'alive']);
  assert.deepEqual(rs.cur.states(), ['absent', 'dead']);
  // What the state is of, as spelt through the link, whether its target is there or not.
  assert.deepEqual(rs.foo.events.map((e) => e.path), [join(foo, 'supervise', 'ok'), join(foo, 'supervise', 'ok')]);
  assert.deepEqual(rs.cur.events.map((e) => e.path), [watched.cur, watched.cur]);
});

test("a '..' in a link's target goes up from where a link on the way led, as the kernel's walk does; a loop through one is ELOOP", async (t) => {
  // cur → deep/a, deep/a/x → ../y: the kernel opens deep/y; resolved from the spelling, cur/../y is y.
  const d = tmp(t);
  mkdirSync(join(d, 'deep', 'a'), { recursive: true });
  mkdirSync(join(d, 'loop', 'a'), { recursive: true });
  symlinkSync('deep/a', join(d, 'cur'));
  symlinkSync('../y', join(d, 'deep', 'a', 'x'));
  await runnerOn(t, join(d, 'deep', 'y'));
  execFileSync('mkfifo', [join(d, 'y')]); // what the spelling would reach: dead
  // loop/a/x → ../y, loop/y → lcur/x, lcur → loop/a: round and round (ELOOP for the kernel).
  symlinkSync('loop/a', join(d, 'lcur'));
  symlinkSync('../y', join(d, 'loop', 'a', 'x'));
  symlinkSync(join(d, 'lcur', 'x'), join(d, 'loop', 'y'));
  const [rx, rl] = [join(d, 'cur', 'x'), join(d, 'lcur', 'x')].map((path) => {
    const w = watch(path);
    t.after(() => w.close());
    return recorder(w);
  });
  await rx.until(() => rx.states().length === 1, 'x');
  await rl.until(() => rl.states().length === 1, 'the loop');
  assert.deepEqual(rx.events.map((e) => [e.state, e.path]), [['alive', join(d, 'deep', 'y')]]);
  assert.deepEqual(rl.events.map((e) => [e.state, e.code]), [['unknown', 'ELOOP']]);
});

test('a path watched while a link on it is swapped with a directory, again and again: its watcher ends agreeing with check', async (t) => {
  // The look's inotify_add_watch(2) followed the link to A; its walk, an instant later, found a
  // directory there: it watched no link, took A for the path's directory, and trusted that (deaf for
  // good, wrong state). Races: each round fails rarely; 25 rounds failed nearly always.
  const d = tmp(t);
  mkdirSync(join(d, 'A'));
  mkdirSync(join(d, 'real'));
  execFileSync('mkfifo', [join(d, 'A', 'x')]);
  await runnerOn(t, join(d, 'real', 'x'));
  symlinkSync('A', join(d, 'cur'));
  const x = join(d, 'cur', 'x');
  const wrong = [];
  for (let round = 0; round < 25; round++) {
    const swapper = spawn(compileC('swapper'), [d], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 15));
    const w = watch(x);
    const r = recorder(w);
    await new Promise((r) => setTimeout(r, 5));
    swapper.kill('SIGTERM');
    await once(swapper, 'exit');
    // cur is the directory now (alive); then a link to A again (dead).
    if (existsSync(join(d, 'real'))) {
      rmSync(join(d, 'cur'));
      renameSync(join(d, 'real'), join(d, 'cur'));
    }
    const ends = [];
    for (const want of ['alive', 'dead']) {
      if (want === 'dead') {
        renameSync(join(d, 'cur'), join(d, 'real'));
        symlinkSync('A', join(d, 'cur'));
      }
      await until(() => r.last() === state(x).state, `round ${round}: ${want}`, 1500).catch(() => {});
      ends.push(`${state(x).state}/${r.last()}`);
    }
    await w.close();
    if (ends.some((e) => e.split('/')[0] !== e.split('/')[1])) wrong.push(`round ${round}: check/watcher ${ends.join(', ')}; reported ${r.states().join(' ')}`);
  }
  assert.deepEqual(wrong, []);
});

test('a directory made and removed, then one renamed into place under a holder-like name, again and again: no life of the path below', async (t) => {
  // The look after `mkdir sub` leaves the hop in d for sub, kept until its wave has caught up: a rename
  // into place read there was taken for a holder's (alive, though no FIFO at d/sub/f ever had a reader).
  const d = tmp(t);
  const w = watch(join(d, 'sub', 'f'));
  t.after(() => w.close());
  const r = recorder(w);
  await once(w, 'ready');
  const swapper = spawn(compileC('dirswap'), [d, '100'], { stdio: 'ignore' });
  const [code] = await once(swapper, 'exit');
  assert.equal(code, 0);
  await new Promise((res) => setTimeout(res, 300));
  assert.equal(r.states().filter((s) => s === 'alive').length, 0, r.states().join(' '));
  assert.equal(r.last(), 'absent');
});

test('a path through /proc/PID/root of a process in another mount namespace is watched with events, not polled for good', { skip: process.getuid() !== 0 && 'needs root (unshare -m)' }, async (t) => {
  // The walk read /proc/PID/root as "/", our root, where the kernel follows the other namespace's: the
  // directory it found was never the one watched, and every look asked for another (polled for good).
  const d = tmp(t);
  const ns = await start(t, 'unshare', ['-m', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs none ${d} && exec ${compileC('runner')} ${d}/f 60`]);
  const path = `/proc/${ns.pid}/root${d}/f`;
  await until(() => state(path).state === 'alive', 'the runner in its namespace');
  const w = watch(path);
  t.after(() => w.close());
  const r = recorder(w);
  await r.until(() => r.last() === 'alive', 'alive');
  await new Promise((res) => setTimeout(res, 1000));
  assert.equal(w.mechanism, 'events');
  await kill(ns);
  await r.until(() => r.last() !== 'alive', 'the runner gone');
});
