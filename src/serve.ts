// `serve`: the served set behind an HTTP server of its own, with every limit a server exposed to
// strangers needs (header size and count, timeouts, connections), on loopback unless told otherwise.

import { lstatSync, chmodSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, isIP, type Socket } from 'node:net';
import { ProcAliveError } from './errors.js';
import { invalidArgument, type OptionKind } from './arguments.js';
import { checkServeHandlerOptions, createServeHandler, SERVE_HANDLER_OPTIONS, type ServeHandler, type ServeHandlerOptions } from './serve-handler.js';
import { escapeText } from './text.js';

/**
 * The port `serve` listens on by default, on 127.0.0.1. Outside the range Prometheus keeps for exporters
 * (9100–9999, all allocated), outside Linux's ephemeral ports (32768–60999), and no well-known service's.
 */
export const DEFAULT_SERVE_PORT = 19171;
export const DEFAULT_LISTEN = `127.0.0.1:${DEFAULT_SERVE_PORT}`;

/** Where to listen: a host and port, or a unix socket path. */
export type ListenAddress = { host: string; port: number } | { path: string };

/**
 * Parses `HOST:PORT` (`127.0.0.1:19171`, `[::1]:19171`, `0.0.0.0:80`, `localhost:0`) or `unix:PATH`.
 * Throws ProcAliveError `EINVAL` with what is wrong.
 */
export function parseListen(text: string): ListenAddress {
  if (typeof text !== 'string') throw invalidArgument('listen', "a string such as '127.0.0.1:19171' or 'unix:/run/alive.sock'", text);
  const bad = (why: string): ProcAliveError =>
    new ProcAliveError('EINVAL', `--listen '${escapeText(text)}': ${why} (give HOST:PORT, such as 127.0.0.1:${DEFAULT_SERVE_PORT} or [::1]:${DEFAULT_SERVE_PORT}, or unix:PATH)`);
  if (text.startsWith('unix:')) {
    const path = text.slice('unix:'.length);
    if (path === '') throw bad('no socket path');
    if (path.includes('\0')) throw bad('a path cannot contain a NUL byte');
    return { path };
  }
  const m = /^(?:\[([0-9a-fA-F:.]+(?:%[\w.-]+)?)\]|([^:[\]\s/]+)):(\d{1,5})$/.exec(text);
  if (m === null) {
    if (/^:?\d+$/.test(text)) throw bad('no host: say which address, 127.0.0.1 for this machine only or 0.0.0.0 for every interface');
    throw bad('not an address');
  }
  const host = m[1] ?? (m[2] as string);
  if (m[1] !== undefined && isIP(m[1].replace(/%.*$/, '')) !== 6) throw bad(`'${m[1]}' is not an IPv6 address`);
  if (m[2] !== undefined && /^[\d.]+$/.test(host) && isIP(host) !== 4) throw bad(`'${host}' is not an IPv4 address`);
  const port = Number(m[3]);
  if (port > 65535) throw bad(`port ${port} is out of range (0 to 65535)`);
  return { host, port };
}

export interface ServeOptions extends ServeHandlerOptions {
  /** `HOST:PORT` or `unix:PATH` (see {@link parseListen}), or an address. Default `127.0.0.1:19171`. */
  listen?: string | ListenAddress;
  /** Connections open at once; more are closed as they come. Default 1,024. */
  maxConnections?: number;
  /** Time for a client to send a request's headers, from its first byte or from connecting. Default 10 s. */
  headersTimeoutMs?: number;
  /** Time for a whole request. Default 15 s. */
  requestTimeoutMs?: number;
  /** How long an idle keep-alive connection is kept. Default 5 s. */
  keepAliveTimeoutMs?: number;
  /**
   * A connection on which nothing moves for this long is closed: one that never sends a byte, a reader
   * that stopped reading an answer (event streams excepted: they have their own bound). Default 10 s.
   */
  idleTimeoutMs?: number;
}

export interface ServeServer {
  /** `http://127.0.0.1:19171`, `http://[::1]:8080`, or `unix:/run/alive.sock`: the real port when 0 was asked. */
  readonly url: string;
  readonly server: Server;
  readonly handler: ServeHandler;
  /** Stops accepting, ends event streams, lets answers in progress finish (at most `graceMs`), stops watching. */
  close(graceMs?: number): Promise<void>;
}

/** The limits: a request line and headers together at most this big (Node answers 431 past it). */
const MAX_HEADER_BYTES = 8 * 1024;
const MAX_HEADERS = 64;

const SERVE_OPTIONS: { [K in keyof ServeOptions]-?: OptionKind } = {
  ...SERVE_HANDLER_OPTIONS,
  listen: (v, what) => {
    if (typeof v === 'string') return;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalidArgument(what, "a string such as '127.0.0.1:19171', or an address", v);
  },
  maxConnections: 'nonNegative',
  headersTimeoutMs: 'nonNegative',
  requestTimeoutMs: 'nonNegative',
  keepAliveTimeoutMs: 'nonNegative',
  idleTimeoutMs: 'nonNegative',
};

/**
 * Starts watching the targets and serving them over HTTP. Rejects with a ProcAliveError: `EADDRINUSE`,
 * `EACCES`, `EADDRNOTAVAIL`, `ENOTSOCK` (a unix socket path that names something else), or what
 * watching the targets throws (`EDUPNAME` for two targets with one name, `EUNSAFEDIR`, `EINVAL`).
 */
export async function serve(options: ServeOptions): Promise<ServeServer> {
  checkServeHandlerOptions(options, SERVE_OPTIONS);
  const address = typeof options.listen === 'object' ? options.listen : parseListen(options.listen ?? DEFAULT_LISTEN);
  const handler = createServeHandler(options);
  const server = createServer({
    maxHeaderSize: MAX_HEADER_BYTES,
    // How often the request and headers timeouts are enforced (Node's default is 30 s).
    connectionsCheckingInterval: 1_000,
    // Answers are small and complete when written: no need to wait for more to send.
    noDelay: true,
  });
  // Set as properties: Node 20's createServer() does not take keepAliveTimeout as an option.
  server.requestTimeout = options.requestTimeoutMs ?? 15_000;
  server.headersTimeout = options.headersTimeoutMs ?? 10_000;
  server.keepAliveTimeout = options.keepAliveTimeoutMs ?? 5_000;
  server.maxHeadersCount = MAX_HEADERS;
  server.maxConnections = options.maxConnections ?? 1024;
  // Also what cuts a connection that never sends a byte: Node's headers timeout starts with the first.
  server.timeout = options.idleTimeoutMs ?? 10_000;
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    // A probe has no body; one that comes with a body is refused, and the connection closed, rather
    // than read to its end.
    if (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') {
      refuse(res, 413, 'a request to serve has no body\n');
      return;
    }
    if (req.headers['transfer-encoding'] !== undefined) {
      refuse(res, 413, 'a request to serve has no body\n');
      return;
    }
    handler(req, res);
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // Malformed or oversized requests, and timeouts: one short answer when the socket can still take it.
    if (socket.writable && (err.code !== 'ECONNRESET' || socket.bytesWritten === 0)) {
      const status =
        err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    }
    socket.destroy();
  });
  server.on('timeout', (socket: Socket) => socket.destroy());

  try {
    await listen(server, address);
  } catch (err) {
    await handler.close();
    throw err;
  }
  const url = urlOf(server, address);
  let closing: Promise<void> | null = null;
  return {
    url,
    server,
    handler,
    close(graceMs = 500) {
      closing ??= new Promise<void>((resolve) => {
        // Resolved once the server is closed and the watcher has let go of every fd and watch.
        const watching = handler.close();
        server.close(() => void watching.then(resolve, resolve));
        server.closeIdleConnections();
        const force = setTimeout(() => server.closeAllConnections(), graceMs);
        force.unref();
        server.once('close', () => clearTimeout(force));
      });
      return closing;
    },
  };
}

function refuse(res: ServerResponse, code: number, body: string): void {
  res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
  res.end(body);
}

function urlOf(server: Server, address: ListenAddress): string {
  if ('path' in address) return `unix:${address.path}`;
  const a = server.address();
  if (a === null || typeof a === 'string') return `unix:${String(a)}`;
  return a.family === 'IPv6' ? `http://[${a.address}]:${a.port}` : `http://${a.address}:${a.port}`;
}

async function listen(server: Server, address: ListenAddress): Promise<void> {
  if ('path' in address) {
    await clearStaleSocket(address.path);
    // Made 0600 from the start: a umask that lets no one else in while bind(2) creates it.
    let previous: number | undefined;
    try {
      previous = process.umask(0o177);
    } catch {
      // Worker threads cannot change the umask: the chmod below narrows it right after.
    }
    try {
      await listenOnce(server, { path: address.path }, `unix:${address.path}`);
    } finally {
      if (previous !== undefined) process.umask(previous);
    }
    try {
      chmodSync(address.path, 0o600);
    } catch (err) {
      server.close();
      throw failure(err, `unix:${address.path}`, 'cannot set the mode of');
    }
    return;
  }
  await listenOnce(server, { host: address.host, port: address.port }, `${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`);
}

function listenOnce(server: Server, options: { path: string } | { host: string; port: number }, shown: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      server.removeListener('listening', onListening);
      reject(failure(err, shown, 'cannot listen on'));
    };
    const onListening = (): void => {
      server.removeListener('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ ...options, exclusive: true });
  });
}

const REASONS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied',
  EADDRNOTAVAIL: 'address not available on this machine',
  ENOTFOUND: 'no such host',
  EAI_AGAIN: 'host name lookup failed',
  ENOENT: 'no such directory',
  ENOTSOCK: 'something that is not a socket is at the path',
};

function failure(err: unknown, shown: string, doing: string): ProcAliveError {
  const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
  const reason = REASONS[code] ?? (err instanceof Error ? err.message : String(err));
  return new ProcAliveError(code, `${doing} ${escapeText(shown)}: ${reason} (${code})`, { cause: err });
}

/**
 * A unix socket left by a serve that was killed is removed, once a connection to it is refused; a
 * socket something listens on is in use; anything else at the path is not ours to remove.
 */
async function clearStaleSocket(path: string): Promise<void> {
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (st === undefined) return;
  if (!st.isSocket()) throw failure(Object.assign(new Error('not a socket'), { code: 'ENOTSOCK' }), `unix:${path}`, 'cannot listen on');
  const live = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (live) throw failure(Object.assign(new Error('in use'), { code: 'EADDRINUSE' }), `unix:${path}`, 'cannot listen on');
  try {
    unlinkSync(path);
  } catch (err) {
    throw failure(err, `unix:${path}`, 'cannot remove the stale socket');
  }
}
