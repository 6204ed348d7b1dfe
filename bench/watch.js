// `npm run bench`, second part: waiting and watching. What the kernel's events buy over polling, as
// percentiles and ratios measured in the same run. Not a test: it asserts nothing.
//
//   BENCH_KILLS (default 100)  SIGKILLs per size for the death notice, and starts for the start notice
//   BENCH_IDLE_S (default 10)  seconds of the idle-cost measurement

import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { watch, waitAlive, checkSync } from '../dist/index.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const INDEX = JSON.stringify(join(ROOT, 'dist', 'index.js'));
const KILLS = Number(process.env.BENCH_KILLS ?? 100);
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 10);
const SIZES = [1, 1000, 10000];

const dir = mkdtempSync(join(tmpdir(), 'proc-alive-bench-watch-'));
const children = new Set();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});
const holdMany = join(dir, 'hold-many');
execFileSync('cc', ['-O2', '-o', holdMany, join(ROOT, 'bench', 'hold-many.c')]);

const now = () => process.hrtime.bigint();
const ms = (ns) => Number(ns) / 1e6;
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const fmt = (x) => (x < 10 ? x.toFixed(2) : x.toFixed(1));

/** Starts hold-many on PREFIX with n FIFOs; resolves to { child, opened } once they are all open. */
async function holders(prefix, n) {
  const child = spawn(holdMany, [prefix, String(n)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  child.exited = once(child, 'exit').then(() => children.delete(child));
  const [line] = await once(createInterface({ input: child.stdout }), 'line');
  return { child, opened: BigInt(line) };
}

async function kill(child) {
  child.kill('SIGKILL');
  await child.exited;
}

// ---------------------------------------------------------------------------------------------------
console.log(`proc-alive bench (wait and watch): Node ${process.version}, ${KILLS} kills or starts per figure`);
console.log('');
console.log('Death notice: SIGKILL of one runner → the watcher reports it dead (ms)');
console.log('| targets watched | p50 | p99 |');
console.log('|---:|---:|---:|');
for (const size of SIZES) {
  const prefix = join(dir, `d${size}-`);
  const others = size > 1 ? await holders(prefix, size - 1) : null;
  const victim = join(dir, `victim${size}-`);
  const targets = Array.from({ length: size - 1 }, (_, i) => `${prefix}${i}`).concat(`${victim}0`);
  const w = watch(targets);
  let notify = null;
  w.on('change', (e) => {
    if (e.path === `${victim}0` && e.state === 'dead' && notify) notify(now());
  });
  const samples = [];
  for (let i = -2; i < KILLS; i++) {
    const { child } = await holders(victim, 1);
    await waitAlive(`${victim}0`);
    const seen = new Promise((resolve) => (notify = resolve));
    const t0 = now();
    child.kill('SIGKILL');
    const latency = ms((await seen) - t0);
    if (i >= 0) samples.push(latency); // the first two warm up: the watcher's worker thread is starting
    notify = null;
    await child.exited;
  }
  w.close();
  if (others) await kill(others.child);
  console.log(`| ${size.toLocaleString('en')} | ${fmt(pct(samples, 50))} | ${fmt(pct(samples, 99))} |`);
}

console.log('');
console.log('Start notice: the runner has opened the FIFO → waitAlive resolves (ms)');
console.log('| runner | p50 | p99 |');
console.log('|---|---:|---:|');
{
  const samples = [];
  const victim = join(dir, 'start-c-');
  for (let i = -2; i < KILLS; i++) {
    const waiting = waitAlive(`${victim}0`).then(now);
    const { child, opened } = await holders(victim, 1);
    const latency = ms((await waiting) - opened);
    if (i >= 0) samples.push(latency); // warm-up as above
    await kill(child);
  }
  console.log(`| C runner (holds an existing FIFO) | ${fmt(pct(samples, 50))} | ${fmt(pct(samples, 99))} |`);
}
{
  // proc-alive's runner: a Node process that calls hold() and prints the time right after it returns.
  const samples = [];
  const target = join(dir, 'start-js');
  const runner = `import { hold } from ${INDEX}; hold(process.argv[1]); console.log(String(process.hrtime.bigint())); setInterval(() => {}, 1e6);`;
  for (let i = 0; i < Math.min(KILLS, 50); i++) {
    const waiting = waitAlive(target).then(now);
    const child = spawn(process.execPath, ['--input-type=module', '-e', runner, target], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(child);
    const [line] = await once(createInterface({ input: child.stdout }), 'line');
    samples.push(ms((await waiting) - BigInt(line)));
    const exited = once(child, 'exit');
    child.kill('SIGTERM'); // no handler: the default action; the FIFO stays, and hold() reopens it
    await exited;
    children.delete(child);
    rmSync(target, { force: true }); // each start from absent: mkfifo under a private name, then rename
  }
  console.log(`| proc-alive hold() (creates the FIFO) | ${fmt(pct(samples, 50))} | ${fmt(pct(samples, 99))} |`);
}

// ---------------------------------------------------------------------------------------------------
// Idle cost and the alternatives: each in its own process, all at once, for IDLE_S seconds.
const N = 10000;
const idlePrefix = join(dir, 'idle-');
const idleHolders = await holders(idlePrefix, N);
const probe = (body) => `
  import { watch, checkSync } from ${INDEX};
  const N = ${N}, prefix = ${JSON.stringify(idlePrefix)};
  const targets = Array.from({ length: N }, (_, i) => prefix + i);
  const pid = Number(process.argv[1]);
  globalThis.gc?.();
  const rss0 = process.memoryUsage().rss;
  ${body}
  await new Promise((r) => setTimeout(r, 2000)); // settle: first reports, worker start
  globalThis.gc?.();
  const rss1 = process.memoryUsage().rss;
  const c0 = process.cpuUsage(), t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, ${IDLE_S * 1000}));
  const c = process.cpuUsage(c0), t = Number(process.hrtime.bigint() - t0) / 1000;
  console.log(JSON.stringify({ cpu: (c.user + c.system) / t, perTarget: (rss1 - rss0) / N }));
  process.exit(0);`;
const kinds = {
  'idle Node (a timer, nothing else)': '',
  [`proc-alive watch(), ${N.toLocaleString('en')} targets`]: 'const w = watch(targets);',
  [`setInterval(checkSync) every 100 ms, ${N.toLocaleString('en')} targets`]: 'setInterval(() => { for (const t of targets) checkSync(t); }, 100);',
  [`setInterval(process.kill(pid, 0)) every 100 ms, ${N.toLocaleString('en')} pids`]: 'setInterval(() => { for (let i = 0; i < N; i++) process.kill(pid, 0); }, 100);',
};
const results = await Promise.all(
  Object.entries(kinds).map(async ([name, body]) => {
    const child = spawn(process.execPath, ['--expose-gc', '--input-type=module', '-e', probe(body), String(idleHolders.child.pid)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.add(child);
    const [line] = await once(createInterface({ input: child.stdout }), 'line');
    return [name, JSON.parse(line)];
  }),
);
await kill(idleHolders.child);
const idle = results[0][1].cpu;
console.log('');
console.log(`Idle cost over ${IDLE_S} s (CPU in % of one core; memory: RSS growth per target after start)`);
console.log('| what | CPU | CPU above idle Node | memory per target |');
console.log('|---|---:|---:|---:|');
for (const [name, r] of results) {
  const mem = name.startsWith('idle') ? '' : `${(r.perTarget / 1024).toFixed(2)} KiB`;
  console.log(`| ${name} | ${(r.cpu * 100).toFixed(2)} % | ${((r.cpu - idle) * 100).toFixed(2)} % | ${mem} |`);
}

// ---------------------------------------------------------------------------------------------------
// What a user would do instead: poll one target every 100 ms; notice latency of a SIGKILL.
console.log('');
console.log('Notice of a SIGKILL by polling every 100 ms, one target (ms), against watch() above');
console.log('| how | p50 | p99 |');
console.log('|---|---:|---:|');
for (const [name, isUp] of [
  ['setInterval(checkSync)', (child, path) => checkSync(path) === 'alive'],
  ['setInterval(process.kill(pid, 0))', (child) => {
    try {
      process.kill(child.pid, 0);
      return true;
    } catch {
      return false;
    }
  }],
]) {
  const samples = [];
  const victim = join(dir, `poll-${samples.length}-${name.length}-`);
  for (let i = 0; i < Math.min(KILLS, 30); i++) {
    const { child } = await holders(victim, 1);
    // The poll runs on its own schedule, as it would in an application; the kill lands at a random phase.
    const noticed = new Promise((resolve) => {
      const timer = setInterval(() => {
        if (!isUp(child, `${victim}0`)) {
          clearInterval(timer);
          resolve(now());
        }
      }, 100);
    });
    await new Promise((r) => setTimeout(r, Math.random() * 100));
    const t0 = now();
    child.kill('SIGKILL');
    samples.push(ms((await noticed) - t0));
    await child.exited;
  }
  console.log(`| ${name} | ${fmt(pct(samples, 50))} | ${fmt(pct(samples, 99))} |`);
}
process.exit(0);
