// Shared places are hostile: another user plants symlinks, FIFOs, huge files and forged records next to
// a target in a sticky, world-writable directory (as /tmp is), and proc-alive writes nothing through
// them, never hangs or bloats on them, and never lets them change a state or an exit code.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { lstatSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { tmp, cli, state, start, startRunner, kill, until, compileC, runAs, BIN, NOBODY, AS_ROOT } from './helpers.js';
import { statusSync } from '../dist/index.js';
import { parsed, parsedLines } from './schema.js';

/** A root-owned file that must never change, outside the shared directory. */
function precious(t) {
  const file = join(tmp(t, 0o755), 'precious');
  writeFileSync(file, 'precious\n', { mode: 0o600 });
  return { file, intact: () => readFileSync(file, 'utf8') === 'precious\n' && (statSync(file).mode & 0o777) === 0o600 };
}

test('symlinks planted for every name a holder makes never redirect a write', { skip: AS_ROOT }, async (t) => {
  const shared = tmp(t, 0o1777);
  const { file, intact } = precious(t);
  // nobody plants symlinks for the coming pids (as /proc/sys/kernel/ns_last_pid predicts them) under every
  // name pattern a holder uses: the record's temporaries, the private FIFO names.
  runAs(NOBODY, process.execPath, ['-e', `
    const fs = require('fs');
    const n = +fs.readFileSync('/proc/sys/kernel/ns_last_pid', 'utf8');
    for (let p = n + 1; p < n + 400; p++) for (const name of ['.v.json.' + p + '.tmp', '.v.' + p + '.new', '.v.' + p + '.old']) {
      try { fs.symlinkSync(${JSON.stringify(file)}, ${JSON.stringify(shared)} + '/' + name); } catch {}
    }`]);
  // Planted names only make the holder pick others: it holds, and writes nothing through them.
  const r = cli(['run', join(shared, 'v'), '0.2']);
  assert.ok(intact(), 'the precious file is unchanged');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readdirSync(shared).filter((n) => lstatSync(join(shared, n)).uid !== NOBODY), [], 'only the plants are left, nothing of ours');
  // The lock and the record themselves, planted as symlinks: refused, nothing written through them.
  for (const [name, expect] of [['.w.lock', /lock file is a symbolic link, not a regular file/], ['.w.json', null]]) {
    runAs(NOBODY, 'ln', ['-s', file, join(shared, name)]);
    const w = cli(['run', join(shared, 'w'), '0.1']);
    if (expect === null) {
      // A record is written by rename over the name, which replaces the entry, never its target.
      assert.equal(w.code, 0, w.stderr);
    } else {
      assert.equal(w.code, 125);
      assert.match(w.stderr, expect);
    }
    assert.ok(intact(), `${name}: the precious file is unchanged`);
    execFileSync('rm', ['-f', join(shared, name)]);
  }
});

test('records that are FIFOs, /dev/zero or gigabytes never hang nor bloat run or status', { skip: AS_ROOT }, async (t) => {
  const shared = tmp(t, 0o1777);
  const path = join(shared, 'mah-pipe');
  runAs(NOBODY, 'mkfifo', ['-m', '644', join(shared, '.mah-pipe.json')]);
  // run and run -- finish, with a warning for the record they cannot replace (another user's, in a sticky directory).
  const r1 = cli(['run', path, '0.1']);
  assert.equal(r1.code, 0, r1.stderr);
  const r2 = cli(['run', path, '--', 'true']);
  assert.equal(r2.code, 0, r2.stderr);
  const st = cli(['status', path]);
  assert.equal(st.code, 3);
  execFileSync('rm', ['-f', join(shared, '.mah-pipe.json')]);

  // A FIFO alive, with its record a symlink to /dev/zero, then a 3 GB sparse file of ours.
  const runner = await start(t, compileC('runner'), [path, '60']);
  await until(() => state(path).state === 'alive', 'runner');
  symlinkSync('/dev/zero', join(shared, '.mah-pipe.json'));
  let s = cli(['status', path]);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /alive +\(record ignored: record: not a regular file \(symbolic link\)\)/);
  execFileSync('rm', [join(shared, '.mah-pipe.json')]);
  writeFileSync(join(shared, '.mah-pipe.json'), '');
  truncateSync(join(shared, '.mah-pipe.json'), 3 * 2 ** 30);
  s = cli(['status', '--json', path]);
  assert.equal(s.code, 0, s.stderr);
  assert.match(parsed(s.stdout, 'status').recordProblem, /larger than 65536 bytes/);
  await kill(runner);

  // supervise/status that is a FIFO: status of the service directory answers.
  const svc = join(shared, 'svc');
  mkdirSync(join(svc, 'supervise'), { recursive: true });
  writeFileSync(join(svc, 'run'), '#!/bin/sh\n');
  execFileSync('mkfifo', [join(svc, 'supervise', 'ok')]);
  execFileSync('mkfifo', [join(svc, 'supervise', 'status')]);
  const sv = cli(['status', svc]);
  assert.equal(sv.code, 1, sv.stderr);
  assert.match(sv.stdout, /dead +\(record ignored: supervise\/status: not a regular file \(FIFO\)\)/);
});

test('forged records never crash status, never change a state or an exit code, and print inert', async (t) => {
  const dir = tmp(t);
  const dead = (name) => {
    execFileSync('mkfifo', [join(dir, name)]);
    return join(dir, name);
  };
  const good = { pid: 1, started: new Date().toISOString(), command: ['a'], hostname: 'h', shared: false, version: '1' };
  const forged = {
    d1: { ...good, exit: null },
    d2: { ...good, command: [{ toString: null }] },
    d3: JSON.stringify({ ...good, command: 'x' }).replace('"x"', '['.repeat(5000) + ']'.repeat(5000)),
    d4: { ...good, command: ['node', 'x\u001b]0;owned\u0007', 'y\r\u001b[2Kweb  alive\nforged  alive    pid 1'] },
    d5: '{ not json',
  };
  for (const [name, record] of Object.entries(forged)) {
    dead(name);
    writeFileSync(join(dir, `.${name}.json`), typeof record === 'string' ? record : JSON.stringify(record));
  }
  const targets = Object.keys(forged).map((n) => join(dir, n));
  const r = cli(['status', ...targets]);
  assert.equal(r.code, 1, `dead, from the FIFOs: ${r.stderr}`);
  assert.equal(r.stderr, '');
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 5, r.stdout);
  for (const line of lines) assert.match(line, / dead /);
  assert.match(lines[0], /record ignored: record: "exit" is not an object/);
  assert.match(lines[1], /record ignored: record: "command" is not a list of strings/);
  assert.match(lines[2], /record ignored: record: "command" is not a list of strings/);
  assert.match(lines[3], /stale record: pid 1, .* node x\\x1b\]0;owned\\x07 y\\r\\x1b\[2Kweb  alive\\nforged  alive    pid 1$/);
  assert.doesNotMatch(r.stdout, /[\u0000-\u0008\u000b-\u001f\u007f]/, 'nothing a terminal acts on');
  assert.match(lines[4], /record ignored: record: not valid JSON/);
  const j = cli(['status', '--json', ...targets]);
  assert.equal(j.code, 1);
  for (const line of parsedLines(j.stdout, 'status')) assert.equal(line.state, 'dead');

  // A contender turned away by a live holder whose record is forged still exits 75.
  const path = join(dir, 'held');
  const runner = await startRunner(t, path, ['60']);
  writeFileSync(join(dir, '.held.json'), JSON.stringify(forged.d2));
  const c = cli(['run', path, '1']);
  assert.equal(c.code, 75, c.stderr);
  assert.match(c.stderr, /already held/);
  await kill(runner, 'SIGTERM');
});

test('a corrupt supervise/status never turns a dead service into unknown', async (t) => {
  const svc = join(tmp(t), 'svc');
  mkdirSync(join(svc, 'supervise'), { recursive: true });
  writeFileSync(join(svc, 'run'), '#!/bin/sh\n');
  execFileSync('mkfifo', [join(svc, 'supervise', 'ok')]);
  writeFileSync(join(svc, 'supervise', 'status'), Buffer.alloc(20, 0xff));
  const r = cli(['status', svc]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stdout, /dead +\(record ignored: supervise\/status holds no valid time\)/);
  assert.equal(statusSync(svc).state, 'dead');
});

test("another user's FIFO is never held; one of ours that others may read is tightened first", { skip: AS_ROOT }, async (t) => {
  const shared = tmp(t, 0o1777);
  const theirs = join(shared, 'v');
  runAs(NOBODY, 'mkfifo', ['-m', '666', theirs]);
  const r = cli(['run', theirs, '1']);
  assert.equal(r.code, 125);
  assert.deepEqual(r.errLines, [`proc-alive: cannot hold ${theirs}: the FIFO is owned by uid 65534, not by you (uid 0): refusing to hold a FIFO another user could keep alive`]);
  const rs = cli(['run', '--shared', theirs, '1']);
  assert.equal(rs.code, 125);

  // Ours, made readable by others (the seed's runner makes it 0666, 0644 after the umask).
  const ours = join(shared, 'mine');
  execFileSync('mkfifo', ['-m', '644', ours]);
  for (const shared of [false, true]) {
    const holder = await startRunner(t, ours, [...(shared ? ['--shared'] : []), '60']);
    assert.equal(statSync(ours).mode & 0o777, 0o600, 'no read for others while held');
    // nobody cannot join as a reader.
    assert.throws(() => runAs(NOBODY, process.execPath, ['-e', `require('fs').openSync(${JSON.stringify(ours)}, require('fs').constants.O_RDONLY | require('fs').constants.O_NONBLOCK)`], { stdio: 'pipe' }));
    await kill(holder, 'SIGTERM');
    execFileSync('mkfifo', ['-m', '644', ours]);
  }
  // A reader that already has it open is refused, as any foreign holder is.
  const reader = spawn(process.execPath, ['-e', `require('fs').openSync(${JSON.stringify(ours)}, require('fs').constants.O_RDONLY | require('fs').constants.O_NONBLOCK); console.log('open'); setInterval(() => {}, 1e6)`], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => reader.kill('SIGKILL'));
  await once(reader.stdout, 'data');
  const held = cli(['run', ours, '1']);
  assert.equal(held.code, 75);
  assert.match(held.stderr, /already held by a process that keeps no record/);
});

test('status with no target refuses an unsafe default directory, as check does', async (t) => {
  const dir = tmp(t);
  const open = join(dir, 'open');
  mkdirSync(open);
  execFileSync('chmod', ['0777', open]);
  execFileSync('mkfifo', [join(open, 'planted')]);
  const env = { ...process.env, PROC_ALIVE_DIR: open };
  const r = cli(['status'], { env });
  assert.equal(r.code, 4);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /default directory is writable by group and others \(mode 777\)/);
  assert.equal(cli(['check', 'planted'], { env }).code, 4);
});

test('names and records are printed escaped: a name cannot rewrite the screen or forge a line', async (t) => {
  const dir = tmp(t);
  const evil = join(dir, 'x\r\u001b[2Kweb\u001b[32m  alive\nforged');
  execFileSync('mkfifo', [evil]);
  const r = cli(['check', evil]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout.split('\n').length, 2, 'one line');
  assert.doesNotMatch(r.stdout, /[\r\u001b]/);
  assert.match(r.stdout, /x\\r\\x1b\[2Kweb\\x1b\[32m  alive\\nforged: dead/);
  const env = { ...process.env, PROC_ALIVE_DIR: dir };
  const s = cli(['status'], { env });
  assert.equal(s.stdout.split('\n').length, 2, 'one line');
  assert.doesNotMatch(s.stdout, /[\r\u001b]/);
  // A name that is not UTF-8 is found (not "absent"), and shown by its bytes.
  execFileSync('rm', [evil]);
  execFileSync('sh', ['-c', 'mkfifo "$1/$(printf "w\\377eb")"', 'sh', dir]);
  assert.ok(readdirSync(dir, { encoding: 'buffer' }).some((b) => b.equals(Buffer.from([0x77, 0xff, 0x65, 0x62]))));
  const st = cli(['status'], { env });
  assert.equal(st.code, 1, st.stderr);
  assert.match(st.stdout, /^w\\xffeb +dead *\n$/);
});

/** Runs `fn` with fs.protected_hardlinks off (as on some systems), restoring it whatever happens. */
async function withoutProtectedHardlinks(fn) {
  const file = '/proc/sys/fs/protected_hardlinks';
  const before = readFileSync(file, 'utf8').trim();
  writeFileSync(file, '0');
  try {
    return await fn();
  } finally {
    writeFileSync(file, before);
  }
}

test('hard links another user makes to root\'s files are never trusted: not read back, not locked, not chmod\'ed, not joined', { skip: AS_ROOT }, async (t) => {
  const shared = tmp(t, 0o1777);
  const outside = tmp(t, 0o755);
  const secret = join(outside, 'secret');
  writeFileSync(secret, JSON.stringify({ pid: 1, started: new Date().toISOString(), command: ['TOP SECRET'], hostname: 'h', shared: false, version: '1' }), { mode: 0o600 });
  const cronLock = join(outside, 'cron.lock');
  writeFileSync(cronLock, '', { mode: 0o644 });
  const alive = join(outside, 'alive');
  execFileSync('mkfifo', ['-m', '644', alive]);
  await withoutProtectedHardlinks(async () => {
    runAs(NOBODY, 'ln', [secret, join(shared, '.x.json')]);
    runAs(NOBODY, 'ln', [cronLock, join(shared, '.y.lock')]);
    runAs(NOBODY, 'ln', [alive, join(shared, 'hl')]);
  });
  // The record: not trusted (two links), so not put back after a failed start, and not shown.
  const x = cli(['run', join(shared, 'x'), '--', join(shared, 'no-such-command')]);
  assert.equal(x.code, 127);
  assert.equal(statSync(secret).mode & 0o777, 0o600);
  assert.equal(statSync(secret).nlink, 1, 'the planted name was replaced (a record is written by rename), not written through');
  for (const n of readdirSync(shared)) {
    if (lstatSync(join(shared, n)).isFile()) assert.doesNotMatch(readFileSync(join(shared, n), 'utf8'), /TOP SECRET/);
  }
  assert.doesNotMatch(cli(['status', join(shared, 'x')]).stdout, /TOP SECRET/);
  // The lock file: refused, so the other tool's lock is never taken.
  const y = cli(['run', join(shared, 'y'), '1']);
  assert.equal(y.code, 125);
  assert.match(y.stderr, /lock file .*2 hard links|has 2 hard links/);
  execFileSync('flock', ['-n', cronLock, 'true']);
  // The FIFO: never joined nor tightened (it is the name of another target too).
  const hl = cli(['run', '--shared', join(shared, 'hl'), '1']);
  assert.equal(hl.code, 125, hl.stderr);
  assert.match(hl.stderr, /has 2 hard links/);
  assert.equal(statSync(alive).mode & 0o777, 0o644);
  assert.equal(state(alive).state, 'dead');
});

test("--shared never joins a FIFO that another user may already read", { skip: AS_ROOT }, async (t) => {
  const shared = tmp(t, 0o1777);
  const v = join(shared, 'v');
  execFileSync('mkfifo', ['-m', '644', v]); // as the seed's C runner leaves it
  const reader = spawn('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', process.execPath, '-e',
    `const fs = require('fs'); fs.openSync(${JSON.stringify(v)}, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK); console.log('open'); setInterval(() => {}, 1e6);`], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => reader.kill('SIGKILL'));
  await once(reader.stdout, 'data');
  const r = cli(['run', '--shared', v, '1']);
  assert.equal(r.code, 75, r.stderr);
  assert.match(r.stderr, /already held by a process that keeps no record/);
});
