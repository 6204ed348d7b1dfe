// proc-alive: is that process alive right now? Importing this module does nothing by itself: no
// signal handler, no exit hook, no timer, no FFI load.

export { check, checkSync, type State } from './check.js';
export { hold, type Holder, type HoldOptions } from './hold.js';
export { defaultDir, targetPath } from './target.js';
export { ProcAliveError, type ProcAliveErrorCode, type ProcAliveErrorOptions } from './errors.js';
