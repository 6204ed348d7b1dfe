// Shared by the serve tests: a real `proc-alive serve` process (or the library's serve() in one), and
// real HTTP clients (node:http with no agent, raw TCP sockets, curl).

import { spawn, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { request } from 'node:http';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { BIN, ROOT, start } from './helpers.js';

/** Starts `proc-alive serve` on a free loopback port; resolves once it says where it serves. */
export async function startServe(t, args, options = {}) {
  const child = await start(t, process.execPath, [BIN, 'serve', '--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'ignore', 'pipe'], ...options });
  const url = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stderr });
    lines.on('line', (line) => {
      const m = /serving \d+ targets? at (\S+)/.exec(line);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${child.stderrText()}`)));
  });
  return { child, url, port: Number(new URL(url).port) };
}

/**
 * Starts the library's serve() with `options` (JSON) in its own process: test/fixtures/serve-lib.js.
 * `memory()` resolves to what it still uses after a garbage collection: { heap, external } in bytes.
 */
export async function startLib(t, options) {
  const child = spawn(process.execPath, ['--expose-gc', join(ROOT, 'test', 'fixtures', 'serve-lib.js'), JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  child.stderrText = () => stderr;
  child.exited = once(child, 'exit');
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const lines = [];
  const waiting = [];
  createInterface({ input: child.stdout }).on('line', (line) => (waiting.length ? waiting.shift()(line) : lines.push(line)));
  const nextLine = () => (lines.length ? Promise.resolve(lines.shift()) : new Promise((resolve) => waiting.push(resolve)));
  const line = await Promise.race([
    nextLine(),
    child.exited.then(([code]) => {
      throw new Error(`serve-lib exited ${code}: ${stderr}`);
    }),
  ]);
  const memory = async () => {
    child.kill('SIGUSR2');
    return JSON.parse(await nextLine());
  };
  return { child, url: line, port: Number(new URL(line).port), memory };
}

/** One request on a connection of its own: { status, headers, body }. */
export function get(url, { method = 'GET', headers = {}, socketPath } = {}) {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent: false, ...(socketPath ? { socketPath } : {}) }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks).toString('utf8'), bytes: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Writes `data` on a raw TCP connection and collects what comes back until the server closes it (or
 * `ms` pass: then `closed` is false).
 */
export function raw(port, data, ms = 5000) {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    const chunks = [];
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed: false });
    }, ms);
    s.on('data', (c) => chunks.push(c));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed: true });
    });
    s.on('connect', () => s.write(data));
  });
}

/** The status line's code of a raw HTTP answer, or null if none came. */
export function statusOf(text) {
  const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
  return m ? Number(m[1]) : null;
}

/** The value of one sample in the text format: `name{labels}` → number, or undefined. */
export function sample(metrics, series) {
  for (const line of metrics.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

/** Compiles bench/hold-many.c (holds PREFIX0..PREFIX<N-1>) once per test process. */
let holdMany;
export function holdManyBin(dir) {
  if (!holdMany) {
    holdMany = join(dir, 'hold-many');
    execFileSync('cc', ['-O2', '-o', holdMany, join(ROOT, 'bench', 'hold-many.c')]);
  }
  return holdMany;
}

/** Starts hold-many on `prefix` with `n` FIFOs; resolves once all are open. */
export async function startHoldMany(t, bin, prefix, n) {
  const child = spawn(bin, [prefix, String(n)], { stdio: ['ignore', 'pipe', 'inherit'] });
  child.exited = once(child, 'exit');
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await once(createInterface({ input: child.stdout }), 'line');
  return child;
}
