// Readiness, both ways, with the real programs: Debian's systemd-notify as a wrapped command's signal
// (--ready=notify), a datagram socket of the test's own standing in for systemd above `run`
// ($NOTIFY_SOCKET), s6-supervise and s6-svwait around `run --notify-fd`, and --ready=fd:N. And the
// attacks on the wrapper's socket: strangers, another user, oversized messages, floods, passed fds.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readlinkSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { join, dirname } from 'node:path';
import { tmp, cli, state, start, kill, until, compileC, runAs, BIN, NOBODY, AS_ROOT, SYNC_GUARD_MS } from './helpers.js';
import { hold, sdNotify, statusSync } from '../dist/index.js';

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const NO_SYSTEMD_NOTIFY = has('systemd-notify') ? false : 'needs systemd-notify (.ci/run installs systemd)';
const NO_S6 = has('s6-supervise') && has('s6-svwait') ? false : 'needs s6-supervise and s6-svwait (.ci/run installs s6)';

/** Starts `proc-alive run path [options] -- command...`, its stdout and stderr piped. */
function startWrapper(t, path, command, options = [], extra = {}) {
  return start(t, process.execPath, [BIN, 'run', path, ...options, '--', ...command], { stdio: ['ignore', 'pipe', 'pipe'], ...extra });
}

/** Waits for a file the command touches. */
const touched = (file) => until(() => existsSync(file), file);
/** A file a shell's `echo > file` writes: made first, written after, so wait for its whole line. */
const written = (file) => until(() => existsSync(file) && readFileSync(file, 'utf8').endsWith('\n'), `${file} written`);

/** The test's stand-in for systemd: the notify-recv fixture bound at `address`; `lines()` is what it got. */
async function receiver(t, address) {
  const child = await start(t, compileC('notify-recv'), [address], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await until(() => out.startsWith('bound\n'), 'the receiver bound');
  return { child, lines: () => out.split('\n').slice(1).filter(Boolean).map((l) => l.replace(/^pid=\d+ /, '')) };
}

/** The fds 3 and up of process `pid` that are open on `path`. */
const fdsOn = (pid, path) =>
  readdirSync(`/proc/${pid}/fd`).filter((fd) => {
    try {
      return Number(fd) >= 3 && readlinkSync(`/proc/${pid}/fd/${fd}`) === path;
    } catch {
      return false;
    }
  });

/** A shell loop that waits for file `go`. */
const waitFor = (go) => `while [ ! -e ${go} ]; do sleep 0.02; done`;

/**
 * A wrapper with --ready=notify whose command says where its $NOTIFY_SOCKET is, then waits for `go` to
 * be made before it says READY=1 itself.
 */
async function notifyWrapper(t, dir, path) {
  const [env, go] = [join(dir, 'env'), join(dir, 'go')];
  const wrapper = await startWrapper(t, path, ['sh', '-c', `echo "$NOTIFY_SOCKET" > ${env}.new; mv ${env}.new ${env}; ${waitFor(go)}; systemd-notify --ready; exec sleep 60`], ['--ready=notify']);
  await written(env);
  return { wrapper, socket: readFileSync(env, 'utf8').trim(), go };
}

// ------------------------------------------------------------------------------------------------
// In: --ready=notify

test('--ready=notify: absent until the command (a shell) runs `systemd-notify --ready`, then alive; STATUS= into the record', { skip: NO_SYSTEMD_NOTIFY }, async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'web');
  const [running, go] = [join(dir, 'running'), join(dir, 'go')];
  const script = `touch ${running}; ${waitFor(go)}; systemd-notify --ready --status='serving \x1b[31m'; exec sleep 60`;
  const wrapper = await startWrapper(t, path, ['sh', '-c', script], ['--ready=notify']);
  await touched(running);
  assert.equal(state(path).state, 'absent', 'not alive before it said READY=1');
  writeFileSync(go, '');
  await until(() => state(path).state === 'alive', 'alive once it said READY=1');
  await until(() => statusSync(path).holder?.status === 'serving \x1b[31m', 'STATUS= in the record');
  const line = cli(['status', path]).stdout;
  assert.match(line, /"serving \\x1b\[31m"/, 'printed escaped');
  assert.equal(line.includes('\x1b'), false);
  const { code } = await kill(wrapper, 'SIGTERM');
  assert.equal(code, 143, 'the forwarded SIGTERM ended the command');
  assert.equal(state(path).state, 'absent');
  assert.equal(wrapper.stderrText(), '', 'systemd-notify was heard as a descendant: no warning');
});

test('--ready=notify: the socket is private (0700 directory of ours), removed after; the command has NOTIFY_SOCKET and no READY_FD', async (t) => {
  const dir = tmp(t);
  const env = join(dir, 'env');
  const r = cli(['run', join(dir, 'p'), '--ready=notify', '--', 'sh', '-c', `echo "$NOTIFY_SOCKET" > ${env}; stat -c '%a %u %F' "$(dirname "$NOTIFY_SOCKET")" "$NOTIFY_SOCKET" >> ${env}; echo "READY_FD=\${READY_FD-unset}" >> ${env}`]);
  assert.equal(r.code, 0);
  const [socket, dirLine, socketLine, readyFd] = readFileSync(env, 'utf8').trim().split('\n');
  assert.equal(dirLine, `700 ${process.getuid()} directory`);
  assert.match(socketLine, /^\d+ \d+ socket$/);
  assert.equal(readyFd, 'READY_FD=unset');
  assert.equal(existsSync(dirname(socket)), false, 'socket and directory removed once the command ended');
});

test('--ready=notify: a command that never says READY=1 leaves the target as it was (dead here), and ending it says so', { skip: NO_SYSTEMD_NOTIFY }, async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'web');
  spawnSync('mkfifo', ['-m', '600', path]); // what a crash left: dead
  const said = join(dir, 'said');
  // systemd-notify waits until its BARRIER=1 fd is closed: once it returns, the wrapper has read all before it.
  const wrapper = await startWrapper(t, path, ['sh', '-c', `systemd-notify --status=starting && touch ${said}; exec sleep 60`], ['--ready=notify']);
  await touched(said);
  assert.equal(state(path).state, 'dead', 'STATUS= alone does not make it alive');
  const { code } = await kill(wrapper, 'SIGTERM');
  assert.equal(code, 143);
  assert.equal(state(path).state, 'dead', 'left as it was');
  assert.match(wrapper.stderrText(), /'sh' ended before it was ready\n$/);
});

test('--ready=notify: a command that exits before it is ready exits with its code, one line, target as it was', (t) => {
  const dir = tmp(t);
  const r = cli(['run', join(dir, 'p'), '--ready=notify', '--', 'sh', '-c', 'exit 3']);
  assert.equal(r.code, 3);
  assert.deepEqual(r.errLines, [`proc-alive: ${join(dir, 'p')}: 'sh' ended before it was ready`]);
  assert.equal(state(join(dir, 'p')).state, 'absent');
});

test('--ready=notify: STOPPING=1 before READY=1 keeps it from turning alive', { skip: NO_SYSTEMD_NOTIFY }, async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'p');
  const said = join(dir, 'said');
  const wrapper = await startWrapper(t, path, ['sh', '-c', `systemd-notify STOPPING=1 && systemd-notify --ready && touch ${said}; exec sleep 60`], ['--ready=notify']);
  await touched(said);
  assert.equal(state(path).state, 'absent');
  await kill(wrapper, 'SIGTERM');
});

test('--ready=notify: a datagram from a process that is not the command nor its descendant is ignored', { skip: NO_SYSTEMD_NOTIFY }, async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'p');
  const { wrapper, socket, go } = await notifyWrapper(t, dir, path);
  // The test process's child, as root: same user, reaches the socket, is no descendant of the command.
  const r = spawnSync('systemd-notify', ['--ready'], { env: { ...process.env, NOTIFY_SOCKET: socket }, encoding: 'utf8', timeout: SYNC_GUARD_MS });
  assert.equal(r.status, 0, r.stderr);
  // And the fixture, which states no credentials (the kernel fills in its own).
  assert.equal(spawnSync(compileC('notify-send'), [socket, 'READY=1'], { timeout: SYNC_GUARD_MS }).status, 0);
  await until(() => /neither the command nor one of its descendants/.test(wrapper.stderrText()), 'the warning');
  assert.equal(state(path).state, 'absent', "a stranger's READY=1 does not make it alive");
  assert.equal(wrapper.stderrText().split('\n').filter(Boolean).length, 1, 'said once, not per message');
  writeFileSync(go, '');
  await until(() => state(path).state === 'alive', "the command's own READY=1 does");
  await kill(wrapper, 'SIGTERM');
});

test('--ready=notify: another user cannot reach the socket, and is not heard where they could', { skip: AS_ROOT || NO_SYSTEMD_NOTIFY }, async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'p');
  const { wrapper, socket, go } = await notifyWrapper(t, dir, path);
  const send = compileC('notify-send');
  chmodSync(dirname(send), 0o755);
  let out = '';
  try {
    runAs(NOBODY, send, [socket, 'READY=1']);
  } catch (err) {
    out = err.stdout;
  }
  assert.equal(out.trim(), 'EACCES', 'the private directory keeps another user out');
  // Opened up by root (as a careless TMPDIR might): the sender's credentials still decide.
  chmodSync(dirname(socket), 0o711);
  chmodSync(socket, 0o777);
  assert.equal(runAs(NOBODY, send, [socket, 'READY=1']), '');
  await until(() => /uid 65534\), which is neither the command nor one of its descendants/.test(wrapper.stderrText()), 'the warning');
  assert.equal(state(path).state, 'absent');
  writeFileSync(go, '');
  await until(() => state(path).state === 'alive', "the command's own READY=1");
  await kill(wrapper, 'SIGTERM');
});

test('--ready=notify: oversized messages, a flood, and hundreds of passed fds: ignored, bounded, none kept', async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'p');
  const [flooded, go] = [join(dir, 'flooded'), join(dir, 'go')];
  const send = compileC('notify-send');
  // All from the command itself (a descendant): the checks on content, not on the sender.
  const script = [
    `${send} "$NOTIFY_SOCKET" READY=1 3 100000`, // READY=1 inside a 100 kB datagram: too long, dropped whole
    `${send} "$NOTIFY_SOCKET" STATUS=flood 3000 0 16`, // 3,000 datagrams, each with 16 fds
    `touch ${flooded}`,
    waitFor(go),
    `${send} "$NOTIFY_SOCKET" 'STATUS=ok\nREADY=1'`,
    'exec sleep 60',
  ].join('; ');
  const wrapper = await startWrapper(t, path, ['sh', '-c', script], ['--ready=notify']);
  await touched(flooded);
  assert.equal(state(path).state, 'absent', 'an oversized READY=1 is not a READY=1');
  assert.match(wrapper.stderrText(), /ignored a message on the notify socket longer than 4096 bytes/);
  writeFileSync(go, '');
  await until(() => state(path).state === 'alive', 'alive');
  await until(() => statusSync(path).holder?.status === 'ok', 'status ok');
  // The passed fds were /dev/null's (48,000 of them): the wrapper has none past its stdio.
  assert.deepEqual(fdsOn(wrapper.pid, '/dev/null'), [], 'no passed fd kept');
  await kill(wrapper, 'SIGTERM');
});

// ------------------------------------------------------------------------------------------------
// In: --ready=fd:N

test('--ready=fd:N: alive once the command writes a line to fd N ($READY_FD); closing it unsaid is not ready', async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'p');
  const [closed, go] = [join(dir, 'closed'), join(dir, 'go')];
  const wrapper = await startWrapper(t, path, ['sh', '-c', `[ "$READY_FD" = 7 ] || exit 9; exec 8>&7; exec 7>&-; touch ${closed}; ${waitFor(go)}; echo >&8; exec sleep 60`], ['--ready=fd:7']);
  await touched(closed);
  assert.equal(state(path).state, 'absent', 'one copy closed, nothing written');
  writeFileSync(go, '');
  await until(() => state(path).state === 'alive', 'alive');
  await kill(wrapper, 'SIGTERM');

  const never = join(dir, 'never');
  const w2 = await startWrapper(t, never, ['sh', '-c', `exec 7>&-; touch ${closed}2; exec sleep 60`], ['--ready=fd:7']);
  await touched(`${closed}2`);
  assert.equal(state(never).state, 'absent');
  const { code } = await kill(w2, 'SIGTERM');
  assert.equal(code, 143);
  assert.equal(state(never).state, 'absent', 'as it was');

  const r = cli(['run', join(dir, 'q'), '--ready=fd:7', '--', 'sh', '-c', 'exit 4']);
  assert.equal(r.code, 4);
  assert.deepEqual(r.errLines, [`proc-alive: ${join(dir, 'q')}: 'sh' ended before it was ready`]);
});

// ------------------------------------------------------------------------------------------------
// Out: $NOTIFY_SOCKET and --notify-fd

test('run under a NOTIFY_SOCKET: READY=1 only once the target is alive, STOPPING=1 on a clean stop; the command does not get the socket', async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'web');
  const sock = join(dir, 'systemd.sock');
  const sd = await receiver(t, sock);
  const [env, go] = [join(dir, 'env'), join(dir, 'go')];
  const wrapper = await startWrapper(t, path, ['sh', '-c', `echo "\${NOTIFY_SOCKET-unset}" > ${env}; ${waitFor(go)}; echo >&5; exec sleep 60`], ['--ready'], {
    env: { ...process.env, NOTIFY_SOCKET: sock },
  });
  await written(env);
  assert.equal(readFileSync(env, 'utf8'), 'unset\n');
  assert.deepEqual(sd.lines(), [], 'nothing said before it is ready');
  assert.equal(state(path).state, 'absent');
  writeFileSync(go, '');
  await until(() => sd.lines().length > 0, 'READY=1');
  assert.equal(state(path).state, 'alive', 'alive by the time READY=1 arrives');
  assert.match(sd.lines()[0], new RegExp(`^READY=1\\\\nSTATUS=alive: ${path} \\(pid \\d+\\)$`));
  await kill(wrapper, 'SIGTERM');
  await until(() => sd.lines().length > 1, 'STOPPING=1');
  assert.deepEqual(sd.lines().slice(1), ['STOPPING=1']);
  assert.equal(state(path).state, 'absent');
});

test('run under a NOTIFY_SOCKET: a crash says no STOPPING=1; the command\'s STATUS= is passed on (--ready=notify)', { skip: NO_SYSTEMD_NOTIFY }, async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'web');
  const sock = join(dir, 'systemd.sock');
  const sd = await receiver(t, sock);
  const r = spawnSync(process.execPath, [BIN, 'run', path, '--ready=notify', '--', 'sh', '-c', 'systemd-notify --ready --status=up; systemd-notify --status=failing; exit 5'], {
    env: { ...process.env, NOTIFY_SOCKET: sock },
    encoding: 'utf8',
    timeout: SYNC_GUARD_MS,
  });
  assert.equal(r.status, 5, r.stderr);
  await until(() => sd.lines().length >= 3, 'three messages');
  const lines = sd.lines();
  assert.equal(lines[0], 'STATUS=up');
  assert.match(lines[1], /^READY=1\\nSTATUS=alive: /);
  assert.deepEqual(lines.slice(2), ['STATUS=failing']);
  assert.equal(state(path).state, 'dead');
});

test('run without a command under an abstract NOTIFY_SOCKET (@name, as systemd gives): READY=1, then STOPPING=1', async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'web');
  const name = `@proc-alive-test-${process.pid}-${Date.now()}`;
  const sd = await receiver(t, name);
  const runner = await start(t, process.execPath, [BIN, 'run', path], { env: { ...process.env, NOTIFY_SOCKET: name } });
  await until(() => sd.lines().length > 0, 'READY=1');
  assert.equal(state(path).state, 'alive');
  assert.match(sd.lines()[0], new RegExp(`^READY=1\\\\nSTATUS=alive: ${path} \\(pid ${runner.pid}\\)$`));
  await kill(runner, 'SIGTERM');
  await until(() => sd.lines().length > 1, 'STOPPING=1');
  assert.equal(sd.lines()[1], 'STOPPING=1');
});

test('--notify-fd: a newline on the fd, then closed, once alive; nothing but EOF for a command that ends first; never the command\'s to write', async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'p');
  const [running, go] = [join(dir, 'running'), join(dir, 'go')];
  const wrapper = spawn(process.execPath, [BIN, 'run', path, '--notify-fd', '3', '--ready', '--', 'sh', '-c', `touch ${running}; ${waitFor(go)}; echo >&5; exec sleep 60`], {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
  });
  t.after(() => wrapper.kill('SIGKILL'));
  let got = '';
  let ended = false;
  wrapper.stdio[3].on('data', (d) => (got += d));
  wrapper.stdio[3].on('end', () => (ended = true));
  await touched(running);
  assert.deepEqual([got, ended], ['', false], 'nothing before it is ready');
  writeFileSync(go, '');
  await until(() => ended, 'the fd closed');
  assert.equal(got, '\n');
  assert.equal(state(path).state, 'alive', 'alive when the newline came');
  assert.equal(wrapper.exitCode, null, 'closed while the command runs: the command never had it');
  wrapper.kill('SIGTERM');
  await once(wrapper, 'exit');

  const early = spawn(process.execPath, [BIN, 'run', join(dir, 'q'), '--notify-fd', '3', '--ready', '--', 'sh', '-c', 'exit 6'], { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
  let said = '';
  early.stdio[3].on('data', (d) => (said += d));
  const [code] = await once(early, 'exit');
  assert.equal(code, 6);
  assert.equal(said, '', 'no newline: never ready');
});

test('s6: s6-svwait -U returns only once the command wrapped by `run --notify-fd 3` said it was ready', { skip: NO_S6 }, async (t) => {
  const dir = tmp(t);
  const svc = join(dir, 'svc');
  mkdirSync(svc);
  const path = join(dir, 'web');
  const [running, go] = [join(dir, 'running'), join(dir, 'go')];
  writeFileSync(join(svc, 'notification-fd'), '3\n');
  writeFileSync(
    join(svc, 'run'),
    `#!/bin/sh\nexec ${process.execPath} ${BIN} run ${path} --notify-fd 3 --ready=fd:7 -- sh -c 'touch ${running}; ${waitFor(go)}; echo >&7; exec sleep 60'\n`,
    { mode: 0o755 },
  );
  const sup = await start(t, 's6-supervise', [svc]);
  t.after(() => {
    spawnSync('s6-svc', ['-k', '-dx', svc], { timeout: SYNC_GUARD_MS });
    sup.kill('SIGKILL');
  });
  const svwait = await start(t, 's6-svwait', ['-U', svc]);
  await touched(running);
  assert.equal(svwait.exitCode, null, 's6-svwait still waits: up, not ready');
  assert.equal(state(path).state, 'absent');
  writeFileSync(go, '');
  const [code] = await svwait.exited;
  assert.equal(code, 0);
  assert.equal(state(path).state, 'alive', 'alive by the time s6 knew it was ready');
  assert.match(spawnSync('s6-svstat', [svc], { encoding: 'utf8', timeout: SYNC_GUARD_MS }).stdout, /^up .* ready /);
  spawnSync('s6-svc', ['-d', svc], { timeout: SYNC_GUARD_MS });
  await until(() => state(path).state === 'absent', 'a clean stop by s6-svc -d');
});

// ------------------------------------------------------------------------------------------------
// The library, and usage.

test('hold(target, { notify: true }) and sdNotify(): READY=1 once alive, STOPPING=1 on close; false without a NOTIFY_SOCKET', async (t) => {
  const dir = tmp(t);
  const sock = join(dir, 'systemd.sock');
  const sd = await receiver(t, sock);
  const saved = process.env.NOTIFY_SOCKET;
  process.env.NOTIFY_SOCKET = sock;
  t.after(() => (saved === undefined ? delete process.env.NOTIFY_SOCKET : (process.env.NOTIFY_SOCKET = saved)));
  const h = hold(join(dir, 'web'), { notify: true });
  await until(() => sd.lines().length > 0, 'READY=1');
  assert.match(sd.lines()[0], /^READY=1\\nSTATUS=alive: /);
  assert.equal(sdNotify('STATUS=busy'), true);
  h.close();
  await until(() => sd.lines().length > 2, 'STOPPING=1');
  assert.deepEqual(sd.lines().slice(1), ['STATUS=busy', 'STOPPING=1']);
  delete process.env.NOTIFY_SOCKET;
  assert.equal(sdNotify('READY=1'), false);
  assert.throws(() => sdNotify('READY=1', { socket: join(dir, 'nothing') }), { code: 'ENOENT' });
  assert.throws(() => hold(join(dir, 'x'), { notifyFd: 200 }), { code: 'EBADF', message: /fd 200 is not open/ });
  // Node's own fds (its epoll fd, its eventfd, its signal pipes) are never taken for a supervisor's.
  for (const fd of readdirSync('/proc/self/fd').map(Number).filter((n) => n >= 3)) {
    let link = '';
    try {
      link = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {}
    if (!link.startsWith('anon_inode:')) continue;
    assert.throws(() => hold(join(dir, 'x'), { notifyFd: fd }), { code: 'EBADF', message: /was not given by a supervisor: it is anon_inode:/ }, link);
  }
  assert.equal(state(join(dir, 'x')).state, 'absent', 'refused before anything was made');
});

test('usage: --ready=fd:3, --ready=bogus, --notify-fd 1, --ready=notify --shared: exit 2, one line; a notify fd not open: 125', (t) => {
  const dir = tmp(t);
  const p = join(dir, 'p');
  for (const [args, message] of [
    [['--ready=fd:3'], /fd 3 is taken/],
    [['--ready=bogus'], /--ready takes fd:N \(N from 5 to 255\) or notify, not 'bogus'/],
    [['--notify-fd', '1'], /--notify-fd takes an fd number of 3 or more, not '1'/],
    [['--ready=notify', '--shared'], /--ready cannot be combined with --shared/],
    [['--ready', '--ready=notify'], /--ready is given more than once/],
  ]) {
    const r = cli(['run', p, ...args, '--', 'true']);
    assert.equal(r.code, 2, args.join(' '));
    // One line says what is wrong; the lines after it are run's synopsis (as every usage error has).
    assert.match(r.errLines[0], message);
    assert.ok(r.errLines.slice(1).length > 0 && r.errLines.slice(1).every((l) => /^(usage: | {7})proc-alive run /.test(l)), r.errLines.join('\n'));
  }
  const r = cli(['run', p, '--notify-fd', '200', '--', 'true']);
  assert.equal(r.code, 125);
  assert.deepEqual(r.errLines, [`proc-alive: cannot hold ${p}: fd 200 is not open (the supervisor gives the notification fd: notification-fd in s6)`]);
  assert.equal(state(p).state, 'absent');
  assert.match(cli(['run', '--help']).stdout, /--ready\[=fd:N\|notify\]/);
});
