// The arguments of every public function, checked for their type before anything is touched. The
// types say what each takes, but a JavaScript caller (or one who cast) may pass anything: `checkSync(123)`
// must say "target must be a string", not "empty target" or a TypeError from deep inside. Every failure
// is a ProcAliveError with code EINVAL whose message names the argument, what it must be and what it got.

import { ProcAliveError } from './errors.js';
import { escapeText } from './text.js';

/** What a value is, in words: `number`, `null`, `an array`, `NaN`, `string ('0600')`. */
export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number' && Number.isNaN(value)) return 'NaN';
  if (typeof value === 'string') return `string ('${escapeText(value.length > 40 ? `${value.slice(0, 40)}…` : value)}')`;
  if (typeof value === 'object') return value.constructor?.name && value.constructor !== Object ? `a ${value.constructor.name}` : 'an object';
  return typeof value;
}

/** The error for `what` (`target`, `options.timeout`), which must be `expected` and is `value`. */
export function invalidArgument(what: string, expected: string, value: unknown, hint = ''): ProcAliveError {
  return new ProcAliveError('EINVAL', `${what} must be ${expected}, got ${typeName(value)}${hint}`);
}

/** A target: a string (its emptiness and NUL bytes are for targetPath to refuse, with its own words). */
export function targetArgument(value: unknown, what = 'target'): asserts value is string {
  if (typeof value !== 'string') throw invalidArgument(what, 'a string (a path or a name)', value);
}

/** One target or an array of them, as an array. */
export function targetsArgument(value: unknown, what = 'target'): string[] {
  if (typeof value === 'string') return [value];
  if (!Array.isArray(value)) throw invalidArgument(what, 'a string (a path or a name), or an array of them', value);
  value.forEach((t, i) => targetArgument(t, `targets[${i}]`));
  return [...(value as string[])];
}

/** How an option is checked: a kind, or a function that throws what is wrong with a value given. */
export type OptionKind =
  | 'boolean'
  | 'string'
  /** A number >= 0 (Infinity included): counts, sizes, durations in milliseconds. */
  | 'nonNegative'
  | 'function'
  | 'object'
  | 'AbortSignal'
  | ((value: unknown, what: string) => void);

const expected: Record<Exclude<OptionKind, (value: unknown, what: string) => void>, string> = {
  boolean: 'a boolean',
  string: 'a string',
  nonNegative: 'a non-negative number',
  function: 'a function',
  object: 'an object',
  AbortSignal: 'an AbortSignal',
};

function fits(kind: Exclude<OptionKind, (value: unknown, what: string) => void>, value: unknown): boolean {
  switch (kind) {
    case 'nonNegative':
      return typeof value === 'number' && value >= 0; // NaN is not >= 0
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
    case 'AbortSignal':
      // Duck-typed: a signal from another realm (a vm context, a polyfill) is a signal too.
      return typeof value === 'object' && value !== null && typeof (value as AbortSignal).aborted === 'boolean' &&
        typeof (value as AbortSignal).addEventListener === 'function';
    default:
      return typeof value === kind;
  }
}

/**
 * Checks an options object against `spec` (each option's kind): `undefined` is `{}`, anything else that
 * is not an object is refused, an option left undefined is absent, and options not in `spec` are left
 * alone (as Node's own functions leave them).
 */
export function checkOptions<T extends object>(value: T | undefined, spec: { [K in keyof T]-?: OptionKind }, what = 'options'): T {
  if (value === undefined) return {} as T;
  if (!fits('object', value)) throw invalidArgument(what, 'an object', value);
  for (const key of Object.keys(spec) as Array<keyof T & string>) {
    const v = value[key];
    if (v === undefined) continue;
    const kind: OptionKind = spec[key];
    if (typeof kind === 'function') kind(v, `${what}.${key}`);
    else if (!fits(kind, v)) throw invalidArgument(`${what}.${key}`, expected[kind], v);
  }
  return value;
}

/** A file descriptor number: an integer >= 0 (`notifyFd`). */
export function checkFd(value: unknown, what: string): void {
  if (!Number.isInteger(value) || (value as number) < 0) throw invalidArgument(what, 'a file descriptor number', value);
}
