// proc-alive: is that process alive right now? Importing this module does nothing by itself: no
// signal handler, no exit hook, no timer, no FFI load.

export { check, checkSync, isAlive, isAliveSync, type State } from './check.js';
export { hold, type Holder, type HoldOptions, type HolderEvents, type HolderIncident } from './hold.js';
export { wrap, WRAP_FDS, FORWARDED_SIGNALS, type Wrapped, type WrapOptions, type WrapExit, type WrapStdio } from './wrap.js';
export { status, statusSync, listTargetsIn, type Status, type HolderRecord } from './status.js';
export { waitAlive, waitDead, type WaitOptions, type Pending, type WaitTimeoutError } from './wait.js';
export { watch, Watcher, type WatchEvent, type WatchOptions, type WatchState, type WatcherEvents, type Mechanism } from './watch.js';
export { defaultDir, targetPath } from './target.js';
export { preload } from './preload.js';
export { sdNotify, notifyFd } from './notify.js';
export { ProcAliveError, type ProcAliveErrorCode, type ProcAliveErrorOptions } from './errors.js';
export { createServeHandler, type ServeHandler, type ServeHandlerOptions } from './serve-handler.js';
export { serve, parseListen, DEFAULT_SERVE_PORT, type ServeOptions, type ServeServer, type ListenAddress } from './serve.js';
export type { ServedState } from './served.js';
export type { MetricFamily, MetricSample, MetricsFormat } from './metrics.js';
export type { EventStreamOptions } from './event-stream.js';
