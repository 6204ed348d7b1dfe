// proc-alive's own version, from its package.json (one directory up from both src/ and dist/).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

let cached: string | undefined;

export function version(): string {
  cached ??= (JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string })
    .version;
  return cached;
}
