// `npm run demo`: the seed's walk-through with the real CLI. Starts a runner, checks it, SIGKILLs it,
// checks again, restarts it over the stale FIFO, stops it cleanly, and prints each state with its exit code.

import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'bin.cjs');
const dir = mkdtempSync(join(tmpdir(), 'proc-alive-demo-'));
const path = join(dir, 'mah-pipe');
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const check = () => spawnSync(process.execPath, [BIN, 'check', path], { encoding: 'utf8' });

function showCheck(note) {
  const r = check();
  const said = (r.stdout || r.stderr).trim();
  console.log(`$ proc-alive check ${path}\n  ${said.padEnd(path.length + 10)} exit ${r.status}   ${note}`);
}

async function startRunner() {
  console.log(`$ proc-alive run ${path} 120 &`);
  const runner = spawn(process.execPath, [BIN, 'run', path, '120'], { stdio: 'inherit' });
  const exited = once(runner, 'exit');
  // The runner is a separate process: wait until it holds the FIFO (a few ms), at most 10 s.
  for (const end = Date.now() + 10_000; check().status !== 0; ) {
    if (Date.now() > end || runner.exitCode !== null) throw new Error('the runner did not start');
    await new Promise((r) => setTimeout(r, 10));
  }
  return { runner, exited };
}

showCheck('(nothing started yet)');
let { runner, exited } = await startRunner();
showCheck('(running)');
console.log(`$ kill -KILL ${runner.pid}`);
runner.kill('SIGKILL');
await exited;
showCheck('(killed: the FIFO is left behind with no reader)');
({ runner, exited } = await startRunner());
showCheck('(restarted over the stale FIFO)');
console.log(`$ kill -TERM ${runner.pid}`);
runner.kill('SIGTERM');
const [code] = await exited;
console.log(`  runner exited ${code}`);
showCheck('(stopped cleanly: the FIFO was removed)');
