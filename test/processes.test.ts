import test from 'ava';
import { parseKey } from '../lib/key.js';
import { runCli } from './helpers/cli.js';
import { useLocalS3 } from './helpers/s3.js';

const env = useLocalS3(test, ['bucket']);

test('four processes writing the same bucket and prefix at once: every event arrives, no key is written twice', async (t) => {
  const PER_PROCESS = 5000;
  const runs = await Promise.all(
    [0, 1, 2, 3].map((p) => {
      let input = '';
      for (let n = 0; n < PER_PROCESS; n++) input += `${JSON.stringify({ p, n })}\n`;
      return runCli(['--bucket', 'bucket', '--prefix', 'shared/', '--endpoint', env.s3.endpoint], input);
    }),
  );
  for (const run of runs) t.is(run.code, 0, run.stderr);
  const reported = runs.flatMap((run) => [...run.stderr.matchAll(/wrote s3:\/\/bucket\/(\S+) /g)].map((m) => m[1] as string));
  const listed = await env.s3.keys('bucket', 'shared/');
  t.is(new Set(reported).size, reported.length, 'each process wrote its own keys');
  t.deepEqual([...listed].sort(), [...reported].sort(), 'every object written is there: none overwrote another');
  t.true(listed.every((key) => parseKey(key) !== null));
  const seen = new Set<string>();
  for (const key of listed) {
    for (const line of await env.s3.lines('bucket', key)) {
      if (seen.has(line)) t.fail(`${line} twice`);
      seen.add(line);
    }
  }
  t.is(seen.size, 4 * PER_PROCESS);
});
