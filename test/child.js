// A Node child process running an ES module script that reports as JSON lines on stdout and takes
// commands as lines on stdin: for tests where the watching process itself is the subject (exceptions,
// limits, signals), so that it can be broken without breaking the test runner.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { DIST, until } from './helpers.js';

/** The library's entry point, as a string to put in a script's import. */
export const INDEX = JSON.stringify(join(DIST, 'index.js'));

/**
 * Starts `node -e source args...` (an ES module). Returns the child with `lines` (parsed JSON lines),
 * `until(fn, what)` over them, `send(line)` to its stdin, `stderrText()`, and `exited`. `shell`: a
 * prefix run by sh before node (e.g. `ulimit -n 64;`).
 */
export function child(t, source, args = [], { env = {}, shell = '', wrap = [] } = {}) {
  const node = [process.execPath, '--input-type=module', '-e', source, ...args];
  const argv = shell === '' ? node : ['sh', '-c', `${shell} exec "$@"`, 'sh', ...node];
  const [file, ...rest] = [...wrap, ...argv];
  const c = spawn(file, rest, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const lines = [];
  let stderr = '';
  c.stderr.on('data', (d) => (stderr += d));
  createInterface({ input: c.stdout }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line));
    } catch {
      lines.push({ text: line });
    }
  });
  c.exited = once(c, 'exit');
  t.after(() => {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });
  return Object.assign(c, {
    lines,
    stderrText: () => stderr,
    send: (line) => c.stdin.write(`${line}\n`),
    until: (fn, what, ms) =>
      until(() => {
        if (c.exitCode !== null) throw new Error(`the child exited (${c.exitCode}) before ${what}: ${stderr}`);
        return fn(lines);
      }, what, ms),
  });
}

/** The states a child reported for `target` (lines {target, state}). */
export const statesOf = (lines, target) => lines.filter((l) => l.target === target && l.state !== undefined).map((l) => l.state);
