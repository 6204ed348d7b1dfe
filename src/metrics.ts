// The served targets as Prometheus metrics: the text exposition format 0.0.4 and OpenMetrics 1.0.0,
// rendered straight from the served set (each target's label value is escaped once, when it is first
// served, and kept apart only where escaping changed it).

import { promises as fsp, readdirSync, readFileSync } from 'node:fs';
import type { ServedSet, Slot } from './served.js';

export type MetricsFormat = 'prometheus' | 'openmetrics';

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

/** The format a scraper asks for in its Accept header: OpenMetrics if it names it, else the text format. */
export function negotiateMetricsFormat(accept: string | undefined): MetricsFormat {
  if (accept === undefined) return 'prometheus';
  for (const part of accept.split(',')) {
    const [type = '', ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    if (type !== 'application/openmetrics-text') continue;
    const q = params.find((p) => p.startsWith('q='));
    if (q === undefined || Number(q.slice(2)) > 0) return 'openmetrics';
  }
  return 'prometheus';
}

export function metricsContentType(format: MetricsFormat): string {
  return format === 'openmetrics' ? OPENMETRICS_CONTENT_TYPE : PROMETHEUS_CONTENT_TYPE;
}

/** One sample: its labels (values as they are to be shown, already escaped for display) and its value. */
export interface MetricSample {
  labels: Record<string, string>;
  value: number;
}

/** A metric family in a neutral form, for an application that exports through its own registry. */
export interface MetricFamily {
  /** The family's name; a counter's samples are named `<name>_total`... as `name` already says. */
  name: string;
  help: string;
  type: 'gauge' | 'counter';
  samples: MetricSample[];
}

const STATES = ['alive', 'dead', 'absent', 'unknown'] as const;

const HELP = {
  up: 'Whether the target is alive: 1 while a process holds its FIFO, 0 when dead, absent or unknown.',
  state: 'The state of the target, one-hot: alive, dead (FIFO without reader: crashed or killed), absent (no FIFO), unknown (cannot tell).',
  deaths: 'Transitions from alive to dead seen since serve started (a clean stop, which removes the FIFO, is not one).',
  change: 'When the target last changed state, or when serve first saw it, in seconds since the epoch.',
  started: 'When the holder of an alive target started holding it, from its holder record, in seconds since the epoch.',
  streams: 'Clients connected to /events.',
  dropped: 'Clients of /events dropped because they did not read what was sent to them.',
};

/** What the handler adds about itself. */
export interface ServeCounters {
  streams: number;
  dropped: number;
}

/** Seconds with milliseconds, as the formats write them. */
const seconds = (ms: number): string => String(Math.round(ms) / 1000);

/**
 * The metrics of the served targets (and of the handler, and, with `process`, of this process) in
 * `format`. OpenMetrics output ends with `# EOF`; pass `eof: false` to append it to other families.
 */
export function renderMetrics(
  served: ServedSet,
  format: MetricsFormat,
  options: { counters?: ServeCounters; process?: boolean; eof?: boolean } = {},
): string {
  const om = format === 'openmetrics';
  const slots = served.sorted();
  let out = '';
  const family = (name: string, type: 'gauge' | 'counter', help: string, unit?: string): void => {
    // The text format names a counter's family with its _total; OpenMetrics names it without.
    const familyName = om && type === 'counter' ? name.slice(0, -'_total'.length) : name;
    out += `# HELP ${familyName} ${help}\n# TYPE ${familyName} ${type}\n`;
    if (om && unit !== undefined) out += `# UNIT ${familyName} ${unit}\n`;
  };

  family('proc_alive_up', 'gauge', HELP.up);
  for (const s of slots) out += `proc_alive_up{target="${s.labelValue}"} ${s.state === 'alive' ? 1 : 0}\n`;

  family('proc_alive_state', 'gauge', HELP.state);
  for (const s of slots) {
    for (const state of STATES) out += `proc_alive_state{target="${s.labelValue}",state="${state}"} ${s.state === state ? 1 : 0}\n`;
  }

  family('proc_alive_deaths_total', 'counter', HELP.deaths);
  for (const s of slots) out += `proc_alive_deaths_total{target="${s.labelValue}"} ${s.deaths}\n`;

  family('proc_alive_last_change_timestamp_seconds', 'gauge', HELP.change, 'seconds');
  for (const s of slots) if (s.time > 0) out += `proc_alive_last_change_timestamp_seconds{target="${s.labelValue}"} ${seconds(s.time)}\n`;

  family('proc_alive_holder_start_time_seconds', 'gauge', HELP.started, 'seconds');
  for (const s of slots) {
    const started = holderStart(s);
    if (started !== undefined) out += `proc_alive_holder_start_time_seconds{target="${s.labelValue}"} ${seconds(started)}\n`;
  }

  if (options.counters !== undefined) {
    family('proc_alive_serve_streams', 'gauge', HELP.streams);
    out += `proc_alive_serve_streams ${options.counters.streams}\n`;
    family('proc_alive_serve_dropped_streams_total', 'counter', HELP.dropped);
    out += `proc_alive_serve_dropped_streams_total ${options.counters.dropped}\n`;
  }

  if (options.process === true) {
    for (const f of processFamilies()) {
      family(f.name, f.type, f.help, f.unit);
      out += `${f.name} ${f.value}\n`;
    }
  }
  if (om && options.eof !== false) out += '# EOF\n';
  return out;
}

/** The holder's start time (ms) of an alive target whose record describes a live holder. */
function holderStart(s: Slot): number | undefined {
  if (s.state !== 'alive' || s.holder === null || s.stale) return undefined;
  const started = Date.parse(s.holder.started);
  return Number.isFinite(started) ? started : undefined;
}

/** The same families as {@link renderMetrics}, as values (labels shown as in the text). */
export function metricFamilies(served: ServedSet): MetricFamily[] {
  const slots = served.sorted();
  const target = (s: Slot): string => displayName(s);
  const up: MetricSample[] = [];
  const state: MetricSample[] = [];
  const deaths: MetricSample[] = [];
  const change: MetricSample[] = [];
  const started: MetricSample[] = [];
  for (const s of slots) {
    const name = target(s);
    up.push({ labels: { target: name }, value: s.state === 'alive' ? 1 : 0 });
    for (const st of STATES) state.push({ labels: { target: name, state: st }, value: s.state === st ? 1 : 0 });
    deaths.push({ labels: { target: name }, value: s.deaths });
    if (s.time > 0) change.push({ labels: { target: name }, value: Math.round(s.time) / 1000 });
    const h = holderStart(s);
    if (h !== undefined) started.push({ labels: { target: name }, value: h / 1000 });
  }
  return [
    { name: 'proc_alive_up', help: HELP.up, type: 'gauge', samples: up },
    { name: 'proc_alive_state', help: HELP.state, type: 'gauge', samples: state },
    { name: 'proc_alive_deaths_total', help: HELP.deaths, type: 'counter', samples: deaths },
    { name: 'proc_alive_last_change_timestamp_seconds', help: HELP.change, type: 'gauge', samples: change },
    { name: 'proc_alive_holder_start_time_seconds', help: HELP.started, type: 'gauge', samples: started },
  ];
}

/** A name as shown in a label: the label's text before the format's own escaping. */
function displayName(s: Slot): string {
  return s.labelValue.replace(/\\(["\\])/g, '$1');
}

interface ProcessFamily {
  name: string;
  type: 'gauge' | 'counter';
  help: string;
  unit?: string;
  value: number;
}

/**
 * Open fds, from /proc/self/fd. serve holds a write end per alive target, and listing 10,000 fds takes
 * ~10 ms: the count is read at the first scrape, then refreshed off the event loop at most every 5 s.
 */
const fds = { value: -1, at: 0, reading: false };
function openFds(): number {
  const t = Date.now();
  if (fds.value < 0) {
    fds.value = readdirSync('/proc/self/fd').length;
    fds.at = t;
  } else if (t - fds.at > 5000 && !fds.reading) {
    fds.reading = true;
    fsp.readdir('/proc/self/fd').then(
      (names) => {
        fds.value = names.length;
        fds.at = Date.now();
        fds.reading = false;
      },
      () => (fds.reading = false),
    );
  }
  return fds.value;
}

/** The standard process_* metrics (as the Go and Node clients name them) of this process. */
function processFamilies(): ProcessFamily[] {
  const cpu = process.cpuUsage();
  const out: ProcessFamily[] = [
    { name: 'process_cpu_seconds_total', type: 'counter', help: 'Total user and system CPU time spent in seconds.', unit: 'seconds', value: (cpu.user + cpu.system) / 1e6 },
    { name: 'process_resident_memory_bytes', type: 'gauge', help: 'Resident memory size in bytes.', unit: 'bytes', value: process.memoryUsage.rss() },
    { name: 'process_start_time_seconds', type: 'gauge', help: 'Start time of the process since unix epoch in seconds.', unit: 'seconds', value: Math.round(performance.timeOrigin) / 1000 },
    { name: 'nodejs_heap_size_used_bytes', type: 'gauge', help: 'Process heap size used from Node.js in bytes.', unit: 'bytes', value: process.memoryUsage().heapUsed },
  ];
  try {
    out.push({ name: 'process_open_fds', type: 'gauge', help: 'Number of open file descriptors.', value: openFds() });
    const limit = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (limit?.[1] !== undefined) out.push({ name: 'process_max_fds', type: 'gauge', help: 'Maximum number of open file descriptors.', value: Number(limit[1]) });
  } catch {
    // Not Linux: no /proc.
  }
  return out;
}
