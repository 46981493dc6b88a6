import test from 'ava';
import type { IncomingMessage } from 'node:http';
import { s3Sink, type SinkWarning, type SweepResult } from '../lib/index.js';
import { formatKey } from '../lib/key.js';
import { fixedClock } from './helpers/clock.js';
import { startProxy, type Fault, type Operation } from './helpers/proxy.js';
import { useLocalS3 } from './helpers/s3.js';

const env = useLocalS3(test, ['bucket']);
const HOUR = 3_600_000;
const NOW = Date.UTC(2026, 0, 1, 12, 0, 30);
const hex = (c: string) => c.repeat(64);
const OLD = new Date(NOW - 30 * HOUR).toISOString();
const RECENT = new Date(NOW - HOUR).toISOString();

const upload = (key: string, id: string, initiated: string) => `<Upload><Key>${key}</Key><UploadId>${id}</UploadId><Initiated>${initiated}</Initiated></Upload>`;
const listing = (uploads: string[], next?: { key: string; id: string }) =>
  `<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>bucket</Bucket><MaxUploads>1000</MaxUploads>` +
  `<IsTruncated>${next ? 'true' : 'false'}</IsTruncated>${next ? `<NextKeyMarker>${next.key}</NextKeyMarker><NextUploadIdMarker>${next.id}</NextUploadIdMarker>` : ''}${uploads.join('')}</ListMultipartUploadsResult>`;

// s3rver has no ListMultipartUploads (501) and no AbortMultipartUpload (405):
// the proxy answers those two as S3 does, and passes everything else on.
function store(request: { operation: Operation; query: URLSearchParams }): Fault {
  const { operation, query } = request;
  if (operation === 'AbortMultipartUpload') return { kind: 'respond', status: 204 };
  if (operation !== 'ListMultipartUploads') return { kind: 'pass' };
  const prefix = query.get('prefix');
  if (prefix !== 'app/') return { kind: 'respond', status: 200, body: listing([]) };
  const ours = formatKey('app/api', Date.UTC(2025, 11, 30), hex('a'));
  if (!query.get('key-marker')) {
    return {
      kind: 'respond',
      status: 200,
      body: listing([upload(ours, 'old-ours', OLD), upload('app/other-tool/file.bin', 'old-foreign', OLD), upload(formatKey('app/web', NOW - HOUR, hex('b')), 'recent-ours', RECENT)], { key: ours, id: 'old-ours' }),
    };
  }
  return { kind: 'respond', status: 200, body: listing([upload(formatKey('app/web', Date.UTC(2025, 11, 29), hex('c')), 'older-ours', OLD)]) };
}

test('sweepOrphans aborts old multipart uploads in the sink\'s format under its prefixes, across pages, and nothing else', async (t) => {
  const proxy = await startProxy(env.s3.port, { fault: (operation: Operation, req: IncomingMessage) => store({ operation, query: new URL(req.url ?? '/', 'http://x').searchParams }) });
  t.teardown(() => proxy.close());
  const sink = s3Sink({ bucket: 'bucket', prefix: 'app/{service}/', s3: { ...env.s3.s3Config, endpoint: proxy.endpoint }, sweepOrphans: 24 * HOUR, clock: fixedClock(NOW) });
  const swept: SweepResult[] = [];
  sink.on('swept', (r: SweepResult) => swept.push(r));
  sink.write({ payload: { service: 'api', msg: 'delivered while sweeping' } });
  await sink.close();

  t.deepEqual(swept, [{ bucket: 'bucket', prefixes: ['app/', '_unrouted/'], found: 2, aborted: 2 }]);
  const aborts = proxy.log.filter((l) => l.operation === 'AbortMultipartUpload').map((l) => new URL(l.url, 'http://x').searchParams.get('uploadId'));
  t.deepEqual(aborts.sort(), ['old-ours', 'older-ours']);
  t.is(proxy.log.filter((l) => l.operation === 'ListMultipartUploads').length, 3, 'two pages under app/, one under _unrouted/');
  t.is(sink.stats().orphansAborted, 2);
  t.is(sink.stats().objects, 1, 'delivery went on');
});

test('a store without ListMultipartUploads: the sweep is skipped with one warning, and delivery goes on', async (t) => {
  const sink = s3Sink({ bucket: 'bucket', prefix: 'logs/', s3: env.s3.s3Config, sweepOrphans: 24 * HOUR, clock: fixedClock(NOW) });
  const warnings: SinkWarning[] = [];
  sink.on('warning', (w: SinkWarning) => warnings.push(w));
  sink.write({ payload: 'still delivered' });
  await sink.close();
  t.deepEqual(warnings.map((w) => w.code), ['S3SINK_NO_LIST_UPLOADS']);
  t.regex(warnings[0]!.message, /does not support ListMultipartUploads \(NotImplemented\): the orphan sweep is skipped/);
  t.is(sink.stats().objects, 1);
});

test('sweepOrphans below the longest an upload can be live is refused: it could abort another process\'s upload in flight', (t) => {
  t.throws(() => s3Sink({ bucket: 'bucket', sweepOrphans: 60_000 }), { message: /option sweepOrphans: got 60000, expected at least 5721600 \(96m\)/ });
});
