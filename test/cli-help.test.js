// The command line as people meet it: every command's --help and -h (from the one table the parser
// uses), usage errors with the synopsis, hints (a forgotten '--', a mistyped command, version), durations
// (units, bad ones, past 2^31 ms), exit codes that were missing, and shell completion really
// completing in bash, zsh and fish, through a terminal, with hostile names planted in the directory.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmp, cli, state, start, startRunner, kill, BIN, ROOT } from './helpers.js';
import { COMMANDS } from '../dist/cli-commands.js';
import { parseDuration } from '../dist/cli-duration.js';

const VERSION = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
/** An environment whose default directory is `dir` (which must be private: 0700). */
const envWith = (dir) => ({ env: { ...process.env, PROC_ALIVE_DIR: dir } });

/** The synopsis lines of a command's --help (the Usage: line and the ones indented under it). */
function synopsisOf(help) {
  const lines = help.split('\n');
  const out = [lines[0].replace(/^Usage: /, '')];
  for (const l of lines.slice(1)) {
    if (!l.startsWith('       proc-alive ')) break;
    out.push(l.trim());
  }
  return out;
}

/** The option words of a --help's Options: section. */
function optionsOf(help) {
  const section = help.split('\nOptions:\n')[1].split('\n\n')[0];
  return [...section.matchAll(/^ {2}(\S.*?)(?: {2,}|$)/gm)].flatMap((m) => m[1].split(', ').map((o) => o.split(/[ [=]/)[0]));
}

/** The exit codes of a --help's Exit codes: section. */
function exitsOf(help) {
  const section = help.split('\nExit codes:\n')[1].split('\n\n')[0];
  return [...section.matchAll(/^ {2}\s*(\d+|N) {2}/gm)].map((m) => m[1]);
}

test('every command has --help and -h: synopsis, options, exit codes, exit 0, nothing on stderr', () => {
  assert.ok(COMMANDS.length >= 9);
  for (const spec of COMMANDS) {
    const long = cli([spec.name, '--help']);
    const short = cli([spec.name, '-h']);
    const viaHelp = cli(['help', spec.name]);
    for (const r of [long, short, viaHelp]) {
      assert.equal(r.code, 0, `${spec.name} --help: ${r.stderr}`);
      assert.equal(r.stderr, '');
    }
    assert.equal(short.stdout, long.stdout);
    assert.equal(viaHelp.stdout, long.stdout);
    assert.match(long.stdout, new RegExp(`^Usage: proc-alive ${spec.name}\\b`));
    // Every option of the table is in the help, and every exit code; nothing else is listed.
    const options = optionsOf(long.stdout);
    assert.deepEqual(options.sort(), [...spec.options.flatMap((o) => o.names), '--help', '-h'].sort(), spec.name);
    assert.deepEqual(exitsOf(long.stdout), spec.exits.map(([code]) => code), spec.name);
    for (const alias of spec.aliases) assert.equal(cli([alias, '--help']).stdout, long.stdout);
    // --help wins over any other mistake on the line, as git's does.
    assert.equal(cli([spec.name, '--no-such-option', '--help']).code, 0);
  }
  // Options after '--' are the command's, not run's.
  const dir = tmp({ after() {} });
  assert.notEqual(cli(['run', join(dir, 'p'), '--', 'sh', '-c', 'exit 3', '--help']).stdout.startsWith('Usage'), true);
});

test('every option the help lists is one the parser takes (help and parsing cannot drift)', (t) => {
  const dir = tmp(t, 0o700);
  const sample = { '<octal>': '0600', '<duration>': '5s', '<address>': '127.0.0.1:0' };
  for (const spec of COMMANDS) {
    for (const option of optionsOf(cli([spec.name, '--help']).stdout)) {
      if (option === '--help' || option === '-h') continue;
      const o = spec.options.find((x) => x.names.includes(option));
      const args = [spec.name, option, ...(o.value && !o.optionalValue ? [sample[o.value]] : [])];
      // No target: each command stops at its own check of the operands, or runs on the empty directory.
      const r = cli(args, envWith(dir));
      assert.doesNotMatch(r.stderr, /unknown option|needs a value|takes no value/, `${args.join(' ')}: ${r.stderr}`);
    }
  }
});

test('proc-alive --help is the overview: every command, targets, durations; help and -h say the same', () => {
  const r = cli(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^Usage: proc-alive <command>/);
  for (const spec of COMMANDS) assert.match(r.stdout, new RegExp(`^ {2}${spec.name}\\b`, 'm'), spec.name);
  assert.match(r.stdout, /Durations: .*500ms, 5s, 2m, 1h/);
  assert.equal(cli(['-h']).stdout, r.stdout);
  assert.equal(cli(['help']).stdout, r.stdout);
});

test('a usage error: one line with the reason, then the command synopsis, exit 2', () => {
  const cases = [
    [['check'], 'check', /^proc-alive: check needs at least one target$/],
    [['check', '--jsn', 'x'], 'check', /^proc-alive: unknown option '--jsn' \(did you mean '--json'\?\)$/],
    [['wait', '--up', '--down', 'x'], 'wait', /^proc-alive: --up and --down cannot be combined$/],
    [['wait', '--timeout'], 'wait', /^proc-alive: --timeout needs a value$/],
    [['watch'], 'watch', /^proc-alive: watch needs at least one target or directory$/],
    [['serve', '--listen', 'nowhere', 'x'], 'serve', /^proc-alive: --listen 'nowhere'/],
    [['run'], 'run', /^proc-alive: run needs a target$/],
    [['status', '--json=yes'], 'status', /^proc-alive: --json takes no value$/],
    [['completion', 'tcsh'], 'completion', /^proc-alive: no completion for 'tcsh': bash, zsh or fish$/],
    [['version', 'extra'], 'version', /^proc-alive: version takes no arguments/],
  ];
  for (const [args, name, reason] of cases) {
    const r = cli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.match(r.errLines[0], reason, args.join(' '));
    const synopsis = synopsisOf(cli([name, '--help']).stdout);
    assert.deepEqual(r.errLines.slice(1).map((l) => l.replace(/^(usage: | {7})/, '')), synopsis, args.join(' '));
    assert.match(r.errLines[1], /^usage: proc-alive /);
  }
  // Without a command there is no synopsis to give: the one line points at --help.
  for (const args of [[], ['frobnicate'], ['--frobnicate']]) {
    const r = cli(args);
    assert.equal(r.code, 2);
    assert.equal(r.errLines.length, 1, r.stderr);
    assert.match(r.errLines[0], /proc-alive --help/);
  }
});

test("hints: a forgotten '--', a mistyped command or option, the version as other CLIs print it", (t) => {
  const dir = tmp(t);
  const p = join(dir, 'web');
  const forgot = cli(['run', p, 'node', 'server.js', '--port', '80']);
  assert.equal(forgot.code, 2);
  assert.equal(forgot.errLines[0], `proc-alive: 'node' is not a duration; to run a command, put '--' before it: proc-alive run ${p} -- node server.js --port 80`);
  assert.equal(existsSync(p), false, 'nothing was held');
  // A word a shell would split is suggested quoted.
  assert.match(cli(['run', p, 'sh', '-c', 'echo hi; sleep 1']).errLines[0], / -- sh -c 'echo hi; sleep 1'$/);
  // A duration and then more: the same hint.
  assert.match(cli(['run', p, '5', 'node']).errLines[0], /run takes a target and a duration, not 'node' \(to run a command, put '--' before it\)$/);

  for (const [typo, meant] of [['statsu', 'status'], ['chek', 'check'], ['wiat', 'wait'], ['stat', 'status'], ['server', 'serve'], ['runer', 'runner'], ['rn', 'run'], ['complete', 'completion']]) {
    const r = cli([typo, 'x']);
    assert.equal(r.code, 2);
    assert.equal(r.errLines[0], `proc-alive: unknown command '${typo}' (did you mean '${meant}'?)`, typo);
  }
  // Nothing near: no guess.
  assert.equal(cli(['ls']).errLines[0], "proc-alive: unknown command 'ls' (try: proc-alive --help)");
  assert.equal(cli(['help', 'chek']).errLines[0], "proc-alive: unknown command 'chek' (did you mean 'check'?)");
  assert.match(cli(['wait', '--timout', '5', 'x']).errLines[0], /unknown option '--timout' \(did you mean '--timeout'\?\)$/);

  for (const args of [['version'], ['--version'], ['-v'], ['-V']]) {
    assert.deepEqual(cli(args), { code: 0, stdout: `${VERSION}\n`, stderr: '', errLines: [] }, args[0]);
  }
});

test('durations: seconds, or 500ms, 5s, 2m, 1h, 1d, 1m30s; one parser, one kind of error', () => {
  const good = {
    0: 0, 5: 5000, '0.2': 200, 30: 30000, '500ms': 500, '5s': 5000, '1.5s': 1500, '2m': 120000, '2min': 120000,
    '1h': 3600000, '1d': 86400000, '1m30s': 90000, '1h30m': 5400000, '2m30s500ms': 150500, '0.5ms': 0.5,
  };
  for (const [text, ms] of Object.entries(good)) assert.equal(parseDuration(String(text)), ms, text);
  const bad = ['', 'soon', '5x', '-5', '+5', '1e3', '.5', '5.', '5 s', '5S', 's', '5m5m', '1s1m', '1m30', 'Infinity', '9'.repeat(400)];
  for (const text of bad) assert.equal(typeof parseDuration(text), 'object', JSON.stringify(text));

  // The same words from every place a duration is taken.
  for (const [args, text] of [[['wait', '--timeout', '5x', 'x'], '5x'], [['wait', '--timeout=1m1h', 'x'], '1m1h'], [['run', '/tmp/x', '-5'], '-5'], [['run', '/tmp/x', '5m5m'], '5m5m']]) {
    const r = cli(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.errLines[0], new RegExp(`'${text}'`), args.join(' '));
    assert.match(r.errLines[0], /not a duration|unknown unit|smaller than the one before/);
  }
});

test('run <target> 300ms ends by itself; wait --timeout 200ms gives up with 99', async (t) => {
  const dir = tmp(t);
  const p = join(dir, 'p');
  const runner = await start(t, process.execPath, [BIN, 'run', p, '300ms']);
  assert.deepEqual(await runner.exited, [0, null]);
  assert.equal(existsSync(p), false);
  const r = cli(['wait', '--timeout', '200ms', p]);
  assert.equal(r.code, 99);
  assert.match(r.errLines[0], /timed out/);
});

test('durations past 2^31 ms: run 30d holds, wait --timeout 30d waits (Node alone would fire at once)', async (t) => {
  const dir = tmp(t);
  const p = join(dir, 'p');
  const waiter = await start(t, process.execPath, [BIN, 'wait', '--timeout', '30d', p]);
  const runner = await startRunner(t, p, ['30d']);
  assert.deepEqual(await waiter.exited, [0, null], 'the wait was reached, not timed out');
  assert.equal(runner.exitCode, null, 'the runner holds on');
  assert.equal(state(p).state, 'alive');
  assert.equal((await kill(runner, 'SIGTERM')).code, 0);
});

test('exit codes that were missing: status with no targets (0), watch on an unsafe directory (125, not 1)', (t) => {
  const empty = join(tmp(t, 0o700), 'none-yet');
  const r = cli(['status'], envWith(empty));
  assert.equal(r.code, 0);
  assert.equal(r.stdout, '');
  assert.deepEqual(r.errLines, [`proc-alive: no targets in ${empty}`]);

  const unsafe = tmp(t, 0o777);
  const w = cli(['watch', 'web'], envWith(unsafe));
  assert.equal(w.code, 125, w.stderr);
  assert.deepEqual(w.errLines.length, 1);
  assert.match(w.errLines[0], /^proc-alive: cannot watch: .*writable by group and others/);
  // The other commands say the same directory "cannot tell" (4) or "cannot" (125), never "dead".
  assert.equal(cli(['check', 'web'], envWith(unsafe)).code, 4);
  assert.equal(cli(['status'], envWith(unsafe)).code, 4);
  assert.equal(cli(['wait', '--timeout', '1', 'web'], envWith(unsafe)).code, 4);
  assert.equal(cli(['run', 'web', '1'], envWith(unsafe)).code, 125);
  assert.equal(cli(['serve', '--listen', '127.0.0.1:0', 'web'], envWith(unsafe)).code, 125);
  assert.equal(cli(['completion', '--targets'], envWith(unsafe)).code, 4);
});

// ---------------------------------------------------------------------------------------------------
// Completion.

/** Names another user (or a careless script) could plant: each would run a command if evaluated. */
const HOSTILE = ['x$(touch PWNED1);y', 'x`touch PWNED2`', "x'; touch PWNED3; '", 'x a b', 'x"q"', 'x\\n'];

/** A private default directory with `web`, `worker`, the hostile names, and names never offered. */
function plantedDir(t) {
  const dir = join(tmp(t, 0o700), 'targets');
  mkdirSync(dir, { mode: 0o700 });
  for (const name of ['web', 'worker', ...HOSTILE, 'nl\nname', 'esc\x1b[31m', '.hidden']) {
    assert.equal(spawnSync('mkfifo', ['-m', '600', join(dir, name)]).status, 0, name);
  }
  writeFileSync(join(dir, 'regular-file'), '');
  return dir;
}

/** A bin directory with `proc-alive` in it, for the scripts to find on $PATH. */
function binDir(t) {
  const bin = tmp(t);
  symlinkSync(BIN, join(bin, 'proc-alive'));
  return bin;
}

test('completion --targets: the FIFOs of the default directory, NUL-separated; control characters left out', (t) => {
  const dir = plantedDir(t);
  const r = cli(['completion', '--targets'], envWith(dir));
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.endsWith('\0'));
  assert.deepEqual(r.stdout.slice(0, -1).split('\0').sort(), ['web', 'worker', ...HOSTILE].sort());
});

/** Runs bash's completion function on `words` (the last being completed); returns COMPREPLY. */
function bashComplete(env, words) {
  const script = cli(['completion', 'bash']).stdout;
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', `${script}\nCOMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _proc_alive; printf '%s\\0' "\${COMPREPLY[@]}"`, 'bash', ...words], { env, encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout === '' ? [] : r.stdout.slice(0, -1).split('\0');
}

test('bash completion: commands, options, values, shells, targets quoted, never evaluated', (t) => {
  const dir = plantedDir(t);
  const cwd = tmp(t);
  const env = { ...process.env, PROC_ALIVE_DIR: dir, PATH: `${binDir(t)}:${process.env.PATH}` };
  const complete = (...words) => bashComplete({ ...env }, words).filter((w) => w !== '');
  assert.deepEqual(complete('proc-alive', 'st'), ['status']);
  assert.deepEqual(complete('proc-alive', 'w'), ['wait', 'watch']);
  assert.deepEqual(complete('proc-alive', '--v'), ['--version']);
  assert.deepEqual(complete('proc-alive', 'check', '--'), ['--json', '--quiet', '--help']);
  assert.deepEqual(complete('proc-alive', 'wait', '--t'), ['--timeout']);
  assert.deepEqual(complete('proc-alive', 'wait', '--timeout', ''), [], 'a value: nothing offered');
  assert.deepEqual(complete('proc-alive', 'completion', ''), ['bash', 'zsh', 'fish']);
  assert.deepEqual(complete('proc-alive', 'help', 'ch'), ['check', 'checker']);
  assert.deepEqual(complete('proc-alive', 'check', 'w'), ['web', 'worker']);
  assert.deepEqual(complete('proc-alive', 'watch', '--json', 'wo'), ['worker']);
  // The hostile names, each quoted so that the shell reads it back as the name itself.
  const offered = complete('proc-alive', 'status', 'x');
  assert.equal(offered.length, HOSTILE.length);
  const read = spawnSync('bash', ['--norc', '-c', `for w in ${offered.join(' ')}; do printf '%s\\0' "$w"; done`], { cwd, encoding: 'utf8' });
  assert.deepEqual(read.stdout.slice(0, -1).split('\0').sort(), [...HOSTILE].sort());
  assert.deepEqual(readdirSync(cwd), [], 'nothing was run');
});

/**
 * Types `line` into an interactive `shell` on a terminal (script(1) gives it one), presses Tab, waits
 * until the completed line is echoed, presses Enter, and returns the arguments the command got.
 * `proc-alive` there is a shell function that prints its arguments; the completion script still runs
 * the real one (`command proc-alive`) for the names.
 */
async function typeAndComplete(t, shell, env, cwd, line, expectEcho) {
  const setup = {
    bash: [['bash', '--norc', '--noprofile', '-i'], `eval "$(command proc-alive completion bash)"; proc-alive() { printf 'ARG<%s>\\n' "$@"; }`],
    zsh: [['zsh', '-f', '-i'], `autoload -Uz compinit; compinit -u; eval "$(command proc-alive completion zsh)"; proc-alive() { printf 'ARG<%s>\\n' "$@"; }`],
    fish: [['fish', '--no-config', '-i'], `command proc-alive completion fish | source; function proc-alive; printf 'ARG<%s>\\n' $argv; end`],
  }[shell];
  const child = spawn('script', ['-qfc', setup[0].join(' '), '/dev/null'], { cwd, env: { ...env, TERM: 'dumb' }, stdio: ['pipe', 'pipe', 'pipe'] });
  t.after(() => child.exitCode === null && child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const waitFor = async (pred, what) => {
    for (let i = 0; i < 2000 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
    if (!pred()) throw new Error(`${shell}: gave up waiting for ${what}; output: ${JSON.stringify(out)}`);
  };
  // What the shell printed, not what it echoed of our typing: SET''UP is echoed with its quotes.
  child.stdin.write(`${setup[1]}; echo SET''UP-DONE\r`);
  await waitFor(() => out.includes('SETUP-DONE'), 'the set-up');
  const mark = out.length;
  child.stdin.write(`${line}\t`);
  await waitFor(() => out.slice(mark).includes(expectEcho), `the completion of '${line}'`);
  const before = out.length;
  child.stdin.write('\r');
  const args = () => [...out.slice(before).matchAll(/^ARG<(.*)>\r?\n/gm)].map((m) => m[1]);
  await waitFor(() => args().length >= 2, 'the command to run');
  child.stdin.write('exit\r');
  child.stdin.end();
  if (child.exitCode === null) await new Promise((r) => child.on('exit', r));
  return args();
}

for (const shell of ['bash', 'zsh', 'fish']) {
  const missing = spawnSync(shell, ['-c', 'exit 0']).error !== undefined || spawnSync('script', ['--version']).error !== undefined;
  test(`${shell} completion at a terminal: a planted name is completed as itself and never run`, { skip: missing && `${shell} or script(1) is not installed (.ci/run installs them)` }, async (t) => {
    const dir = join(tmp(t, 0o700), 'targets');
    mkdirSync(dir, { mode: 0o700 });
    const hostile = 'x$(touch PWNED);y`touch PWNED2`';
    spawnSync('mkfifo', ['-m', '600', join(dir, hostile)]);
    spawnSync('mkfifo', ['-m', '600', join(dir, 'web')]);
    const cwd = tmp(t);
    const env = { ...process.env, PROC_ALIVE_DIR: dir, PATH: `${binDir(t)}:${process.env.PATH}`, HOME: cwd, XDG_CONFIG_HOME: cwd, XDG_DATA_HOME: cwd };
    const args = await typeAndComplete(t, shell, env, cwd, 'proc-alive check x', 'PWNED2');
    assert.deepEqual(args, ['check', hostile]);
    assert.deepEqual(readdirSync(cwd).filter((n) => n.startsWith('PWNED')), [], 'nothing was run');
  });
}

test('the completion scripts parse in each shell', (t) => {
  for (const shell of ['bash', 'zsh', 'fish']) {
    if (spawnSync(shell, ['-c', 'exit 0']).error !== undefined) {
      t.diagnostic(`${shell} is not installed: its script is not syntax-checked`);
      continue;
    }
    const script = cli(['completion', shell]).stdout;
    assert.match(script, new RegExp(`proc-alive completion for ${shell}`));
    const file = join(tmp(t), `proc-alive.${shell}`);
    writeFileSync(file, script);
    const r = spawnSync(shell, ['-n', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${shell} -n: ${r.stderr}`);
  }
});

test('a failure that is no outcome of the command is one line and its "cannot" code, never 1 ("dead")', (t) => {
  // check on a name whose default directory cannot even be resolved: a path component is a file.
  const dir = tmp(t);
  writeFileSync(join(dir, 'file'), '');
  chmodSync(dir, 0o700);
  const r = cli(['check', 'web'], envWith(join(dir, 'file', 'sub')));
  assert.equal(r.code, 4, r.stderr);
  assert.equal(r.errLines.length, 1);
});
