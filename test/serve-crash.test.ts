import test from 'ava';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IDEMPOTENCY_FILE } from '../lib/index.js';
import { prng } from './helpers/data.js';
import { useLocalS3 } from './helpers/s3.js';
import { ndjson, post, records, startServeCli, type Answer } from './helpers/serve.js';

const env = useLocalS3(test, ['bucket']);

const serveArgs = (dir: string, prefix: string) => ['--bucket', 'bucket', '--prefix', prefix, '--spool-dir', dir, '--endpoint', env.s3.endpoint, '--window', '500ms', '--gzip-level', '1'];

async function spoolDir(t: import('ava').ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 's3-sink-serve-crash-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

interface Sent {
  from: number;
  route: '/v1/lines' | '/v1/send';
  key: string;
  /** The first server's answer, or null when there was none (it was killed). */
  first: number | null;
  retried: boolean;
}

test('kill -9 of serve under load (seeded points, both routes), restarted on the same spool, clients sending again what got no answer: every event of a 200 in S3, none of them twice; an event twice only when its request got no answer and was sent again', async (t) => {
  const random = prng(1111);
  const PER = 20;
  const ROUNDS = 3;
  let next = 0;
  const all: Sent[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const dir = await spoolDir(t);
    const prefix = `crash${round}/`;
    const first = await startServeCli(serveArgs(dir, prefix));
    const killAfter = 20 + Math.floor(random() * 60);
    let ok = 0;
    let killed = false;
    const sent: Sent[] = [];
    const body = (s: Sent) => (s.route === '/v1/lines' ? ndjson(s.from, PER) : records(s.from, PER));
    const headers = (s: Sent): Record<string, string> => (s.route === '/v1/send' ? { 'idempotency-key': s.key } : {});
    await Promise.all(
      Array.from({ length: 8 }, async (_, c) => {
        while (!killed) {
          const s: Sent = { from: next, route: c % 2 === 0 ? '/v1/lines' : '/v1/send', key: `r${round}-${next}`, first: null, retried: false };
          next += PER;
          sent.push(s);
          const answer = await post(`${first.url}${s.route}`, body(s), headers(s)).catch(() => null);
          s.first = answer?.status ?? null;
          if (answer?.status === 200 && ++ok >= killAfter && !killed) {
            killed = true;
            first.run.child.kill('SIGKILL');
          }
        }
      }),
    );
    await first.run.exit;
    // The restart delivers what the spool holds; the clients send again what got no answer.
    const second = await startServeCli(serveArgs(dir, prefix));
    for (const s of sent.filter((x) => x.first !== 200)) {
      s.retried = true;
      const answer: Answer = await post(`${second.url}${s.route}`, body(s), headers(s));
      t.is(answer.status, 200, `the retry of ${s.route} from ${s.from}`);
    }
    second.run.child.kill('SIGTERM');
    t.like(await second.run.exit, { code: 0 });
    t.deepEqual((await readdir(dir)).filter((name) => name !== IDEMPOTENCY_FILE).sort(), ['dead'], 'the spool is empty');
    all.push(...sent);
  }

  const seen = new Map<number, number>();
  for (let round = 0; round < ROUNDS; round++) for (const [n, count] of await env.s3.countEvents('bucket', `crash${round}/`)) seen.set(n, (seen.get(n) ?? 0) + count);
  const events = (s: Sent) => Array.from({ length: PER }, (_, i) => s.from + i);
  const answered = all.filter((s) => s.first === 200);
  const retried = all.filter((s) => s.retried);
  t.deepEqual(answered.flatMap(events).filter((n) => seen.get(n) !== 1), [], 'every event of a request answered 200 is in S3 exactly once');
  t.deepEqual(retried.flatMap(events).filter((n) => !seen.has(n)), [], 'every event of a request sent again is in S3');
  t.deepEqual([...seen].filter(([, count]) => count > 2), [], 'none more than twice');
  t.is(seen.size, all.length * PER, 'nothing that was not sent');
  const twice = retried.filter((s) => events(s).some((n) => seen.get(n) === 2));
  t.log({ requests: all.length, answered: answered.length, retried: retried.length, retriedAndTwice: twice.map((s) => s.route) });
});

test('an Idempotency-Key answered 200 survives kill -9: sent again to the restarted server, the request gets the same answer and adds nothing', async (t) => {
  const dir = await spoolDir(t);
  const first = await startServeCli(serveArgs(dir, 'keys/'));
  const answer = await post(`${first.url}/v1/send`, records(0, 10), { 'idempotency-key': 'order-42' });
  t.is(answer.status, 200);
  first.run.child.kill('SIGKILL');
  await first.run.exit;
  const second = await startServeCli(serveArgs(dir, 'keys/'));
  const again = await post(`${second.url}/v1/send`, records(0, 10), { 'idempotency-key': 'order-42' });
  t.is(again.status, 200);
  t.is(again.headers.get('idempotent-replayed'), 'true');
  t.deepEqual(again.body, answer.body);
  second.run.child.kill('SIGTERM');
  t.like(await second.run.exit, { code: 0 });
  const seen = await env.s3.countEvents('bucket', 'keys/');
  t.deepEqual([...seen.keys()].sort((a, b) => a - b), Array.from({ length: 10 }, (_, n) => n));
  t.deepEqual([...seen.values()].filter((count) => count !== 1), []);
});
