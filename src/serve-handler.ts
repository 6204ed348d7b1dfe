// The HTTP side of `serve`, as a request handler that node:http, Express or Fastify can mount:
//   GET|HEAD /healthz/<name>   200 while alive; 503 dead, absent, unknown; 404 not served
//   GET|HEAD /healthz          200 while every served target is alive
//   GET|HEAD /metrics          Prometheus text format, or OpenMetrics when asked for
//   GET|HEAD /status           every served target's status, one JSON array
//   GET      /events           Server-Sent Events
// A name in a URL is percent-decoded once and looked up in the served set; it is never made into a path.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { checkOptions, invalidArgument, targetsArgument, type OptionKind } from './arguments.js';
import { EventStream, type EventStreamOptions } from './event-stream.js';
import { metricFamilies, metricsContentType, negotiateMetricsFormat, renderMetrics, type MetricFamily, type MetricsFormat } from './metrics.js';
import { ServedSet, type ServedState, type Slot } from './served.js';
import type { Status } from './status.js';
import { decodeName, escapeText, jsonLine } from './text.js';

export interface ServeHandlerOptions extends EventStreamOptions {
  /** Targets, and directories whose targets are served as they come and go (as `watch()` takes them). */
  targets: string[];
  /**
   * The path the handler answers under, such as `/alive` (`/alive/healthz/web`). Requests outside it go
   * to `next` when there is one, else get 404. Leave it out under Express's `app.use('/alive', handler)`,
   * which strips the prefix itself.
   */
  prefix?: string;
  /** Add this process's own metrics (process_cpu_seconds_total, ...) to /metrics. Default true. */
  processMetrics?: boolean;
  /** Do not keep the process alive for the watching (the server, if any, still does). Default false. */
  unref?: boolean;
  /** Told of what does not stop serving: a name claimed by two targets, a directory that cannot be listed. */
  onWarning?: (message: string) => void;
}

/** A request handler with the served set behind it. */
export interface ServeHandler {
  (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void;
  /** The served targets' metrics, for an application that exports its own (no process metrics, no `# EOF`). */
  collect(format?: MetricsFormat): string;
  /** The same, as values: for prom-client collectors or another registry. */
  metrics(): MetricFamily[];
  /** The state of the target served as `name`, or undefined if none is. */
  state(name: string): ServedState | undefined;
  /** The served names, sorted. */
  names(): string[];
  /** Ends every event stream and stops watching. Requests after it get 503. */
  close(): Promise<void>;
}

const TEXT = 'text/plain; charset=utf-8';
const JSON_TYPE = 'application/json; charset=utf-8';
const ALLOW = 'GET, HEAD';
/** How many names a /healthz text body lists among those not alive (a JSON body: 100). */
const LISTED = 10;

/**
 * A handler for `options.targets`: it starts watching them at once (see {@link ServeHandler.close}).
 * Unknown paths go to `next` when given (Express, Connect), else get 404.
 */
export function createServeHandler(options: ServeHandlerOptions): ServeHandler {
  checkServeHandlerOptions(options);
  const prefix = normalizePrefix(options.prefix);
  const served = new ServedSet(options.targets, {
    ...(options.unref === true ? { unref: true } : {}),
    ...(options.onWarning === undefined ? {} : { onWarning: options.onWarning }),
  });
  const stream = new EventStream(options);
  served.onChange((slot) => stream.publish(slot));
  const processMetrics = options.processMetrics !== false;
  let closed = false;

  const handler = ((req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void => {
    const path = routePath(req.url ?? '', prefix);
    if (path === null) {
      if (next !== undefined) next();
      else send(res, req, 404, TEXT, 'not found\n');
      return;
    }
    const route = path === '/healthz' || path.startsWith('/healthz/') || path === '/metrics' || path === '/status' || path === '/events';
    if (!route) {
      if (next !== undefined) next();
      else send(res, req, 404, TEXT, 'not found\n');
      return;
    }
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      send(res, req, 405, TEXT, 'method not allowed: use GET or HEAD\n', { allow: ALLOW });
      return;
    }
    if (closed) {
      send(res, req, 503, TEXT, 'closing\n', { 'retry-after': '1' });
      return;
    }
    const json = wantsJson(req.headers.accept);
    if (path.startsWith('/healthz/')) {
      const name = decodeSegment(path.slice('/healthz/'.length));
      if (name === null) {
        send(res, req, 400, TEXT, 'bad request: malformed percent-encoding\n');
        return;
      }
      const slot = served.get(name);
      if (slot === undefined) {
        if (json) send(res, req, 404, JSON_TYPE, `${jsonLine({ target: name, code: 'ENOENT', reason: 'not served' })}\n`);
        else send(res, req, 404, TEXT, `not served: ${escapeText(name)}\n`);
        return;
      }
      const code = slot.state === 'alive' ? 200 : 503;
      if (json) send(res, req, code, JSON_TYPE, `${jsonLine(slot.toJSON())}\n`);
      else send(res, req, code, TEXT, `${textLine(slot)}\n`);
      return;
    }
    switch (path) {
      case '/healthz':
        overall(req, res, json);
        return;
      case '/metrics': {
        const format = negotiateMetricsFormat(req.headers.accept);
        const counters = { streams: stream.clients, dropped: stream.dropped };
        send(res, req, 200, metricsContentType(format), renderMetrics(served, format, { counters, process: processMetrics }));
        return;
      }
      case '/status':
        send(res, req, 200, JSON_TYPE, `${jsonLine(served.sorted().map(statusOf))}\n`);
        return;
      case '/events':
        stream.open(req, res, () => served.sorted(), head);
        return;
    }
  }) as ServeHandler;

  const overall = (req: IncomingMessage, res: ServerResponse, json: boolean): void => {
    const slots = served.sorted();
    const counts = { alive: 0, dead: 0, absent: 0, unknown: 0 };
    const notAlive: Slot[] = [];
    for (const s of slots) {
      counts[s.state]++;
      if (s.state !== 'alive' && notAlive.length < (json ? 100 : LISTED)) notAlive.push(s);
    }
    const dirErrors = served.directoryErrors;
    const ok = slots.length > 0 && counts.alive === slots.length && dirErrors.length === 0;
    const code = ok ? 200 : 503;
    if (json) {
      const body = { ok, targets: slots.length, ...counts, notAlive: notAlive.map((s) => s.toJSON()), directoryErrors: dirErrors };
      send(res, req, code, JSON_TYPE, `${jsonLine(body)}\n`);
      return;
    }
    let line: string;
    if (slots.length === 0) line = 'no targets served';
    else if (ok) line = `all ${slots.length} alive`;
    else {
      const more = slots.length - counts.alive - notAlive.length;
      const listed = notAlive.map((s) => `${escapeText(s.name)} ${s.state}`).join(', ');
      line = `${counts.alive} of ${slots.length} alive${listed === '' ? '' : `; not alive: ${listed}${more > 0 ? `, and ${more} more` : ''}`}`;
    }
    if (dirErrors.length > 0) line += `; cannot follow ${dirErrors.join(', ')}`;
    send(res, req, code, TEXT, `${line}\n`);
  };

  handler.collect = (format: MetricsFormat = 'prometheus') => renderMetrics(served, format, { eof: false });
  handler.metrics = () => metricFamilies(served);
  handler.state = (name: string) => served.get(name)?.toJSON();
  handler.names = () => served.sorted().map((s) => s.name);
  handler.close = async () => {
    closed = true;
    stream.close();
    await served.close();
  };
  return handler;
}

/** `status --json`'s object for a served target, from memory. */
function statusOf(s: Slot): Status & { time: number; code?: string; reason?: string } {
  const stale = s.holder !== null && (s.state !== 'alive' || s.stale);
  const out: Status & { time: number; code?: string; reason?: string } = {
    target: s.name,
    path: s.path,
    // `unknown` is not a Status state; status --json reports it the same way.
    state: s.state as Status['state'],
    holder: s.holder,
    stale,
    // When the watcher saw this state (status --json: when it looked).
    time: s.time,
  };
  if (s.code !== undefined) out.code = s.code;
  if (s.reason !== undefined) out.reason = s.reason;
  return out;
}

/** `web: alive`, `web: unknown (reason)`: one line, every part escaped. */
function textLine(s: Slot): string {
  const why = s.reason === undefined ? '' : ` (${escapeText(s.reason)})`;
  return `${escapeText(s.name)}: ${s.state}${why}`;
}

function wantsJson(accept: string | undefined): boolean {
  return accept !== undefined && /\bapplication\/json\b/i.test(accept);
}

function send(res: ServerResponse, req: IncomingMessage, code: number, type: string, body: string, extra: Record<string, string> = {}): void {
  res.writeHead(code, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...extra,
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function normalizePrefix(prefix: string | undefined): string {
  if (prefix === undefined || prefix === '' || prefix === '/') return '';
  const p = prefix.startsWith('/') ? prefix : `/${prefix}`;
  return p.endsWith('/') ? p.slice(0, -1) : p;
}

/**
 * The request's path below `prefix`, still percent-encoded, without query; null if it is outside the
 * prefix. An absolute-form target (`GET http://host/metrics`, as proxies send) counts by its path.
 */
export function routePath(url: string, prefix: string): string | null {
  let path = url;
  if (!path.startsWith('/')) {
    const m = /^https?:\/\/[^/?#]*/i.exec(path);
    if (m === null) return null;
    path = path.slice(m[0].length) || '/';
  }
  const end = path.search(/[?#]/);
  if (end >= 0) path = path.slice(0, end);
  if (prefix === '') return path;
  if (path === prefix) return '/';
  return path.startsWith(`${prefix}/`) ? path.slice(prefix.length) : null;
}

/**
 * A path segment percent-decoded once, into the name it stands for: its bytes, as a file name's bytes
 * are read (text.ts: bytes that are not UTF-8 round-trip). Null if an escape is malformed.
 */
export function decodeSegment(segment: string): string | null {
  if (!segment.includes('%')) return segment;
  const bytes: number[] = [];
  for (let i = 0; i < segment.length; i++) {
    const c = segment.charCodeAt(i);
    if (c === 0x25) {
      const hex = segment.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return null;
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else if (c < 0x80) {
      bytes.push(c);
    } else {
      // Node's parser refuses raw bytes above 0x7f in a request line; a caller's own URL may have them.
      for (const b of Buffer.from(segment[i] as string, 'utf8')) bytes.push(b);
    }
  }
  return decodeName(Buffer.from(bytes));
}

/** The kinds of the handler's options (serve's add theirs), for checkOptions. */
export const SERVE_HANDLER_OPTIONS: { [K in keyof ServeHandlerOptions]-?: OptionKind } = {
  targets: (v, what) => void targetsArgument(v, what),
  prefix: 'string',
  processMetrics: 'boolean',
  unref: 'boolean',
  onWarning: 'function',
  heartbeatMs: 'nonNegative',
  maxBufferBytes: 'nonNegative',
  historySize: 'nonNegative',
  maxStreams: 'nonNegative',
};

/** Refuses options of the wrong type, and none at all: `targets` is required. */
export function checkServeHandlerOptions(options: unknown, spec: Record<string, OptionKind> = SERVE_HANDLER_OPTIONS): void {
  const checked = checkOptions(options as Record<string, unknown> | undefined, spec);
  if (checked['targets'] === undefined) throw invalidArgument('options.targets', 'an array of targets', undefined);
}
