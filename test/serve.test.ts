import test from 'ava';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { createServer } from '../lib/index.js';
import { useLocalS3 } from './helpers/s3.js';
import { ndjson, post, records, serve } from './helpers/serve.js';

const env = useLocalS3(test, ['bucket']);

/** Every `n` under `prefix` in S3, with how many times it is there. */
async function counted(prefix: string): Promise<Map<number, number>> {
  return env.s3.countEvents('bucket', prefix);
}

function exactlyOnce(t: import('ava').ExecutionContext, seen: Map<number, number>, expected: number[]): void {
  t.deepEqual([...seen.keys()].sort((a, b) => a - b), expected, 'every event');
  t.deepEqual([...seen].filter(([, count]) => count !== 1), [], 'none twice');
}

test('many concurrent clients on both routes (ndjson, gzip ndjson, JSON records, arrays): every event in S3 exactly once, each request answered 200 with its count', async (t) => {
  const { server, post: send } = await serve(t, env.s3.s3Config, { sink: { prefix: 'many/' } });
  const CLIENTS = 16;
  const REQUESTS = 12;
  const PER = 25;
  const answers = await Promise.all(
    Array.from({ length: CLIENTS }, async (_, c) => {
      const statuses: number[] = [];
      for (let r = 0; r < REQUESTS; r++) {
        const from = (c * REQUESTS + r) * PER;
        let answer;
        switch (r % 4) {
          case 0:
            answer = await send('/v1/lines', ndjson(from, PER));
            break;
          case 1:
            answer = await send('/v1/lines', gzipSync(ndjson(from, PER)), { 'content-encoding': 'gzip' });
            break;
          case 2:
            answer = await send('/v1/send', records(from, PER), { 'content-type': 'application/json' });
            break;
          default:
            answer = await send('/v1/send', gzipSync(records(from, PER)), { 'content-encoding': 'gzip' });
        }
        t.is(answer.body.events, PER);
        statuses.push(answer.status);
      }
      return statuses;
    }),
  );
  t.deepEqual(new Set(answers.flat()), new Set([200]));
  t.is(server.sink.stats().durableEvents, CLIENTS * REQUESTS * PER, 'each 200 came after its events were durable');
  await server.shutdown();
  exactlyOnce(t, await counted('many/'), Array.from({ length: CLIENTS * REQUESTS * PER }, (_, n) => n));
});

test('a single JSON record is one event; CRLF lines, empty lines and a last line without a newline are handled as on stdin', async (t) => {
  const { server, post: send } = await serve(t, env.s3.s3Config, { sink: { prefix: 'shapes/' } });
  t.like((await send('/v1/send', JSON.stringify({ payload: { n: 0 } }))).body, { events: 1 });
  t.like((await send('/v1/send', JSON.stringify({ prefix: 'shapes/', bucket: 'bucket', payload: { n: 1 } }))).body, { events: 1 });
  t.like((await send('/v1/lines', '{"n":2}\r\n\r\n\n{"n":3}')).body, { events: 2 });
  t.like((await send('/v1/send', '[]')).body, { events: 0 });
  t.like((await send('/v1/lines', '')).body, { events: 0 });
  await server.shutdown();
  exactlyOnce(t, await counted('shapes/'), [0, 1, 2, 3]);
});

test('malformed JSON: 400 naming the position, line and column; a record of the wrong shape: 400 naming its index and field; nothing of either is taken', async (t) => {
  const { server, post: send } = await serve(t, env.s3.s3Config, { sink: { prefix: 'bad/' } });
  const broken = await send('/v1/send', '[{"payload":1},\n {"payload": 2,}]');
  t.is(broken.status, 400);
  t.like(broken.body, { error: 'ERR_S3SINK_BODY', position: 31, line: 2, column: 16 });
  t.regex(broken.body.message as string, /not JSON: .*position 31 \(line 2, column 16\)/);
  const truncated = await send('/v1/send', '{"payload":');
  t.like(truncated.body, { error: 'ERR_S3SINK_BODY', position: 11 });

  const shapes: [string, Record<string, unknown>][] = [
    ['[{"payload":1},{"paylod":2}]', { index: 1, field: 'paylod' }],
    ['[{"payload":1},{"prefix":"x/"}]', { index: 1, field: 'payload' }],
    ['[{"payload":1},{"payload":2},{"bucket":7,"payload":3}]', { index: 2, field: 'bucket' }],
    ['[{"payload":1},"just a string"]', { index: 1 }],
    ['17', { index: 0 }],
  ];
  for (const [body, detail] of shapes) {
    const answer = await send('/v1/send', body);
    t.is(answer.status, 400, body);
    t.like(answer.body, { error: 'ERR_S3SINK_BODY', ...detail }, body);
  }
  t.regex((await send('/v1/send', '[{"payload":1},{"paylod":2}]')).body.message as string, /^record \[1\] has a field "paylod"/);
  const gz = await send('/v1/lines', Buffer.from('not gzip at all'), { 'content-encoding': 'gzip' });
  t.like(gz, { status: 400, body: { error: 'ERR_S3SINK_BODY' } });
  const br = await send('/v1/lines', '{"n":1}\n', { 'content-encoding': 'br' });
  t.like(br, { status: 415, body: { error: 'ERR_S3SINK_ENCODING' } });
  t.is(server.sink.stats().eventsIn, 0, 'nothing was taken');
});

test('bad lines inside a request are handled as on stdin (unrouted to the dead-letter prefix, too long rejected) and reported in the 200 answer; the rest is taken', async (t) => {
  const { server, post: send } = await serve(t, env.s3.s3Config, { sink: { prefix: 'report/{app}/', deadLetterPrefix: 'report-strays/', maxLineBytes: 100 } });
  const lines = ['{"app":"a","n":1}', 'not json', `{"app":"a","n":2,"pad":"${'x'.repeat(200)}"}`, '{"n":3}', '{"app":"b","n":4}'];
  const answer = await send('/v1/lines', `${lines.join('\n')}\n`);
  t.is(answer.status, 200);
  t.like(answer.body, { ack: 'durable', events: 5, rejected: 1, unrouted: 2 });
  const problems = answer.body.problems as { code: string; reason: string; to?: string; head?: string }[];
  t.deepEqual(problems.map((p) => p.code).sort(), ['ERR_S3SINK_LINE_TOO_LONG', 'S3SINK_UNROUTED', 'S3SINK_UNROUTED']);
  t.deepEqual(problems.filter((p) => p.code === 'S3SINK_UNROUTED').map((p) => p.to), ['report-strays', 'report-strays']);
  t.true(problems.find((p) => p.code === 'ERR_S3SINK_LINE_TOO_LONG')?.head?.startsWith('{"app":"a","n":2'));
  await server.shutdown();
  t.deepEqual([...(await counted('report/')).keys()].sort(), [1, 4]);
  t.deepEqual(await env.s3.lines('bucket', (await env.s3.keys('bucket', 'report-strays/'))[0] as string), ['not json', '{"n":3}']);
  t.is(server.sink.stats().unrouted, 2);
  t.is(server.sink.stats().rejected, 1);
});

test('a bearer token: missing or wrong is 401 (WWW-Authenticate: Bearer) and nothing is taken; the right one is 200; /metrics needs it too, /healthz does not', async (t) => {
  const token = 'a-test-token-of-some-length';
  const { server, url, post: send } = await serve(t, env.s3.s3Config, { token, sink: { prefix: 'token/' } });
  const missing = await send('/v1/lines', ndjson(0, 5));
  t.like(missing, { status: 401, body: { error: 'ERR_S3SINK_UNAUTHORIZED' } });
  t.is(missing.headers.get('www-authenticate'), 'Bearer');
  t.like(await send('/v1/lines', ndjson(0, 5), { authorization: `Bearer ${token}x` }), { status: 401 });
  t.like(await send('/v1/send', records(0, 5), { authorization: `Basic ${token}` }), { status: 401 });
  t.like(await send('/v1/send', records(0, 5), { authorization: `Bearer ${token.slice(0, -1)}` }), { status: 401 });
  t.is(server.sink.stats().eventsIn, 0, 'nothing taken');
  t.like(await send('/v1/lines', ndjson(0, 5), { authorization: `Bearer ${token}` }), { status: 200, body: { events: 5 } });
  t.is((await fetch(`${url}/metrics`)).status, 401);
  t.is((await fetch(`${url}/metrics`, { headers: { authorization: `bearer ${token}` } })).status, 200);
  t.is((await fetch(`${url}/healthz`)).status, 200);
  await server.shutdown();
  exactlyOnce(t, await counted('token/'), [0, 1, 2, 3, 4]);
});

test('a body past maxBodyBytes is 413: by its Content-Length at once, streamed (chunked), or once decompressed; nothing of it is taken', async (t) => {
  const { server, url, post: send } = await serve(t, env.s3.s3Config, { maxBodyBytes: 64 * 1024, sink: { prefix: 'cap/' } });
  const big = ndjson(0, 8000); // about 11 bytes a line
  t.true(big.length > 64 * 1024);
  const declared = await send('/v1/lines', big);
  t.like(declared, { status: 413, body: { error: 'ERR_S3SINK_TOO_LARGE', maxBodyBytes: 65536 } });
  // Chunked: no Content-Length, so it is counted as it comes.
  const chunked = await fetch(`${url}/v1/lines`, {
    method: 'POST',
    body: new ReadableStream({
      start(controller) {
        for (let i = 0; i < 10; i++) controller.enqueue(new TextEncoder().encode(ndjson(i * 800, 800)));
        controller.close();
      },
    }),
    duplex: 'half',
  } as RequestInit);
  t.is(chunked.status, 413);
  // A small gzip that inflates past the cap (a "zip bomb").
  const bomb = gzipSync(Buffer.from(`${'{"n":0}\n'.repeat(20_000)}`));
  t.true(bomb.length < 64 * 1024);
  t.like(await send('/v1/lines', bomb, { 'content-encoding': 'gzip' }), { status: 413 });
  t.is(server.sink.stats().eventsIn, 0);
  t.like(await send('/v1/lines', ndjson(0, 10)), { status: 200 }, 'the server still takes requests');
});

test('Idempotency-Key: a retried /v1/send gets the first answer (Idempotent-Replayed) and adds nothing; a retry during the first waits for it; another body under the same key is 422', async (t) => {
  const { server, post: send } = await serve(t, env.s3.s3Config, { sink: { prefix: 'idem/' } });
  const body = records(0, 10);
  const first = await send('/v1/send', body, { 'idempotency-key': 'k-1' });
  t.like(first, { status: 200, body: { events: 10 } });
  t.is(first.headers.get('idempotent-replayed'), null);
  const again = await send('/v1/send', body, { 'idempotency-key': 'k-1' });
  t.is(again.status, 200);
  t.deepEqual(again.body, first.body);
  t.is(again.headers.get('idempotent-replayed'), 'true');
  // Two at once with a new key: one is taken, the other waits for it.
  const both = await Promise.all([send('/v1/send', records(10, 10), { 'idempotency-key': 'k-2' }), send('/v1/send', records(10, 10), { 'idempotency-key': 'k-2' })]);
  t.deepEqual(both.map((a) => a.status), [200, 200]);
  t.like(await send('/v1/send', records(100, 1), { 'idempotency-key': 'k-1' }), { status: 422, body: { error: 'ERR_S3SINK_IDEMPOTENCY_MISMATCH' } });
  t.like(await send('/v1/send', records(100, 1), { 'idempotency-key': 'bad key' }), { status: 400, body: { error: 'ERR_S3SINK_IDEMPOTENCY_KEY' } });
  t.is(server.sink.stats().eventsIn, 20);
  await server.shutdown();
  exactlyOnce(t, await counted('idem/'), Array.from({ length: 20 }, (_, n) => n));
});

test('429 with Retry-After when the bodies held pass maxPendingBytes (a slow sender holds its declared length); the slow one is still taken', async (t) => {
  const { server, url, post: send } = await serve(t, env.s3.s3Config, { maxBodyBytes: 64 * 1024, maxPendingBytes: 96 * 1024, sink: { prefix: 'busy/' } });
  const pad = 'p'.repeat(90);
  const slowBody = Buffer.from(ndjson(0, 600, { pad })); // about 60 KiB
  const otherBody = ndjson(1000, 400, { pad }); // about 40 KiB
  t.true(slowBody.length < 64 * 1024 && slowBody.length + otherBody.length > 96 * 1024);
  const { port } = new URL(url);
  const slow = http.request({ host: '127.0.0.1', port, path: '/v1/lines', method: 'POST', headers: { 'content-length': slowBody.length } });
  const slowAnswer = new Promise<number>((resolve, reject) => {
    slow.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    slow.on('error', reject);
  });
  const arrived = new Promise((resolve) => server.once('request', resolve));
  slow.write(slowBody.subarray(0, 1000));
  await arrived;
  const busy = await send('/v1/lines', otherBody);
  t.like(busy, { status: 429, body: { error: 'ERR_S3SINK_BUSY' } });
  t.is(busy.headers.get('retry-after'), '1');
  slow.end(slowBody.subarray(1000));
  t.is(await slowAnswer, 200);
  t.like(await send('/v1/lines', otherBody), { status: 200 }, 'taken once the slow one was');
  await server.shutdown();
  exactlyOnce(t, await counted('busy/'), [...Array.from({ length: 600 }, (_, n) => n), ...Array.from({ length: 400 }, (_, n) => 1000 + n)]);
});

test('a slow sender is cut off after readTimeoutMs (408) and nothing of its request is taken', async (t) => {
  const { server, url } = await serve(t, env.s3.s3Config, { readTimeoutMs: 300, sink: { prefix: 'slow/' } });
  const { port } = new URL(url);
  const answer = await new Promise<number>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/v1/lines', method: 'POST', headers: { 'content-length': 1000 } });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.write('{"n":1}\n{"n":2}\n'); // and never the rest
  });
  t.is(answer, 408);
  t.is(server.sink.stats().eventsIn, 0);
});

test("ack 'delivered': the answer comes once the events are in a completed object (downloadable at that moment)", async (t) => {
  const { post: send } = await serve(t, env.s3.s3Config, { ack: 'delivered', spool: false, sink: { prefix: 'delivered/', clock: undefined, windowMs: 200 } });
  const answer = await send('/v1/lines', ndjson(0, 50));
  t.like(answer, { status: 200, body: { ack: 'delivered', events: 50, deadLettered: 0, lost: 0 } });
  exactlyOnce(t, await counted('delivered/'), Array.from({ length: 50 }, (_, n) => n));
});

test('GET /healthz, /readyz and /metrics (the sink\'s stats and request latencies); unknown routes 404, wrong methods 405', async (t) => {
  const { url, post: send } = await serve(t, env.s3.s3Config, { sink: { prefix: 'probe/' } });
  t.deepEqual(await (await fetch(`${url}/healthz`)).json(), { ok: true });
  const ready = await fetch(`${url}/readyz`);
  t.is(ready.status, 200);
  t.deepEqual(await ready.json(), { ready: true, checks: { server: 'ok', s3: 'ok', spool: 'ok' } });
  await send('/v1/lines', ndjson(0, 3));
  const metrics = await fetch(`${url}/metrics`);
  t.regex(metrics.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await metrics.text();
  t.regex(text, /^s3sink_events_total 3$/m);
  t.regex(text, /^s3sink_events_durable_total 3$/m);
  t.regex(text, /^s3sink_http_requests_total\{route="\/v1\/lines",code="200"\} 1$/m);
  t.regex(text, /^s3sink_http_request_duration_seconds_bucket\{route="\/v1\/lines",le="\+Inf"\} 1$/m);
  t.regex(text, /^s3sink_http_request_duration_seconds_count\{route="\/v1\/lines"\} 1$/m);
  t.regex(text, /^# TYPE s3sink_http_request_duration_seconds histogram$/m);
  t.like(await post(`${url}/v2/send`, '{}'), { status: 404, body: { error: 'ERR_S3SINK_NOT_FOUND' } });
  const get = await fetch(`${url}/v1/send`);
  t.is(get.status, 405);
  t.is(get.headers.get('allow'), 'POST');
});

test('without a token it refuses to listen on a non-loopback address (an error event, and no request is taken there)', async (t) => {
  const server = createServer({ sink: { bucket: 'bucket', s3: env.s3.s3Config }, ack: 'delivered', checkBucket: false });
  const error = new Promise<Error & { code?: string }>((resolve) => server.once('error', resolve));
  server.listen(0, '0.0.0.0');
  const err = await error;
  t.is(err.code, 'ERR_S3SINK_INSECURE');
  t.false(server.listening);
  await server.shutdown();
});

test('shutdown: the requests under way are answered 200, then everything is in S3 and the server no longer listens', async (t) => {
  const { server, post: send } = await serve(t, env.s3.s3Config, { sink: { prefix: 'shutdown/' } });
  let arrived = 0;
  const all = new Promise<void>((resolve) => server.on('request', () => ++arrived === 8 && resolve()));
  const under = Array.from({ length: 8 }, (_, i) => send('/v1/lines', ndjson(i * 100, 100)));
  await all;
  const closing = server.shutdown();
  const answers = await Promise.all(under);
  t.deepEqual(answers.map((a) => a.status), Array(8).fill(200));
  await closing;
  t.false(server.listening);
  exactlyOnce(t, await counted('shutdown/'), Array.from({ length: 800 }, (_, n) => n));
});

test("the requests of Vector's http sink and Fluent Bit's http output (as the README configures them: gzip ndjson with a bearer token) are taken and routed by their fields", async (t) => {
  const token = 'shipper-token-0123456789';
  const { server, post: send } = await serve(t, env.s3.s3Config, { token, sink: { prefix: 'shippers/{source}/' } });
  // Vector: encoding.codec json, framing newline_delimited, compression gzip, auth bearer.
  const vector = Array.from({ length: 30 }, (_, n) => JSON.stringify({ n, source: 'vector', host: 'web-1', message: `GET /item/${n}`, timestamp: '2026-01-01T12:00:00.000Z' })).join('\n');
  const fromVector = await send('/v1/lines', gzipSync(`${vector}\n`), { 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip', authorization: `Bearer ${token}`, 'user-agent': 'Vector/0.45.0' });
  t.like(fromVector, { status: 200, body: { events: 30, unrouted: 0 } });
  // Fluent Bit: Format json_lines, json_date_key date, json_date_format iso8601, Compress gzip, Header Authorization Bearer ...
  const fluentBit = Array.from({ length: 30 }, (_, i) => JSON.stringify({ date: '2026-01-01T12:00:00.000000Z', n: 30 + i, source: 'fluent-bit', log: `line ${i}`, kubernetes: { namespace_name: 'shop' } })).join('\n');
  const fromFluentBit = await send('/v1/lines', gzipSync(`${fluentBit}\n`), { 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip', authorization: `Bearer ${token}`, 'user-agent': 'Fluent-Bit' });
  t.like(fromFluentBit, { status: 200, body: { events: 30, unrouted: 0 } });
  await server.shutdown();
  t.is((await counted('shippers/vector/')).size, 30);
  t.is((await counted('shippers/fluent-bit/')).size, 30);
});
