import test from 'ava';
import { prometheusText, PROMETHEUS_CONTENT_TYPE, s3Sink } from '../lib/index.js';
import { parseListen } from '../lib/cli/metrics.js';
import { startCli } from './helpers/cli.js';
import { useLocalS3 } from './helpers/s3.js';
import { eventually } from './helpers/wait.js';

const env = useLocalS3(test, ['bucket']);

/** The samples of a Prometheus text, checking its HELP and TYPE lines on the way. */
function samples(t: import('ava').ExecutionContext, text: string): Map<string, number> {
  const out = new Map<string, number>();
  const lines = text.trimEnd().split('\n');
  t.is(lines.length % 3, 0);
  for (let i = 0; i < lines.length; i += 3) {
    const [, name] = /^# HELP (s3sink_[a-z_]+) \S.*$/.exec(lines[i]!) ?? [];
    t.truthy(name, lines[i]);
    const [, type] = new RegExp(`^# TYPE ${name} (counter|gauge)$`).exec(lines[i + 1]!) ?? [];
    t.truthy(type, lines[i + 1]);
    // Prometheus conventions: counters end in _total, gauges do not; byte metrics say so in their name.
    t.is(name!.endsWith('_total'), type === 'counter', name);
    const [, value] = new RegExp(`^${name} (\\d+)$`).exec(lines[i + 2]!) ?? [];
    t.truthy(value, lines[i + 2]);
    t.false(out.has(name!), `${name} once`);
    out.set(name!, Number(value));
  }
  return out;
}

test('prometheusText: one metric per stat, in the text format, named by the conventions', (t) => {
  const sink = s3Sink({ bucket: 'bucket', s3: env.s3.s3Config });
  const stats = sink.stats();
  const metrics = samples(t, prometheusText({ ...stats, eventsIn: 42, bufferedBytes: 1024 }));
  sink.destroy();
  t.is(metrics.size, Object.keys(stats).length);
  t.is(metrics.get('s3sink_events_total'), 42);
  t.is(metrics.get('s3sink_buffered_bytes'), 1024);
  for (const name of ['s3sink_events_delivered_total', 's3sink_objects_total', 's3sink_object_bytes_total', 's3sink_uploads_in_flight', 's3sink_retries_total']) t.true(metrics.has(name), name);
  t.is(PROMETHEUS_CONTENT_TYPE, 'text/plain; version=0.0.4; charset=utf-8');
});

test('--metrics-listen PORT serves /metrics on loopback during a run: scraped over HTTP, it follows the events; the server goes with the run', async (t) => {
  const run = startCli(['--bucket', 'bucket', '--prefix', 'metrics/', '--endpoint', env.s3.endpoint, '--metrics-listen', '0']);
  await eventually(() => /metrics at /.test(run.stderr()), 'the metrics address on stderr', 30_000);
  const url = /s3-sink: metrics at (\S+)/.exec(run.stderr())![1]!;
  t.regex(url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/, 'loopback by default');

  const scrape = async () => {
    const res = await fetch(url);
    t.is(res.status, 200);
    t.is(res.headers.get('content-type'), PROMETHEUS_CONTENT_TYPE);
    return samples(t, await res.text());
  };
  run.child.stdin.write('{"n":1}\n{"n":2}\n{"n":3}\n');
  // Each scrape is a real request; stop once the three lines are counted.
  let seen = await scrape();
  while (seen.get('s3sink_events_total') !== 3) seen = await scrape();
  t.is(seen.get('s3sink_bytes_total'), 24);
  t.is(seen.get('s3sink_open_batches'), 1);
  t.is((await fetch(url.replace('/metrics', '/'))).status, 404);

  run.child.stdin.end();
  const { code } = await run.exit;
  t.is(code, 0, run.stderr());
  await t.throwsAsync(fetch(url), undefined, 'the server closed with the run');
});

test('--metrics-listen ADDR: a bare port is loopback; a host or [IPv6] names where', (t) => {
  t.deepEqual(parseListen('9464'), { host: '127.0.0.1', port: 9464 });
  t.deepEqual(parseListen('0.0.0.0:9464'), { host: '0.0.0.0', port: 9464 });
  t.deepEqual(parseListen('[::1]:9464'), { host: '::1', port: 9464 });
  t.deepEqual(parseListen('metrics.local:80'), { host: 'metrics.local', port: 80 });
  for (const bad of ['70000', 'localhost', ':9464', '::1:9464', '9464/metrics']) t.is(parseListen(bad), null, bad);
});

test('--metrics-listen refuses an address it cannot read (exit 2) and reports one it cannot listen on (exit 1)', async (t) => {
  const bad = startCli(['--bucket', 'bucket', '--endpoint', env.s3.endpoint, '--metrics-listen', 'localhost']);
  bad.child.stdin.end();
  t.is((await bad.exit).code, 2);
  t.is(bad.stderr(), 's3-sink: --metrics-listen: "localhost" is not PORT, HOST:PORT or [IPv6]:PORT (like 9464 or 0.0.0.0:9464)\n');
  const taken = startCli(['--bucket', 'bucket', '--endpoint', env.s3.endpoint, '--metrics-listen', `127.0.0.1:${env.s3.port}`]);
  taken.child.stdin.end();
  t.is((await taken.exit).code, 1);
  t.regex(taken.stderr(), /^s3-sink: --metrics-listen: cannot listen on 127\.0\.0\.1 port \d+: listen EADDRINUSE/);
});
