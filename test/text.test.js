// Names that are not UTF-8 round-trip to their bytes; text printed to a terminal is inert.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeName, fsPath, escapeText, jsonLine } from '../dist/text.js';

test('a name that is not UTF-8 decodes to escaped bytes and encodes back to the same bytes', () => {
  const cases = [
    Buffer.from('web'),
    Buffer.from('café ☕ 𝄞'),
    Buffer.of(0x61, 0xff, 0x62),
    Buffer.of(0xc3), // a truncated sequence
    Buffer.of(0xed, 0xa0, 0x80), // an encoded surrogate is not UTF-8
    Buffer.of(0xf0, 0x9d, 0x84, 0x9e, 0x80, 0xc0, 0xaf), // valid, then a stray continuation and an overlong form
  ];
  for (const bytes of cases) {
    const name = decodeName(bytes);
    const back = fsPath(`/d/${name}`);
    assert.deepEqual(Buffer.from(back), Buffer.concat([Buffer.from('/d/'), bytes]), bytes.toString('hex'));
  }
  assert.equal(typeof fsPath('/tmp/plain/𝄞'), 'string', 'valid names stay strings');
});

test('escapeText makes controls, escape sequences, bidi overrides and raw bytes visible', () => {
  assert.equal(escapeText('web'), 'web');
  assert.equal(escapeText('x\r\x1b[2K web dead\n'), 'x\\r\\x1b[2K web dead\\n');
  assert.equal(escapeText('\x1b]0;owned\x07'), '\\x1b]0;owned\\x07');
  assert.equal(escapeText('a\u009bb\u202ec'), 'a\\x9bb\\u202ec');
  assert.equal(escapeText(decodeName(Buffer.of(0x61, 0xff))), 'a\\xff');
  assert.equal(escapeText('a\\b'), 'a\\\\b');
  assert.equal(escapeText('𝄞 ok'), '𝄞 ok');
});

test('jsonLine escapes what JSON.stringify leaves raw, and stays JSON', () => {
  const value = { s: 'a\u0085b\u2028c\x7f\u202ed', name: decodeName(Buffer.of(0xff)) };
  const line = jsonLine(value);
  assert.doesNotMatch(line, /[\u007f-\u009f\u2028\u2029\u202e]/);
  assert.deepEqual(JSON.parse(line), value);
});
