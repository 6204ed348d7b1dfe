// Text that comes from outside proc-alive (file names, holder records, what the kernel reports), on
// its way in and on its way out to a terminal.
//
// Names. The kernel's names are bytes. Node decodes a name as UTF-8 and puts U+FFFD for what is not,
// so a FIFO whose name is not valid UTF-8 cannot be found again by the string Node gives for it (it
// reads "absent"). decodeName() maps each byte of an invalid sequence to a lone surrogate U+DC80..U+DCFF
// instead (Python's "surrogateescape", PEP 383), and fsPath() maps those back to the bytes, so such a
// name round-trips. Valid UTF-8 never contains a lone surrogate, so nothing else is affected.
//
// Printing. escapeText() turns what a terminal would act on (C0 and C1 controls, DEL, bidirectional
// overrides) and what is not text (escaped bytes, lone surrogates) into visible escapes: a name or a
// record cannot move the cursor, change the window title or forge a line of output.

import { isUtf8 } from 'node:buffer';

/** A lone low surrogate in U+DC80..U+DCFF that is not the second half of a pair. */
const ESCAPED_BYTE = /(?<![\uD800-\uDBFF])[\uDC80-\uDCFF]/;

/** A name's bytes as a string; bytes that are not UTF-8 become U+DC80 + byte (see above). */
export function decodeName(bytes: Buffer): string {
  if (isUtf8(bytes)) return bytes.toString('utf8');
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const n = utf8Length(bytes, i);
    if (n > 0) {
      out += bytes.toString('utf8', i, i + n);
      i += n;
    } else {
      out += String.fromCharCode(0xdc00 + (bytes[i] as number));
      i += 1;
    }
  }
  return out;
}

/** Length of the well-formed UTF-8 sequence at `i`, or 0 if there is none (RFC 3629's table). */
function utf8Length(b: Buffer, i: number): number {
  const c = b[i] as number;
  if (c < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf): boolean => i + k < b.length && (b[i + k] as number) >= lo && (b[i + k] as number) <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c === 0xee || c === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0; // not a surrogate
  if (c === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

/** What to hand to `fs` (or the FFI) for `path`: the string itself, or its bytes if it has escaped ones. */
export function fsPath(path: string): string | Buffer {
  if (!ESCAPED_BYTE.test(path)) return path;
  const parts: Buffer[] = [];
  let run = '';
  for (let i = 0; i < path.length; i++) {
    const u = path.charCodeAt(i);
    const pairedLow = i > 0 && u >= 0xdc00 && u <= 0xdfff && isHigh(path.charCodeAt(i - 1));
    if (u >= 0xdc80 && u <= 0xdcff && !pairedLow) {
      parts.push(Buffer.from(run, 'utf8'), Buffer.of(u - 0xdc00));
      run = '';
    } else {
      run += path[i];
    }
  }
  parts.push(Buffer.from(run, 'utf8'));
  return Buffer.concat(parts);
}

function isHigh(u: number): boolean {
  return u >= 0xd800 && u <= 0xdbff;
}

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\\': '\\\\' };

// C0, DEL, C1; the line and paragraph separators (U+2028, U+2029: some terminals break a line there);
// lone surrogates; the bidirectional controls (LRM, RLM, ALM, LRE..RLO, LRI..PDI), which reorder what
// follows them on screen ("Trojan Source", CVE-2021-42574).
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\\\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * `text` with everything a terminal would act on made visible: `\n`, `\t`, `\x1b`, `\u202e`, and an
 * escaped byte of a non-UTF-8 name as `\xff`; a backslash doubles so that the escapes are unambiguous.
 */
export function escapeText(text: string): string {
  return text.replace(UNSAFE, (ch) => {
    const named = NAMED[ch];
    if (named !== undefined) return named;
    const u = ch.charCodeAt(0);
    if (u <= 0xff) return `\\x${u.toString(16).padStart(2, '0')}`;
    if (u >= 0xdc80 && u <= 0xdcff) return `\\x${(u - 0xdc00).toString(16)}`;
    return `\\u${u.toString(16).padStart(4, '0')}`;
  });
}

/**
 * One line of JSON. JSON.stringify escapes C0 controls and lone surrogates but leaves DEL, the C1
 * controls, the bidirectional controls and U+2028/U+2029 raw; they are escaped here too, so a line read
 * on a terminal is inert.
 */
export function jsonLine(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\u009f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
