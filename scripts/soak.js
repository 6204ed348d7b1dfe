#!/usr/bin/env node
// The soak: `proc-alive run` started and SIGKILLed over and over on one target, while a checker loops
// concurrently in a worker thread. The driver publishes its phase in shared memory; the checker reads it
// before and after each check, so each answer is judged against what was certainly true for its whole
// duration:
//   GAP     (runner reaped, next one not started)    alive is wrong
//   HELD    (runner seen holding, not yet killed)     dead or absent is wrong
//   others  (starting, being killed)                  any answer is right
// Also wrong: a runner that cannot hold the target right after the previous one was SIGKILLed; and,
// for a watcher of the target running alongside, any transition it misses or invents: it must report
// exactly absent, then alive and dead once per cycle.
//
//   npm run soak                 1,000 cycles
//   node scripts/soak.js 50      fewer

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'dist', 'bin.cjs');
const INDEX = pathToFileURL(join(ROOT, 'dist', 'index.js')).href;

const GAP = 0;
const STARTING = 1;
const HELD = 2;
const KILLING = 3;
const STOP = 4;

// The checker: [phase, generation] shared with the driver; counters written back.
const checker = `
const { workerData, parentPort } = require('node:worker_threads');
import(workerData.index).then(({ checkSync }) => {
  const shared = new Int32Array(workerData.sab);
  const counts = { checks: 0, aliveInGap: 0, notAliveWhileHeld: 0, errors: 0, firstWrong: null };
  for (;;) {
    // The generation first, then the phase: the driver writes the phase, then bumps the generation, so a
    // phase written after our first read shows as a changed generation after the check.
    const gen = Atomics.load(shared, 1), phase = Atomics.load(shared, 0);
    if (phase === ${STOP}) break;
    let state;
    try { state = checkSync(workerData.path); } catch (e) { counts.errors++; counts.firstWrong ??= String(e); continue; }
    if (Atomics.load(shared, 1) !== gen) continue; // the phase changed during the check: any answer fits
    counts.checks++;
    if (phase === ${GAP} && state === 'alive') { counts.aliveInGap++; counts.firstWrong ??= 'alive in gap ' + gen; }
    if (phase === ${HELD} && state !== 'alive') { counts.notAliveWhileHeld++; counts.firstWrong ??= state + ' while held ' + gen; }
  }
  parentPort.postMessage(counts);
});
`;

export async function soak({ cycles = 1000, log = () => {} } = {}) {
  const { checkSync, watch } = await import(INDEX);
  const dir = mkdtempSync(join(tmpdir(), 'proc-alive-soak-'));
  const path = join(dir, 'target');
  const sab = new SharedArrayBuffer(8);
  const shared = new Int32Array(sab);
  const setPhase = (phase) => {
    Atomics.store(shared, 0, phase);
    Atomics.add(shared, 1, 1);
  };
  const worker = new Worker(checker, { eval: true, workerData: { sab, path, index: INDEX } });
  const watcher = watch(path);
  const seen = [];
  let cycle = -1;
  watcher.on('change', (e) => seen.push({ state: e.state, cycle }));
  const result = once(worker, 'message');
  const failures = [];
  try {
    for (let i = 0; i < cycles; i++) {
      cycle = i;
      setPhase(STARTING);
      const child = spawn(process.execPath, [BIN, 'run', path], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      const exited = once(child, 'exit');
      // The driver's own check, independent of the worker's, says when the runner holds the FIFO.
      while (child.exitCode === null && checkSync(path) !== 'alive') await new Promise((r) => setImmediate(r));
      if (child.exitCode !== null) {
        failures.push(`cycle ${i}: the runner could not hold the target (exit ${child.exitCode}): ${stderr.trim()}`);
        setPhase(GAP);
        continue;
      }
      setPhase(HELD);
      await new Promise((r) => setTimeout(r, Math.random() * 5));
      setPhase(KILLING);
      child.kill('SIGKILL');
      await exited;
      setPhase(GAP);
      await new Promise((r) => setTimeout(r, Math.random() * 2)); // let the checker see the gap
      if ((i + 1) % 100 === 0) log(`${i + 1} cycles`);
    }
  } finally {
    setPhase(STOP);
  }
  const [counts] = await result;
  await worker.terminate();
  // The last death may still be on its way to the watcher.
  const expected = ['absent'];
  for (let i = 0; i < cycles - failures.length; i++) expected.push('alive', 'dead');
  for (let i = 0; i < 200 && seen.length < expected.length; i++) await new Promise((r) => setTimeout(r, 10));
  watcher.close();
  rmSync(dir, { recursive: true, force: true });
  const found = expected.findIndex((state, i) => seen[i]?.state !== state);
  const at = found >= 0 ? found : seen.length === expected.length ? -1 : expected.length;
  // Where it went wrong: the states reported around it, each with the cycle the driver was in.
  const around = seen.slice(Math.max(0, at - 3), at + 3).map((e) => `${e.state}@${e.cycle}`);
  // States alternate, so an extra alive/dead pair anywhere shows as two states too many at the end:
  // the first cycle that reported more than alive and dead once says where.
  const perCycle = new Map();
  for (const e of seen) perCycle.set(e.cycle, [...(perCycle.get(e.cycle) ?? []), e.state]);
  const odd = [...perCycle].find(([c, states]) => c >= 0 && states.join() !== 'alive,dead');
  const transitions = {
    reported: seen.length,
    expected: expected.length,
    firstDifference: at < 0 ? null : { at, around, firstOddCycle: odd ? `${odd[0]}: ${odd[1].join(' ')}` : null },
  };
  return { cycles, ...counts, failures, transitions };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const cycles = Number(process.argv[2] ?? 1000);
  const r = await soak({ cycles, log: (m) => console.log(m) });
  console.log(
    `soak: ${r.cycles} SIGKILL/restart cycles, ${r.checks} checks judged: ` +
      `${r.aliveInGap} alive after reaping, ${r.notAliveWhileHeld} not alive while held, ${r.errors} errors, ` +
      `${r.failures.length} runners that could not hold`,
  );
  console.log(
    `soak: a watcher reported ${r.transitions.reported} states for ${r.transitions.expected} expected ` +
      `(absent, then alive and dead per cycle): ${r.transitions.firstDifference === null ? 'none missed, none invented' : `first difference at ${r.transitions.firstDifference.at}: ${r.transitions.firstDifference.around.join(' ')}; first odd cycle ${r.transitions.firstDifference.firstOddCycle}`}`,
  );
  for (const f of r.failures.slice(0, 5)) console.log(`  ${f}`);
  if (r.firstWrong) console.log(`  first wrong answer: ${r.firstWrong}`);
  const wrong = r.aliveInGap + r.notAliveWhileHeld + r.errors + r.failures.length;
  process.exitCode = wrong === 0 && r.transitions.firstDifference === null ? 0 : 1;
}
