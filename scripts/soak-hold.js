#!/usr/bin/env node
// The holding soak: `proc-alive run` started, contended, stopped cleanly or SIGKILLed over and over on
// one target in a sticky, world-writable directory (as /tmp is), while another user (when we are root)
// plants symlinks for every name a holder makes, pointing at a file and a directory of root's outside,
// and a checker loops in a worker thread. Judged:
//   wrong answers            alive after the holder was reaped, or not alive while it held
//   pairs of holders         a contender that held while the target was held (it must exit 75)
//   writes outside           the file or directory the plants point at changed
//   files left               anything of ours left in the directory after a clean stop
//
//   node scripts/soak-hold.js 300     cycles (npm run soak runs it too)

import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, lstatSync, mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'dist', 'bin.cjs');
const INDEX = pathToFileURL(join(ROOT, 'dist', 'index.js')).href;
const NOBODY = 65534;

const GAP = 0; // reaped, or stopped cleanly: alive is wrong
const MOVING = 1; // starting, being stopped or killed: any answer is right
const HELD = 2; // seen holding: anything but alive is wrong
const STOP = 3;

const checker = `
const { workerData, parentPort } = require('node:worker_threads');
import(workerData.index).then(({ checkSync }) => {
  const shared = new Int32Array(workerData.sab);
  const counts = { checks: 0, wrong: 0, errors: 0, firstWrong: null };
  for (;;) {
    const gen = Atomics.load(shared, 1), phase = Atomics.load(shared, 0);
    if (phase === ${STOP}) break;
    let state;
    try { state = checkSync(workerData.path); } catch (e) { counts.errors++; counts.firstWrong ??= String(e); continue; }
    if (Atomics.load(shared, 1) !== gen) continue; // the phase changed during the check
    counts.checks++;
    const wrong = (phase === ${GAP} && state === 'alive') || (phase === ${HELD} && state !== 'alive');
    if (wrong) { counts.wrong++; counts.firstWrong ??= state + ' in phase ' + phase + ' of generation ' + gen; }
  }
  parentPort.postMessage(counts);
});
`;

/** Another user's loop: symlinks for the coming pids under every private name a holder uses. */
const attack = (dir, file, directory) => `
const fs = require('fs');
const names = (p) => ['.t.json.' + p + '.tmp', '.t.' + p + '.new', '.t.' + p + '.old', '.t.' + p + '.lock'];
let planted = [];
for (;;) {
  const n = +fs.readFileSync('/proc/sys/kernel/ns_last_pid', 'utf8');
  for (let p = n + 1; p < n + 40; p++) for (const name of names(p)) {
    try { fs.symlinkSync(Math.random() < 0.5 ? ${JSON.stringify(file)} : ${JSON.stringify(directory)}, ${JSON.stringify(dir)} + '/' + name); planted.push(name); } catch {}
  }
  if (planted.length > 4000) { for (const name of planted.splice(0, 2000)) try { fs.unlinkSync(${JSON.stringify(dir)} + '/' + name); } catch {} }
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1); // a round a millisecond: enough to win races, not a whole core
}`;

export async function soakHold({ cycles = 300, log = () => {} } = {}) {
  const { checkSync } = await import(INDEX);
  const top = mkdtempSync(join(tmpdir(), 'proc-alive-soak-hold-'));
  chmodSync(top, 0o755);
  const dir = join(top, 'shared');
  mkdirSync(dir);
  chmodSync(dir, 0o1777);
  const path = join(dir, 't');
  const outside = join(top, 'outside');
  mkdirSync(outside, { mode: 0o755 });
  const file = join(outside, 'precious');
  writeFileSync(file, 'precious\n', { mode: 0o600 });
  const before = JSON.stringify([readFileSync(file, 'utf8'), statSync(file).mode, readdirSync(outside), statSync(outside).mode]);

  const root = process.getuid?.() === 0;
  const attacker = root
    ? spawn('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', process.execPath, '-e', attack(dir, file, outside)], { stdio: 'ignore' })
    : null;

  const sab = new SharedArrayBuffer(8);
  const shared = new Int32Array(sab);
  const setPhase = (phase) => {
    Atomics.store(shared, 0, phase);
    Atomics.add(shared, 1, 1);
  };
  setPhase(GAP);
  const worker = new Worker(checker, { eval: true, workerData: { sab, path, index: INDEX } });
  const result = once(worker, 'message');
  const failures = [];
  let pairs = 0;
  let cleanStops = 0;
  let kills = 0;
  const leftAfterClean = [];
  try {
    for (let i = 0; i < cycles; i++) {
      setPhase(MOVING);
      const child = spawn(process.execPath, [BIN, 'run', path, '60'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      const exited = once(child, 'exit');
      while (child.exitCode === null && checkSync(path) !== 'alive') await new Promise((r) => setImmediate(r));
      if (child.exitCode !== null) {
        failures.push(`cycle ${i}: the runner could not hold (exit ${child.exitCode}): ${stderr.trim()}`);
        setPhase(GAP);
        continue;
      }
      setPhase(HELD);
      // A contender while it holds: must be turned away.
      const contender = spawnSync(process.execPath, [BIN, 'run', path, '1'], { encoding: 'utf8' });
      if (contender.status !== 75) {
        pairs += contender.status === 0 ? 1 : 0;
        failures.push(`cycle ${i}: a contender exited ${contender.status}: ${contender.stderr.trim()}`);
      }
      setPhase(MOVING);
      if (Math.random() < 0.5) {
        child.kill('SIGKILL');
        kills++;
        await exited;
      } else {
        child.kill('SIGTERM');
        const [code] = await exited;
        cleanStops++;
        if (code !== 0) failures.push(`cycle ${i}: a clean stop exited ${code}: ${stderr.trim()}`);
        // Anything of ours (root's) left: the FIFO, the lock, the record, a private FIFO, a temporary.
        const ours = readdirSync(dir).filter((n) => lstatSync(join(dir, n), { throwIfNoEntry: false })?.uid === 0);
        if (ours.length > 0) leftAfterClean.push(`cycle ${i}: ${ours.join(' ')}`);
      }
      setPhase(GAP);
      if (stderr.trim() !== '' && !/removed; made again|lock file was removed/.test(stderr)) failures.push(`cycle ${i}: ${stderr.trim()}`);
      await new Promise((r) => setTimeout(r, Math.random() * 2));
      if ((i + 1) % 100 === 0) log(`${i + 1} cycles`);
    }
  } finally {
    setPhase(STOP);
    attacker?.kill('SIGKILL');
  }
  const [counts] = await result;
  await worker.terminate();
  if (attacker !== null && attacker.exitCode === null && attacker.signalCode === null) await once(attacker, 'exit');
  const after = JSON.stringify([readFileSync(file, 'utf8'), statSync(file).mode, readdirSync(outside), statSync(outside).mode]);
  rmSync(top, { recursive: true, force: true });
  return { cycles, attacked: root, ...counts, pairs, kills, cleanStops, writesOutside: before === after ? 0 : 1, leftAfterClean, failures };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const cycles = Number(process.argv[2] ?? 300);
  const r = await soakHold({ cycles, log: (m) => console.log(m) });
  console.log(
    `soak-hold: ${r.cycles} cycles (${r.cleanStops} clean stops, ${r.kills} SIGKILLs) in a sticky shared directory, ` +
      `${r.attacked ? 'another user planting symlinks throughout' : 'no attacker (not root)'}; ${r.checks} checks judged: ` +
      `${r.wrong} wrong answers, ${r.errors} errors, ${r.pairs} pairs of exclusive holders, ${r.writesOutside} writes outside, ` +
      `${r.leftAfterClean.length} clean stops that left files, ${r.failures.length} other failures`,
  );
  for (const f of [...r.leftAfterClean, ...r.failures].slice(0, 5)) console.log(`  ${f}`);
  if (r.firstWrong) console.log(`  first wrong answer: ${r.firstWrong}`);
  const bad = r.wrong + r.errors + r.pairs + r.writesOutside + r.leftAfterClean.length + r.failures.length;
  process.exitCode = bad === 0 ? 0 : 1;
}
