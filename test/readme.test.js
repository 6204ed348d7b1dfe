// README's examples run as shown, against the built package, so README cannot drift from what the
// commands print. The convention (README's "About the examples" says it to readers):
// - a ```console block is a shell session: `$ command` lines (a line ending in `\` goes on), each
//   followed by what it prints, stderr and stdout in the order they come; `…` in a line stands for any
//   text (a pid, a time), a line that is only `…` for any lines. Exit codes are shown by `echo $?`.
// - a ```js block runs as a module; `// → text` at the end of a line is what that line prints.
// - a ```sh or ```js block that cannot run here (it installs, needs a daemon, a cluster) is preceded by
//   `<!-- not run: why -->`. Blocks in other languages (yaml, dockerfile) and plain ``` blocks are
//   configuration or illustration, checked elsewhere (promtool) or not at all.
// Each block runs in a fresh directory, with its own default directory ($PROC_ALIVE_DIR) and
// `proc-alive` on $PATH; what it leaves running is killed at its end.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmp, BIN, ROOT } from './helpers.js';

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** The fenced blocks: { lang, body, line, skip } (skip: the reason of a `<!-- not run: ... -->`). */
function blocks() {
  const out = [];
  const lines = README.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]);
    if (!open) continue;
    let end = i + 1;
    while (end < lines.length && lines[end] !== '```') end++;
    let prev = i - 1;
    while (prev >= 0 && lines[prev].trim() === '') prev--;
    const skip = /^<!-- not run: (.+) -->$/.exec(lines[prev] ?? '')?.[1];
    out.push({ lang: open[1], body: lines.slice(i + 1, end).join('\n'), line: i + 1, skip });
    i = end;
  }
  return out;
}

/** A fresh place for one block: cwd, a private default directory to be, `proc-alive` on PATH, the package importable. */
function place(t) {
  const dir = tmp(t, 0o755);
  const bin = join(dir, '.bin');
  mkdirSync(bin);
  symlinkSync(BIN, join(bin, 'proc-alive'));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(ROOT, join(dir, 'node_modules', 'proc-alive'));
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, PROC_ALIVE_DIR: join(dir, '.targets') };
  return { dir, env };
}

/** Runs `file` with `args` in its own process group; kills the group (background jobs too) at the end. */
function run(t, file, args, options) {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { ...options, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const guard = setTimeout(() => process.kill(-child.pid, 'SIGKILL'), 60000);
    const end = () => {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {}
    };
    t.after(end);
    child.on('error', reject);
    // 'exit', not 'close': a background job of the session may still hold the pipes open.
    child.on('exit', (code, signal) => {
      clearTimeout(guard);
      setTimeout(() => {
        end();
        resolve({ code, signal, stdout, stderr });
      }, 50);
    });
  });
}

/** A console block as [{ command, expected: [lines] }]. */
function session(body) {
  const steps = [];
  const lines = body.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith('$ ')) {
      let command = line.slice(2);
      while (command.endsWith('\\') && i + 1 < lines.length) command = `${command.slice(0, -1)}\n${lines[++i]}`;
      steps.push({ command, expected: [] });
    } else {
      assert.ok(steps.length > 0, `output before any command: ${line}`);
      steps.at(-1).expected.push(line);
    }
  }
  return steps;
}

/** Whether `actual` lines match `expected` ones, `…` standing for any text (alone on a line: any lines). */
function matches(expected, actual) {
  if (expected.length === 0) return actual.length === 0;
  const [first, ...rest] = expected;
  if (first === '…') {
    for (let skip = 0; skip <= actual.length; skip++) if (matches(rest, actual.slice(skip))) return true;
    return false;
  }
  if (actual.length === 0) return false;
  const pattern = new RegExp(`^${first.split('…').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return pattern.test(actual[0]) && matches(rest, actual.slice(1));
}

const MARK = '\u001e';

const all = blocks();

test('README: every shell and JavaScript example runs, or says why not', () => {
  const runnable = all.filter((b) => ['console', 'js', 'sh', 'ts', 'bash'].includes(b.lang));
  assert.ok(runnable.filter((b) => !b.skip).length >= 6, 'README has runnable examples');
  for (const b of runnable) {
    assert.ok(b.skip !== undefined || b.lang === 'console' || b.lang === 'js', `README line ${b.line}: a ${b.lang} block that is neither run nor marked <!-- not run: why -->`);
  }
});

for (const b of all.filter((x) => x.lang === 'console' && x.skip === undefined)) {
  test(`README line ${b.line}: the session prints what README shows`, async (t) => {
    const { dir, env } = place(t);
    const steps = session(b.body);
    // One shell for the whole session, stderr into stdout in order, a mark before each command.
    const script = ['exec 2>&1', ...steps.map((s, i) => `printf '${MARK}${i}\\n'\n${s.command}`), `printf '${MARK}end\\n'`].join('\n');
    const r = await run(t, 'bash', ['--norc', '--noprofile', '-c', script], { cwd: dir, env });
    const parts = r.stdout.split(new RegExp(`^${MARK}`, 'm')).slice(1);
    assert.equal(parts.at(-1), 'end\n', `the session ran to its end (exit ${r.code}):\n${r.stdout}${r.stderr}`);
    steps.forEach((step, i) => {
      const actual = parts[i].split('\n').slice(1, -1);
      assert.ok(matches(step.expected, actual), `README line ${b.line}: $ ${step.command}\nREADME shows:\n${step.expected.join('\n')}\nit prints:\n${actual.join('\n')}`);
    });
  });
}

for (const b of all.filter((x) => x.lang === 'js' && x.skip === undefined)) {
  test(`README line ${b.line}: the JavaScript example runs and prints what its comments say`, async (t) => {
    const { dir, env } = place(t);
    writeFileSync(join(dir, 'example.mjs'), b.body);
    const expected = [...b.body.matchAll(/\/\/ → (.*)$/gm)].map((m) => m[1]);
    // stderr into stdout in order, as a terminal shows them.
    const r = await run(t, 'bash', ['-c', `exec 2>&1; exec '${process.execPath}' example.mjs`], { cwd: dir, env });
    assert.equal(r.code, 0, `README line ${b.line}: exit ${r.code}\n${r.stdout}`);
    const actual = `${r.stdout}`.split('\n').slice(0, -1);
    assert.ok(matches(expected, actual), `README line ${b.line}: comments say:\n${expected.join('\n')}\nit prints:\n${actual.join('\n')}\n${r.stderr}`);
  });
}

test("README's CLI reference says what each --help says: synopses and exit codes", async () => {
  const { COMMANDS, synopsis } = await import('../dist/cli-commands.js');
  const reference = README.slice(README.indexOf('# CLI reference'), README.indexOf('# Library reference'));
  for (const spec of COMMANDS) {
    for (const line of synopsis(spec)) assert.ok(reference.includes(`\n${line}\n`), `README's synopsis of ${spec.name}: ${line}`);
  }
  for (const name of ['check', 'status', 'wait', 'watch', 'serve', 'run']) {
    const spec = COMMANDS.find((c) => c.name === name);
    const at = reference.indexOf(`**\`${name}\`**`);
    assert.ok(at >= 0, `README has an exit code table for ${name}`);
    const table = reference.slice(at).split('\n\n').find((p) => p.startsWith('|'));
    const codes = [...table.matchAll(/^\| ([^|]+?) \|/gm)].map((m) => m[1].replaceAll('*', '')).filter((c) => /^(\d+|N)$/.test(c));
    assert.deepEqual(codes.sort(), spec.exits.map(([c]) => c).sort(), `README's exit codes of ${name}`);
  }
});
