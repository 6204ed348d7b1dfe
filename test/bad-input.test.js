// Bad input: each case gives its documented exit code and exactly one line on stderr (no stack trace),
// and never hangs. Path cases are also put to every back end of the library, which must agree.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { tmp, cli, cliAs, publicDist as makePublicDist, startRunner, NOBODY } from './helpers.js';
import { probeFs, probeFfi, probe, ffiLoaded } from '../dist/kernel.js';
import { checkSync, ProcAliveError } from '../dist/index.js';

/** Each case: [name, args, exit code, pattern of the one stderr line (null: no stderr), env]. */
function expectAll(cases) {
  for (const [name, args, code, pattern, env] of cases) {
    const r = cli(args, env ? { env: { ...process.env, ...env } } : {});
    assert.equal(r.code, code, `${name}: exit code (stderr: ${r.stderr})`);
    if (pattern === null) {
      assert.equal(r.stderr, '', `${name}: nothing on stderr`);
    } else {
      // A usage error adds the command's synopsis (usage: proc-alive ...), every other failure is one line.
      const lines = code === 2 ? r.errLines.filter((l) => !/^(usage: | {7})proc-alive /.test(l)) : r.errLines;
      if (code === 2 && /^(run|check|status)$/.test(args[0] ?? '')) assert.match(r.errLines[1] ?? '', /^usage: proc-alive /, `${name}: the synopsis`);
      assert.equal(lines.length, 1, `${name}: one line on stderr, got ${JSON.stringify(r.stderr)}`);
      assert.match(r.errLines[0], pattern, name);
      assert.match(r.errLines[0], /^proc-alive: /, name);
    }
  }
}

test('bad input: documented exit code, one line, no hang', async (t) => {
  const dir = tmp(t, 0o755);
  const file = join(dir, 'file');
  writeFileSync(file, 'data');
  const sock = join(dir, 'sock');
  const server = createServer().listen(sock);
  await once(server, 'listening');
  t.after(() => server.close());
  symlinkSync(join(dir, 'loop-b'), join(dir, 'loop-a'));
  symlinkSync(join(dir, 'loop-a'), join(dir, 'loop-b'));
  const longName = join(dir, 'n'.repeat(300));
  const longPath = dir + `/${'d'.repeat(200)}`.repeat(25);

  const locked = join(dir, 'locked');
  await startRunner(t, locked);

  // A default directory that must be refused (one owned by another user: see the next test).
  const groupWritable = join(tmp(t), 'gw');
  mkdirSync(groupWritable);
  chmodSync(groupWritable, 0o770);

  const cases = [
    ['directory', ['check', dir], 4, /: not a FIFO \(directory\), nor a service directory \(no run file, no supervise\/\)$/],
    ['regular file', ['check', file], 4, /: not a FIFO \(regular file\)$/],
    ['/dev/null', ['check', '/dev/null'], 4, /^proc-alive: \/dev\/null: not a FIFO \(character device\)$/],
    ['listening unix socket', ['check', sock], 4, /: not a FIFO \(socket\)$/],
    ['symlink loop', ['check', join(dir, 'loop-a')], 4, /too many levels of symbolic links \(ELOOP\)$/],
    ['path through a file', ['check', join(file, 'x')], 4, /not a directory \(ENOTDIR\)$/],
    ['name over NAME_MAX', ['check', longName], 4, /name too long \(ENAMETOOLONG\)$/],
    ['path over PATH_MAX', ['check', longPath], 4, /name too long \(ENAMETOOLONG\)$/],
    ['missing parent (check: nothing there)', ['check', join(dir, 'no', 'p')], 3, null],
    ['missing parent (run)', ['run', join(dir, 'no', 'p'), '1'], 125, /^proc-alive: cannot hold .*\/no\/p: directory .*\/no: no such file or directory \(ENOENT\)$/],
    ['empty target', ['check', ''], 2, /^proc-alive: empty target/],
    ['empty target (run)', ['run', ''], 2, /^proc-alive: empty target/],
    ['no target', ['check'], 2, /^proc-alive: check needs at least one target$/],
    ['no target (run)', ['run'], 2, /^proc-alive: run needs a target$/],
    ['unknown flag', ['check', '--frobnicate', file], 2, /^proc-alive: unknown option '--frobnicate'$/],
    ['unknown command', ['frobnicate'], 2, /^proc-alive: unknown command 'frobnicate'/],
    ['no command', [], 2, /^proc-alive: no command/],
    ['non-numeric duration', ['run', join(dir, 'p'), '5soon'], 2, /'5soon': unknown unit 'soon'/],
    ['a command without --', ['run', join(dir, 'p'), 'soon'], 2, /'soon' is not a duration; to run a command, put '--' before it: proc-alive run .* -- soon$/],
    ['negative duration', ['run', join(dir, 'p'), '-5'], 2, /'-5' is not a duration: give seconds/],
    ['mode that lets others read', ['run', '--mode', '0644', join(dir, 'p')], 2, /mode 0644 is not allowed/],
    ['too many operands (run)', ['run', join(dir, 'p'), '1', '2'], 2, /run takes a target and a duration/],
    ['bad --mode', ['run', '--mode', 'rw', join(dir, 'p')], 2, /--mode takes an octal mode/],
    ['run on a directory', ['run', dir, '1'], 125, /cannot hold .*: not a FIFO \(directory\)$/],
    ['run on /dev/null', ['run', '/dev/null', '1'], 125, /cannot hold \/dev\/null: not a FIFO \(character device\)$/],
    ['run a command on /dev/null', ['run', '/dev/null', '--', 'true'], 125, /cannot hold \/dev\/null: not a FIFO \(character device\)$/],
    ['lock file is a directory', ['run', join(dir, 'q'), '1'], 125, /lock file is a directory, not a regular file$/],
    ['--ready without a command', ['run', join(dir, 'p'), '--ready'], 2, /^proc-alive: --ready needs a command/],
    ['--ready with --shared', ['run', join(dir, 'p'), '--ready', '--shared', '--', 'true'], 2, /^proc-alive: --ready cannot be combined with --shared$/],
    ['seconds and a command', ['run', join(dir, 'p'), '5', '--', 'true'], 2, /^proc-alive: run takes a target before '--', not '5'$/],
    ['nothing after --', ['run', join(dir, 'p'), '--'], 2, /^proc-alive: no command after '--'$/],
    ['empty command', ['run', join(dir, 'p'), '--', ''], 2, /^proc-alive: no command after '--'$/],
    ['command not found', ['run', join(dir, 'p'), '--', join(dir, 'no-such-command')], 127, /: cannot run '.*no-such-command': command not found$/],
    ['command not executable', ['run', join(dir, 'p'), '--', file], 126, /: cannot run '.*file': permission denied \(not executable\?\)$/],
    ['status of a regular file', ['status', file], 4, /: not a FIFO \(regular file\)$/],
    ['status: empty target', ['status', ''], 2, /^proc-alive: empty target/],
    ['status: unknown flag', ['status', '--frobnicate'], 2, /^proc-alive: unknown option '--frobnicate'$/],
    ['bare name .', ['check', '.'], 2, /^proc-alive: '\.' is not a valid name/],
    ['bare name .. (run)', ['run', '..'], 2, /^proc-alive: '\.\.' is not a valid name/],
    ['default dir writable by group', ['check', 'web'], 4, /default directory is writable by group \(mode 770\)/, { PROC_ALIVE_DIR: groupWritable }],
  ];
  mkdirSync(join(dir, '.q.lock'));
  expectAll(cases);
  // Nothing was created by the refused runs, nor by the commands that could not start.
  assert.throws(() => statSync(join(dir, 'p')), { code: 'ENOENT' });
  assert.deepEqual(readdirSync(dir).filter((n) => /^\.?p(\.|$)/.test(n)), [], 'no FIFO, lock, record or temporary FIFO left for p');
  assert.throws(() => statSync('/dev/.null.lock'), { code: 'ENOENT' });

  // Every back end of the library gives the same answer or the same error code.
  assert.ok(ffiLoaded(), 'the FFI back end loads on this platform (else the benchmark measures the fs one)');
  const paths = [
    [dir, 'ENOTFIFO'], [file, 'ENOTFIFO'], ['/dev/null', 'ENOTFIFO'], [sock, 'ENOTFIFO'],
    [join(dir, 'loop-a'), 'ELOOP'], [join(file, 'x'), 'ENOTDIR'], [longName, 'ENAMETOOLONG'],
    [longPath, 'ENAMETOOLONG'], [join(dir, 'no', 'p'), 'absent'], [locked, 'alive'],
  ];
  for (const [path, expected] of paths) {
    const outcomes = [];
    for (const backEnd of [probeFs, probeFfi, checkSync]) {
      try {
        outcomes.push(backEnd(path));
      } catch (err) {
        assert.ok(err instanceof ProcAliveError, `${backEnd.name}(${path}) throws a ProcAliveError`);
        assert.equal(err.path, path);
        outcomes.push(err.code);
      }
    }
    outcomes.push(await probe(path).catch((err) => err.code));
    assert.deepEqual(outcomes, [expected, expected, expected, expected], path);
  }
});

test('as another user: permission denied is "cannot tell", a foreign default directory is refused', { skip: process.getuid() !== 0 && 'needs root (setpriv, chown)' }, async (t) => {
  // A FIFO held by root, mode 0600, in a directory others may search: another user gets EACCES.
  const dir = tmp(t, 0o755);
  const locked = join(dir, 'locked');
  await startRunner(t, locked);
  const publicDist = makePublicDist(t);

  const denied = cliAs(NOBODY, publicDist, ['check', locked]);
  assert.equal(denied.code, 4, denied.stderr);
  assert.deepEqual(denied.errLines, [`proc-alive: ${locked}: cannot check: permission denied (EACCES)`]);
  // Holding root's FIFO is refused before anything is tried: nobody could never hold it anyway, and a
  // FIFO of another user is never held (its owner could keep it alive).
  const deniedRun = cliAs(NOBODY, publicDist, ['run', locked, '1']);
  assert.equal(deniedRun.code, 125);
  assert.match(deniedRun.errLines.join('\n'), /^proc-alive: cannot hold .*: the FIFO is owned by uid 0, not by you \(uid 65534\)/);
  const deniedNew = cliAs(NOBODY, publicDist, ['run', join(dir, 'new'), '1']);
  assert.equal(deniedNew.code, 125);
  assert.match(deniedNew.errLines.join('\n'), /^proc-alive: cannot hold .*new: .*permission denied \(EACCES\)$/);

  const foreign = join(tmp(t), 'foreign');
  mkdirSync(foreign, { mode: 0o700 });
  chownSync(foreign, NOBODY, NOBODY);
  expectAll([
    ['default dir owned by another user', ['check', 'web'], 4, /default directory is owned by uid 65534/, { PROC_ALIVE_DIR: foreign }],
    ['default dir owned by another user (run)', ['run', 'web', '1'], 125, /default directory is owned by uid 65534/, { PROC_ALIVE_DIR: foreign }],
  ]);
  assert.throws(() => statSync(join(foreign, 'web')), { code: 'ENOENT' });
});
