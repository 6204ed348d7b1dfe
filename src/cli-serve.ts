// `proc-alive serve`: parses its arguments, starts the server, maps outcomes to exit codes.

import { UsageError, type Parsed } from './cli-commands.js';
import { ProcAliveError } from './errors.js';
import type { ServeServer } from './serve.js';

/** `serve` could not start: cannot listen (address in use, permission denied), unsafe directory, ... */
export const EXIT_SERVE_FAILED = 125;

/** What cli.ts lends: its one-line error output. */
export interface CliTools {
  say(line: string): void;
}

/** `serve`, its arguments parsed by its table (cli-commands.ts). */
export async function runServe({ values, operands }: Parsed, { say }: CliTools): Promise<number> {
  if (operands.length === 0) throw new UsageError('serve needs at least one target or directory');
  if (operands.includes('')) throw new UsageError('empty target: give a path or a name');
  const { serve, parseListen, DEFAULT_LISTEN } = await import('./serve.js');
  const { escapeText } = await import('./text.js');
  let listen;
  try {
    listen = parseListen(values.get('--listen') ?? DEFAULT_LISTEN);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  // Signals are taken from the start: a SIGTERM while starting stops serve once it has started.
  let stopRequested = false;
  let stop = (): void => {
    stopRequested = true;
  };
  const onSignal = (): void => stop();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const done = (): void => {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  };
  let server: ServeServer;
  try {
    server = await serve({ targets: operands, listen, onWarning: (message) => say(message) });
  } catch (err) {
    done();
    if (err instanceof ProcAliveError && (err.code === 'EDUPNAME' || (err.code === 'EINVAL' && err.path === undefined))) {
      throw new UsageError(err.message);
    }
    say(`cannot serve: ${escapeText(err instanceof Error ? err.message : String(err))}`);
    return EXIT_SERVE_FAILED;
  }
  const count = server.handler.names().length;
  say(`serving ${count} target${count === 1 ? '' : 's'} at ${server.url} (/healthz, /metrics, /status, /events)`);
  return new Promise<number>((resolve) => {
    stop = (): void => {
      done();
      void server.close().then(() => resolve(0));
    };
    if (stopRequested) stop();
  });
}
