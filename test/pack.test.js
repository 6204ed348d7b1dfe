// The published package: `npm pack` gives a tarball that installs into an empty project, where
// `npx proc-alive --help` works and a .ts file importing the package type-checks.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmp, ROOT } from './helpers.js';

const npm = (args, cwd) => execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

test('npm pack installs into an empty project: the bin runs and the types check', async (t) => {
  const out = tmp(t);
  // --ignore-scripts: `npm test` has just built dist/; rebuilding it here would race the other test files.
  const [info] = JSON.parse(npm(['pack', '--ignore-scripts', '--json', '--pack-destination', out], ROOT));
  const files = info.files.map((f) => f.path).sort();
  assert.ok(files.includes('dist/index.js') && files.includes('dist/index.d.ts') && files.includes('dist/bin.cjs'));
  for (const f of files) {
    assert.match(f, /^(dist\/[a-z-]+\.(js|d\.ts)|dist\/index\.(mjs|d\.mts)|dist\/bin\.cjs|schemas\/[a-z-]+\.json|package\.json|README\.md|LICENSE)$/, `${f} does not belong in the tarball`);
  }

  const project = tmp(t);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  npm(['install', '--no-audit', '--no-fund', '--prefer-offline', join(out, info.filename)], project);

  const help = spawnSync('npx', ['--no-install', 'proc-alive', '--help'], { cwd: project, encoding: 'utf8', timeout: 60_000 });
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /^Usage: proc-alive <command>/);
  const absent = spawnSync('npx', ['--no-install', 'proc-alive', 'check', join(project, 'nothing')], { cwd: project, encoding: 'utf8', timeout: 60_000 });
  assert.equal(absent.status, 3);

  writeFileSync(
    join(project, 'consumer.ts'),
    `import { check, checkSync, hold, defaultDir, ProcAliveError, type Holder, type HoldOptions, type State } from 'proc-alive';
const state: State = checkSync('/tmp/x');
const options: HoldOptions = { mode: 0o620, keep: false };
const holder: Holder = hold('web', options);
const fd: number = holder.fd;
const path: string = holder.path;
holder.close();
holder[Symbol.dispose]();
export async function later(): Promise<'alive' | 'dead' | 'absent'> {
  return check('web');
}
try {
  checkSync('x');
} catch (err) {
  if (err instanceof ProcAliveError) {
    const code: string = err.code;
    const where: string | undefined = err.path;
    void [code, where, err.cause];
  }
}
export const seen = [state, fd, path, defaultDir()];
// @ts-expect-error a target is a string
checkSync(42);
// @ts-expect-error a state is one of three words
export const wrong: 'up' = checkSync('x');
// @ts-expect-error fd is read-only
holder.fd = 3;
export async function more(): Promise<void> {
  const { waitAlive, waitDead, watch, statusSync, wrap } = await import('proc-alive');
  await waitAlive(['web', 'api'], { timeout: 5000, signal: AbortSignal.timeout(1000), any: true });
  const down: Array<'dead' | 'absent'> = await waitDead('web');
  const w = watch(['web', '/run/services'], { unref: true });
  w.on('change', (e) => void [e.target, e.path, e.state, e.previous, e.time, e.code, e.reason]);
  for await (const e of w) if (e.state === 'unknown') w.close();
  const st = statusSync('web');
  const pid: number | undefined = st.holder?.pid;
  const wrapped = wrap('web', 'node', ['server.js'], { ready: true, forwardSignals: true });
  const exit = await wrapped.exited;
  void [down, pid, exit.status, exit.clean, wrapped.child.pid];
  // @ts-expect-error a watch state is one of four words
  const bad: 'up' = st.state;
  void bad;
}
`,
  );
  writeFileSync(
    join(project, 'tsconfig.json'),
    JSON.stringify({
      // A TypeScript user of a Node library has Node's types (AbortSignal, EventEmitter): ours, not fetched.
      compilerOptions: {
        module: 'nodenext', target: 'es2022', strict: true, noEmit: true, lib: ['es2022', 'esnext.disposable'],
        typeRoots: [join(ROOT, 'node_modules', '@types')], types: ['node'],
      },
      files: ['consumer.ts'],
    }),
  );
  const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project], { encoding: 'utf8' });
  assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
});
