import test from 'ava';
import { AN_ARRAY, AN_OBJECT, JsonFields, NOT_AN_OBJECT, NOT_JSON, type FieldValue } from '../lib/jsonFields.js';
import { compileTemplate } from '../lib/template.js';
import { prng } from './helpers/data.js';

const PATHS = [['service'], ['k8s', 'ns'], ['a', 'b', 'c'], ['__proto__'], ['k8s']];
const reader = new JsonFields(PATHS);
/** The first value of `service` only. */
const first = new JsonFields([['service']], { first: true });

/** What `read` must give: the answer of JSON.parse, looked up by hand. */
function expected(bytes: Buffer): readonly FieldValue[] | null {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    return NOT_JSON;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return NOT_AN_OBJECT;
  return PATHS.map((path) => {
    let at: unknown = value;
    for (const name of path) {
      if (at === null || typeof at !== 'object' || Array.isArray(at) || !Object.hasOwn(at, name)) return undefined;
      at = (at as Record<string, unknown>)[name];
    }
    if (Array.isArray(at)) return AN_ARRAY;
    if (at !== null && typeof at === 'object') return AN_OBJECT;
    return at as FieldValue;
  });
}

function agrees(bytes: Buffer): boolean {
  const got = reader.read(bytes);
  const want = expected(bytes);
  if (got === want) return true;
  if (got === null || want === null || got === NOT_AN_OBJECT || want === NOT_AN_OBJECT) return false;
  return got.length === want.length && got.every((v, i) => Object.is(v, want[i]));
}

const CASES: (string | Buffer)[] = [
  // valid
  '{"service":"api"}',
  ' \t\r{ "service" : "api" , "x" : [ 1 , { } , [ ] ] } \r',
  '{"k8s":{"ns":"prod"},"service":"x"}',
  '{"a":{"b":{"c":-0.5e+10}}}',
  '{"a":{"b":{"c":0}},"a":{"b":1}}',
  '{"a":{"b":{"c":1}},"a":{"b":{"d":2}}}',
  '{"service":"first","service":"last"}',
  '{"serv\\u0069ce":"escaped key"}',
  '{"service":"tab\\tnew\\nline \\"quoted\\" \\\\ \\/ \\b\\f\\r \\u00e9 \\ud83d\\ude00 \\ud800"}',
  '{"service":true,"k8s":{"ns":null}}',
  '{"service":{"nested":1},"k8s":[1,2]}',
  '{"__proto__":"p"}',
  '{"service":"\u00e9t\u00e9 \u2028"}',
  '{}',
  '[]',
  '"a string"',
  '12',
  'true',
  'null',
  '[{"service":"in an array"}]',
  '{"x":[[[[[[[[[[{"service":"deep"}]]]]]]]]]]}',
  '{"service":1E3}',
  '{"service":-0}',
  '{"service":123456789012345678901234567890}',
  Buffer.from([0x7b, 0x22, 0x73, 0x65, 0x72, 0x76, 0x69, 0x63, 0x65, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]), // invalid UTF-8 in a string
  // invalid
  '',
  ' ',
  '{',
  '}',
  '{"service":"api"',
  '{"service":"api"}}',
  '{"service":"api",}',
  '[1,]',
  '{,}',
  '{"service" "api"}',
  '{"service":}',
  '{service:"api"}',
  "{'service':'api'}",
  '{"service":"api"} x',
  '{"service":"api"}{}',
  '{"a":01}',
  '{"a":-}',
  '{"a":1.}',
  '{"a":.5}',
  '{"a":1e}',
  '{"a":+1}',
  '{"a":NaN}',
  '{"a":Infinity}',
  '{"a":tru}',
  '{"a":truex}',
  '{"a":nul}',
  '{"a":"\\x41"}',
  '{"a":"\\u12"}',
  '{"a":"\\u12G4"}',
  '{"a":"tab\there"}',
  '{"a":"nul\u0000"}',
  '{"a":1}\f',
  '\v{"a":1}',
  '\ufeff{"a":1}',
  '{"a":1 /* comment */}',
  Buffer.from([0x7b, 0xff, 0x7d]), // a stray byte outside strings
];

test('reads fields and judges validity exactly as JSON.parse does', (t) => {
  for (const text of CASES) {
    const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text);
    t.deepEqual(reader.read(bytes), expected(bytes), bytes.toString('utf8'));
  }
});

test('the expected answers above are not all the same (the comparison can fail)', (t) => {
  const kinds = new Set(CASES.map((text) => {
    const answer = expected(Buffer.isBuffer(text) ? text : Buffer.from(text));
    return answer === NOT_JSON ? 'not json' : answer === NOT_AN_OBJECT ? 'not an object' : 'object';
  }));
  t.deepEqual([...kinds].sort(), ['not an object', 'not json', 'object']);
  t.deepEqual(reader.read(Buffer.from('{"service":"first","service":"last"}')), ['last', undefined, undefined, undefined, undefined]);
  t.deepEqual(reader.read(Buffer.from('{"a":{"b":{"c":1}},"a":{"b":{"d":2}}}')), [undefined, undefined, undefined, undefined, undefined]);
  t.deepEqual(first.read(Buffer.from('{"service":"first","service":"last"}')), ['first']);
  t.deepEqual(first.read(Buffer.from('{"k8s":{"service":"nested"},"service":"api","broken')), ['api']);
  t.is(first.read(Buffer.from('{"k8s":{"service":"nested"},broken')), NOT_JSON);
  t.is(first.read(Buffer.from('["service"]')), NOT_AN_OBJECT);
  // A field that is also the way to another: both are read.
  t.deepEqual(reader.read(Buffer.from('{"k8s":{"ns":"prod"}}')), [undefined, 'prod', undefined, undefined, AN_OBJECT]);
});

// One reader keeps its stacks of open containers from text to text: what a text
// left on them (cut off inside containers, or nested deeper than is kept) must not
// change the next one's answer.
test('what one text leaves on the reader does not change the next', (t) => {
  const one = new JsonFields(PATHS);
  const nested = '{"k8s":{"ns":"deep"},"x":' + '['.repeat(200) + ']'.repeat(200) + '}';
  const cases = [
    nested,
    '{"k8s":{"ns":"prod"}}',
    '{"k8s":{"ns":[[{"a":{"b":',
    '{"service":"api","a":{"b":{"c":3}}}',
    '[[[[[{"service":"in an array"}]]]]]',
    '{"k8s":{"ns":"dev"}}',
    nested.slice(0, -3),
    '{"a":{"b":{"c":"after"}}}',
  ];
  for (const text of cases) t.deepEqual(one.read(Buffer.from(text)), expected(Buffer.from(text)), text.slice(0, 40));
  t.deepEqual(one.read(Buffer.from(nested)), [undefined, 'deep', undefined, undefined, AN_OBJECT]);
  t.is(one.read(Buffer.from(nested.slice(0, -3))), NOT_JSON);
});

// Random JSON, written with random spacing, then damaged by random edits: every
// answer must match JSON.parse's, valid or not.
test('agrees with JSON.parse on 30 000 generated and mutated texts', (t) => {
  const random = prng(20261125);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
  const space = () => pick(['', '', '', ' ', '\t', '\r\n', '  ']);
  const names = ['service', 'k8s', 'ns', 'a', 'b', 'c', '__proto__', 'serv\\u0069ce', 'x', 'ñ'];
  const strings = ['api', '', 'a b', 'é', '\\"', '\\\\', '\\n', '\\u0041', '\\ud83d', '..', 'x/y'];
  const numbers = ['0', '-0', '1', '-12', '3.25', '1e5', '2E-3', '-0.0e+0', '10000000000000000000000'];
  const value = (depth: number): string => {
    const r = random();
    if (depth > 3 || r < 0.45) return pick([`"${pick(strings)}"`, pick(numbers), 'true', 'false', 'null']);
    if (r < 0.8) {
      const n = Math.floor(random() * 4);
      return `{${Array.from({ length: n }, () => `${space()}"${pick(names)}"${space()}:${space()}${value(depth + 1)}${space()}`).join(',')}}`;
    }
    return `[${Array.from({ length: Math.floor(random() * 3) }, () => `${space()}${value(depth + 1)}${space()}`).join(',')}]`;
  };
  const noise = ['{', '}', '[', ']', '"', ':', ',', '\\', ' ', '0', '-', '.', 'e', 'x', 'u', '\t', '\u0001', 'tru', 'null'];
  let valid = 0;
  let disagreements = 0;
  let firstDisagreements = 0;
  for (let i = 0; i < 30_000; i++) {
    let text = random() < 0.8 ? `{${space()}"service":${value(1)},"k8s":${value(1)},"a":${value(1)}}` : value(0);
    const edits = random() < 0.5 ? 0 : 1 + Math.floor(random() * 3);
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(random() * (text.length + 1));
      const op = random();
      if (op < 0.4) text = text.slice(0, at) + pick(noise) + text.slice(at);
      else if (op < 0.7) text = text.slice(0, at) + text.slice(at + 1);
      else text = text.slice(0, at) + pick(noise) + text.slice(at + 1);
    }
    const bytes = Buffer.from(text);
    if (expected(bytes) !== NOT_JSON) valid += 1;
    if (!agrees(bytes)) {
      disagreements += 1;
      if (disagreements <= 5) t.log(JSON.stringify(text), reader.read(bytes), expected(bytes));
    }
    // Reading up to the first value: what a whole read gives when the key is not repeated; and a text it finds broken is broken.
    const whole = reader.read(bytes);
    const once = (text.match(/"serv(ice|\\u0069ce)"/g) ?? []).length <= 1;
    const got = first.read(bytes);
    const same = got === whole || (got !== NOT_JSON && got !== NOT_AN_OBJECT && whole !== NOT_JSON && whole !== NOT_AN_OBJECT && Object.is(got[0], whole[0]));
    if ((once && whole !== NOT_JSON && !same) || (got === NOT_JSON && whole !== NOT_JSON)) {
      firstDisagreements += 1;
      if (firstDisagreements <= 5) t.log('first:', JSON.stringify(text), got, whole);
    }
  }
  t.is(disagreements, 0);
  t.is(firstDisagreements, 0);
  // Both kinds were well represented.
  t.true(valid > 10_000 && valid < 25_000, `${valid} valid`);
});

test('templates fill the same from bytes as from the parsed event', (t) => {
  const template = compileTemplate('app/{service}/{k8s.ns}/');
  if (!template) return t.fail();
  const lines = ['{"service":"api","k8s":{"ns":"prod"}}', '{"service":"api"}', '{"service":"a..b","k8s":{"ns":"x"}}', '{"service":7,"k8s":{"ns":true}}', '{"service":"api","k8s":{"ns":"prod"}', '[1]', '"api"'];
  for (const line of lines) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      t.deepEqual(template.fillFromJson(Buffer.from(line)), { miss: 'event is not JSON' });
      continue;
    }
    t.deepEqual(template.fillFromJson(Buffer.from(line)), template.fill(parsed), line);
  }
  // A path through an array index cannot be read without parsing: it still fills the same.
  const indexed = compileTemplate('app/{tags.0}/');
  const fillFromJson = indexed?.fillFromJson;
  t.deepEqual(fillFromJson?.(Buffer.from('{"tags":["blue"]}')), { prefix: 'app/blue/' });
  t.deepEqual(fillFromJson?.(Buffer.from('null')), { miss: 'event is not a JSON object' });
  t.deepEqual(fillFromJson?.(Buffer.from('{"tags":')), { miss: 'event is not JSON' });
});

test('paths that could read an array’s own properties are refused', (t) => {
  t.false(JsonFields.supports([['tags', '0']]));
  t.false(JsonFields.supports([['tags', 'length']]));
  t.true(JsonFields.supports([['service'], ['kubernetes', 'namespace']]));
  t.throws(() => new JsonFields([['tags', '0']]), { message: /array index or length/ });
});
