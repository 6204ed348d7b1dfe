// `npm run bench`: what a check costs, as ratios to references measured in the same run. Not a test:
// it asserts nothing. The machine is shared and noisy, so every figure is a median over rounds, and the
// rounds interleave the things compared so that they meet the same noise.
//
//   BENCH_ROUNDS (default 9)   rounds for the in-process loops and the peers
//   BENCH_LOOP   (default 100000) checks per round in a loop
//   BENCH_SPAWNS (default 40)  process starts per command for the CLI comparison

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus, release } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import isRunning from 'is-running';
import { processExists } from 'process-exists';
import { hold, checkSync } from '../dist/index.js';
import { ffiLoaded, probeFs } from '../dist/kernel.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'dist', 'bin.cjs');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 9);
const LOOP = Number(process.env.BENCH_LOOP ?? 100_000);
const SPAWNS = Number(process.env.BENCH_SPAWNS ?? 40);
const STATES = ['alive', 'dead', 'absent'];

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const ns = () => Number(process.hrtime.bigint());

/** Mean ns per call of `fn` over `n` calls. */
function perCall(fn, n) {
  const t = ns();
  for (let i = 0; i < n; i++) fn();
  return (ns() - t) / n;
}

async function perCallAsync(fn, n) {
  const t = ns();
  for (let i = 0; i < n; i++) await fn();
  return (ns() - t) / n;
}

const dir = mkdtempSync(join(tmpdir(), 'proc-alive-bench-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

// The C references.
const loop = join(dir, 'loop');
execFileSync('cc', ['-O2', '-o', loop, join(ROOT, 'bench', 'loop.c')]);
const cLoop = (kind, path, n) => Number(execFileSync(loop, [kind, path, String(n)], { encoding: 'utf8' }));

// The three targets, held and left in-process (the kernel does not care who holds).
const paths = { alive: join(dir, 'alive'), dead: join(dir, 'dead'), absent: join(dir, 'absent') };
const holder = hold(paths.alive);
hold(paths.dead, { keep: true }).close();

// The peers: a PID file that names a live process, a dead one, or no PID file at all.
const sleeper = spawn('sleep', ['3600'], { stdio: 'ignore' });
const deadPid = spawnSync('true').pid; // reaped at once; not reused in the seconds this takes
const pidFiles = { alive: join(dir, 'alive.pid'), dead: join(dir, 'dead.pid'), absent: join(dir, 'absent.pid') };
writeFileSync(pidFiles.alive, `${sleeper.pid}\n`);
writeFileSync(pidFiles.dead, `${deadPid}\n`);
const readPid = (file) => Number.parseInt(readFileSync(file, 'utf8'), 10);
const pidKill = (file) => {
  try {
    process.kill(readPid(file), 0);
    return 'alive';
  } catch (err) {
    return err.code === 'ESRCH' ? 'dead' : err.code === 'ENOENT' ? 'absent' : 'unknown';
  }
};
const pidIsRunning = (file) => {
  try {
    return isRunning(readPid(file)) ? 'alive' : 'dead';
  } catch {
    return 'absent';
  }
};
const pidProcessExists = async (file) => {
  try {
    return (await processExists(readPid(file))) ? 'alive' : 'dead';
  } catch {
    return 'absent';
  }
};

// Every way must give the right answer before it is timed.
for (const s of STATES) {
  const answers = [checkSync(paths[s]), probeFs(paths[s]), pidKill(pidFiles[s]), pidIsRunning(pidFiles[s]), await pidProcessExists(pidFiles[s])];
  if (answers.some((a) => a !== s)) throw new Error(`wrong answer for ${s}: ${answers.join(', ')}`);
}

// checkSync loads the FFI after 1,000 calls (kernel.ts): warm up past that, then make sure it did.
for (let i = 0; i < 2000; i++) checkSync(paths.dead);
const backEnd = ffiLoaded() ? 'FFI (koffi)' : 'fs (the FFI did not load)';

const rows = {
  seed: { name: "C loop: the seed checker's calls (open + close) — reference", s: {} },
  safe: { name: 'C loop: the calls proc-alive makes (stat, open, fcntl, close)', s: {} },
  checkSync: { name: `checkSync, ${backEnd}`, s: {} },
  fs: { name: "probe through Node's fs only (the CLI's way, and the fallback)", s: {} },
  pidKill: { name: 'PID file + process.kill(pid, 0)', s: {} },
  isRunning: { name: 'PID file + is-running', s: {} },
  processExists: { name: 'PID file + process-exists (spawns ps)', s: {} },
};
for (const row of Object.values(rows)) for (const s of STATES) row.s[s] = [];

for (let r = 0; r < ROUNDS; r++) {
  for (const s of STATES) {
    const p = paths[s];
    rows.seed.s[s].push(cLoop('seed', p, LOOP));
    rows.checkSync.s[s].push(perCall(() => checkSync(p), LOOP));
    rows.safe.s[s].push(cLoop('safe', p, LOOP));
    rows.fs.s[s].push(perCall(() => probeFs(p), LOOP / 5));
    rows.pidKill.s[s].push(perCall(() => pidKill(pidFiles[s]), LOOP / 5));
    rows.isRunning.s[s].push(perCall(() => pidIsRunning(pidFiles[s]), LOOP / 5));
    if (r < 3) rows.processExists.s[s].push(await perCallAsync(() => pidProcessExists(pidFiles[s]), 5));
  }
}

// The CLI: process start to exit, against `node -e 0` and the C checker's syscalls in a process.
const cChecker = join(dir, 'checker');
execFileSync('cc', ['-O2', '-o', cChecker, join(ROOT, 'test', 'fixtures', 'checker.c')]);
const wall = (file, args) => {
  const t = ns();
  const r = spawnSync(file, args, { stdio: 'ignore' });
  if (r.status === null) throw new Error(`${file} ${args.join(' ')} died`);
  return ns() - t;
};
const starts = { node: [], cli: [], cliDead: [], c: [] };
for (let i = 0; i < SPAWNS; i++) {
  starts.node.push(wall(process.execPath, ['-e', '0']));
  starts.cli.push(wall(process.execPath, [BIN, 'check', paths.alive]));
  starts.cliDead.push(wall(process.execPath, [BIN, 'check', paths.dead]));
  starts.c.push(wall(cChecker, [paths.alive]));
}

holder.close();
sleeper.kill();

// Report.
const us = (x) => (x >= 1e6 ? `${(x / 1e6).toFixed(1)} ms` : `${(x / 1e3).toFixed(2)} µs`);
const med = (row, s) => median(rows[row].s[s]);
console.log(`proc-alive benchmark — node ${process.version}, ${process.platform} ${release()} ${process.arch}, ${cpus().length} cores`);
console.log(`medians of ${ROUNDS} interleaved rounds of ${LOOP.toLocaleString('en')} checks (process-exists: 3 rounds of 5)\n`);
console.log('In-process check, per call: ratio to the seed C loop (median time)\n');
console.log('| way | alive | dead | absent |');
console.log('|---|---|---|---|');
for (const key of Object.keys(rows)) {
  const cells = STATES.map((s) => `${(med(key, s) / med('seed', s)).toFixed(2)}× (${us(med(key, s))})`);
  console.log(`| ${rows[key].name} | ${cells.join(' | ')} |`);
}
const vsSafe = STATES.map((s) => `${s} ${(med('checkSync', s) / med('safe', s)).toFixed(2)}×`).join(', ');
console.log(`\ncheckSync against a C loop making the same calls: ${vsSafe}`);
const nodeStart = median(starts.node);
console.log('\nCLI, process start to exit: ratio to `node -e 0` (median of %d starts)\n', SPAWNS);
console.log('| command | ratio | median |');
console.log('|---|---|---|');
console.log(`| node -e 0 (reference) | 1.00× | ${us(nodeStart)} |`);
console.log(`| proc-alive check <alive> | ${(median(starts.cli) / nodeStart).toFixed(2)}× | ${us(median(starts.cli))} |`);
console.log(`| proc-alive check <dead> | ${(median(starts.cliDead) / nodeStart).toFixed(2)}× | ${us(median(starts.cliDead))} |`);
console.log(`| C checker (the seed's calls) | ${(median(starts.c) / nodeStart).toFixed(2)}× | ${us(median(starts.c))} |`);
