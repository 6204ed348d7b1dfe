// Every supported way of loading the package, from a packed tarball installed in an empty project: an ES
// module import, a CommonJS require (and both in one process: one copy of the event machinery), the
// oldest Node that `engines` admits, and TypeScript consumers (`module: node16` and `nodenext`, each as
// an ES module and as CommonJS) that type-check the whole API under strict options and then run.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tmp, ROOT } from './helpers.js';

/** The oldest Node `engines` admits (">=20"): got from the npm registry as a package, no install script. */
const OLDEST = '20.0.0';
const CACHE = join(ROOT, 'node_modules', '.cache', 'proc-alive-tests');

const npm = (args, cwd) => execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** The package as published, installed once in an empty project (no "type": a plain npm init). */
let installed;
after(() => installed && rmSync(installed, { recursive: true, force: true }));
function project() {
  if (installed === undefined) {
    installed = mkdtempSync(join(tmpdir(), 'proc-alive-test-'));
    // --ignore-scripts: `npm test` has just built dist/; rebuilding it here would race the other test files.
    const [info] = JSON.parse(npm(['pack', '--ignore-scripts', '--json', '--pack-destination', installed], ROOT));
    writeFileSync(join(installed, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
    npm(['install', '--no-audit', '--no-fund', '--prefer-offline', join(installed, info.filename)], installed);
  }
  return installed;
}

/** Node `version`'s binary, from the registry's node-<os>-<arch> package, unpacked once into CACHE. */
function nodeBinary(version) {
  const dir = join(CACHE, `node-${version}`);
  const bin = join(dir, 'package', 'bin', 'node');
  if (existsSync(bin)) return bin;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const [info] = JSON.parse(npm(['pack', '--json', '--pack-destination', dir, `node-${process.platform}-${process.arch}@${version}`], dir));
  execFileSync('tar', ['-xzf', join(dir, info.filename), '-C', dir, 'package/bin/node']);
  rmSync(join(dir, info.filename));
  return bin;
}

function run(node, file, args, cwd) {
  const r = spawnSync(node, [file, ...args], { cwd, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `${file} under ${node}: ${r.stderr}`);
  return r.stdout;
}

// One process, both formats: the same functions and classes, and one event worker thread for a watcher
// from each (a second copy of the package would start a second worker).
const BOTH = `
import * as esm from 'proc-alive';
import { createRequire } from 'node:module';
import { readdirSync } from 'node:fs';
import { once } from 'node:events';
const cjs = createRequire(import.meta.url)('proc-alive');
const fifo = process.argv[2];
const threads = () => readdirSync('/proc/self/task').length;
const holder = esm.hold(fifo);
await esm.check(fifo); // libuv's thread pool started before counting
const t0 = threads();
const w1 = esm.watch(fifo);
await once(w1, 'ready');
const t1 = threads();
const w2 = cjs.watch(fifo);
await once(w2, 'ready');
const t2 = threads();
let caught;
try { cjs.checkSync('/dev/null'); } catch (err) { caught = err; }
console.log(JSON.stringify({
  esm: Object.keys(esm).filter((k) => k !== 'default' && k !== '__esModule').sort(),
  cjs: Object.keys(cjs).filter((k) => k !== '__esModule').sort(),
  same: Object.keys(cjs).every((k) => esm[k] === cjs[k]),
  errorClass: caught instanceof esm.ProcAliveError && caught.code,
  states: [w1.mechanism, w2.mechanism, esm.checkSync(fifo)],
  workers: [t1 - t0, t2 - t1],
}));
await Promise.all([w1.close(), w2.close()]);
holder.close();
`;

// CommonJS alone, as a CommonJS application loads it.
const CJS = `
const { hold, checkSync, isAliveSync, watch, waitDead } = require('proc-alive');
const fifo = process.argv[2];
const holder = hold(fifo);
const w = watch(fifo);
const seen = [];
w.on('change', (e) => seen.push(e.state));
w.once('ready', async () => {
  const alive = [checkSync(fifo), isAliveSync(fifo)];
  holder.close();
  await waitDead(fifo);
  await w.close();
  const schema = require('proc-alive/schemas/watch-event.json').required;
  console.log(JSON.stringify({ alive, seen: seen[0], pkg: require('proc-alive/package.json').name, schema }));
});
`;

test('ESM import and CommonJS require in one process share one copy: one event worker for both', async (t) => {
  const dir = project();
  writeFileSync(join(dir, 'both.mjs'), BOTH);
  const fifos = tmp(t);
  for (const node of [process.execPath, nodeBinary(OLDEST)]) {
    const r = JSON.parse(run(node, 'both.mjs', [join(fifos, 'web')], dir));
    assert.deepEqual(r.esm, r.cjs, `${node}: the ES module entry exports every name`);
    assert.ok(r.esm.includes('watch') && r.esm.includes('isAliveSync'));
    assert.equal(r.same, true, `${node}: the ES module entry is the CommonJS build, not a copy`);
    assert.equal(r.errorClass, 'ENOTFIFO');
    assert.deepEqual(r.states, ['events', 'events', 'alive']);
    assert.ok(r.workers[0] >= 1, `${node}: the first watcher starts the worker (${r.workers})`);
    assert.equal(r.workers[1], 0, `${node}: the second watcher, from the other format, shares it`);
  }
});

test('CommonJS require works on the oldest Node admitted and on this one', async (t) => {
  const dir = project();
  writeFileSync(join(dir, 'app.cjs'), CJS);
  const fifos = tmp(t);
  for (const node of [nodeBinary(OLDEST), process.execPath]) {
    const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
    if (node !== process.execPath) assert.equal(version, `v${OLDEST}`);
    const r = JSON.parse(run(node, 'app.cjs', [join(fifos, `web-${version}`)], dir));
    assert.deepEqual(r, { alive: ['alive', true], seen: 'alive', pkg: 'proc-alive', schema: ['target', 'path', 'state', 'previous', 'time'] }, version);
  }
});

// TypeScript: the same consumer (test/fixtures/consumer.ts) as an ES module and as CommonJS, under each
// module setting a Node user may have; compiled with this repository's tsc, then run as emitted.
for (const module of ['node16', 'nodenext']) {
  test(`TypeScript module: ${module}: ESM and CommonJS consumers type-check the whole API, and run`, async (t) => {
    const dir = project();
    const src = join(dir, module);
    mkdirSync(src);
    copyFileSync(join(ROOT, 'test', 'fixtures', 'consumer.ts'), join(src, 'consumer.mts'));
    copyFileSync(join(ROOT, 'test', 'fixtures', 'consumer.ts'), join(src, 'consumer.cts'));
    writeFileSync(join(src, 'main.mts'), "import { main } from './consumer.mjs';\nawait main(process.argv[2] as string);\n");
    writeFileSync(join(src, 'main.cts'), "import { main } from './consumer.cjs';\nvoid main(process.argv[2] as string);\n");
    writeFileSync(
      join(src, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module, target: 'es2022', lib: ['es2022', 'esnext.disposable'], outDir: 'out', rootDir: '.',
          strict: true, exactOptionalPropertyTypes: true, noUncheckedIndexedAccess: true, skipLibCheck: false,
          // A TypeScript user of a Node library has Node's types (AbortSignal, EventEmitter): ours, not fetched.
          typeRoots: [join(ROOT, 'node_modules', '@types')], types: ['node'],
        },
        files: ['consumer.mts', 'consumer.cts', 'main.mts', 'main.cts'],
      }),
    );
    const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', src], { encoding: 'utf8' });
    assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
    const emitted = readFileSync(join(src, 'out', 'consumer.cjs'), 'utf8');
    assert.match(emitted, /require\("proc-alive"\)/, 'the .cts consumer is CommonJS and requires the package');

    for (const main of ['main.mjs', 'main.cjs']) {
      const fifos = tmp(t);
      const lines = run(process.execPath, join(src, 'out', main), [fifos], dir).trim().split('\n');
      assert.deepEqual(lines.slice(0, -1), [
        'check alive alive absent true number number',
        'status alive true true 1',
        'down absent mechanism',
        `timeout true absent`,
        'wrapped alive number',
        'exited true SIGTERM true absent',
        'events alive<null absent',
        'error ENOTFIFO path',
        'type EINVAL target must be a string (a path or a name), or an array of them, got number',
      ], `${module} ${main}`);
      assert.equal(lines.at(-1), 'exports function function {"host":"127.0.0.1","port":0} 19171 6 true true');
    }
  });
}
