import test from 'ava';
import { ClockError } from '../lib/errors.js';
import { checkPrefix, formatKey, MAX_PREFIX_BYTES, newIdentifier, normalizePrefix, parseKey, prefixProblem } from '../lib/key.js';
import { heapPer } from './helpers/heap.js';

const AT = Date.UTC(2019, 4, 25, 16, 14, 58, 123);
const ID = '8f25b54462bf6eeac3ee8bde512b6c59654c454356e808167a01c43ebe4ee919';

test('the key of the design example', (t) => {
  t.is(formatKey('test', AT, ID), `test/2019/05/25/16/2019-05-25-16-14-58-${ID}.gz`);
});

test('prefixes with and without slashes give the same key; empty prefix gives the date path', (t) => {
  for (const prefix of ['test/', 'test', '/test', '//test//']) {
    t.is(formatKey(normalizePrefix(prefix), AT, ID), `test/2019/05/25/16/2019-05-25-16-14-58-${ID}.gz`, prefix);
  }
  for (const prefix of ['', '/', '//']) {
    t.is(formatKey(normalizePrefix(prefix), AT, ID), `2019/05/25/16/2019-05-25-16-14-58-${ID}.gz`, JSON.stringify(prefix));
  }
  t.is(normalizePrefix('a//b/c/'), 'a/b/c');
});

test('keys are UTC, zero-padded, and folders agree with the file name at every boundary', (t) => {
  const cases: [number, string][] = [
    [Date.UTC(2020, 0, 1, 0, 0, 0), '2020/01/01/00/2020-01-01-00-00-00'],
    [Date.UTC(2019, 11, 31, 23, 59, 59, 999), '2019/12/31/23/2019-12-31-23-59-59'],
    [Date.UTC(2024, 1, 29, 9, 5, 7), '2024/02/29/09/2024-02-29-09-05-07'],
  ];
  for (const [time, expected] of cases) t.is(formatKey('', time, ID), `${expected}-${ID}.gz`);
});

test('identifiers are 64 lowercase hex characters and unique', (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 10_000; i++) {
    const id = newIdentifier();
    t.regex(id, /^[0-9a-f]{64}$/);
    seen.add(id);
  }
  t.is(seen.size, 10_000);
});

test('parseKey reads back what formatKey wrote, and refuses keys whose folders and name disagree', (t) => {
  t.deepEqual(parseKey(formatKey('a/b', AT, ID)), { prefix: 'a/b', time: Date.UTC(2019, 4, 25, 16, 14, 58), identifier: ID });
  t.deepEqual(parseKey(formatKey('', AT, ID))?.prefix, '');
  t.is(parseKey(`a/2019/05/25/17/2019-05-25-16-14-58-${ID}.gz`), null);
  t.is(parseKey(`a/2019/05/25/16/2019-05-25-16-14-58-${ID.toUpperCase()}.gz`), null);
});

test('one rule for every prefix: no control characters, lone surrogates, "." or ".." segments, not too long; the problem is named', (t) => {
  const refused: [string, string][] = [
    ['../../etc/', 'has a ".." segment'],
    ['./x/', 'has a "." segment'],
    ['a/./b', 'has a "." segment'],
    ['a/..', 'has a ".." segment'],
    ['..', 'has a ".." segment'],
    ['/./', 'has a "." segment'],
    ['a\nb/', 'contains a control character (U+000A)'],
    ['logs\u007f/', 'contains a control character (U+007F)'],
    ['app/\ud800/', 'contains a lone surrogate (U+D800)'],
    ['app/\udfff', 'contains a lone surrogate (U+DFFF)'],
    ['\udc00\ud800', 'contains a lone surrogate (U+DC00)'],
    ['x\ud83d', 'contains a lone surrogate (U+D83D)'],
    ['p'.repeat(MAX_PREFIX_BYTES + 1), `is longer than ${MAX_PREFIX_BYTES} bytes`],
    ['é'.repeat(MAX_PREFIX_BYTES / 2 + 1), `is longer than ${MAX_PREFIX_BYTES} bytes`],
  ];
  for (const [prefix, problem] of refused) {
    t.is(prefixProblem(prefix), problem, JSON.stringify(prefix.slice(0, 20)));
    t.deepEqual(checkPrefix(prefix), { problem });
  }
  for (const prefix of ['', '/', 'a..b/', '.hidden/', '.../x', 'a/b.', 'v1.2/', '//app//', 'emoji/🙂/', '日本/', `${'p'.repeat(MAX_PREFIX_BYTES)}/`]) {
    t.is(prefixProblem(prefix), null, JSON.stringify(prefix.slice(0, 20)));
    t.deepEqual(checkPrefix(prefix), { prefix: normalizePrefix(prefix) });
  }
});

test('a time no key can be made of (NaN, not a number, before 1970, after 9999) is a ClockError, never an "Invalid DateTime" key', (t) => {
  for (const bad of [Number.NaN, Infinity, -1, Date.UTC(10000, 0, 1), '2019-05-25' as unknown as number]) {
    const err = t.throws(() => formatKey('test', bad, ID), { instanceOf: ClockError });
    t.is(err?.code, 'ERR_S3SINK_CLOCK');
    t.regex(err?.message ?? '', /^clock\.now\(\) returned .+: expected milliseconds since the epoch/);
  }
  t.is(formatKey('', Date.UTC(9999, 11, 31, 23, 59, 59), ID), `9999/12/31/23/9999-12-31-23-59-59-${ID}.gz`);
});

test('a key is kept as one string in one piece: about 150 bytes of heap, not a tree of its parts (every open batch keeps one)', (t) => {
  const { bytes: perKey, made: keys } = heapPer(20_000, (i) => formatKey(`app/tenant-${i}`, AT + i * 1000, ID));
  t.true(perKey < 300, `${perKey.toFixed(0)} bytes of heap per key`);
  t.is(keys[1], `app/tenant-1/2019/05/25/16/2019-05-25-16-14-59-${ID}.gz`);
  // The same text whatever it holds: prefixes are checked before they get here, but formatKey itself keeps every string as given.
  for (const prefix of ['é/日本', 'x/\ud800/y']) t.is(formatKey(prefix, AT, ID), `${prefix}/2019/05/25/16/2019-05-25-16-14-58-${ID}.gz`);
});
