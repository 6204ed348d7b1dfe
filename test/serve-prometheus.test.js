// A real Prometheus server (Debian's package) scrapes a real serve every second, with README's alert
// rules loaded; promtool lints the exposition, README's rules and its scrape config.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { tmp, startRunner, until, kill, ROOT } from './helpers.js';
import { startServe, get } from './serve-helpers.js';

const have = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const skip = !have('prometheus') || !have('promtool') ? 'needs prometheus and promtool (Debian: apt-get install prometheus; .ci/run does)' : false;

/** The ```yaml block of README.md that starts with `first`. */
function readmeYaml(first) {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  for (const m of readme.matchAll(/```yaml\n([\s\S]*?)```/g)) if (m[1].startsWith(first)) return m[1];
  throw new Error(`README has no yaml block starting with ${first}`);
}

async function freePort() {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address();
  s.close();
  await once(s, 'close');
  return port;
}

test("README's alert rules and scrape config pass promtool", { skip }, (t) => {
  const dir = tmp(t);
  const rules = join(dir, 'rules.yml');
  writeFileSync(rules, readmeYaml('groups:'));
  const r = spawnSync('promtool', ['check', 'rules', rules], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /SUCCESS: 2 rules found/);
  const config = join(dir, 'prometheus.yml');
  writeFileSync(config, `rule_files: [${JSON.stringify(rules)}]\n${readmeYaml('scrape_configs:')}`);
  const c = spawnSync('promtool', ['check', 'config', config], { encoding: 'utf8' });
  assert.equal(c.status, 0, c.stdout + c.stderr);
});

test('Prometheus scrapes serve: proc_alive_up 1 while held, 0 after SIGKILL; the rules fire; promtool finds nothing', { skip }, async (t) => {
  const dir = tmp(t);
  const targets = join(dir, 'targets');
  mkdirSync(targets);
  const runner = await startRunner(t, join(targets, 'web'));
  const { url, port } = await startServe(t, [targets]);
  await until(async () => (await get(`${url}/healthz/web`)).status === 200, 'served alive');

  const lint = spawnSync('promtool', ['check', 'metrics'], { input: (await get(`${url}/metrics`)).body, encoding: 'utf8' });
  assert.deepEqual([lint.status, lint.stdout + lint.stderr], [0, '']);

  const rules = join(dir, 'rules.yml');
  writeFileSync(rules, readmeYaml('groups:'));
  const config = join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    [
      'global: { scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }',
      `rule_files: [${JSON.stringify(rules)}]`,
      'scrape_configs:',
      '  - job_name: proc-alive',
      `    static_configs: [{ targets: ['127.0.0.1:${port}'] }]`,
      '',
    ].join('\n'),
  );
  const promPort = await freePort();
  const prom = spawn(
    'prometheus',
    [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let promLog = '';
  prom.stderr.on('data', (d) => (promLog += d));
  t.after(() => prom.kill('SIGKILL'));
  const api = `http://127.0.0.1:${promPort}/api/v1`;
  const query = async (q) => {
    const r = await get(`${api}/query?query=${encodeURIComponent(q)}`).catch(() => null);
    if (r === null || r.status !== 200) return undefined;
    const [first] = JSON.parse(r.body).data.result;
    return first === undefined ? undefined : Number(first.value[1]);
  };
  await until(async () => (await query('proc_alive_up{target="web"}')) === 1, `Prometheus sees web up (${promLog})`, 60000);

  // Prometheus 2.42 asks for OpenMetrics first (this Accept header); serve answers in it, and the
  // scrape is healthy: Prometheus' parser accepted it.
  const accept = 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
  const om = await get(`${url}/metrics`, { headers: { accept } });
  assert.equal(om.headers['content-type'], 'application/openmetrics-text; version=1.0.0; charset=utf-8');
  assert.ok(om.body.endsWith('\n# EOF\n'));
  assert.match(om.body, /^# TYPE proc_alive_deaths counter$/m, 'an OpenMetrics counter family is named without _total');
  assert.match(om.body, /^proc_alive_deaths_total\{target="web"\} 0$/m);
  const health = JSON.parse((await get(`${api}/targets`)).body).data.activeTargets[0];
  assert.deepEqual([health.health, health.lastError], ['up', '']);

  await kill(runner);
  await until(async () => (await query('proc_alive_up{target="web"}')) === 0, 'Prometheus sees web down', 30000);
  await until(async () => (await query('proc_alive_deaths_total{target="web"}')) === 1, 'Prometheus sees one death', 30000);
  await until(async () => (await query('proc_alive_state{target="web",state="dead"}')) === 1, 'one-hot state dead', 30000);

  // README's rules on real data: the death alert fires; the down alert waits its minute (pending).
  const alerts = async () => JSON.parse((await get(`${api}/alerts`)).body).data.alerts.map((a) => `${a.labels.alertname}:${a.labels.target}:${a.state}`);
  await until(async () => (await alerts()).includes('ProcAliveDied:web:firing'), 'ProcAliveDied firing', 30000);
  await until(async () => (await alerts()).includes('ProcAliveDown:web:pending'), 'ProcAliveDown pending', 30000);
});
