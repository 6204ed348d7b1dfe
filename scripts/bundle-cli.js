// Bundles the CLI into one CommonJS file, dist/bin.cjs, after tsc has built dist/.
//
// Why: `proc-alive check` runs as an exec probe, once per process, and must start about as fast as
// `node -e 0`. Node's ESM loader alone adds ~4 % to a start, and each further module more: the multi-file
// ESM CLI measured 1.15x `node -e 0`, one ESM file 1.11x, one CommonJS file 1.03x (`npm run bench`).
// The library is CommonJS too, file per mechanism; this file is only the executable. It sits in dist/
// beside the library's files, so __dirname finds the event worker (dist/kernel-events-worker.js) and
// package.json (one directory up) from the bundle as from the library.

import { build } from 'esbuild';

await build({
  entryPoints: ['dist/bin.js'],
  outfile: 'dist/bin.cjs',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  // koffi is loaded on demand from node_modules, never bundled (it has a native part).
  external: ['koffi'],
  logLevel: 'warning',
});
