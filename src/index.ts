// proc-alive: is that process alive right now? Importing this module does nothing by itself: no
// signal handler, no exit hook, no timer, no FFI load.

export { check, checkSync, type State } from './check.js';
export { hold, type Holder, type HoldOptions } from './hold.js';
export { wrap, WRAP_FDS, FORWARDED_SIGNALS, type Wrapped, type WrappedChild, type WrapOptions, type WrapExit } from './wrap.js';
export { status, statusSync, listTargetsIn, type Status, type HolderRecord } from './status.js';
export { waitAlive, waitDead, type WaitOptions, type Pending, type WaitTimeoutError } from './wait.js';
export { watch, Watcher, type WatchEvent, type WatchOptions, type WatchState, type WatcherEvents, type Mechanism } from './watch.js';
export { defaultDir, targetPath } from './target.js';
export { ProcAliveError, type ProcAliveErrorCode, type ProcAliveErrorOptions } from './errors.js';
