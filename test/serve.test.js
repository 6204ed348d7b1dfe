// `proc-alive serve`: a real serve process, real holders (SIGKILLed for real), real HTTP and SSE clients.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync, mkdirSync, statSync, existsSync, chmodSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { EventSource } from 'eventsource';
import { tmp, cli, start, startRunner, kill, until, compileC, BIN, SYNC_GUARD_MS } from './helpers.js';
import { startServe, get, raw, statusOf, sample } from './serve-helpers.js';
import { parsed, valid } from './schema.js';

/** serve's /status: an array of status.json objects. */
const statusItems = (body) => JSON.parse(body).map((item) => valid(item, 'status'));

const JSON_ACCEPT = { accept: 'application/json' };

test('/healthz/<name>: 200 alive; 503 dead, absent, unknown; 404 not served; HEAD; JSON bodies', async (t) => {
  const dir = tmp(t);
  const alive = join(dir, 'alive');
  const dead = join(dir, 'dead');
  const file = join(dir, 'file');
  writeFileSync(file, 'not a FIFO');
  await startRunner(t, alive);
  await kill(await startRunner(t, dead));
  const { url } = await startServe(t, [alive, dead, join(dir, 'absent'), file]);

  const expected = { alive: [200, 'alive'], dead: [503, 'dead'], absent: [503, 'absent'], file: [503, 'unknown'] };
  for (const [name, [code, st]] of Object.entries(expected)) {
    const r = await get(`${url}/healthz/${name}`);
    assert.equal(r.status, code, name);
    assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(r.body.split('\n').length, 2, `${name}: one line`);
    assert.ok(r.body.startsWith(`${name}: ${st}`), `${name}: ${r.body}`);

    const j = await get(`${url}/healthz/${name}`, { headers: JSON_ACCEPT });
    assert.equal(j.status, code);
    assert.equal(j.headers['content-type'], 'application/json; charset=utf-8');
    const body = parsed(j.body, 'watch-event');
    assert.equal(body.target, name);
    assert.equal(body.path, join(dir, name));
    assert.equal(body.state, st);
    assert.equal(typeof body.time, 'number');

    const h = await get(`${url}/healthz/${name}`, { method: 'HEAD' });
    assert.equal(h.status, code, `HEAD ${name}`);
    assert.equal(h.body, '', 'HEAD has no body');
    assert.equal(Number(h.headers['content-length']), Buffer.byteLength(r.body), 'HEAD says the length GET sends');
  }
  const unknown = parsed((await get(`${url}/healthz/file`, { headers: JSON_ACCEPT })).body, 'watch-event');
  assert.equal(unknown.code, 'ENOTFIFO');
  assert.match(unknown.reason, /not a FIFO/);

  const missing = await get(`${url}/healthz/nope`);
  assert.deepEqual([missing.status, missing.body], [404, 'not served: nope\n']);
  assert.equal((await get(`${url}/healthz/nope`, { method: 'HEAD' })).status, 404);

  // The whole: 503 while any is not alive, naming them.
  const all = await get(`${url}/healthz`);
  assert.equal(all.status, 503);
  assert.match(all.body, /^1 of 4 alive; not alive: absent absent, dead dead, file unknown\n$/);
  const allJson = JSON.parse((await get(`${url}/healthz`, { headers: JSON_ACCEPT })).body);
  for (const item of allJson.notAlive) valid(item, 'watch-event');
  assert.deepEqual([allJson.ok, allJson.targets, allJson.alive, allJson.dead, allJson.absent, allJson.unknown], [false, 4, 1, 1, 1, 1]);

  // Other paths and methods.
  for (const path of ['/', '/healthz/', '/metrics/', '/status/x', '/index.html', '/HEALTHZ']) {
    assert.equal((await get(`${url}${path}`)).status, 404, path);
  }
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
    const r = await get(`${url}/healthz/alive`, { method });
    assert.equal(r.status, 405, method);
    assert.equal(r.headers.allow, 'GET, HEAD');
  }
});

test('/healthz is 200 only while every served target is alive; a served directory counts its targets', async (t) => {
  const dir = tmp(t);
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  const ra = await startRunner(t, a);
  await startRunner(t, b);
  const { url } = await startServe(t, [dir]);
  await until(async () => (await get(`${url}/healthz`)).status === 200, '/healthz 200');
  assert.equal((await get(`${url}/healthz`)).body, 'all 2 alive\n');
  await kill(ra);
  await until(async () => (await get(`${url}/healthz`)).status === 503, '/healthz 503 after a SIGKILL');
  assert.equal((await get(`${url}/healthz`)).body, '1 of 2 alive; not alive: a dead\n');
});

test('an empty directory: nothing served, /healthz says so with 503', async (t) => {
  const { url } = await startServe(t, [tmp(t)]);
  const r = await get(`${url}/healthz`);
  assert.deepEqual([r.status, r.body], [503, 'no targets served\n']);
  assert.deepEqual(statusItems((await get(`${url}/status`)).body), []);
});

test('no request reaches a file outside the served set, however encoded', async (t) => {
  const dir = tmp(t);
  const served = join(dir, 'served');
  mkdirSync(served);
  await startRunner(t, join(served, 'web'));
  // Alive targets right outside the served directory, and at the root of the temp dir.
  await startRunner(t, join(dir, 'outside'));
  const { url, port } = await startServe(t, [served]);
  await until(async () => (await get(`${url}/healthz/web`)).status === 200, 'web served');
  const attempts = [
    '..%2Foutside',
    '%2e%2e%2Foutside',
    '%2E%2E%2foutside',
    encodeURIComponent(join(dir, 'outside')),
    '%252e%252e%252Foutside',
    '..%5Coutside',
    'web%2F..%2F..%2Foutside',
    'web%00',
    '%2e%2e',
    '.',
    'outside',
    '.web.json',
    '.web.lock',
  ];
  for (const name of attempts) {
    const r = await get(`${url}/healthz/${name}`);
    assert.equal(r.status, 404, `${name}: ${r.status} ${r.body}`);
  }
  // Paths that a client would normalize: sent as they are, on a raw connection.
  for (const path of ['/healthz/../outside', `/healthz/${dir}/outside`, '/healthz//outside', '/healthz/web/../../outside', '/x/../healthz/outside']) {
    const r = await raw(port, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.equal(statusOf(r.text), 404, `${path}: ${r.text.split('\r\n')[0]}`);
  }
  // Malformed escapes are a bad request, not a guess.
  for (const name of ['%zz', '%2', 'web%']) assert.equal((await get(`${url}/healthz/${name}`)).status, 400, name);
  // The status array holds the served set only.
  assert.deepEqual(statusItems((await get(`${url}/status`)).body).map((s) => s.target), ['web']);
});

test('hostile names: escaped in text, labels and streams, exact in JSON, never in a header; found by their bytes', async (t) => {
  const dir = tmp(t);
  // A name with an escape sequence, a newline, a quote, a backslash, a bidi override and a byte that is not UTF-8.
  const nameBytes = Buffer.concat([Buffer.from('we\x1b[31m\n"\\\u202eb'), Buffer.from([0xff])]);
  // Node passes arguments as UTF-8 strings, so the shell's printf makes the bytes; the C runner makes and holds the FIFO.
  const script = 'p=$(printf \'%s/we\\033[31m\\n"\\\\\\342\\200\\256b\\377\' "$0"); exec "$1" "$p" 60';
  const runner = await start(t, 'sh', ['-c', script, dir, compileC('runner')]);
  const { url } = await startServe(t, [dir]);
  const encoded = [...nameBytes].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
  await until(async () => (await get(`${url}/healthz/${encoded}`)).status === 200, 'the hostile name alive');

  const text = await get(`${url}/healthz/${encoded}`);
  assert.equal(text.body, 'we\\x1b[31m\\n"\\\\\\u202eb\\xff: alive\n');
  assert.doesNotMatch(text.body, /[\x00-\x09\x0b-\x1f\x7f\u202e]/, 'no raw control character');
  const all = [...text.rawHeaders, ...(await get(`${url}/metrics`)).rawHeaders, ...(await get(`${url}/status`)).rawHeaders];
  for (const h of all) assert.ok(!h.includes('we'), `a header carries the name: ${h}`);

  // JSON: the exact name (its non-UTF-8 byte as U+DCFF, as text.ts decodes names), inert on a terminal.
  const json = await get(`${url}/healthz/${encoded}`, { headers: JSON_ACCEPT });
  assert.doesNotMatch(json.body, /[\x00-\x1f\x7f\u202e](?!$)/);
  assert.equal(parsed(json.body, 'watch-event').target, 'we\x1b[31m\n"\\\u202eb\udcff');

  // The label: visible escapes, then the format's own escaping; and promtool accepts the whole.
  const metrics = (await get(`${url}/metrics`)).body;
  assert.equal(sample(metrics, 'proc_alive_up{target="we\\\\x1b[31m\\\\n\\"\\\\\\\\\\\\u202eb\\\\xff"}'), 1, metrics.split('\n').filter((l) => l.startsWith('proc_alive_up')).join('\n'));
  const check = spawnSync('promtool', ['check', 'metrics'], { input: metrics, encoding: 'utf8' });
  assert.deepEqual([check.status, check.stdout + check.stderr], [0, '']);

  // The event stream carries the same JSON.
  const es = await sse(t, `${url}/events`);
  const first = await es.next();
  assert.equal(parsed(first.data, 'watch-event').target, 'we\x1b[31m\n"\\\u202eb\udcff');
  await kill(runner);
});

test('a directory: targets are served as they appear, stay served (absent) when they leave; a stop is not a death', async (t) => {
  const dir = tmp(t);
  const { url } = await startServe(t, [dir]);
  assert.equal((await get(`${url}/healthz/web`)).status, 404, 'not there yet: not served');
  const web = await startRunner(t, join(dir, 'web'));
  await until(async () => (await get(`${url}/healthz/web`)).status === 200, 'web appears');
  await kill(web, 'SIGTERM'); // a clean stop: the FIFO is removed
  await until(async () => (await get(`${url}/healthz/web`)).body === 'web: absent\n', 'web absent after its stop');
  assert.equal((await get(`${url}/healthz/web`)).status, 503);
  // Back again.
  const again = await startRunner(t, join(dir, 'web'));
  await until(async () => (await get(`${url}/healthz/web`)).status === 200, 'web back');
  await kill(again, 'SIGTERM');
  await until(async () => (await get(`${url}/healthz/web`)).status === 503, 'web stopped again');
  // Two clean stops (alive → absent), no death.
  assert.equal(sample((await get(`${url}/metrics`)).body, 'proc_alive_deaths_total{target="web"}'), 0);
});

test('two deaths and restarts between two scrapes: proc_alive_deaths_total rises by two', async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'web');
  let runner = await startRunner(t, path);
  const { url } = await startServe(t, [path]);
  await until(async () => (await get(`${url}/healthz/web`)).status === 200, 'served alive');
  const before = sample((await get(`${url}/metrics`)).body, 'proc_alive_deaths_total{target="web"}');
  assert.equal(before, 0);
  for (let i = 0; i < 2; i++) {
    await kill(runner);
    runner = await startRunner(t, path);
  }
  await until(async () => (await get(`${url}/healthz/web`)).status === 200, 'alive again');
  const metrics = (await get(`${url}/metrics`)).body;
  assert.equal(sample(metrics, 'proc_alive_deaths_total{target="web"}'), 2);
  assert.equal(sample(metrics, 'proc_alive_up{target="web"}'), 1);
  // The holder's start time is the new holder's (from its record), read off the probe's path.
  await until(async () => {
    const started = sample((await get(`${url}/metrics`)).body, 'proc_alive_holder_start_time_seconds{target="web"}');
    const record = parsed(cli(['status', '--json', path]).stdout, 'status').holder;
    return started === Date.parse(record.started) / 1000;
  }, 'the new holder start time');
  // And a death with no restart counts as soon as it is seen.
  await kill(runner);
  await until(async () => sample((await get(`${url}/metrics`)).body, 'proc_alive_deaths_total{target="web"}') === 3, 'third death counted');
  const after = (await get(`${url}/metrics`)).body;
  assert.equal(sample(after, 'proc_alive_up{target="web"}'), 0);
  assert.equal(sample(after, 'proc_alive_state{target="web",state="dead"}'), 1);
  assert.equal(sample(after, 'proc_alive_holder_start_time_seconds{target="web"}'), undefined, 'no holder while dead');
});

test('/status: status --json for every served target, one array', async (t) => {
  const dir = tmp(t);
  const web = join(dir, 'web');
  const runner = await startRunner(t, web);
  const { url } = await startServe(t, [web, join(dir, 'api')]);
  await until(async () => statusItems((await get(`${url}/status`)).body)[1]?.holder !== null, 'the holder record read');
  const r = await get(`${url}/status`);
  assert.equal(r.headers['content-type'], 'application/json; charset=utf-8');
  const [api, w] = statusItems(r.body);
  // time: when serve's watcher saw the state; status --json's: when it looked.
  const timeless = ({ time, ...rest }) => (assert.equal(typeof time, 'number'), rest);
  assert.deepEqual(timeless(api), { target: 'api', path: join(dir, 'api'), state: 'absent', holder: null, stale: false });
  const cliStatus = parsed(cli(['status', '--json', web]).stdout, 'status');
  assert.deepEqual({ ...timeless(w), target: web }, timeless(cliStatus), 'the same object as status --json, named as served');
  assert.equal(w.holder.pid, runner.pid);
});

/** An SSE client (the eventsource package): next() resolves to the next message; `ready` to the ready event. */
async function sse(t, url, init) {
  const es = new EventSource(url, init);
  t.after(() => es.close());
  const queue = [];
  const waiting = [];
  es.onmessage = (e) => (waiting.length ? waiting.shift()(e) : queue.push(e));
  const ready = new Promise((resolve) => es.addEventListener('ready', resolve, { once: true }));
  await new Promise((resolve, reject) => {
    es.onopen = resolve;
    es.onerror = reject;
  });
  es.onerror = null;
  return {
    es,
    ready,
    next: () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((resolve) => waiting.push(resolve))),
    pending: () => queue.length,
  };
}

test('/events: the current states, ready, then each change; Last-Event-ID resumes from the history', async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'web');
  let runner = await startRunner(t, path);
  const { url } = await startServe(t, [path, join(dir, 'api')]);
  await until(async () => (await get(`${url}/healthz/web`)).status === 200, 'served alive');
  const client = await sse(t, `${url}/events`);
  const opening = [parsed((await client.next()).data, 'watch-event'), parsed((await client.next()).data, 'watch-event')];
  assert.deepEqual(opening.map((e) => [e.target, e.state, e.previous]), [['api', 'absent', null], ['web', 'alive', null]]);
  const ready = await client.ready;
  assert.match(ready.lastEventId, /^[0-9a-z]+-\d+$/);

  await kill(runner);
  const diedEvent = await client.next();
  const died = parsed(diedEvent.data, 'watch-event');
  assert.deepEqual([died.target, died.path, died.state, died.previous], ['web', path, 'dead', 'alive']);
  assert.equal(typeof died.time, 'number');
  client.es.close();
  const lastId = diedEvent.lastEventId;
  assert.match(lastId, /^[0-9a-z]+-\d+$/);

  // Two changes while no one listens, then a client that resumes from the last id it had.
  runner = await startRunner(t, path);
  await kill(runner);
  await until(async () => (await get(`${url}/healthz/web`, { headers: JSON_ACCEPT })).body.includes('"previous":"alive"'), 'dead again');
  const resumed = await sse(t, `${url}/events`, {
    fetch: (input, init) => fetch(input, { ...init, headers: { ...init.headers, 'Last-Event-ID': lastId } }),
  });
  const replay = [parsed((await resumed.next()).data, 'watch-event'), parsed((await resumed.next()).data, 'watch-event')];
  assert.deepEqual(replay.map((e) => [e.target, e.previous, e.state]), [['web', 'dead', 'alive'], ['web', 'alive', 'dead']]);
  await resumed.ready;
  assert.equal(resumed.pending(), 0, 'no snapshot after a resume');

  // An id from another run (or too old) gets the whole state again.
  const fresh = await sse(t, `${url}/events`, {
    fetch: (input, init) => fetch(input, { ...init, headers: { ...init.headers, 'Last-Event-ID': 'zzzz-3' } }),
  });
  assert.deepEqual(parsed((await fresh.next()).data, 'watch-event').previous, null);
});

test('SIGTERM with open streams: the streams end, serve exits 0', async (t) => {
  const dir = tmp(t);
  await startRunner(t, join(dir, 'web'));
  const { child, url } = await startServe(t, [dir]);
  const curls = [];
  for (let i = 0; i < 3; i++) {
    const c = spawn('curl', ['-sN', `${url}/events`], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.out = () => out;
    c.exited = once(c, 'exit');
    t.after(() => c.kill());
    curls.push(c);
  }
  await until(() => curls.every((c) => c.out().includes('event: ready')), 'three streams open');
  const t0 = Date.now();
  child.kill('SIGTERM');
  const guard = setTimeout(() => child.kill('SIGKILL'), 5000); // a hang guard, not a speed assertion
  const [code, signal] = await child.exited;
  clearTimeout(guard);
  t.diagnostic(`serve exited ${Date.now() - t0} ms after SIGTERM`);
  assert.deepEqual([code, signal], [0, null], child.stderrText());
  for (const c of curls) {
    const [curlCode] = await c.exited;
    assert.equal(curlCode, 0, 'curl saw the stream end cleanly');
  }
});

test('serve: usage errors exit 2, failures to serve 125, each one line', async (t) => {
  const dir = tmp(t);
  mkdirSync(join(dir, 'a'));
  mkdirSync(join(dir, 'b'));
  const runner = compileC('runner');
  const holders = [];
  for (const p of ['a/web', 'b/web']) holders.push(await start(t, runner, [join(dir, p), '60']));
  await until(() => existsSync(join(dir, 'a/web')) && existsSync(join(dir, 'b/web')), 'FIFOs made');

  const cases = [
    [['serve'], /^proc-alive: serve needs at least one target or directory$/],
    [['serve', '--listen'], /^proc-alive: --listen needs a value$/],
    [['serve', '--listen', '8080', 'web'], /^proc-alive: --listen '8080': no host: /],
    [['serve', '--listen', ':8080', 'web'], /^proc-alive: --listen ':8080': no host: /],
    [['serve', '--listen', '127.0.0.1:70000', 'web'], /port 70000 is out of range/],
    [['serve', '--listen', '300.1.1.1:80', 'web'], /'300\.1\.1\.1' is not an IPv4 address/],
    [['serve', '--listen', '[zz]:80', 'web'], /not an address|not an IPv6 address/],
    [['serve', '--listen', 'unix:', 'web'], /no socket path/],
    [['serve', '--bogus', 'web'], /^proc-alive: unknown option '--bogus'$/],
    [['serve', ''], /^proc-alive: empty target/],
    [['serve', join(dir, 'a/web'), join(dir, 'b/web')], new RegExp(`^proc-alive: two targets would be served as 'web': ${dir}/a/web and ${dir}/b/web$`)],
    [['serve', join(dir, 'a'), join(dir, 'b')], /two targets would be served as 'web'/],
    [['serve', join(dir, 'a'), join(dir, 'b/web')], /two targets would be served as 'web'/],
  ];
  for (const [args, line] of cases) {
    const r = cli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.errLines.length, 2, r.stderr);
    assert.match(r.errLines[0], line);
    assert.match(r.errLines[1], /^usage: proc-alive serve \[--listen <address>\] <target or directory>\.\.\.$/);
  }
  // The same target twice is one target, not a clash.
  const same = await startServe(t, [join(dir, 'a/web'), join(dir, 'a')]);
  assert.equal((await get(`${same.url}/healthz/web`)).status, 200);

  // Port in use.
  const blocker = createServer();
  await new Promise((r) => blocker.listen(0, '127.0.0.1', r));
  t.after(() => blocker.close());
  const inUse = cli(['serve', '--listen', `127.0.0.1:${blocker.address().port}`, join(dir, 'a')]);
  assert.equal(inUse.code, 125);
  assert.deepEqual(inUse.errLines, [`proc-alive: cannot serve: cannot listen on 127.0.0.1:${blocker.address().port}: address already in use (EADDRINUSE)`]);
  // An address this machine does not have.
  const notHere = cli(['serve', '--listen', '192.0.2.1:8080', join(dir, 'a')]);
  assert.equal(notHere.code, 125);
  assert.match(notHere.errLines.join('\n'), /^proc-alive: cannot serve: cannot listen on 192\.0\.2\.1:8080: address not available on this machine \(EADDRNOTAVAIL\)$/);
  // An unsafe default directory, for a bare name.
  const unsafe = tmp(t);
  chmodSync(unsafe, 0o777);
  const u = cli(['serve', 'web'], { env: { ...process.env, PROC_ALIVE_DIR: unsafe } });
  assert.equal(u.code, 125);
  assert.equal(u.errLines.length, 1);
  assert.match(u.errLines[0], /^proc-alive: cannot serve: .*default directory is writable by group/);

  assert.match(cli(['--help']).stdout, /serve <target or directory>\.\.\./);
  const help = cli(['serve', '--help']).stdout;
  assert.match(help, /^Exit codes:\n(.*\n)* {2}125 {2}cannot serve/m);
  for (const h of holders) await kill(h);
});

test('--listen unix:PATH: a socket of mode 0600; a stale one is replaced, anything else refused', async (t) => {
  const dir = tmp(t, 0o755);
  const target = join(dir, 'web');
  await startRunner(t, target);
  const sock = join(dir, 'alive.sock');
  const first = await start(t, process.execPath, [BIN, 'serve', '--listen', `unix:${sock}`, target]);
  await until(() => existsSync(sock), 'the socket');
  assert.equal(statSync(sock).mode & 0o777, 0o600);
  await until(async () => (await get('http://localhost/healthz/web', { socketPath: sock }).catch(() => ({}))).status === 200, 'answers on the socket');

  // A second serve on the same socket: in use.
  const busy = cli(['serve', '--listen', `unix:${sock}`, target]);
  assert.equal(busy.code, 125);
  assert.match(busy.errLines[0], /address already in use/);

  // SIGKILLed, it leaves the socket behind: the next serve replaces it.
  await kill(first);
  assert.ok(existsSync(sock));
  const second = await start(t, process.execPath, [BIN, 'serve', '--listen', `unix:${sock}`, target]);
  await until(async () => (await get('http://localhost/healthz/web', { socketPath: sock }).catch(() => ({}))).status === 200, 'the new serve answers');
  assert.equal(statSync(sock).mode & 0o777, 0o600);

  if (process.getuid() === 0) {
    // Another user cannot connect: the mode is what stops them.
    const other = spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--unix-socket', sock, 'http://localhost/healthz/web'], { encoding: 'utf8', timeout: SYNC_GUARD_MS });
    assert.equal(other.stdout, '000', 'nobody got an answer');
  }
  // A clean stop removes the socket.
  await kill(second, 'SIGTERM');
  assert.equal(existsSync(sock), false);

  // A regular file at the path is not ours: refused, left as it was.
  writeFileSync(sock, 'mine');
  const refused = cli(['serve', '--listen', `unix:${sock}`, target]);
  assert.equal(refused.code, 125);
  assert.match(refused.errLines[0], /something that is not a socket is at the path \(ENOTSOCK\)/);
  assert.equal(readFileSync(sock, 'utf8'), 'mine');
});

test('one name in two served directories: the first is served, the other named on stderr, and takes over when the first leaves', async (t) => {
  const dir = tmp(t);
  const [a, b] = [join(dir, 'a'), join(dir, 'b')];
  mkdirSync(a);
  mkdirSync(b);
  const { url, child } = await startServe(t, [a, b]);
  const first = await startRunner(t, join(a, 'web'));
  await until(async () => (await get(`${url}/healthz/web`)).status === 200, 'a/web served');
  await startRunner(t, join(b, 'web'));
  await until(() => child.stderrText().includes('not served'), 'the warning');
  assert.match(child.stderrText(), new RegExp(`proc-alive: not served: ${b}/web has the name of ${a}/web, which is served\\n`));
  assert.equal(parsed((await get(`${url}/healthz/web`, { headers: JSON_ACCEPT })).body, 'watch-event').path, join(a, 'web'));
  await kill(first, 'SIGTERM'); // a/web leaves its directory
  await until(async () => parsed((await get(`${url}/healthz/web`, { headers: JSON_ACCEPT })).body, 'watch-event').path === join(b, 'web'), 'b/web takes the name');
  assert.equal((await get(`${url}/healthz/web`)).status, 200);
});

test('a target given alone and inside a served directory, spelt otherwise: served once, under its own name, with no warning', async (t) => {
  const dir = tmp(t);
  const sd = join(dir, 'sd');
  mkdirSync(sd);
  const runner = await startRunner(t, join(sd, 'x0'));
  await startRunner(t, join(sd, 'x1'));
  // `sd/x0` relative to serve's directory, `sd` absolute: one file, two spellings.
  const { url, child } = await startServe(t, ['sd/x0', sd], { cwd: dir });
  await until(async () => (await get(`${url}/healthz`)).status === 200, 'both alive');
  const items = statusItems((await get(`${url}/status`)).body);
  assert.deepEqual(items.map((s) => s.target).sort(), ['x0', 'x1']);
  await kill(runner);
  await until(async () => (await get(`${url}/healthz/x0`)).status === 503, 'x0 dead');
  assert.equal(parsed((await get(`${url}/healthz/x0`, { headers: JSON_ACCEPT })).body, 'watch-event').state, 'dead');
  assert.doesNotMatch(child.stderrText(), /not served|two targets/, child.stderrText());
});
