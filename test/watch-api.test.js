// The watcher's API for long-lived programs (issue 11, "the watcher and the waits"): 'ready', 'error',
// close() that resolves once everything is released, add() and unwatch(), mechanism; and the event
// source's watch of any fd, which a program can use for a socket of its own.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, constants, cpSync, openSync, readFileSync, readSync, rmSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tmp, start, startRunner, kill, until, compileC, DIST, ROOT, BIN } from './helpers.js';
import { child, INDEX, statesOf } from './child.js';
import { watch } from '../dist/index.js';
import { theMonitor } from '../dist/monitor.js';

test("first reports have previous: null; 'ready' comes once all of them have, members of a directory included", async (t) => {
  const dir = tmp(t);
  const targets = join(tmp(t), 'targets');
  execFileSync('mkdir', [targets]);
  execFileSync('mkfifo', [join(targets, 'x'), join(targets, 'y')]);
  const runner = await startRunner(t, join(dir, 'a'));
  const w = watch([join(dir, 'a'), join(dir, 'b'), targets]);
  t.after(() => w.close());
  const seen = [];
  w.on('change', (e) => seen.push(e));
  await new Promise((resolve) => w.once('ready', resolve));
  assert.deepEqual(
    seen.map((e) => [e.target, e.state, e.previous]).sort(),
    [
      [join(dir, 'a'), 'alive', null],
      [join(dir, 'b'), 'absent', null],
      [join(targets, 'x'), 'dead', null],
      [join(targets, 'y'), 'dead', null],
    ].sort(),
  );
  await kill(runner);
  await until(() => seen.length === 5, 'a change after ready');
  assert.deepEqual([seen[4].state, seen[4].previous], ['dead', 'alive']);
});

test("'error': said when watching falls back to polling, once; never thrown when nobody listens", async (t) => {
  // A copy of the package without the worker's file: the event worker cannot load.
  const copy = tmp(t);
  cpSync(DIST, join(copy, 'dist'), { recursive: true });
  rmSync(join(copy, 'dist', 'kernel-events-worker.js'));
  symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
  writeFileSync(join(copy, 'package.json'), readFileSync(join(ROOT, 'package.json')));
  const path = join(tmp(t), 'p');
  const c = child(
    t,
    `import { watch } from ${JSON.stringify(join(copy, 'dist', 'index.js'))};
     const out = (o) => console.log(JSON.stringify(o));
     const quiet = watch(process.argv[1]); // no 'error' listener: it must not throw
     quiet.on('change', (e) => out({ target: 'quiet', state: e.state }));
     const w = watch(process.argv[1]);
     w.on('change', (e) => out({ target: 'w', state: e.state, mechanism: w.mechanism }));
     w.on('error', (e) => out({ error: e.code, message: e.message }));`,
    [path],
  );
  await c.until((l) => l.some((x) => x.error), "the 'error' event");
  const runner = await startRunner(t, path);
  await c.until((l) => statesOf(l, 'w').at(-1) === 'alive' && statesOf(l, 'quiet').at(-1) === 'alive', 'both still report');
  await kill(runner);
  await c.until((l) => statesOf(l, 'w').at(-1) === 'dead' && statesOf(l, 'quiet').at(-1) === 'dead', 'both still report');
  const errors = c.lines.filter((x) => x.error);
  assert.equal(errors.length, 1, JSON.stringify(errors));
  assert.equal(errors[0].error, 'EWATCH');
  assert.match(errors[0].message, /polling instead/);
  assert.equal(c.lines.filter((x) => x.target === 'w').at(-1).mechanism, 'polling');
  assert.equal(c.exitCode, null, 'still running: nothing was thrown');
});

test('close() resolves once the fds, the watches and the worker are released', async (t) => {
  const path = join(tmp(t), 'p');
  const runner = await startRunner(t, path);
  const c = child(
    t,
    `import { watch } from ${INDEX};
     import { readdirSync, readlinkSync } from 'node:fs';
     const out = (o) => console.log(JSON.stringify(o));
     // The fds of the process, by what they are (epoll, inotify, eventfd, FIFOs): Node has some too.
     const ours = () => readdirSync('/proc/self/fd').map((fd) => { try { return readlinkSync('/proc/self/fd/' + fd); } catch { return ''; } })
       .filter((l) => (l.startsWith('anon_inode') || l.startsWith('/')) && !l.startsWith('/proc/')).sort();
     out({ started: true }); // Node sets stdout up on first use, with an fd of its own
     const before = ours();
     const w = watch(process.argv[1]);
     w.on('ready', async () => {
       const during = ours();
       const closing = w.close();
       out({ promise: closing instanceof Promise, same: closing === w.close() });
       await closing;
       out({ before, during, after: ours(), resources: process.getActiveResourcesInfo().filter((r) => r === 'Worker') });
     });`,
    [path],
  );
  await c.until((l) => l.some((x) => x.after), 'closed');
  assert.deepEqual(c.lines[1], { promise: true, same: true });
  const { before, during, after, resources } = c.lines[2];
  assert.ok(during.some((l) => /inotify/.test(l)) && during.includes(path) && during.length > before.length + 3, JSON.stringify(during));
  assert.deepEqual(after, before, 'everything released');
  assert.deepEqual(resources, [], 'no worker left');
  assert.deepEqual(await c.exited, [0, null], 'and nothing keeps the process up');
  await kill(runner);
});

test('add() and unwatch() on a long-lived watcher', async (t) => {
  const dir = tmp(t);
  const [a, b] = [join(dir, 'a'), join(dir, 'b')];
  const w = watch([]);
  t.after(() => w.close());
  const seen = [];
  w.on('change', (e) => seen.push([e.target, e.state, e.previous]));
  await new Promise((resolve) => w.once('ready', resolve));
  w.add([a, b]);
  await until(() => seen.length === 2, 'first reports of added targets');
  assert.deepEqual(seen, [[a, 'absent', null], [b, 'absent', null]]);
  w.unwatch(a);
  const ra = await startRunner(t, a);
  const rb = await startRunner(t, b);
  await until(() => seen.length === 3, 'b alive');
  assert.deepEqual(seen[2], [b, 'alive', 'absent']);
  w.add(a); // again: a new first report
  await until(() => seen.length === 4, 'a again');
  assert.deepEqual(seen[3], [a, 'alive', null]);
  assert.equal(w.mechanism, 'events');
  await kill(ra);
  await kill(rb);
  await until(() => seen.length === 6, 'both dead');
  assert.throws(() => w.add(''), { code: 'EINVAL' });
});

test('watchFd: a callback on the main thread when a pipe becomes readable, and when its writer is gone', async (t) => {
  const fifo = join(tmp(t), 'pipe');
  execFileSync('mkfifo', [fifo]);
  const readFd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const writeFd = openSync(fifo, constants.O_WRONLY);
  const got = [];
  const kinds = [];
  const watched = theMonitor().watchFd(readFd, (kind) => {
    kinds.push(kind);
    const buf = Buffer.alloc(64);
    try {
      got.push(buf.subarray(0, readSync(readFd, buf)).toString());
    } catch {
      // EAGAIN: a poll with nothing there
    }
  });
  t.after(() => {
    watched.close();
    closeSync(readFd);
  });
  writeSync(writeFd, 'one');
  await until(() => got.join('') === 'one', 'first datagram');
  writeSync(writeFd, 'two');
  await until(() => got.join('') === 'onetwo', 'second, once re-armed');
  assert.ok(kinds.every((k) => k === 'readable'), kinds.join());
  watched.close();
  writeSync(writeFd, 'three');
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(got.join(''), 'onetwo', 'nothing after close()');
  closeSync(writeFd);

  // The write end of a pipe whose reader goes: 'error', with no EPOLLIN asked for.
  const fifo2 = join(tmp(t), 'pipe2');
  execFileSync('mkfifo', [fifo2]);
  const reader = await start(t, compileC('runner'), [fifo2, '60']);
  await until(() => {
    try {
      closeSync(openSync(fifo2, constants.O_WRONLY | constants.O_NONBLOCK));
      return true;
    } catch {
      return false;
    }
  }, 'a reader');
  const w2 = openSync(fifo2, constants.O_WRONLY | constants.O_NONBLOCK);
  let gone = false;
  const errors = theMonitor().watchFd(w2, (kind) => (gone = kind === 'error'), { readable: false });
  t.after(() => {
    errors.close();
    closeSync(w2);
  });
  await kill(reader);
  await until(() => gone, 'told the reader is gone');
});

/** gdb, and the right to trace (a container may lack CAP_SYS_PTRACE). */
const NO_GDB = /exited normally/.test(spawnSync('gdb', ['-q', '-nx', '-batch', '-ex', 'run', '--args', 'true'], { encoding: 'utf8', timeout: 30_000 }).stdout ?? '')
  ? false
  : 'needs gdb, allowed to trace (.ci/run installs it)';

/**
 * Runs `node --require <exit marker> ...args` under gdb, which holds the event worker inside koffi's
 * module init (test/fixtures/hold-worker-init.py) until the process has begun to end. Once the worker
 * is held, the file `go` (in `dir`) is made: the program ends when it sees it. Returns what the gdb
 * script and the program printed (HELD, then EXITED <code> or SIGNAL <name>).
 */
async function endingWhileTheWorkerLoads(t, dir, args) {
  const marker = join(dir, 'exiting');
  const preload = join(dir, 'mark-exit.cjs');
  writeFileSync(preload, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(marker)}, ''));\n`);
  const script = join(ROOT, 'test', 'fixtures', 'hold-worker-init.py');
  const gdb = await start(t, 'gdb', ['-q', '-nx', '-x', script, '--args', process.execPath, '--require', preload, ...args], {
    env: { ...process.env, PA_EXIT_MARKER: marker },
    stdio: ['pipe', 'pipe', 'pipe'], // gdb reads its commands from stdin: kept open, nothing written
  });
  let out = '';
  gdb.stdout.on('data', (d) => (out += d));
  await until(() => /^HELD$/m.test(out), 'the worker held in koffi\'s init', 60000);
  writeFileSync(join(dir, 'go'), '');
  await until(() => /^(EXITED|SIGNAL) /m.test(out), 'the end of the process', 60000);
  assert.match(out, /^RELEASED$/m, 'the worker was let go only once the main thread had begun to end, and blocked');
  return `${out}${gdb.stderrText()}`;
}

test('a process that ends while its event worker is inside koffi\'s init ends as it meant to, never SIGABRT (process.exit(), a natural exit)', { skip: NO_GDB }, async (t) => {
  // process.exit(7) from a program that watches, while the worker loads.
  const dir = tmp(t);
  const program = join(dir, 'program.mjs');
  writeFileSync(
    program,
    `import { existsSync } from 'node:fs';
     import { watch } from ${JSON.stringify(join(DIST, 'index.js'))};
     watch(${JSON.stringify(join(dir, 'target'))});
     setInterval(() => existsSync(${JSON.stringify(join(dir, 'go'))}) && process.exit(7), 10);
     setTimeout(() => process.exit(9), 60_000).unref(); // never left behind by a failed test`,
  );
  const byExit = await endingWhileTheWorkerLoads(t, dir, [program]);
  assert.doesNotMatch(byExit, /FATAL ERROR|^SIGNAL /m, byExit);
  assert.match(byExit, /^EXITED 7$/m, byExit);

  // The wrapper's natural end: `run --ready=notify` starts the worker for the command's socket, and
  // the command ends before the worker has loaded (one run in about 300 aborted on a loaded machine).
  const dir2 = tmp(t);
  const command = `i=0; until [ -e ${join(dir2, 'go')} ] || [ $i -gt 3000 ]; do sleep 0.02; i=$((i + 1)); done; exit 5`;
  const wrapper = await endingWhileTheWorkerLoads(t, dir2, [BIN, 'run', join(dir2, 'p'), '--ready=notify', '--', 'sh', '-c', command]);
  assert.doesNotMatch(wrapper, /FATAL ERROR|^SIGNAL /m, wrapper);
  assert.match(wrapper, /^EXITED 5$/m, wrapper);
});
