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
