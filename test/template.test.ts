import test from 'ava';
import { compileTemplate } from '../lib/template.js';

test('a prefix without placeholders is not a template', (t) => {
  t.is(compileTemplate('logs/app/'), null);
});

test('fields and dotted paths are filled from the event', (t) => {
  const template = compileTemplate('app/{service}/{kubernetes.namespace}/');
  t.deepEqual(template?.fill({ service: 'api', kubernetes: { namespace: 'prod' } }), { prefix: 'app/api/prod/' });
  t.deepEqual(template?.fill({ service: 7, kubernetes: { namespace: true } }), { prefix: 'app/7/true/' });
});

test('a value that cannot name a folder is a miss with the reason', (t) => {
  const template = compileTemplate('app/{service}/');
  const miss = (event: unknown) => {
    const filled = template?.fill(event);
    return filled && 'miss' in filled ? filled.miss : 'filled';
  };
  t.is(miss('not an object'), 'event is not a JSON object');
  t.is(miss([1]), 'event is not a JSON object');
  t.is(miss({}), 'field service is missing');
  t.is(miss({ service: '' }), 'field service is empty');
  t.is(miss({ service: '../etc' }), 'filled prefix "app/../etc/" has a ".." segment');
  t.is(miss({ service: '.' }), 'filled prefix "app/./" has a "." segment');
  t.is(miss({ service: 'x/..' }), 'filled prefix "app/x/../" has a ".." segment');
  t.is(miss({ service: 'a\u0001b' }), 'filled prefix "app/a\\u0001b/" contains a control character (U+0001)');
  t.is(miss({ service: null }), 'field service is null, not a string');
  t.is(miss({ service: { x: 1 } }), 'field service is an object, not a string');
  t.is(miss(Object.create({ service: 'inherited' })), 'field service is missing');
  // Dots inside a name are not a path step.
  t.is(miss({ service: 'a..b' }), 'filled');
  t.is(miss({ service: '...' }), 'filled');
  t.is(miss({ service: '.hidden' }), 'filled');
});

test('a segment made of a literal and a value is judged whole', (t) => {
  const template = compileTemplate('app/.{a}/');
  t.deepEqual(template?.fill({ a: 'x' }), { prefix: 'app/.x/' });
  t.deepEqual(template?.fill({ a: '.' }), { miss: 'filled prefix "app/../" has a ".." segment' });
});

test('malformed placeholders are refused with what was wrong', (t) => {
  t.throws(() => compileTemplate('app/{}/'), { message: /placeholder \{\} is not a field name/ });
  t.throws(() => compileTemplate('app/{a b}/'), { message: /placeholder \{a b\}/ });
  t.throws(() => compileTemplate('app/{service/'), { message: /unbalanced/ });
  t.throws(() => compileTemplate('app/service}/'), { message: /unbalanced/ });
  t.throws(() => compileTemplate('../{service}/'), { message: 'its text outside the placeholders has a ".." segment' });
  t.throws(() => compileTemplate('app/./{service}'), { message: 'its text outside the placeholders has a "." segment' });
  t.throws(() => compileTemplate('app/{service}/\t/'), { message: 'its text outside the placeholders contains a control character (U+0009)' });
});

test('{kafka:...} placeholders take the values a Kafka worker gives (key, topic, partition, header.NAME); a template of them only reads nothing of the event', (t) => {
  const template = compileTemplate('k/{kafka:topic}/{kafka:partition}/{service}/{kafka:header.tenant-id}/{kafka:key}/');
  t.deepEqual(template?.fields, [['service']]);
  t.deepEqual(template?.meta, ['topic', 'partition', 'header.tenant-id', 'key']);
  const values: Record<string, string> = { topic: 'events', partition: '3', 'header.tenant-id': 'acme', key: 'user-7' };
  t.deepEqual(template?.fill({ service: 'api' }, (name) => values[name]), { prefix: 'k/events/3/api/acme/user-7/' });
  t.deepEqual(template?.fillFromJson(Buffer.from('{"service":"db"}'), (name) => values[name]), { prefix: 'k/events/3/db/acme/user-7/' });
  t.deepEqual(template?.fill({ service: 'api' }, (name) => (name === 'key' ? undefined : values[name])), { miss: '{kafka:key} is missing (the record has none)' });
  t.deepEqual(template?.fill({ service: 'api' }, (name) => (name === 'header.tenant-id' ? '' : values[name])), { miss: '{kafka:header.tenant-id} is empty' });
  t.deepEqual(template?.fill({ service: 'api' }, (name) => (name === 'key' ? '..' : values[name])), { miss: 'filled prefix "k/events/3/api/acme/../" has a ".." segment' });
  t.deepEqual(template?.fill({ service: 'api' }), { miss: '{kafka:topic} is missing (the record has none)' });
  const only = compileTemplate('by-key/{kafka:key}/');
  t.deepEqual(only?.fields, []);
  t.deepEqual(only?.fillFromPayload('not json', () => 'k1'), { prefix: 'by-key/k1/' });
  t.throws(() => compileTemplate('x/{kafka:offset}/'), { message: /placeholder \{kafka:offset\} is not a field name.*\{kafka:key\}/ });
});

test('a one-field template gives the same answer for a value seen before, past its cache of 4 096 values and for long values it does not keep, and its answers cannot be changed', (t) => {
  const template = compileTemplate('app/{service}/');
  const fill = (value: unknown) => template?.fillFromJson(Buffer.from(JSON.stringify({ service: value })));
  t.deepEqual(fill('api'), { prefix: 'app/api/' });
  t.deepEqual(fill('api'), { prefix: 'app/api/' });
  t.deepEqual(fill('..'), { miss: 'filled prefix "app/../" has a ".." segment' });
  t.deepEqual(fill('..'), { miss: 'filled prefix "app/../" has a ".." segment' });
  // The number 7 and the string "7" fill the same prefix; null and "" never fill one.
  t.deepEqual(fill(7), { prefix: 'app/7/' });
  t.deepEqual(fill('7'), { prefix: 'app/7/' });
  t.deepEqual(fill(null), { miss: 'field service is null, not a string' });
  t.deepEqual(fill(''), { miss: 'field service is empty' });
  for (let i = 0; i < 10_000; i++) t.is((fill(`s${i}`) as { prefix: string }).prefix, `app/s${i}/`);
  t.deepEqual(fill('api'), { prefix: 'app/api/' });
  // Long values (not kept by the cache) fill the same, twice: one that fits a prefix, one too long, one that is only slashes.
  t.deepEqual(fill('v'.repeat(300)), { prefix: `app/${'v'.repeat(300)}/` });
  t.deepEqual(fill('v'.repeat(300)), { prefix: `app/${'v'.repeat(300)}/` });
  t.regex((fill('w'.repeat(100_000)) as { miss: string }).miss, /is longer than 920 bytes$/);
  t.regex((fill('w'.repeat(100_000)) as { miss: string }).miss, /is longer than 920 bytes$/);
  t.deepEqual(fill('/'.repeat(5000)), { prefix: `app/${'/'.repeat(5000)}/` });
  t.deepEqual(fill('a\u0001'), { miss: 'filled prefix "app/a\\u0001/" contains a control character (U+0001)' });
  const answer = fill('api') as { prefix: string };
  t.throws(() => {
    answer.prefix = 'elsewhere/';
  });
  t.deepEqual(fill('api'), { prefix: 'app/api/' });
});
