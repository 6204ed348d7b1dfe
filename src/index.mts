// The ES module entry (`import ... from 'proc-alive'`): the CommonJS build re-exported, not a second copy.
// One copy per process matters: the event machinery (one worker thread, one monitor) and the default
// directory's checks are module state, and a program whose ESM code and CommonJS dependencies both use
// proc-alive must share them. Node's ESM loader finds the CommonJS names statically (cjs-module-lexer);
// test/formats.test.js proves every name is there, on the oldest Node supported.

export * from './index.js';
