// Watching and waiting where the kernel says no (issue 8): a checker that may only write the FIFO, a
// directory it may search but not read, the fd limit, the inotify watch limit, a worker that cannot
// start, timeouts past Node's timer limit. The path that cannot be watched is polled; nothing turns a
// state that meets a wait's goal into an error; everything comes back once the limit is freed. Each of
// these tests failed on the code before the fix (9d37f74).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { tmp, state, start, startRunner, kill, until, compileC, BIN, DIST, ROOT, HANG_GUARD_MS } from './helpers.js';
import { child, INDEX, statesOf } from './child.js';
import { waitAlive, hold } from '../dist/index.js';

const root = process.getuid?.() === 0;

/**
 * The start of a child's source for the inotify limit tests: `watch`, `out(o)` (a JSON line), `existsSync`,
 * `mkdirSync`, and libc's inotify calls (`init`, `add`, `rm`, `close`) for a hog of this user's watches.
 */
const HOG_PREAMBLE = `import { watch } from ${INDEX};
     import { createRequire } from 'node:module';
     import { existsSync, mkdirSync } from 'node:fs';
     const out = (o) => console.log(JSON.stringify(o));
     const koffi = createRequire(${INDEX})('koffi');
     const libc = koffi.load('libc.so.6');
     const init = libc.func('int inotify_init1(int)'), add = libc.func('int inotify_add_watch(int, const char *, uint32_t)');
     const rm = libc.func('int inotify_rm_watch(int, int)'), close = libc.func('int close(int)');
     // Commands on stdin: 'fill' takes every watch this user has left but \`leave\` (into \`hog\`, on
     // directories made under \`helperDirs\`); 'busy' keeps the main thread busy until \`flag\` exists;
     // 'free' closes the hog.
     const obey = (hog, helperDirs, leave, flag) => process.stdin.on('data', (d) => {
       const what = String(d).trim();
       if (what === 'fill') {
         const wds = [];
         for (let i = 0; ; i++) {
           mkdirSync(helperDirs + '/' + i, { recursive: true });
           const wd = add(hog, helperDirs + '/' + i, 0x100);
           if (wd < 0) break;
           wds.push(wd);
         }
         for (const wd of wds.slice(wds.length - leave)) rm(hog, wd);
         out({ filled: true });
       } else if (what === 'busy') {
         out({ busy: true });
         const end = Date.now() + 30000;
         while (!existsSync(flag) && Date.now() < end);
       } else {
         close(hog);
         out({ freed: true });
       }
     });`;

/** A child's wrapper: its own user namespace, where this user may have `n` inotify watches. */
const inotifyLimit = (n) => ['unshare', '-U', '-r', 'sh', '-c', `echo ${n} > /proc/sys/user/max_inotify_watches && exec "$@"`, 'sh'];
const AS_NOBODY = ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups'];

/** `proc-alive args...` as nobody: { code, stderr }. */
function cliAsNobody(args) {
  const r = spawnSync(AS_NOBODY[0], [...AS_NOBODY.slice(1), process.execPath, BIN, ...args], { encoding: 'utf8', timeout: 10000 });
  return { code: r.status, stderr: r.stderr };
}

test('a checker that may only write the FIFO (0602), or in a directory it cannot read (0711): waits and watch work, by polling that path', { skip: !root && 'needs root (setpriv)' }, async (t) => {
  const open = tmp(t);
  chmodSync(open, 0o755);
  const closed = join(tmp(t), 'closed');
  mkdirSync(closed);
  chmodSync(join(closed, '..'), 0o755);
  for (const dir of [open, closed]) {
    const fifo = join(dir, 'w');
    execFileSync('mkfifo', ['-m', '0602', fifo]); // others: write, not read (no inotify for them)
    if (dir === closed) chmodSync(closed, 0o711); // searchable, not readable
    assert.deepEqual(cliAsNobody(['wait', '--down', '--timeout', '3', fifo]), { code: 0, stderr: '' }, `${dir}: dead already meets --down`);
    const up = await start(t, AS_NOBODY[0], [...AS_NOBODY.slice(1), process.execPath, BIN, 'wait', '--up', '--timeout', '20', fifo]);
    const watcher = child(
      t,
      `import { watch } from ${INDEX};
       const w = watch(process.argv[1]);
       w.on('change', (e) => console.log(JSON.stringify({ target: 'w', state: e.state, code: e.code, mechanism: w.mechanism })));`,
      [fifo],
      { wrap: AS_NOBODY },
    );
    await watcher.until((l) => statesOf(l, 'w').length === 1, 'first report');
    const runner = await start(t, compileC('runner'), [fifo, '60']);
    assert.deepEqual(await up.exited, [0, null], up.stderrText());
    await watcher.until((l) => statesOf(l, 'w').at(-1) === 'alive', 'alive');
    await kill(runner);
    await watcher.until((l) => statesOf(l, 'w').at(-1) === 'dead', 'dead');
    assert.deepEqual(statesOf(watcher.lines, 'w'), ['dead', 'alive', 'dead'], `${dir}: ${JSON.stringify(watcher.lines)}`);
    assert.equal(watcher.lines[0].mechanism, 'mixed', 'said: some paths are polled');
  }
});

test('a checker that may only write the FIFO, in a directory it cannot read, while its holder leaves cleanly (name first, then reader): alive, absent, never a death', { skip: !root && 'needs root (setpriv)' }, async (t) => {
  // Such a checker can watch neither the FIFO nor its directory (EACCES): the path is polled, and only
  // its write end's EPOLLERR comes as an event. Nothing orders that death against the name's removal
  // before it (within one poll); the death was put first, as if the holder had crashed before its
  // FIFO was removed: a clean stop read as a crash.
  const dir = join(tmp(t), 'closed');
  mkdirSync(dir);
  chmodSync(join(dir, '..'), 0o755);
  const runnerBin = compileC('runner');
  for (let i = 0; i < 3; i++) {
    const fifo = join(dir, `w${i}`);
    chmodSync(dir, 0o755);
    execFileSync('mkfifo', ['-m', '0602', fifo]);
    chmodSync(dir, 0o711); // searchable, not readable
    const runner = await start(t, runnerBin, [fifo, '60']);
    const watcher = child(
      t,
      `import { watch } from ${INDEX};
       const w = watch(process.argv[1]);
       w.on('change', (e) => console.log(JSON.stringify({ target: 'w', state: e.state })));`,
      [fifo],
      { wrap: AS_NOBODY },
    );
    await watcher.until((l) => statesOf(l, 'w').at(-1) === 'alive', 'alive');
    rmSync(fifo); // the name leaves first, while it is held (as hold().close() and run do)
    await kill(runner); // then the reader, before the next poll (25 ms) most of the time
    await watcher.until((l) => statesOf(l, 'w').at(-1) === 'absent', 'absent');
    await new Promise((r) => setTimeout(r, 100)); // anything reported late comes now
    assert.deepEqual(statesOf(watcher.lines, 'w'), ['alive', 'absent'], `round ${i}`);
    watcher.kill('SIGKILL');
  }
});

/** `proc-alive watch target` from `bin`, with `shell` run first: { c, out(), stderr() }. */
async function watchCli(t, bin, target, shell = '') {
  const c = await start(t, 'sh', ['-c', `${shell} exec "${process.execPath}" "${bin}" watch "${target}"`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  c.stdout.on('data', (d) => (out += d));
  return { c, out: () => out };
}

/** Both fall back to polling, see it come up and go down, and watch says so in one line. */
async function fallsBack(t, bin, shell) {
  const fifo = join(tmp(t), 'p');
  const waiter = await start(t, 'sh', ['-c', `${shell} exec "${process.execPath}" "${bin}" wait --timeout 20 "${fifo}"`]);
  const w = await watchCli(t, bin, fifo, shell);
  await until(() => /polling instead/.test(w.c.stderrText()), 'watch says it polls');
  const runner = await startRunner(t, fifo, ['60']);
  assert.deepEqual(await waiter.exited, [0, null], waiter.stderrText());
  await until(() => / alive {2}\(was absent\)\n/.test(w.out()), 'watch reports it alive');
  await kill(runner);
  await until(() => / dead {2}\(was alive\)\n/.test(w.out()), 'and dead');
  w.c.kill('SIGTERM');
  assert.deepEqual(await w.c.exited, [0, null]);
  const said = w.c.stderrText().trim().split('\n');
  assert.equal(said.length, 1, `one line, once: ${w.c.stderrText()}`);
  assert.match(said[0], /^proc-alive: (the event worker failed|cannot start watching) \(.+\); polling instead until it can be restarted$/);
}

test('a path polled because a link on its way cannot be watched: an open of its FIFO while the directory was moved away and back is no life of it', { skip: !root && 'needs root (setpriv)' }, async (t) => {
  // T (0711: nobody may search it, not read it) holds L → A/b/s: the link's directory cannot be watched,
  // so T/L/x is polled, and its FIFO (an existing dead one) has a watch of its own. While the watcher
  // was stopped, A was renamed away, a runner opened A2/b/s/x and was killed, and A was renamed back: the
  // poll looked first (dead, no change), then the FIFO's IN_OPEN was taken for a life of T/L/x: dead,
  // alive, dead, though T/L/x never named a FIFO with a reader.
  const base = tmp(t);
  chmodSync(base, 0o755);
  const T = join(base, 'T');
  const s = join(T, 'A', 'b', 's');
  mkdirSync(s, { recursive: true });
  execFileSync('mkfifo', ['-m', '0666', join(s, 'x')]);
  chmodSync(T, 0o711);
  symlinkSync('A/b/s', join(T, 'L'));
  const x = join(T, 'L', 'x');
  const watcher = child(
    t,
    `import { watch } from ${INDEX};
     const w = watch(process.argv[1]);
     w.on('change', (e) => console.log(JSON.stringify({ target: 'x', state: e.state, mechanism: w.mechanism })));`,
    [x],
    { wrap: AS_NOBODY },
  );
  await watcher.until((l) => statesOf(l, 'x').length === 1, 'first report');
  assert.equal(watcher.lines[0].mechanism, 'mixed', 'polled');
  watcher.kill('SIGSTOP');
  renameSync(join(T, 'A'), join(T, 'A2'));
  const runner = await start(t, compileC('runner'), [join(T, 'A2', 'b', 's', 'x'), '60']);
  await until(() => state(join(T, 'A2', 'b', 's', 'x')).state === 'alive', 'the runner');
  await kill(runner);
  renameSync(join(T, 'A2'), join(T, 'A'));
  await new Promise((r) => setTimeout(r, 100)); // its poll due when it runs again: it looks first
  watcher.kill('SIGCONT');
  const y = await start(t, compileC('runner'), [join(s, 'x'), '60']); // a real life of T/L/x, after
  await watcher.until((l) => statesOf(l, 'x').at(-1) === 'alive', 'x alive (a real life)');
  await kill(y);
  await watcher.until((l) => statesOf(l, 'x').at(-1) === 'dead', 'x dead');
  assert.deepEqual(statesOf(watcher.lines, 'x'), ['dead', 'alive', 'dead']);
});

test('a worker that cannot start: wait and watch both fall back to polling, and watch says so', async (t) => {
  // Its file missing (a bundler that did not copy it): the worker fails to load.
  const copy = tmp(t);
  cpSync(DIST, join(copy, 'dist'), { recursive: true });
  rmSync(join(copy, 'dist', 'kernel-events-worker.js'), { force: true });
  symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
  writeFileSync(join(copy, 'package.json'), readFileSync(join(ROOT, 'package.json')));
  await fallsBack(t, join(copy, 'dist', 'bin.cjs'), '');
  // A few fds more than a bare node process has (ulimit -n 25 in the report): too few for the worker.
  const base = Number(spawnSync(process.execPath, ['-e', 'console.log(require("fs").readdirSync("/proc/self/fd").length)'], { encoding: 'utf8' }).stdout);
  await fallsBack(t, BIN, `ulimit -n ${base + 3};`);
});

test('the fd limit reached, then freed: targets are unknown (EMFILE) meanwhile, never dead, and then recover', async (t) => {
  const dir = tmp(t);
  const paths = ['a', 'b', 'c'].map((n) => join(dir, n));
  const c = child(
    t,
    `import { watch } from ${INDEX};
     import { openSync, closeSync } from 'node:fs';
     const out = (o) => console.log(JSON.stringify(o));
     const w = watch(process.argv.slice(1));
     w.on('change', (e) => out({ target: e.target, state: e.state, code: e.code }));
     w.on('error', (e) => out({ error: e.code }));
     // The limit is to be reached while the event worker waits, not while it starts (~30 ms; the
     // worker that cannot start is the test above).
     w.once('change', () => setTimeout(() => out({ armed: w.mechanism }), 500));
     const filler = [];
     process.stdin.on('data', (d) => {
       if (String(d).startsWith('fill')) {
         for (;;) { try { filler.push(openSync('/dev/null', 'r')); } catch { break; } }
         out({ filled: filler.length });
       } else {
         for (const fd of filler.splice(0)) closeSync(fd);
         out({ freed: true });
       }
     });`,
    paths,
    { shell: 'ulimit -n 200;' },
  );
  await c.until((l) => l.some((x) => x.armed), 'watching');
  assert.equal(c.lines.find((x) => x.armed).armed, 'events');
  c.send('fill');
  await c.until((l) => l.some((x) => x.filled), 'no fd left');
  const runners = await Promise.all(paths.map((p) => start(t, compileC('runner'), [p, '60'])));
  await c.until((l) => paths.every((p) => statesOf(l, p).at(-1) === 'unknown'), 'unknown: no fd to look with');
  c.send('free');
  await c.until((l) => paths.every((p) => statesOf(l, p).at(-1) === 'alive'), 'alive once fds are freed');
  for (const r of runners) await kill(r);
  await c.until((l) => paths.every((p) => statesOf(l, p).at(-1) === 'dead'), 'dead: watched by events again');
  // A runner's open that the watcher's look (its FIFO watch added, its own open refused: EMFILE) was
  // followed by proves a reader was there: alive, then unknown again, is the truth told in order.
  for (const p of paths) {
    const states = statesOf(c.lines, p);
    const told = [['absent', 'unknown', 'alive', 'dead'], ['absent', 'alive', 'unknown', 'alive', 'dead']];
    assert.ok(told.some((s) => isDeepStrictEqual(s, states)), `${p}: ${states.join(' → ')}`);
  }
  assert.ok(c.lines.some((x) => x.error === 'EMFILE'), "an 'error' event said so");
});

test('the inotify watch limit reached (in a user namespace), then freed: targets past it are polled, then watched again', { skip: !hasUserns() && 'needs unshare -U' }, async (t) => {
  const dir = tmp(t);
  const helperDirs = join(tmp(t), 'h');
  mkdirSync(helperDirs);
  const n = 12;
  const paths = Array.from({ length: n }, (_, i) => join(dir, `f${i}`));
  execFileSync('mkfifo', paths);
  const c = child(
    t,
    `${HOG_PREAMBLE}
     // Another inotify user of this user takes all but a few watches.
     const [helperDirs, ...paths] = process.argv.slice(1);
     const hog = init(0);
     for (let i = 0; i < 24; i++) { mkdirSync(helperDirs + '/' + i, { recursive: true }); add(hog, helperDirs + '/' + i, 0x100); }
     const w = watch(paths);
     w.on('change', (e) => out({ target: e.target, state: e.state, code: e.code }));
     w.on('error', (e) => out({ error: e.code }));
     w.once('change', () => setTimeout(() => out({ ready: w.mechanism }), 100));
     process.stdin.on('data', () => { close(hog); out({ freed: true }); });
     setInterval(() => out({ mechanism: w.mechanism }), 50);`,
    [helperDirs, ...paths],
    { wrap: inotifyLimit(30) },
  );
  await c.until((l) => l.some((x) => x.ready), 'first reports');
  assert.ok(paths.every((p) => statesOf(c.lines, p)[0] === 'dead'), `dead, not unknown: ${JSON.stringify(c.lines.slice(0, n))}`);
  assert.equal(c.lines.find((x) => x.ready).ready, 'mixed');
  assert.ok(c.lines.some((x) => x.error === 'ENOSPC'), "an 'error' event said so");
  const runners = await Promise.all(paths.map((p) => start(t, compileC('runner'), [p, '60'])));
  await c.until((l) => paths.every((p) => statesOf(l, p).at(-1) === 'alive'), 'all alive, polled or not');
  for (const r of runners) await kill(r);
  await c.until((l) => paths.every((p) => statesOf(l, p).at(-1) === 'dead'), 'all dead');
  c.send('free');
  await c.until((l) => l.at(-1)?.mechanism === 'events', 'watched by events again once watches are freed');
  for (const p of paths) assert.deepEqual(statesOf(c.lines, p), ['dead', 'alive', 'dead'], p);
});

test('the inotify watch limit reached as a directory above a target is first watched: the path is polled, and once freed, a rename of that directory is seen', { skip: !hasUserns() && 'needs unshare -U' }, async (t) => {
  // d/p/q/x is watched before p exists; p/q (x held) is then renamed into d while one watch is left:
  // q's watch takes it, and the watch of p (for its renaming only) is refused. That one was never
  // tried again: once the limit was freed, `mv d/p d/p2` went unseen, x reported alive for good.
  const base = tmp(t);
  const d = join(base, 'd');
  const staged = join(base, 'stage', 'p');
  mkdirSync(d);
  mkdirSync(join(staged, 'q'), { recursive: true });
  const helperDirs = join(base, 'h');
  const x = join(d, 'p', 'q', 'x');
  execFileSync('mkfifo', [join(staged, 'q', 'x')]);
  const runner = await start(t, compileC('runner'), [join(staged, 'q', 'x'), '120']);
  const c = child(
    t,
    `${HOG_PREAMBLE}
     const [helperDirs, x] = process.argv.slice(1);
     const hog = init(0);
     const w = watch(x);
     w.on('change', (e) => out({ state: e.state }));
     w.on('error', (e) => out({ error: e.code }));
     w.once('change', () => setTimeout(() => out({ ready: w.mechanism }), 100));
     obey(hog, helperDirs, 1);
     setInterval(() => out({ mechanism: w.mechanism }), 50);`,
    [helperDirs, x],
    { wrap: inotifyLimit(40) },
  );
  await c.until((l) => l.some((m) => m.ready), 'first report');
  assert.deepEqual(statesOf(c.lines, undefined), ['absent']);
  c.send('fill');
  await c.until((l) => l.some((m) => m.filled), 'the limit all but reached');
  renameSync(staged, join(d, 'p'));
  await c.until((l) => statesOf(l, undefined).at(-1) === 'alive', 'x alive');
  assert.ok(c.lines.some((m) => m.error === 'ENOSPC'), "an 'error' event said it is polled");
  c.send('free');
  await c.until((l) => l.at(-1)?.mechanism === 'events', 'watched by events again once watches are freed');
  renameSync(join(d, 'p'), join(d, 'p2'));
  await c.until((l) => statesOf(l, undefined).at(-1) === 'absent', 'x absent: p renamed away');
  await kill(runner);
  await new Promise((r) => setTimeout(r, 300)); // anything it would still report
  assert.deepEqual(statesOf(c.lines, undefined), ['absent', 'alive', 'absent']);
});

test('the inotify watch limit reached as a directory above a target is watched again after dropped events (IN_Q_OVERFLOW): it is tried again once freed, and its rename is seen', { skip: !hasUserns() && 'needs unshare -U' }, async (t) => {
  // While the watcher was busy, the queue overflowed and q was moved from p into a new p. After the
  // overflow's looks (no new watch: q and x are the same), the watch of the new p, above q, was refused
  // outside any look: nothing tried it again nor polled x, and once the limit was freed, `mv d/p d/p2`
  // went unseen, x alive for good.
  const base = tmp(t);
  const q = join(base, 'd', 'p', 'q');
  const flood = join(base, 'flood');
  mkdirSync(q, { recursive: true });
  mkdirSync(flood);
  const x = join(q, 'x');
  const runner = await start(t, compileC('runner'), [x, '120']);
  await until(() => state(x).state === 'alive', 'the runner');
  const flag = join(base, 'free');
  const c = child(
    t,
    `${HOG_PREAMBLE}
     const [helperDirs, flag, ...targets] = process.argv.slice(1);
     const hog = init(0);
     const w = watch(targets);
     w.on('change', (e) => out({ target: e.target, state: e.state }));
     w.on('error', (e) => out({ error: e.code }));
     w.on('ready', () => setTimeout(() => out({ ready: true }), 100));
     obey(hog, helperDirs, 0, flag);
     setInterval(() => out({ mechanism: w.mechanism }), 50);`,
    [join(base, 'h'), flag, x, join(flood, 't')],
    { wrap: inotifyLimit(40) },
  );
  await c.until((l) => l.some((m) => m.ready), 'first reports');
  c.send('fill');
  await c.until((l) => l.some((m) => m.filled), 'the limit reached');
  c.send('busy');
  await c.until((l) => l.some((m) => m.busy), 'busy');
  const queued = Number(readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8'));
  for (let i = 0; i < queued + 4096; i++) writeFileSync(join(flood, `f${i}`), '');
  renameSync(join(base, 'd', 'p'), join(base, 'd', 'p.old'));
  mkdirSync(join(base, 'd', 'p'));
  renameSync(join(base, 'd', 'p.old', 'q'), q);
  writeFileSync(flag, '');
  await new Promise((r) => setTimeout(r, 1500)); // the overflow handled
  c.send('free');
  await c.until((l) => l.some((m) => m.freed) && l.at(-1)?.mechanism === 'events', 'watched by events once freed');
  await new Promise((r) => setTimeout(r, 300));
  renameSync(join(base, 'd', 'p'), join(base, 'd', 'p2'));
  await c.until((l) => statesOf(l, x).at(-1) === 'absent', 'x absent: p renamed away');
  await kill(runner);
  assert.deepEqual(statesOf(c.lines, x), ['alive', 'absent']);
});

test('the inotify watch limit reached for a directory two levels above a target, after dropped events: it is tried again once freed, and its rename is seen', { skip: !hasUserns() && 'needs unshare -U' }, async (t) => {
  // One watch left. While the watcher was busy, the queue overflowed and q was moved into a new A/p.
  // Rebinding q to the new p (after the overflow's looks) took the last watch; the new A above it was
  // refused there, outside any look: never tried again, x never polled, `mv A A2` unseen.
  const T = tmp(t);
  const q = join(T, 'A', 'p', 'q');
  mkdirSync(q, { recursive: true });
  const x = join(q, 'x');
  const runner = await start(t, compileC('runner'), [x, '120']);
  await until(() => state(x).state === 'alive', 'the runner');
  const flag = join(T, 'free');
  const c = child(
    t,
    `${HOG_PREAMBLE}
     const [helperDirs, flag, x] = process.argv.slice(1);
     const hog = init(0);
     const w = watch(x);
     w.on('change', (e) => out({ target: e.target, state: e.state }));
     w.on('ready', () => setTimeout(() => out({ ready: true }), 100));
     obey(hog, helperDirs, 1, flag);
     setInterval(() => out({ mechanism: w.mechanism }), 50);`,
    [join(T, 'h'), flag, x],
    { wrap: inotifyLimit(40) },
  );
  await c.until((l) => l.some((m) => m.ready), 'first reports');
  c.send('fill');
  await c.until((l) => l.some((m) => m.filled), 'the limit all but reached');
  c.send('busy');
  await c.until((l) => l.some((m) => m.busy), 'busy');
  await kill(runner);
  const queued = Number(readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8'));
  for (let i = 0; i < queued + 4096; i++) writeFileSync(join(q, `.f${i}`), '');
  renameSync(join(T, 'A'), join(T, 'A.old'));
  mkdirSync(join(T, 'A', 'p'), { recursive: true });
  renameSync(join(T, 'A.old', 'p', 'q'), q);
  writeFileSync(flag, '');
  await c.until((l) => statesOf(l, x).at(-1) === 'dead', 'x dead');
  await new Promise((r) => setTimeout(r, 1000)); // the overflow handled
  c.send('free');
  await c.until((l) => l.some((m) => m.freed) && l.at(-1)?.mechanism === 'events', 'watched by events once freed');
  await new Promise((r) => setTimeout(r, 300));
  renameSync(join(T, 'A'), join(T, 'A2'));
  await c.until((l) => statesOf(l, x).at(-1) === 'absent', 'x absent: A renamed away');
  assert.deepEqual(statesOf(c.lines, x), ['alive', 'dead', 'absent']);
});

test('timeouts past 2^31 ms wait, and do not expire at once', async (t) => {
  const dir = tmp(t);
  const a = join(dir, 'a');
  const waiter = await start(t, process.execPath, [BIN, 'wait', '--timeout', '2147484', a]);
  const waiting = waitAlive(join(dir, 'b'), { timeout: 2 ** 31 });
  const guard = new Promise((_, reject) => setTimeout(() => reject(new Error('hung')), HANG_GUARD_MS * 5).unref());
  await new Promise((resolve) => setTimeout(resolve, 100)); // an at-once expiry would have come by now
  const holder = hold(join(dir, 'b'));
  t.after(() => holder.close());
  await Promise.race([waiting, guard]);
  const runner = await startRunner(t, a, ['60']);
  assert.deepEqual(await waiter.exited, [0, null], waiter.stderrText());
  await kill(runner);
});

function hasUserns() {
  return spawnSync('unshare', ['-U', '-r', 'sh', '-c', 'echo 5 > /proc/sys/user/max_inotify_watches'], { stdio: 'ignore' }).status === 0;
}
