// A watching process for the chaos soak (scripts/chaos.js): watches its targets and reports every event
// as a JSON line on stdout; takes commands as lines on stdin. It survives its own uncaught exceptions
// (a handler, as an application would have), and can be told to use up its fds or inotify watches.
//
//   node scripts/chaos-watcher.js INDEX_URL TARGET...
//
// Commands: `throw` (an uncaught exception, handled), `wait ID up|down TARGET` (a wait, reported when it
// settles), `fill` / `free` (open /dev/null until EMFILE, then close them all), `hog N` / `unhog` (take
// N inotify watches in an instance of our own, then close it).

import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const [index, ...targets] = process.argv.slice(2);
const { watch, waitAlive, waitDead } = await import(index);
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

process.on('uncaughtException', (e) => out({ t: 'handled', message: e.message }));
// A driver that is gone (killed) leaves no one to read or command: end, rather than spin on EPIPE (the
// handler above would report each one to the same closed pipe).
process.stdout.on('error', () => process.exit(0));

const w = watch(targets);
w.on('change', (e) => out({ t: 'e', target: e.target, state: e.state, code: e.code }));
w.on('error', (e) => out({ t: 'error', code: e.code, message: e.message }));
w.on('ready', () => out({ t: 'ready' }));

const filler = [];
let hog = null;
const commands = createInterface({ input: process.stdin });
commands.on('close', () => process.exit(0));
commands.on('line', (line) => {
  const [command, ...args] = line.split(' ');
  if (command === 'throw') {
    setTimeout(() => {
      throw new Error('chaos');
    }, 0);
  } else if (command === 'wait') {
    const [id, goal, target] = args;
    (goal === 'up' ? waitAlive : waitDead)(target, { timeout: 60_000 }).then(
      () => out({ t: 'w', id, ok: true }),
      (e) => out({ t: 'w', id, ok: false, code: e.code, message: e.message }),
    );
  } else if (command === 'fill') {
    for (;;) {
      try {
        filler.push(openSync('/dev/null', 'r'));
      } catch {
        break;
      }
    }
    out({ t: 'filled', n: filler.length });
  } else if (command === 'free') {
    for (const fd of filler.splice(0)) closeSync(fd);
    out({ t: 'freed' });
  } else if (command === 'hog') {
    const koffi = createRequire(index)('koffi');
    const libc = koffi.load('libc.so.6');
    const init = libc.func('int inotify_init1(int)');
    const add = libc.func('int inotify_add_watch(int, const char *, uint32_t)');
    hog = { fd: init(0o2000000), close: libc.func('int close(int)') };
    const dir = join(process.env.PROC_ALIVE_CHAOS_BASE ?? tmpdir(), `hog-${process.pid}`);
    let n = 0;
    for (let i = 0; i < Number(args[0]); i++) {
      mkdirSync(join(dir, String(i)), { recursive: true });
      if (add(hog.fd, join(dir, String(i)), 0x100) >= 0) n++;
    }
    out({ t: 'hogged', n });
  } else if (command === 'unhog') {
    if (hog !== null) hog.close(hog.fd);
    hog = null;
    out({ t: 'unhogged' });
  }
});
