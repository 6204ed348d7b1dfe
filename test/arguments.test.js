// Arguments of the wrong type from a JavaScript caller: every public function refuses them with
// ProcAliveError EINVAL naming the argument, what it must be and what it got, before touching anything.
// And every code the library throws is in the ProcAliveErrorCode union.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as pa from '../dist/index.js';
import { tmp, ROOT } from './helpers.js';

test('wrong argument types are refused with a message about the type, at every entry, before anything is made', async (t) => {
  const dir = tmp(t);
  const p = join(dir, 'web');
  const cases = [
    [() => pa.checkSync(123), /^target must be a string \(a path or a name\), or an array of them, got number$/],
    [() => pa.checkSync(['a', 7]), /^targets\[1\] must be a string \(a path or a name\), got number$/],
    [() => pa.check(null), /^target must be a string .*, got null$/],
    [() => pa.hold(123), /^target must be a string \(a path or a name\), got number$/],
    [() => pa.hold(p, { mode: '0600' }), /^options\.mode must be a number such as 0o600, got string \('0600'\) \(write 0o600\)$/],
    [() => pa.hold(p, { shared: 'yes' }), /^options\.shared must be a boolean, got string \('yes'\)$/],
    [() => pa.hold(p, 'shared'), /^options must be an object, got string/],
    [() => pa.wrap(p, 42), /^command must be a string or an array of strings, got number$/],
    [() => pa.wrap(p, 'true', 'not an array'), /^args must be an array of strings, got string/],
    [() => pa.wrap(p, ['node', 1]), /^command\[1\] must be a string, got number$/],
    [() => pa.wrap(p, 'true', [], { stdio: 'piped' }), /^options\.stdio must be 'inherit', 'pipe', 'ignore', or an array of three of them, got string/],
    [() => pa.wrap(p, 'true', [], { killSignal: 'TERM' }), /^options\.killSignal must be a signal's name such as 'SIGTERM', got string/],
    [() => pa.wrap(p, 'true', { signal: {} }), /^options\.signal must be an AbortSignal, got an object$/],
    [() => pa.wrap(p, 'true', { env: 'A=1' }), /^options\.env must be an object, got string/],
    [() => pa.wrap(p, 'true', { cwd: 5 }), /^options\.cwd must be a string, got number$/],
    [() => pa.waitAlive(p, { timeout: '5s' }), /^options\.timeout must be a non-negative number, got string \('5s'\)$/],
    [() => pa.waitDead(p, { timeout: Number.NaN }), /^options\.timeout must be a non-negative number, got NaN$/],
    [() => pa.waitAlive(p, { any: 1 }), /^options\.any must be a boolean, got number$/],
    [() => pa.waitAlive({ path: p }), /^target must be a string .*, got an object$/],
    [() => pa.watch(5), /^target must be a string .*, got number$/],
    [() => pa.watch(p, { unref: 'yes' }), /^options\.unref must be a boolean/],
    [() => new pa.Watcher([p], []), /^options must be an object, got an array$/],
    [() => pa.statusSync({}), /^target must be a string/],
    [() => pa.status(undefined), /^target must be a string/],
    [() => pa.listTargetsIn(5), /^dir must be a string, got number$/],
    [() => pa.targetPath(undefined), /^target must be a string .*, got undefined$/],
    [() => pa.createServeHandler({}), /^options\.targets must be an array of targets, got undefined$/],
    [() => pa.createServeHandler({ targets: [p], heartbeatMs: '1s' }), /^options\.heartbeatMs must be a non-negative number/],
    [() => pa.serve({ targets: [p], listen: 80 }), /^options\.listen must be a string such as '127\.0\.0\.1:19171', or an address, got number$/],
    [() => pa.parseListen(80), /^listen must be a string/],
  ];
  for (const [call, message] of cases) {
    let err;
    try {
      await call();
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof pa.ProcAliveError, `${call}: ${err}`);
    assert.equal(err.code, 'EINVAL', `${call}`);
    assert.match(err.message, message, `${call}`);
  }
  const watcher = pa.watch(p, { unref: true });
  assert.throws(() => watcher.add([p, 3]), { code: 'EINVAL', message: /^targets\[1\] must be a string/ });
  assert.throws(() => watcher.unwatch(3), { code: 'EINVAL', message: /^target must be a string/ });
  await watcher.close();
  assert.deepEqual(readdirSync(dir), [], 'nothing was made');
});

test('isAlive and isAliveSync never throw: true only for a FIFO with a reader', async (t) => {
  const dir = tmp(t);
  const p = join(dir, 'web');
  for (const target of [123, null, '', p, '/dev/null', join(dir, 'no', 'such'), [p, p], []]) {
    assert.equal(pa.isAliveSync(target), false, String(target));
    assert.equal(await pa.isAlive(target), false, String(target));
  }
  const holder = pa.hold(p);
  t.after(() => holder.close());
  assert.equal(pa.isAliveSync(p), true);
  assert.equal(await pa.isAlive([p, p]), true);
  assert.equal(await pa.isAlive([p, '/dev/null']), false, 'every target must be alive');
  assert.deepEqual(await pa.check([p, join(dir, 'other')]), ['alive', 'absent']);
  assert.deepEqual(pa.checkSync([p, join(dir, 'other')]), ['alive', 'absent']);
  await assert.rejects(pa.check([join(dir, 'other'), '/dev/null', '/dev/zero']), { code: 'ENOTFIFO', path: '/dev/null' });
});

test('every code the library throws is in the ProcAliveErrorCode union', () => {
  const src = join(ROOT, 'src');
  const union = readFileSync(join(src, 'errors.ts'), 'utf8').match(/export type ProcAliveErrorCode =([\s\S]*?);\n/)[1];
  const declared = new Set([...union.matchAll(/\| '([A-Z_]+)'/g)].map((m) => m[1]));
  const thrown = new Set();
  for (const file of readdirSync(src)) {
    const text = readFileSync(join(src, file), 'utf8');
    for (const m of text.matchAll(/(?:new ProcAliveError|errnoError)\(\s*'([A-Z_]+)'/g)) thrown.add(m[1]);
    // Codes made from errno values handed over: those named in the errno tables.
    for (const m of text.matchAll(/code: '([A-Z_]+)'/g)) thrown.add(m[1]);
  }
  assert.ok(thrown.size > 15, [...thrown].join(' '));
  for (const code of thrown) assert.ok(declared.has(code), `${code} is thrown but not in ProcAliveErrorCode`);
});
