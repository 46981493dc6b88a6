import test from 'ava';
import { encodeLine, joinLines, lineBytes, PayloadError } from '../lib/framing.js';

test('strings and Buffers are written as they are; everything else as JSON', (t) => {
  t.is(encodeLine('plain text'), 'plain text');
  const bytes = Buffer.from([0xff, 0x00, 0x41]);
  t.is(encodeLine(bytes), bytes);
  t.deepEqual(encodeLine(new Uint8Array([0x41, 0x42])), Buffer.from('AB'));
  t.is(encodeLine({ a: 1, b: 'x\ny' }), '{"a":1,"b":"x\\ny"}');
  t.is(encodeLine([1, 2]), '[1,2]');
  t.is(encodeLine(42), '42');
  t.is(encodeLine(null), 'null');
  t.is(encodeLine(true), 'true');
});

test('a string or Buffer with a line break becomes a JSON string literal, and JSON.parse gives it back', (t) => {
  for (const text of ['two\nlines', 'carriage\rreturn', 'crlf\r\n', '{\n  "pretty": true\n}']) {
    const line = encodeLine(text) as string;
    t.false(/[\r\n]/.test(line), JSON.stringify(text));
    t.is(JSON.parse(line), text);
    const fromBuffer = encodeLine(Buffer.from(text)) as string;
    t.is(JSON.parse(fromBuffer), text);
  }
});

test('a Buffer with a line break keeps its exact bytes through its JSON string form when it is UTF-8, and is refused when it is not', (t) => {
  for (const bytes of [Buffer.from('a\rb'), Buffer.from('grüße\r🙂 日本'), Buffer.from([0x41, 0x0d, 0x00, 0x42])]) {
    const line = encodeLine(bytes) as string;
    t.false(/[\r\n]/.test(line));
    t.deepEqual(Buffer.from(JSON.parse(line) as string, 'utf8'), bytes, 'the same bytes back');
  }
  for (const [bytes, where] of [
    [Buffer.from([0x78, 0x0d, 0xff, 0x79]), '\\r at byte 1'],
    [Buffer.from([0xc3, 0x28, 0x0a, 0x0d]), '\\n at byte 2'],
    [Buffer.from([0x0d, 0xed, 0xa0, 0x80]), '\\r at byte 0'], // an encoded surrogate is not UTF-8 either
  ] as const) {
    const err = t.throws(() => encodeLine(bytes), { instanceOf: PayloadError });
    t.is(err?.code, 'ERR_S3SINK_PAYLOAD');
    t.is(err?.message, `payload holds a line break (${where}) and is not valid UTF-8: no one-line form keeps its bytes (as a JSON string, its invalid bytes would become U+FFFD)`);
  }
  // Without a line break, bytes pass as they are, valid UTF-8 or not.
  const odd = Buffer.from([0xff, 0xfe, 0x00]);
  t.is(encodeLine(odd), odd);
});

test('payloads with no JSON form are refused with a PayloadError naming why', (t) => {
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  for (const payload of [10n, circular, { big: 1n }]) {
    const err = t.throws(() => encodeLine(payload), { instanceOf: PayloadError });
    t.is(err?.code, 'ERR_S3SINK_PAYLOAD');
    t.regex(err?.message ?? '', /cannot be written as JSON/);
  }
  t.throws(() => encodeLine(undefined), { instanceOf: PayloadError, message: /undefined has no JSON form/ });
  t.throws(() => encodeLine(() => 1), { instanceOf: PayloadError, message: /function has no JSON form/ });
});

test('joinLines ends every line with \\n, multi-byte characters counted in bytes', (t) => {
  const lines = ['héllo', Buffer.from([0xe2, 0x82, 0xac]), '{"a":1}'];
  const bytes = lines.reduce((n, l) => n + lineBytes(l), 0);
  t.is(bytes, 7 + 4 + 8);
  const out = joinLines(lines, bytes);
  t.deepEqual(out, Buffer.concat([Buffer.from('héllo\n'), Buffer.from([0xe2, 0x82, 0xac, 0x0a]), Buffer.from('{"a":1}\n')]));
  t.throws(() => joinLines(['abc'], 3));
});
