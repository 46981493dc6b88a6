import test from 'ava';
import { useLocalS3 } from './helpers/s3.js';
import { ndjson, serve, type Answer } from './helpers/serve.js';
import { eventually } from './helpers/wait.js';

const env = useLocalS3(test, ['bucket'], {});

test('spool full (S3 down, a small maxBytes): new requests get 503 with Retry-After and /readyz says so; once S3 is back, every request is answered 200 (the refused one when sent again) and every event is in S3 once', async (t) => {
  const { server, url, post: send } = await serve(t, { ...env.s3.s3Config, endpoint: env.proxy.endpoint }, {
    spool: { maxBytes: 1024 * 1024 },
    sink: { prefix: 'full/', retry: { attempts: 2, baseMs: 20, capMs: 100 }, requestTimeoutMs: 1000 },
  });
  await env.proxy.down();
  const PER = 400;
  const pad = 'p'.repeat(60); // about 80 bytes a line: 32 KB a request
  const sent: { from: number; answer: Promise<Answer> }[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (server.sink.context.full === null) {
        const from = next;
        next += PER;
        const answer = send('/v1/lines', ndjson(from, PER, { pad }));
        sent.push({ from, answer });
        await Promise.race([answer, eventually(() => server.sink.context.full !== null, 'the spool to fill', 30_000)]);
      }
    }),
  );
  t.is(server.sink.context.full, 'spool-max');
  const refused = await send('/v1/lines', ndjson(next, PER, { pad }));
  t.like(refused, { status: 503, body: { error: 'ERR_S3SINK_SPOOL_FULL', full: 'spool-max' } });
  t.is(refused.headers.get('retry-after'), '5');
  const ready = await fetch(`${url}/readyz`);
  t.is(ready.status, 503);
  t.like(await ready.json(), { ready: false, checks: { spool: 'at its maxBytes' } });

  await env.proxy.up();
  const answers = await Promise.all(sent.map((s) => s.answer));
  // A request sent while the spool had room can still arrive after another filled it: refused whole, like the one above.
  const late = sent.filter((_, i) => answers[i]?.status === 503);
  t.deepEqual(
    answers.filter((a) => a.status !== 200).map((a) => [a.status, (a.body as { error?: string }).error]),
    late.map(() => [503, 'ERR_S3SINK_SPOOL_FULL']),
    'every request taken before the spool filled is answered 200 (one that came after is refused whole)',
  );
  t.true(late.length < sent.length, 'most were taken');
  // The client sends each refused request again (as a shipper does after Retry-After) until it is taken.
  for (const from of [next, ...late.map((s) => s.from)]) {
    let again: Answer;
    do {
      await eventually(() => server.sink.context.full === null, 'room in the spool', 30_000);
      again = await send('/v1/lines', ndjson(from, PER, { pad }));
    } while (again.status === 503);
    t.is(again.status, 200);
  }
  await server.shutdown();
  const seen = await env.s3.countEvents('bucket', 'full/');
  t.is(seen.size, next + PER);
  t.deepEqual([...seen].filter(([, count]) => count !== 1), [], 'none twice');
  t.log({ requests: sent.length + 1, refusedLate: late.length, events: seen.size });
});
