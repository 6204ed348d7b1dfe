// The library form of serve: the handler mounted under a prefix in a node:http app, the metrics fed to
// a prom-client registry, and a handler that lets the process exit once closed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { join } from 'node:path';
import client from 'prom-client';
import { createServeHandler, parseListen, DEFAULT_SERVE_PORT } from '../dist/index.js';
import { tmp, startRunner, until, kill, DIST } from './helpers.js';
import { get, sample } from './serve-helpers.js';

async function listen(t, handler) {
  const server = createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  return `http://127.0.0.1:${server.address().port}`;
}

test('mounted under a prefix in a node:http app: its paths answered, the rest goes to the app', async (t) => {
  const dir = tmp(t);
  const runner = await startRunner(t, join(dir, 'web'));
  const alive = createServeHandler({ targets: [dir], prefix: '/alive/' });
  t.after(() => alive.close());
  const url = await listen(t, (req, res) =>
    alive(req, res, () => {
      res.writeHead(418, { 'content-type': 'text/plain' });
      res.end(`app: ${req.url}`);
    }),
  );
  await until(async () => (await get(`${url}/alive/healthz/web`)).status === 200, 'served under /alive');
  assert.equal((await get(`${url}/alive/healthz/web`)).body, 'web: alive\n');
  assert.equal((await get(`${url}/alive/healthz/nope`)).status, 404, 'a name not served is ours to answer');
  assert.equal((await get(`${url}/alive/metrics`)).status, 200);
  for (const path of ['/healthz/web', '/metrics', '/aliveX/healthz/web', '/alive/other', '/']) {
    const r = await get(`${url}${path}`);
    assert.deepEqual([r.status, r.body], [418, `app: ${path}`], path);
  }
  assert.deepEqual(alive.names(), ['web']);
  assert.equal(alive.state('web').state, 'alive');
  await kill(runner);
  await until(() => alive.state('web').state === 'dead', 'dead in memory');
  assert.equal((await get(`${url}/alive/healthz/web`)).status, 503);

  // Without next, anything else is 404; after close, 503.
  const bare = createServeHandler({ targets: [dir] });
  const bareUrl = await listen(t, bare);
  assert.equal((await get(`${bareUrl}/other`)).status, 404);
  await bare.close();
  assert.equal((await get(`${bareUrl}/healthz/web`)).status, 503);
});

test('the metrics in a prom-client registry, by text and through collectors; promtool accepts both', async (t) => {
  const dir = tmp(t);
  await startRunner(t, join(dir, 'web'));
  const alive = createServeHandler({ targets: [dir] });
  t.after(() => alive.close());
  await until(() => alive.state('web')?.state === 'alive', 'web alive');

  // As README shows: append the text to the registry's.
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const appended = (await registry.metrics()) + alive.collect();
  assert.equal(sample(appended, 'proc_alive_up{target="web"}'), 1);
  const lint = (text) => spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  // prom-client's own default metrics draw promtool's counter-naming lint; judge ours alone and together.
  const ours = lint(alive.collect());
  assert.deepEqual([ours.status, ours.stdout + ours.stderr], [0, '']);
  const together = lint(appended);
  assert.doesNotMatch(together.stdout + together.stderr, /proc_alive/);

  // As README shows: collectors fed from alive.metrics().
  const fed = new client.Registry();
  for (const { name, help, type } of alive.metrics()) {
    new (type === 'counter' ? client.Counter : client.Gauge)({
      name,
      help,
      registers: [fed],
      labelNames: name === 'proc_alive_state' ? ['target', 'state'] : ['target'],
      collect() {
        this.reset();
        for (const s of alive.metrics().find((f) => f.name === name).samples) {
          if (type === 'counter') this.inc(s.labels, s.value);
          else this.set(s.labels, s.value);
        }
      },
    });
  }
  const text = await fed.metrics();
  assert.equal(sample(text, 'proc_alive_up{target="web"}'), 1);
  assert.equal(sample(text, 'proc_alive_state{target="web",state="alive"}'), 1);
  assert.equal(sample(text, 'proc_alive_deaths_total{target="web"}'), 0);
  const fedLint = lint(text);
  assert.deepEqual([fedLint.status, fedLint.stdout + fedLint.stderr], [0, '']);
});

test('a closed handler lets the process exit (importing starts nothing: hold.test.js)', () => {
  const dir = '/nonexistent-proc-alive-dir';
  const script = `
    import { createServeHandler } from ${JSON.stringify(join(DIST, 'index.js'))};
    const h = createServeHandler({ targets: [${JSON.stringify(dir)}] });
    setTimeout(() => h.close(), 50);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10000 });
  assert.deepEqual([r.status, r.signal, r.stderr], [0, null, '']);
});

test('parseListen: HOST:PORT, [v6]:PORT, unix:PATH; the default on loopback', () => {
  assert.deepEqual(parseListen('127.0.0.1:19171'), { host: '127.0.0.1', port: 19171 });
  assert.deepEqual(parseListen('[::1]:0'), { host: '::1', port: 0 });
  assert.deepEqual(parseListen('localhost:80'), { host: 'localhost', port: 80 });
  assert.deepEqual(parseListen('unix:/run/a.sock'), { path: '/run/a.sock' });
  assert.equal(DEFAULT_SERVE_PORT, 19171);
  for (const bad of ['', '19171', ':19171', '1.2.3:80', '[::1]', 'host:port', 'a:b:c', '127.0.0.1:-1', 'unix:']) {
    assert.throws(() => parseListen(bad), { code: 'EINVAL' }, bad);
  }
});
