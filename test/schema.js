// The JSON the CLI and serve print, checked against the schemas the package ships (schemas/*.json).
// A validator of the part of JSON Schema those files use (type, enum, properties, required,
// additionalProperties: false, items, anyOf, minimum): a dozen lines, where a dependency (ajv) would
// bring a code generator to check four small files. A keyword it does not know fails loudly, so a
// schema cannot grow past what is checked here without this file noticing.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './helpers.js';

const KNOWN = new Set(['$schema', '$id', 'title', 'description', 'type', 'enum', 'properties', 'required', 'additionalProperties', 'items', 'anyOf', 'minimum']);
const schemas = new Map();

export function schema(name) {
  if (!schemas.has(name)) schemas.set(name, JSON.parse(readFileSync(join(ROOT, 'schemas', `${name}.json`), 'utf8')));
  return schemas.get(name);
}

const typeOf = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : Number.isInteger(v) ? 'integer' : typeof v);

/** The problems of `value` against `s`, each as `where: what`; none if it is valid. */
export function problems(value, s, where = '$') {
  for (const key of Object.keys(s)) if (!KNOWN.has(key)) throw new Error(`schema keyword ${key} at ${where} is not supported by test/schema.js`);
  const out = [];
  if (s.type !== undefined) {
    const types = [s.type].flat();
    const t = typeOf(value);
    if (!types.includes(t) && !(t === 'integer' && types.includes('number'))) return [`${where}: ${t}, not ${types.join('|')}`];
  }
  if (s.enum !== undefined && !s.enum.includes(value)) out.push(`${where}: ${JSON.stringify(value)} not in ${JSON.stringify(s.enum)}`);
  if (s.minimum !== undefined && typeof value === 'number' && value < s.minimum) out.push(`${where}: ${value} < ${s.minimum}`);
  if (s.anyOf !== undefined && s.anyOf.every((sub) => problems(value, sub, where).length > 0)) out.push(`${where}: matches none of anyOf`);
  if (Array.isArray(value) && s.items !== undefined) value.forEach((v, i) => out.push(...problems(v, s.items, `${where}[${i}]`)));
  if (typeOf(value) === 'object') {
    for (const key of s.required ?? []) if (!(key in value)) out.push(`${where}: ${key} missing`);
    for (const [key, v] of Object.entries(value)) {
      const sub = s.properties?.[key];
      if (sub !== undefined) out.push(...problems(v, sub, `${where}.${key}`));
      else if (s.additionalProperties === false) out.push(`${where}: ${key} is not in the schema`);
    }
  }
  return out;
}

/** `value`, asserted valid against schemas/<name>.json. */
export function valid(value, name) {
  assert.deepEqual(problems(value, schema(name)), [], `${name}: ${JSON.stringify(value)}`);
  return value;
}

/** One line of JSON, parsed and asserted valid against schemas/<name>.json. */
export function parsed(line, name) {
  return valid(JSON.parse(line), name);
}

/** Every non-empty line of `text`, parsed and validated. */
export function parsedLines(text, name) {
  return text.split('\n').filter(Boolean).map((line) => parsed(line, name));
}
