#!/usr/bin/env node
// The chaos soak for watching: targets made, held, killed, removed and made again, their directories
// removed and made again, symbolic links swapped, while several watching processes (scripts/
// chaos-watcher.js) are stopped, continued, SIGKILLed and restarted, throw exceptions they handle, and
// run out of fds or inotify watches and get them back. Judged against ground truth, as the first soak is:
//
// - The driver makes every change and logs it per target: the truth, a sequence of states. A state is
//   "evidenced" when the kernel keeps a record of it whatever the watcher is doing (stopped, busy):
//   a proc-alive holder renaming its FIFO into place (alive), a removal (absent), a death while no new
//   reader comes to the same FIFO (dead, EPOLLERR), for a watcher that had seen it alive. Every other
//   state may pass unseen by a watcher that is stopped or starved while it lasts, and is optional; so
//   is what happens to a directory's entry between its removal and the watcher's next report of it.
// - After each change (or burst of changes), the driver waits until every watcher that is running has
//   reported the target's new state (a watcher that never does within the guard: missed, a hang).
// - At the end, each watcher's reports for each target must be the truth with optional states left
//   out (0 invented: nothing reported that did not happen, in that order; 0 missed: every evidenced
//   state reported); a watcher that was SIGKILLed is judged up to its end. A watcher past an fd or
//   inotify limit may report `unknown` (EMFILE, ENOSPC: it cannot tell) and is only held to 0 invented
//   and to catching up once the limit is freed.
// - Waits (waitAlive, waitDead) run in the watching processes, for a state the driver keeps until they
//   settle: one that rejects is wrong, one that does not settle is a hang.
//
// Holders are proc-alive's hold() in child processes, wrapped commands (`proc-alive run PATH -- sleep`:
// their command is what a crash SIGKILLs, the wrapper what a clean stop SIGTERMs) and the C runner of
// the tests (test/fixtures/runner.c).
//
//   node scripts/chaos.js 120              seconds (default 60)
//   node scripts/chaos.js 120 --no-limits  without the watchers that run out of fds and inotify watches
//   node scripts/chaos.js 120 --invented-ok  invented reports printed, not failing the run (see README)

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const INDEX = pathToFileURL(join(ROOT, 'dist', 'index.js')).href;
const WATCHER = join(ROOT, 'scripts', 'chaos-watcher.js');
const BIN = join(ROOT, 'dist', 'bin.cjs');
const GUARD_MS = 20_000; // a watcher that has not reported a state this long after it: a hang
const LIMIT_CODES = new Set(['EMFILE', 'ENFILE', 'ENOSPC', 'ENOMEM']);
const LOG_LAG_MS = 2000; // how late the driver may log a change it made (it learns of a holder's start from the holder)

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const pick = (xs) => xs[Math.floor(Math.random() * xs.length)];
const chance = (p) => Math.random() < p;
const now = () => performance.now();

export async function chaos({ seconds = 60, limits = true, log = () => {} } = {}) {
  const base = mkdtempSync(join(tmpdir(), 'proc-alive-chaos-'));
  const runnerBin = join(base, 'runner');
  execFileSync('cc', ['-O2', '-o', runnerBin, join(ROOT, 'test', 'fixtures', 'runner.c')]);
  const D = join(base, 'd'); // a directory of targets
  const S = join(base, 's'); // a directory of targets that is removed and made again
  const E = join(base, 'e'); // what a link points to
  for (const dir of [D, S, E]) mkdirSync(dir);
  const link = join(base, 'link');
  symlinkSync(join(E, 'a'), link);
  const watched = [D, S, join(E, 'a'), link];

  const result = { seconds, ops: 0, bursts: 0, watcherKills: 0, stops: 0, exceptions: 0, fills: 0, hogs: 0, waits: 0, waitsWrong: 0, hangs: 0, watchErrors: {}, reported: 0, judged: 0, missed: 0, invented: 0, firstProblems: [] };
  const problem = (p) => {
    if (result.firstProblems.length < 10) result.firstProblems.push(p);
  };

  // ---- The truth: per target, the states it went through, in order.
  const truth = new Map();
  for (const t of [...['t0', 't1', 't2'].map((n) => join(D, n)), join(S, 'x'), join(E, 'a'), join(E, 'b'), link]) {
    truth.set(t, { state: 'absent', log: [{ state: 'absent', evidenced: false, t: now() }] });
  }
  // A dead FIFO in every S made (again): a watcher that reports it in an S has looked at that S, and
  // only from then on can it know what happens to x there (what happened to x in an S made while the
  // watcher was stopped, and gone again before it looked, left nothing it could read). Judged as well.
  const M = join(S, 'm');
  const remakes = [now()]; // when each S was made
  execFileSync('mkfifo', [M]);
  truth.set(M, { state: 'dead', log: [{ state: 'dead', evidenced: false, t: now() }] });
  let pointee = join(E, 'a');
  let swappedAt; // when the link last changed what it points to (undefined: never)
  /** A change of target `path` to `state`; the link follows what it points to. */
  const set = (path, state, evidenced, op, swap) => {
    const tr = truth.get(path);
    if (tr.state !== state) {
      tr.state = state;
      tr.log.push({ state, evidenced, t: now(), op, swap });
    }
    // What happens to the new pointee is the link's only once the watcher has followed the swap: until
    // it looks again, it watches the old one, and no event names the new one for it (IN_DELETE of E/b
    // is not news for a link that, as far as it knows, names E/a). The judge requires such a state
    // only of a watcher that reported the link after the swap.
    if (path === pointee) set(link, state, evidenced, op, swappedAt);
  };
  /** A new reader on the same FIFO clears its EPOLLERR: the death before it was not kept by the kernel. */
  const deathNotKept = (path) => {
    const last = truth.get(path).log.at(-1);
    if (last.state === 'dead') last.evidenced = false;
    if (path === pointee) deathNotKept(link);
  };

  // ---- Watchers: each incarnation of each kind, and what it reported.
  const incarnations = [];
  const live = new Map(); // kind → incarnation
  const startWatcher = async (kind) => {
    const env = { ...process.env, PROC_ALIVE_CHAOS_BASE: base };
    const node = [process.execPath, WATCHER, INDEX, ...watched];
    let argv = node;
    if (kind === 'fd-limit') argv = ['sh', '-c', 'ulimit -n 400; exec "$@"', 'sh', ...node];
    if (kind === 'inotify-limit') argv = ['unshare', '-U', '-r', 'sh', '-c', 'echo 60 > /proc/sys/user/max_inotify_watches && exec "$@"', 'sh', ...node];
    const proc = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env });
    const inc = { kind, proc, start: now(), readyAt: null, end: null, killed: false, stopped: false, reports: new Map(), waits: new Map(), limited: false, stderr: '', n: incarnations.filter((i) => i.kind === kind).length + 1, pauses: [] };
    proc.stderr.on('data', (d) => (inc.stderr += d));
    proc.stdin.on('error', () => {});
    createInterface({ input: proc.stdout }).on('line', (line) => {
      const m = JSON.parse(line);
      if (m.t === 'ready') inc.readyAt = now();
      else if (m.t === 'e') {
        const list = inc.reports.get(m.target) ?? [];
        list.push({ state: m.state, code: m.code, t: now() });
        inc.reports.set(m.target, list);
        result.reported++;
      } else if (m.t === 'w') inc.waits.get(m.id)?.(m);
      else if (m.t === 'handled') result.exceptions++;
      else if (m.t === 'error') (result.watchErrors[`${kind}: ${m.code}`] ??= 0), result.watchErrors[`${kind}: ${m.code}`]++;
    });
    inc.exited = once(proc, 'exit');
    incarnations.push(inc);
    live.set(kind, inc);
    const ready = new Promise((resolve) => {
      const iv = setInterval(() => {
        if (inc.readyAt !== null || proc.exitCode !== null) {
          clearInterval(iv);
          resolve();
        }
      }, 5);
    });
    await ready;
    if (proc.exitCode !== null) throw new Error(`watcher ${kind} exited: ${inc.stderr}`);
    return inc;
  };
  const send = (inc, line) => {
    if (!inc.killed && inc.proc.exitCode === null) inc.proc.stdin.write(`${line}\n`);
  };
  /** What `inc` last said of `path` (a directory's entry never reported: absent). */
  const lastReport = (inc, path) => inc.reports.get(path)?.at(-1)?.state ?? 'absent';

  // `limits: false` leaves out the watchers that run out of fds and inotify watches.
  const kinds = ['plain-1', 'plain-2', 'exceptions'];
  if (limits) kinds.push('fd-limit');
  if (limits && spawnSync('unshare', ['-U', '-r', 'true'], { stdio: 'ignore' }).status === 0) kinds.push('inotify-limit');
  for (const kind of kinds) await startWatcher(kind);

  /** Waits until every running watcher that is held to it has reported the current state of `paths`. */
  const settle = async (paths) => {
    const end = now() + GUARD_MS;
    for (;;) {
      const lagging = [];
      for (const inc of live.values()) {
        if (inc.stopped || inc.killed || inc.limited || inc.readyAt === null) continue;
        for (const p of paths) if (lastReport(inc, p) !== truth.get(p).state) lagging.push([inc, p]);
      }
      if (lagging.length === 0) return;
      if (now() > end) {
        for (const [inc, p] of lagging) {
          result.hangs++;
          problem(`hang: watcher ${inc.kind} did not report ${p} ${truth.get(p).state} (last: ${lastReport(inc, p)})`);
        }
        return;
      }
      await sleep(2);
    }
  };

  /** A wait in a running watcher, for the state `path` is in now (kept until it settles). */
  let waitIds = 0;
  const checkWait = async (path) => {
    const candidates = [...live.values()].filter((i) => !i.stopped && !i.killed && !i.limited && i.readyAt !== null);
    if (candidates.length === 0) return;
    const inc = pick(candidates);
    const id = String(++waitIds);
    const goal = truth.get(path).state === 'alive' ? 'up' : 'down';
    result.waits++;
    const settled = new Promise((resolve) => inc.waits.set(id, resolve));
    send(inc, `wait ${id} ${goal} ${path}`);
    // The guard's timer is unref'd: left pending after the wait settles, it kept the process (and a test
    // that runs chaos()) up to a minute past the end.
    const guard = new Promise((resolve) => setTimeout(resolve, GUARD_MS * 3, null).unref());
    const r = await Promise.race([settled, inc.exited.then(() => 'gone'), guard]);
    if (r === 'gone') return; // SIGKILLed by the chaos meanwhile
    if (r === null) {
      if (!inc.killed) {
        result.hangs++;
        problem(`hang: wait ${goal} ${path} in ${inc.kind} never settled`);
      }
    } else if (!r.ok) {
      result.waitsWrong++;
      problem(`wrong: wait ${goal} ${path} in ${inc.kind}: ${r.code} ${r.message}`);
    }
  };

  // ---- Holders.
  const holders = new Map(); // path → { proc, kind, command? }
  /** SIGKILL for a holder, and for a wrapper's command too (it would hold the FIFO on, orphaned). */
  const killHolder = (h) => {
    if (h.command !== undefined) {
      try {
        process.kill(h.command, 'SIGKILL');
      } catch {}
    }
    h.proc.kill('SIGKILL');
  };
  const holdChild = async (path, die) => {
    const c = spawn(process.execPath, ['--input-type=module', '-e', `
      import { hold } from ${JSON.stringify(INDEX)};
      const h = hold(process.argv[1]);
      process.on('SIGTERM', () => { h.close(); process.exit(0); });
      if (process.argv[2] === 'die') process.kill(process.pid, 'SIGKILL');
      process.stdout.write('held\\n');
      setInterval(() => {}, 1 << 30);`, path, die ? 'die' : ''], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d) => (err += d));
    const exited = once(c, 'exit');
    const held = await Promise.race([once(createInterface({ input: c.stdout }), 'line').then(() => true), exited.then(() => false)]);
    return { proc: c, held, exited, err };
  };
  /** `proc-alive run PATH -- sleep`: a wrapped command; its pid, once the target is alive. */
  const wrapChild = async (path) => {
    const c = spawn(process.execPath, [BIN, 'run', path, '--', 'sleep', '3600'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d) => (err += d));
    const exited = once(c, 'exit');
    if (!(await checkSaysAlive(path))) return { proc: c, held: false, exited, err };
    let command = NaN;
    for (let i = 0; i < 1000 && !(command > 0); i++) {
      const r = spawnSync('pgrep', ['-P', String(c.pid), 'sleep'], { encoding: 'utf8' });
      command = Number(r.stdout.trim().split('\n')[0]);
      if (!(command > 0)) await sleep(2);
    }
    if (!(command > 0)) throw new Error(`no command under the wrapper of ${path}`);
    return { proc: c, held: true, exited, err, command };
  };
  const cRunner = async (path) => {
    const c = spawn(runnerBin, [path, '3600'], { stdio: 'ignore' });
    await once(c, 'spawn');
    return { proc: c, exited: once(c, 'exit') };
  };
  /** Until a check says alive: the C runner gives no sign when it holds. */
  const checkSaysAlive = async (path) => {
    const { checkSync } = await import(INDEX);
    const end = now() + GUARD_MS;
    while (now() < end) {
      try {
        if (checkSync(path) === 'alive') return true;
      } catch {}
      await sleep(1);
    }
    return false;
  };

  /** One change (or burst) to the FIFO at `path`, chosen by its state. Returns the paths it touched. */
  const fifoOp = async (path) => {
    const st = truth.get(path).state;
    const op = `${path.slice(base.length)} from ${st}`;
    const h = holders.get(path);
    result.ops++;
    if (st === 'absent') {
      const r = Math.random();
      if (r < 0.15) {
        const c = await wrapChild(path);
        if (!c.held) throw new Error(`run -- failed on ${path}: ${c.err}`);
        holders.set(path, { kind: 'wrap', ...c });
        set(path, 'alive', true, op); // renamed into place, as hold() does
      } else if (r < 0.45) {
        const c = await holdChild(path, false);
        if (!c.held) throw new Error(`hold failed on ${path}: ${c.err}`);
        holders.set(path, { kind: 'hold', ...c });
        set(path, 'alive', true, op); // renamed into place: the pair of events proves it
      } else if (r < 0.75) {
        // A short life: held for an instant, SIGKILLed at once.
        result.bursts++;
        const c = await holdChild(path, true);
        await c.exited;
        set(path, 'alive', true, op);
        set(path, 'dead', true, op);
      } else {
        execFileSync('mkfifo', [path]);
        set(path, 'dead', false, op);
      }
      return;
    }
    if (st === 'dead') {
      const r = Math.random();
      if (r < 0.3) {
        deathNotKept(path);
        const c = await cRunner(path);
        holders.set(path, { kind: 'c', ...c });
        if (!(await checkSaysAlive(path))) throw new Error(`the C runner did not hold ${path}`);
        set(path, 'alive', false, op);
      } else if (r < 0.55) {
        deathNotKept(path);
        const c = await holdChild(path, false);
        if (!c.held) throw new Error(`hold failed on ${path}: ${c.err}`);
        holders.set(path, { kind: 'hold', ...c });
        set(path, 'alive', false, op);
      } else if (r < 0.8) {
        rmSync(path);
        set(path, 'absent', true, op);
      } else {
        result.bursts++;
        rmSync(path);
        set(path, 'absent', true, op);
        execFileSync('mkfifo', [path]);
        set(path, 'dead', false, op);
      }
      return;
    }
    // alive
    const r = Math.random();
    if (r < 0.15 && h !== undefined) {
      // A holder stopped and continued is still a holder.
      h.proc.kill('SIGSTOP');
      await sleep(Math.random() * 20);
      h.proc.kill('SIGCONT');
      return;
    }
    holders.delete(path);
    if (r < 0.55 || h.kind === 'c') {
      // A crash: the holder SIGKILLed; for a wrapper, its command (the wrapper then lets go: dead).
      if (h.kind === 'wrap') process.kill(h.command, 'SIGKILL');
      else h.proc.kill('SIGKILL');
      await h.exited;
      set(path, 'dead', true, op);
      if (chance(0.3)) {
        result.bursts++;
        rmSync(path);
        set(path, 'absent', true, op);
      }
    } else {
      // A clean stop: the FIFO leaves its name while it is still held, so no instant of dead.
      h.proc.kill('SIGTERM');
      await h.exited;
      set(path, 'absent', true, op);
    }
  };

  /** The directory S removed (with whatever is in it) and made again. */
  const dirOp = async () => {
    const op = 'rm -r s, mkdir s';
    result.ops++;
    result.bursts++;
    const x = join(S, 'x');
    const h = holders.get(x);
    holders.delete(x);
    // Renamed away first, then removed: a holder may be making its .new FIFO in it meanwhile, and an
    // rm -r that races with it fails (ENOTEMPTY) however often it is retried on a busy machine. For the
    // watchers, a directory renamed away is one removed (IN_MOVE_SELF, IN_MOVED_FROM).
    const gone = `${S}.gone`;
    renameSync(S, gone);
    set(x, 'absent', true, op);
    set(M, 'absent', true, op);
    if (h !== undefined) {
      killHolder(h); // it held a FIFO that no path names any more: no change
      await h.exited;
    }
    rmSync(gone, { recursive: true, force: true, maxRetries: 50, retryDelay: 2 });
    mkdirSync(S);
    remakes.push(now());
    execFileSync('mkfifo', [M]);
    set(M, 'dead', false, op);
    if (chance(0.5)) {
      execFileSync('mkfifo', [x]);
      set(x, 'dead', false, op);
    }
  };

  /** The link swapped to the other FIFO. */
  const linkOp = async () => {
    const op = 'link swapped';
    result.ops++;
    const next = pointee === join(E, 'a') ? join(E, 'b') : join(E, 'a');
    symlinkSync(next, `${link}.new`);
    renameSync(`${link}.new`, link);
    pointee = next;
    swappedAt = now();
    set(link, truth.get(next).state, false, op);
  };

  // ---- The loops: one per group of targets, one for the watchers' chaos.
  const deadline = now() + seconds * 1000;
  const loops = [];
  const targetLoop = async (paths, op) => {
    while (now() < deadline) {
      const touched = await op();
      await settle(touched);
      if (chance(0.15)) await checkWait(pick(touched));
      await sleep(Math.random() * 10);
    }
  };
  for (const n of ['t0', 't1', 't2']) {
    const p = join(D, n);
    loops.push(targetLoop([p], async () => (await fifoOp(p), [p])));
  }
  loops.push(targetLoop([join(S, 'x')], async () => {
    const x = join(S, 'x');
    if (chance(0.25)) {
      await dirOp();
      return [x, M];
    }
    await fifoOp(x);
    return [x];
  }));
  loops.push(targetLoop([join(E, 'a'), join(E, 'b'), link], async () => {
    if (chance(0.3)) await linkOp();
    else await fifoOp(pick([join(E, 'a'), join(E, 'b')]));
    return [join(E, 'a'), link];
  }));

  // The watchers' chaos.
  const watcherChaos = async () => {
    while (now() < deadline) {
      await sleep(50 + Math.random() * 300);
      const kind = pick([...live.keys()]);
      const inc = live.get(kind);
      const r = Math.random();
      if (r < 0.35) {
        result.stops++;
        inc.stopped = true;
        inc.proc.kill('SIGSTOP');
        const pause = { what: 'stopped', from: now(), to: null };
        inc.pauses.push(pause);
        await sleep(Math.random() * 300);
        inc.proc.kill('SIGCONT');
        pause.to = now();
        inc.stopped = false;
      } else if (r < 0.5) {
        result.watcherKills++;
        inc.killed = true;
        inc.end = now();
        inc.proc.kill('SIGKILL');
        await inc.exited;
        await startWatcher(kind);
      } else if (r < 0.7 && kind === 'exceptions') {
        send(inc, 'throw');
      } else if (kind === 'fd-limit' && r < 0.85) {
        result.fills++;
        inc.limited = true;
        const pause = { what: 'fd-limited', from: now(), to: null };
        inc.pauses.push(pause);
        send(inc, 'fill');
        await sleep(100 + Math.random() * 400);
        send(inc, 'free');
        await sleep(50);
        pause.to = now();
        inc.limited = false;
      } else if (kind === 'inotify-limit' && r < 0.85) {
        result.hogs++;
        inc.limited = true;
        const pause = { what: 'inotify-limited', from: now(), to: null };
        inc.pauses.push(pause);
        send(inc, 'hog 58');
        await sleep(100 + Math.random() * 400);
        send(inc, 'unhog');
        await sleep(50);
        pause.to = now();
        inc.limited = false;
      }
    }
  };
  loops.push(watcherChaos());

  let progress = setInterval(() => log(`${Math.round((deadline - now()) / 1000)} s left: ${result.ops} changes, ${result.reported} reports`), 10_000);
  try {
    await Promise.all(loops);
  } catch (err) {
    // The driver failed: nothing it started may outlive it.
    for (const inc of live.values()) inc.proc.kill('SIGKILL');
    for (const h of holders.values()) killHolder(h);
    rmSync(base, { recursive: true, force: true, maxRetries: 5 });
    throw err;
  } finally {
    clearInterval(progress);
  }

  // ---- The end: every watcher running and unlimited, all must catch up with the truth.
  for (const inc of live.values()) {
    if (inc.stopped) inc.proc.kill('SIGCONT');
    inc.stopped = false;
    inc.limited = false;
  }
  await sleep(200);
  await settle([...truth.keys()].filter((p) => p !== join(E, 'b')));
  // The watchers go first: the holders' end is not part of what they are judged on.
  for (const inc of live.values()) {
    inc.end = now();
    inc.proc.kill('SIGTERM');
  }
  await Promise.all([...live.values()].map((inc) => inc.exited));
  for (const h of holders.values()) killHolder(h);

  // ---- Judging.
  for (const inc of incarnations) {
    const strict = inc.kind !== 'fd-limit' && inc.kind !== 'inotify-limit';
    for (const [path, tr] of truth) {
      // `unknown` past a limit is no claim about the target; what is left, with repeats collapsed.
      const reports = (inc.reports.get(path) ?? [])
        .filter((r) => !(r.state === 'unknown' && LIMIT_CODES.has(r.code)))
        .filter((r, i, all) => i === 0 || r.state !== all[i - 1].state);
      if (path === join(E, 'b') && reports.length === 0) continue; // b is watched through the link only
      const member = path.startsWith(`${D}/`) || path.startsWith(`${S}/`);
      // x in S: required only once the watcher has reported m in the S it is in (see M): dead, its state
      // in every S (absent, the removal of an S, says nothing of the next one).
      const listed = path === join(S, 'x') ? { remakes, marks: (inc.reports.get(M) ?? []).filter((r) => r.state === 'dead') } : null;
      const verdict = judge(tr.log, reports, inc, strict, member, listed);
      result.judged += reports.length;
      if (verdict.invented) {
        result.invented++;
        problem(`invented: watcher ${inc.kind}#${inc.n} on ${path.slice(base.length)}: ${verdict.detail}`);
      } else if (verdict.missed) {
        result.missed++;
        problem(`missed: watcher ${inc.kind}#${inc.n} on ${path.slice(base.length)}: ${verdict.detail}`);
      }
    }
  }
  rmSync(base, { recursive: true, force: true, maxRetries: 5 });
  return result;
}

/**
 * Whether `reports` (states a watcher incarnation reported for a target, in order) are the truth `log`
 * with optional states left out: each report is a state of the log in the log's order (consecutive
 * log states that are the same once the optional ones between are left out count as one), and every
 * evidenced state of the log that came after the watcher started (and, for one SIGKILLed, before its
 * last report) is among them. Not strict (a watcher past a limit): no state is required. `listed`: for
 * an entry of a directory that is made again, when each was made (`remakes`) and the reports of a
 * marker entry made with each (`marks`): a state is required only once the marker of the directory it
 * happened in was reported.
 */
function judge(log, reports, inc, strict, member, listed = null) {
  // The part of the truth the incarnation lived through: from the state it found at its start on.
  let from = 0;
  for (let i = 0; i < log.length; i++) if (log[i].t <= inc.start) from = i;
  // Cut at its end, with some slack: the driver logs a holder's start once the holder says so, after it.
  const T = log.slice(from).filter((e) => inc.end === null || e.t <= inc.end + LOG_LAG_MS);
  const R = reports.map((r) => r.state);
  const lastReport = reports.at(-1)?.t ?? inc.start;
  // A target in a watched directory is followed from when the watcher sees it appear: once it is
  // absent, what happens until the watcher's next report of it may pass unseen (a FIFO made, held and
  // removed again before the watcher looks has nothing to follow; one renamed into place by a holder
  // that died at once is still reported alive, from the rename).
  const inGap = (i) => {
    if (!member) return false;
    let k = i - 1;
    while (k >= 0 && T[k].state !== 'absent') k--;
    if (k < 0) return false;
    const seen = reports.find((r) => r.t > T[k].t);
    return seen === undefined || seen.t >= T[i].t;
  };
  // A death is kept by the kernel for a watcher that held the FIFO's write end (or watched it for a
  // reader's close): one that had reported it alive before it died. A watcher that was stopped while
  // the holder started learns of the start from IN_OPEN, but holds nothing of it.
  const heldAlive = (i) => T[i].state !== 'dead' || (i > 0 && reports.some((r) => r.state === 'alive' && r.t > T[i - 1].t && r.t < T[i].t));
  // A pointee's change after a swap: required once the watcher has reported the link since the swap.
  const followedSwap = (i) => T[i].swap === undefined || reports.some((r) => r.t > T[i].swap && r.t < T[i].t);
  // In a directory made while the watcher was stopped (or just before, unread), what happens before it
  // has looked at that directory cannot be known to it: nothing of it was queued for the watcher.
  const seenDir = (i) => {
    if (listed === null) return true;
    const made = listed.remakes.findLast((t) => t <= T[i].t);
    return made === undefined || listed.marks.some((r) => r.t > made && r.t < T[i].t);
  };
  const required = T.map((e, i) => strict && e.evidenced && i > 0 && e.t > (inc.readyAt ?? inc.start) && !(inc.killed && e.t > lastReport) && !inGap(i) && heldAlive(i) && followedSwap(i) && seenDir(i));
  // A directory's entry that never existed in the watcher's time has no report at all: absent.
  if (R.length === 0) {
    const ok = T.every((e, i) => !required[i] || e.state === 'absent');
    return { missed: !ok, invented: false, detail: `nothing reported; truth ${T.map((e) => e.state).join(' ')}` };
  }
  // reach: the numbers j of reports explained by the truth so far (R[j-1] the last one matched).
  const n = T.length;
  const m = R.length;
  let reach = new Set([0]);
  let best = { j: 0, i: 0 };
  // What is printed at a fault: the truth and the reports around it (the point marked »), with the
  // times since the incarnation started, and what was done to the watcher then (stopped, limited).
  const show = (i, j) => {
    const t0 = inc.start;
    const ms = (t) => Math.round(t - t0);
    const fmt = (e, k) => `${k === i ? '»' : ''}${e.evidenced ? e.state.toUpperCase() : e.state}@${ms(e.t)}${e.op ? `(${e.op})` : ''}`;
    // The truth from 8 states before the point, or from the first report shown (minus the logging lag).
    const lo = Math.min(T[Math.max(0, i - 8)]?.t ?? t0, (reports[Math.max(0, j - 8)]?.t ?? Infinity) - LOG_LAG_MS);
    const hi = Math.max(T[Math.min(n - 1, i + 6)]?.t ?? t0, reports[Math.min(m - 1, j + 6)]?.t ?? t0);
    const first = Math.max(0, T.findIndex((e) => e.t >= lo) - 1);
    const around = inc.pauses.filter((p) => (p.to ?? Infinity) >= lo - 50 && p.from <= hi + 50);
    return (
      `\n      truth    …${T.slice(first, Math.max(i + 7, first + 1)).map((e, k) => fmt(e, k + first)).join(' ')}…` +
      `\n      reported …${reports.slice(Math.max(0, j - 8), j + 7).map((r, k) => `${k + Math.max(0, j - 8) === j ? '»' : ''}${r.state}@${ms(r.t)}`).join(' ')}…` +
      `\n      (report ${j} of ${m}, truth ${i} of ${n}; watcher pid ${inc.proc.pid}, started at ${new Date(performance.timeOrigin + inc.start).toISOString()}; incarnation ${inc.n} of ${inc.kind}, ready at ${ms(inc.readyAt ?? t0)}${inc.killed ? `, killed at ${ms(inc.end)}` : ''}; ` +
      `${around.length === 0 ? 'not stopped or limited then' : around.map((p) => `${p.what} ${ms(p.from)}–${p.to === null ? 'end' : ms(p.to)}`).join(', ')})`
    );
  };
  for (let i = 0; i < n; i++) {
    const next = new Set();
    for (const j of reach) {
      const e = T[i];
      if (!required[i] || j === 0) next.add(j); // left out (optional, or before the first report)
      if (j > 0 && R[j - 1] === e.state) next.add(j); // the same as the last report
      // Reported: a report is of a state that began before it (give or take the driver's logging lag).
      if (j < m && R[j] === e.state && e.t <= reports[j].t + LOG_LAG_MS) next.add(j + 1);
    }
    reach = next;
    for (const j of reach) if (j > best.j) best = { j, i };
    if (reach.size === 0) {
      // A required state no report explains: missed, unless the report there is one the truth lacks.
      return { missed: true, invented: false, at: T[i].t, detail: `a required state not reported: ${show(i, best.j)}` };
    }
  }
  if (reach.has(m)) return { missed: false, invented: false };
  return { missed: false, invented: true, at: reports[best.j]?.t, detail: `a report the truth does not explain: ${show(best.i, best.j)}` };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const seconds = Number(process.argv[2] ?? 60);
  const limits = !process.argv.includes('--no-limits');
  // --invented-ok: invented reports are printed but do not fail the run (see README, Development).
  const inventedOk = process.argv.includes('--invented-ok');
  const r = await chaos({ seconds, limits, log: (m) => console.log(m) });
  console.log(
    `chaos: ${r.seconds} s, ${r.ops} changes (${r.bursts} bursts), watchers stopped ${r.stops} times, SIGKILLed ${r.watcherKills}, ` +
      `${r.exceptions} handled exceptions, fd limit reached ${r.fills} times, inotify limit ${r.hogs} times`,
  );
  console.log(
    `chaos: ${r.reported} states reported, ${r.judged} judged: ${r.missed} missed, ${r.invented} invented; ` +
      `${r.waits} waits, ${r.waitsWrong} settled wrong; ${r.hangs} hangs`,
  );
  console.log(`chaos: 'error' events (watching fell back to polling, as said): ${JSON.stringify(r.watchErrors)}`);
  for (const p of r.firstProblems) console.log(`  ${p}`);
  process.exitCode = r.missed + (inventedOk ? 0 : r.invented) + r.waitsWrong + r.hangs === 0 ? 0 : 1;
}
