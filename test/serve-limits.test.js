// serve against clients that misbehave: garbage, huge requests, slow clients, many connections, a
// stream client that never reads. Each is answered or cut off, and everyone else is still served.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { join } from 'node:path';
import { tmp, startRunner, until, kill } from './helpers.js';
import { startServe, startLib, get, raw, statusOf, sample, holdManyBin, startHoldMany } from './serve-helpers.js';

async function servedAlive(t) {
  const dir = tmp(t);
  await startRunner(t, join(dir, 'web'));
  return dir;
}

test('garbage, 100 KB URLs, 10,000 headers, bodies, unknown methods: answered or cut off; /healthz still answers', async (t) => {
  const dir = await servedAlive(t);
  const { url, port, child } = await startServe(t, [dir]);
  const cases = [
    ['garbage', Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x00, 0x00, 0x0a, 0x0d, 0x0a, 0x0d, 0x0a]), 400],
    ['text garbage', 'hello there\r\n\r\n', 400],
    ['100 KB URL', `GET /healthz/${'a'.repeat(100 * 1024)} HTTP/1.1\r\nHost: x\r\n\r\n`, 431],
    ['10,000 headers', `GET /healthz/web HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 10000 }, (_, i) => `X-${i}: y\r\n`).join('')}\r\n`, 431],
    ['one huge header', `GET /healthz/web HTTP/1.1\r\nHost: x\r\nCookie: ${'c'.repeat(64 * 1024)}\r\n\r\n`, 431],
    ['unknown method', 'BREW /healthz/web HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['a body on GET', 'GET /healthz/web HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\nxxxx', 413],
    ['a chunked body', 'GET /healthz/web HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n', 413],
    ['a NUL in the path', 'GET /healthz/w\0eb HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['a raw byte above 0x7f', Buffer.from('GET /healthz/\xff HTTP/1.1\r\nHost: x\r\n\r\n', 'latin1'), 400],
  ];
  for (const [what, data, code] of cases) {
    const r = await raw(port, data);
    assert.equal(statusOf(r.text), code, `${what}: ${r.text.slice(0, 80)}`);
    assert.equal(r.closed, true, `${what}: the connection is closed`);
    assert.equal((await get(`${url}/healthz/web`)).status, 200, `after ${what}`);
  }
  // An unknown method that parses: 405 on a known path.
  const r = await raw(port, 'PROPFIND /healthz/web HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.equal(statusOf(r.text), 405);
  assert.equal(child.exitCode, null, 'serve still runs');
});

test('slow clients (one byte at a time) and idle connections are cut off; others are served meanwhile', async (t) => {
  const dir = await servedAlive(t);
  const { url, port } = await startLib(t, { targets: [dir], headersTimeoutMs: 1000, requestTimeoutMs: 2000, keepAliveTimeoutMs: 500, idleTimeoutMs: 1500 });
  // Slowloris: a request that never ends, one byte every 100 ms.
  const slow = connect(port, '127.0.0.1');
  let slowClosed = false;
  slow.on('close', () => (slowClosed = true));
  slow.on('error', () => {});
  const drip = setInterval(() => slow.writable && slow.write('X'), 100);
  t.after(() => clearInterval(drip));
  slow.write('GET /healthz/web HTTP/1.1\r\nHost: x\r\nX-Slow: ');
  // An idle keep-alive connection after one answer, and a connection that never sends anything.
  const idle = connect(port, '127.0.0.1');
  const idleClosed = once(idle, 'close');
  idle.on('error', () => {});
  idle.resume(); // a paused client would not notice the server closing it
  idle.write('GET /healthz/web HTTP/1.1\r\nHost: x\r\n\r\n');
  const silent = connect(port, '127.0.0.1');
  const silentClosed = once(silent, 'close');
  silent.on('error', () => {});
  silent.resume();
  for (let i = 0; i < 5; i++) assert.equal((await get(`${url}/healthz/web`)).status, 200, 'served while the slow client drips');
  await until(() => slowClosed, 'the slow client cut off', 15000);
  await idleClosed;
  await silentClosed;
  assert.equal((await get(`${url}/healthz/web`)).status, 200);
});

test('1,000 concurrent connections are all answered; 1,000 idle ones do not stop /healthz', async (t) => {
  const dir = await servedAlive(t);
  const { url, port } = await startLib(t, { targets: [dir], headersTimeoutMs: 2000, idleTimeoutMs: 2000 });
  const N = 1000;
  const answers = await Promise.all(Array.from({ length: N }, () => raw(port, 'GET /healthz/web HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 30000)));
  assert.equal(answers.filter((a) => statusOf(a.text) === 200).length, N);

  const idle = [];
  for (let i = 0; i < N; i++) {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.resume();
    s.gone = once(s, 'close');
    idle.push(s);
  }
  await Promise.all(idle.map((s) => (s.connecting ? once(s, 'connect') : null)));
  assert.equal((await get(`${url}/healthz/web`)).status, 200, 'answered with 1,000 idle connections open');
  await Promise.all(idle.map((s) => s.gone)); // each cut off by the headers timeout
  assert.equal((await get(`${url}/healthz/web`)).status, 200);
});

/**
 * Serves 1,000 targets with long names, opens a stream that never reads and one that does, then kills
 * and restarts every holder `cycles` times (~0.5 MB of events each way). Returns the server's counters
 * and how much more memory it uses (after a GC, once the reader has caught up and the holder records
 * are read) than after the first cycle.
 */
async function stuckStream(t, maxBufferBytes, cycles) {
  const dir = tmp(t);
  const N = 1000;
  const prefix = join(dir, `${'n'.repeat(200)}-`);
  const bin = holdManyBin(dir);
  let holders = await startHoldMany(t, bin, prefix, N);
  const { url, port, memory } = await startLib(t, { targets: [dir], maxBufferBytes, heartbeatMs: 200 });
  const counts = async () => JSON.parse((await get(`${url}/healthz`, { headers: { accept: 'application/json' } })).body);
  await until(async () => (await counts()).alive === N, 'all alive');

  // A stuck client: it asks for the stream and never reads a byte.
  const stuck = connect(port, '127.0.0.1');
  stuck.on('error', () => {});
  const stuckClosed = once(stuck, 'close');
  stuck.write('GET /events HTTP/1.1\r\nHost: x\r\n\r\n');
  stuck.pause();
  // A reader, which counts the deaths it is told of.
  const reader = connect(port, '127.0.0.1');
  let deaths = 0;
  let tail = '';
  reader.setEncoding('utf8');
  reader.on('data', (d) => {
    const text = tail + d;
    const cut = text.lastIndexOf('\n');
    tail = text.slice(cut + 1);
    deaths += text.slice(0, cut).split('"state":"dead","previous":"alive"').length - 1;
  });
  reader.write('GET /events HTTP/1.1\r\nHost: x\r\n\r\n');
  await until(async () => sample((await get(`${url}/metrics`)).body, 'proc_alive_serve_streams') === 2, 'two streams');

  // Measured once the reader has every death so far (nothing waits for it) and the records are reread.
  const settled = async (cycle) => {
    await until(() => deaths === N * cycle, `the reader saw every death (${deaths} of ${N * cycle})`, 60000);
    await new Promise((r) => setTimeout(r, 1500));
    const m = await memory();
    return m.heap + m.external;
  };
  let base = 0;
  for (let i = 0; i < cycles; i++) {
    await kill(holders);
    await until(async () => (await counts()).dead === N, `all dead (${i})`);
    holders = await startHoldMany(t, bin, prefix, N);
    await until(async () => (await counts()).alive === N, `all alive (${i})`);
    if (i === 0) base = await settled(1);
  }
  const end = await settled(cycles);
  const metrics = (await get(`${url}/metrics`)).body;
  reader.destroy();
  return {
    grown: end - base,
    dropped: sample(metrics, 'proc_alive_serve_dropped_streams_total'),
    streams: sample(metrics, 'proc_alive_serve_streams'),
    stuck,
    stuckClosed,
  };
}

test('/events: a client that never reads is dropped and its data freed; readers get every change', async (t) => {
  // ~0.5 KB x 1,000 x 2 x 12 ≈ 12 MB goes to each client; the bound lets 2 MiB wait beyond the
  // opening snapshot (a burst of 1,000 changes is 0.5 MB, which a reader must be able to take).
  const bounded = await stuckStream(t, 2 * 1048576, 12);
  t.diagnostic(`bounded: memory grew ${(bounded.grown / 1048576).toFixed(1)} MiB`);
  assert.equal(bounded.dropped, 1, 'the stuck client was dropped');
  assert.equal(bounded.streams, 1, 'the reader is still connected');
  // The stuck client finds its stream closed once it reads what the kernel kept for it.
  bounded.stuck.resume();
  await bounded.stuckClosed;
  // The control: with no effective bound, the same run keeps the stuck client's data (so the memory
  // measure above would have seen it).
  const unbounded = await stuckStream(t, 1024 ** 3, 12);
  t.diagnostic(`unbounded: memory grew ${(unbounded.grown / 1048576).toFixed(1)} MiB`);
  assert.equal(unbounded.dropped, 0);
  assert.ok(unbounded.grown > 10 * 1048576, `the control kept ${unbounded.grown} bytes`);
  assert.ok(bounded.grown < 5 * 1048576, `memory grew ${bounded.grown} bytes with a stuck client`);
  unbounded.stuck.destroy();
});
