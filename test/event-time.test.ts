import test from 'ava';
import { destination, type LinesPiece, type Routed } from '../lib/batch.js';
import { SinkContext } from '../lib/context.js';
import { OptionError } from '../lib/errors.js';
import { isoTime, timeValue } from '../lib/eventTime.js';
import { lineBytes } from '../lib/framing.js';
import { parseKey } from '../lib/key.js';
import { resolveOptions, type SinkOptions } from '../lib/options.js';
import { Router } from '../lib/route.js';
import { s3Sink, type Receipt } from '../lib/index.js';
import { ManualClock } from './helpers/clock.js';
import { runCli } from './helpers/cli.js';
import { prng } from './helpers/data.js';
import { useLocalS3 } from './helpers/s3.js';
import { batchesOf, windowStages } from './helpers/window.js';
import { eventually } from './helpers/wait.js';

const env = useLocalS3(test, ['bucket']);

const MINUTE = 60_000;
const T0 = Date.UTC(2026, 0, 2, 3, 4, 0);

// ---------------------------------------------------------------- time values

test('numbers below 10^11 are epoch seconds, from 10^11 on epoch milliseconds; fractions kept to the millisecond', (t) => {
  t.is(timeValue(1767323040), T0);
  t.is(timeValue(1767323040.25), T0 + 250);
  t.is(timeValue(1767323040.0004), T0);
  t.is(timeValue(T0), T0);
  t.is(timeValue(T0 + 0.9), T0);
  t.is(timeValue(99_999_999_999), 99_999_999_999_000, 'the largest seconds: the year 5138');
  t.is(timeValue(100_000_000_000), 100_000_000_000, 'the smallest milliseconds: March 1973');
  t.is(timeValue(0), 0, '1970 is a time a key holds');
});

test('ISO 8601 strings: RFC 3339 and its usual relaxations, UTC without an offset; what Date.parse reads alike', (t) => {
  t.is(isoTime('2026-01-02T03:04:00Z'), T0);
  t.is(isoTime('2026-01-02T03:04:05.678Z'), T0 + 5678);
  t.is(isoTime('2026-01-02T03:04:05.678912345Z'), T0 + 5678, 'nanoseconds (Vector) floored to the millisecond');
  t.is(isoTime('2026-01-02T03:04:05.6Z'), T0 + 5600);
  t.is(isoTime('2026-01-02 03:04:05,6z'), T0 + 5600, 'a space for T, a comma for the point, lower case z');
  t.is(isoTime('2026-01-02t03:04:05'), T0 + 5000, 'no offset: UTC');
  t.is(isoTime('2026-01-02T04:04:00+01:00'), T0);
  t.is(isoTime('2026-01-02T04:04:00+0100'), T0);
  t.is(isoTime('2026-01-02T04:04:00+01'), T0);
  t.is(isoTime('2026-01-01T22:34:00-04:30'), T0);
  t.is(isoTime('2026-01-02T03:04Z'), T0, 'minutes without seconds');
  t.is(isoTime('2026-01-02'), Date.UTC(2026, 0, 2), 'a date alone: its midnight');
  t.is(isoTime('2024-02-29T00:00:00Z'), Date.UTC(2024, 1, 29));
  t.is(isoTime('2026-01-02T03:03:60Z'), T0, 'a leap second: the first of the next minute');
  for (const bad of ['', '2026', '2026-01', '2026-1-02', '2026-13-01', '2026-02-29', '2026-04-31', '2026-01-00', '2026-01-02T24:00:00Z', '2026-01-02T03:60:00Z', '2026-01-02T03:04:61Z',
    '2026-01-02T03:04:05.Z', '2026-01-02T03:04:05Zx', '2026-01-02T03:04:05+1', '2026-01-02T03:04:05+24:00', '2026-01-02T03:04:05+01:60', '2026-01-02T3:04:05Z', '2026-01-02X03:04:05Z',
    '2026-01-02T03:04:05 Z', ' 2026-01-02', '20260102T030405Z', 'Fri, 02 Jan 2026 03:04:00 GMT', '1767323040']) {
    t.true(Number.isNaN(isoTime(bad)), bad);
  }
  // Generated instants in the forms RFC 3339 allows: the same as Date.parse.
  const random = prng(7);
  for (let i = 0; i < 2000; i++) {
    const ms = Math.floor(random() * Date.UTC(9999, 11, 31));
    const offset = Math.floor(random() * 48 - 24) * 30;
    const local = new Date(ms + offset * 60_000).toISOString().slice(0, 23);
    const zone = offset === 0 && random() < 0.5 ? 'Z' : `${offset < 0 ? '-' : '+'}${String(Math.floor(Math.abs(offset) / 60)).padStart(2, '0')}:${String(Math.abs(offset) % 60).padStart(2, '0')}`;
    const text = `${local}${zone}`;
    t.is(isoTime(text), Date.parse(text), text);
    t.is(isoTime(text), ms, text);
  }
});

test('no usable time: not a number, string or Date; a numeric string; before 1970; after 9999', (t) => {
  for (const bad of [undefined, null, true, {}, [], '1767323040', 'yesterday', -1, -0.5, NaN, Infinity, -Infinity, Date.UTC(10000, 0, 1), new Date(NaN), '1969-12-31T23:59:59Z', '10000-01-01T00:00:00Z']) {
    t.true(Number.isNaN(timeValue(bad)), String(bad));
  }
  t.is(timeValue(new Date(T0)), T0);
  t.is(timeValue('1969-12-31T23:30:00-01:00'), 30 * MINUTE, 'an offset can bring it into 1970');
  t.is(timeValue(Date.UTC(10000, 0, 1) - 1), Date.UTC(10000, 0, 1) - 1, 'the last millisecond of 9999');
  t.is(timeValue(253402300800), 253402300800, 'the first second of 10000, in seconds, is read as milliseconds (1978)');
});

// ---------------------------------------------------------------- options

function optionError(t: import('ava').ExecutionContext, time: unknown, option: string, message: RegExp) {
  const err = t.throws(() => resolveOptions({ bucket: 'bucket', time } as SinkOptions), { instanceOf: OptionError });
  t.is(err?.code, 'ERR_S3SINK_OPTION');
  t.is(err?.option, option);
  t.regex(err?.message ?? '', message);
}

test('the time option: a field, a function, or either with lateMs (default: one window); bad values name the option and what was expected', (t) => {
  const get = () => 0;
  t.is(resolveOptions({ bucket: 'bucket' }).time, null);
  t.deepEqual(resolveOptions({ bucket: 'bucket', time: { field: 'event.time' } }).time, { field: ['event', 'time'], get: null, lateMs: 60_000 });
  t.deepEqual(resolveOptions({ bucket: 'bucket', windowMs: 300_000, time: { field: '@timestamp' } }).time, { field: ['@timestamp'], get: null, lateMs: 300_000 });
  t.deepEqual(resolveOptions({ bucket: 'bucket', time: get }).time, { field: null, get, lateMs: 60_000 });
  t.deepEqual(resolveOptions({ bucket: 'bucket', time: { get, lateMs: 0 } }).time, { field: null, get, lateMs: 0 });
  optionError(t, 'ts', 'time', /^option time: got "ts", expected \{ field: 'ts' \}, \{ get: \(payload\) => time \} or a function of the payload$/);
  optionError(t, null, 'time', /got null, expected \{ field: 'ts' \}/);
  optionError(t, {}, 'time', /expected one of field \(a field of the event's JSON\) and get \(a function of its payload\)$/);
  optionError(t, { field: 'ts', get }, 'time', /expected one of field/);
  optionError(t, { field: 'a b' }, 'time.field', /^option time\.field: got "a b", expected a field name or dotted path, like ts, @timestamp or event\.time$/);
  optionError(t, { field: 'a..b' }, 'time.field', /expected a field name or dotted path/);
  optionError(t, { field: 5 }, 'time.field', /got 5, expected a field name/);
  optionError(t, { get: 'ts' }, 'time.get', /got "ts", expected a function of the payload giving its time$/);
  optionError(t, { field: 'ts', lateMs: -1 }, 'time.lateMs', /^option time\.lateMs: got -1, expected an integer from 0 to 86400000$/);
  optionError(t, { field: 'ts', lateMs: 1.5 }, 'time.lateMs', /got 1\.5/);
  optionError(t, { field: 'ts', late: 5 }, 'time.late', /no such field; time has field \(or get\) and lateMs$/);
});

// ---------------------------------------------------------------- the window stage

const setup = windowStages(test, T0 + 30_000, { time: { field: 'ts' } });

const A = destination('bucket', 'a');
const B = destination('bucket', 'b');
/** A group of lines `name@time` (time NaN: none). */
const timed = (dest: typeof A, ...events: [string, number][]): Routed => ({
  destination: dest,
  lines: events.map(([line]) => line),
  bytes: events.reduce((n, [line]) => n + lineBytes(line), 0),
  acks: null,
  times: events.map(([, time]) => time),
});

/** Each batch's prefix, lines, key time and whether it ended, in order of opening. */
function batches(out: LinesPiece[]) {
  return batchesOf(out).map(({ batch, lines, ended }) => ({ prefix: batch.destination.prefix, lines, keyTime: parseKey(batch.key)?.time, ended }));
}

test('lines of one group in different windows go to batches of their own windows, keyed by their first line\'s own time; each closes a lateMs after its window ends', async (t) => {
  const { clock, ctx, out, write } = setup();
  await write([timed(A, ['old1', T0 - MINUTE + 5_000], ['now1', T0 + 10_000], ['old2', T0 - MINUTE + 7_000], ['none', NaN]), timed(B, ['b', T0 + 2 * MINUTE + 1_000])]);
  t.deepEqual(batches(out), [
    { prefix: 'a', lines: ['old1', 'old2'], keyTime: T0 - MINUTE + 5_000, ended: false },
    { prefix: 'a', lines: ['now1', 'none'], keyTime: T0 + 10_000, ended: false },
    { prefix: 'b', lines: ['b'], keyTime: T0 + 2 * MINUTE + 1_000, ended: false },
  ]);
  t.is(ctx.stats().openBatches, 3);
  t.is(ctx.stats().late, 0, 'within lateMs of its window\'s end');
  // The previous window's batch waits a lateMs (a window) past its end: until T0 + 60 s.
  clock.set(T0 + MINUTE - 1);
  t.deepEqual(batches(out).map((b) => b.ended), [false, false, false]);
  clock.set(T0 + MINUTE);
  t.deepEqual(batches(out).map((b) => b.ended), [true, false, false]);
  // The current window's at T0 + 120 s; the one two windows ahead is held a window and a lateMs from when it opened, not until its window's end.
  clock.set(T0 + 2 * MINUTE);
  t.deepEqual(batches(out).map((b) => b.ended), [true, true, false]);
  clock.set(T0 + 2 * MINUTE + 30_000);
  t.deepEqual(batches(out).map((b) => b.ended), [true, true, true]);
  t.is(clock.pending, 0);
});

test('an event for a window whose batch has closed opens another batch for that window, which gathers the late events after it for lateMs', async (t) => {
  const { clock, ctx, out, write } = setup({ time: { field: 'ts', lateMs: 10_000 } });
  await write([timed(A, ['on time', T0 + 5_000])]);
  clock.set(T0 + MINUTE + 10_000);
  t.deepEqual(batches(out).map((b) => b.ended), [true]);
  await write([timed(A, ['late1', T0 + 6_000], ['next window', T0 + MINUTE + 1_000])]);
  clock.advance(9_999);
  await write([timed(A, ['late2', T0 + 59_999])]);
  clock.advance(1);
  t.deepEqual(batches(out), [
    { prefix: 'a', lines: ['on time'], keyTime: T0 + 5_000, ended: true },
    { prefix: 'a', lines: ['late1', 'late2'], keyTime: T0 + 6_000, ended: true },
    { prefix: 'a', lines: ['next window'], keyTime: T0 + MINUTE + 1_000, ended: false },
  ]);
  t.is(ctx.stats().late, 2);
  clock.set(T0 + 2 * MINUTE + 10_000);
  t.deepEqual(batches(out).map((b) => b.ended), [true, true, true]);
});

test('events without a usable time follow their arrival; a group whose times do not match its lines follows arrival whole', async (t) => {
  const { clock, out, write } = setup();
  await write([timed(A, ['x', NaN], ['y', NaN])]);
  clock.set(T0 + MINUTE + 1_000);
  await write([{ ...timed(A, ['p', T0 - 5 * MINUTE], ['q', T0 - 5 * MINUTE]), times: [T0 - 5 * MINUTE] }]);
  t.deepEqual(batches(out), [
    { prefix: 'a', lines: ['x', 'y'], keyTime: T0 + 30_000, ended: false },
    { prefix: 'a', lines: ['p', 'q'], keyTime: T0 + MINUTE + 1_000, ended: false },
  ]);
  clock.set(T0 + 2 * MINUTE);
  t.deepEqual(batches(out).map((b) => b.ended), [true, false]);
});

test('with event time a batch still rolls over before maxObjectBytes, its next object keyed in the same window', async (t) => {
  const { out, write } = setup({ maxObjectBytes: 10, maxLineBytes: 9 });
  await write([timed(A, ['aaaa', T0 - 50_000], ['bbbb', T0 + 1_000], ['cccc', T0 - 40_000], ['dddd', T0 - 30_000])]);
  const seen = batches(out);
  t.deepEqual(seen.map((b) => [b.lines, b.ended]), [[['aaaa', 'cccc'], true], [['dddd'], false], [['bbbb'], false]]);
  t.true(seen.slice(0, 2).every((b) => (b.keyTime as number) >= T0 - MINUTE && (b.keyTime as number) < T0));
});

// ---------------------------------------------------------------- reading the time

test('the time field is read in the same pass as the template\'s fields: no JSON.parse for lines; templates, the dead-letter prefix and untimed counts agree', (t) => {
  const ctx = new SinkContext({ bucket: 'bucket', prefix: 'app/{service}/', input: 'lines', s3: { region: 'us-east-1' }, time: { field: 'meta.ts' } });
  t.teardown(() => ctx.dispose());
  const router = new Router(ctx, { times: true });
  const parse = JSON.parse;
  let parsed = 0;
  JSON.parse = ((...args: Parameters<typeof JSON.parse>) => {
    parsed += 1;
    return parse(...args);
  }) as typeof JSON.parse;
  let routed;
  try {
    routed = [
      '{"service":"api","meta":{"ts":"2026-01-02T03:04:05Z"}}',
      '{"meta":{"ts":1767323045},"service":"web"}',
      '{"service":"api","meta":{"ts":"yesterday"}}',
      '{"service":"api"}',
      '{"meta":{"ts":1767323045000}}',
      'not json {"meta":{"ts":1767323045000}}',
    ].map((line) => router.route({ payload: Buffer.from(line) }));
  } finally {
    JSON.parse = parse;
  }
  t.is(parsed, 0);
  t.deepEqual(
    routed.map((r) => [r?.destination.prefix, r?.time]),
    [['app/api', T0 + 5_000], ['app/web', T0 + 5_000], ['app/api', NaN], ['app/api', NaN], ['_unrouted', T0 + 5_000], ['_unrouted', NaN]],
  );
  t.is(ctx.stats().untimed, 3);
  t.is(ctx.stats().unrouted, 2);
  // A router not asked for times (the Kafka input's) reads none.
  t.is(new Router(ctx).route({ payload: Buffer.from('{"service":"api","meta":{"ts":1}}') })?.time, undefined);
});

// ---------------------------------------------------------------- end to end, on a local S3

/** The lines of every object under `prefix`, by the UTC minute of its key. */
async function objectsByMinute(prefix: string): Promise<Map<string, string[][]>> {
  const byMinute = new Map<string, string[][]>();
  for (const key of (await env.s3.keys('bucket', prefix)).sort()) {
    const minute = new Date((parseKey(key) as { time: number }).time).toISOString().slice(0, 16);
    byMinute.set(minute, [...(byMinute.get(minute) ?? []), await env.s3.lines('bucket', key)]);
  }
  return byMinute;
}

test('lines with epoch seconds, milliseconds and ISO times land in objects keyed by their own windows; those without a usable time follow arrival and are counted', async (t) => {
  const clock = new ManualClock(T0 + 30_000);
  const sink = s3Sink({ bucket: 'bucket', prefix: 'lines/', input: 'lines', s3: env.s3.s3Config, clock, time: { field: 'ts' } });
  sink.write(
    [
      `{"n":1,"ts":${(T0 - 2 * MINUTE + 1_000) / 1000}}`, // epoch seconds, two windows back
      `{"n":2,"ts":${T0 - 2 * MINUTE + 2_500}}`, // epoch ms, same window
      '{"n":3,"ts":"2026-01-02T03:05:59.999+00:00"}', // ISO, the next window
      '{"n":4,"ts":"2026-01-02T04:03:00+01:00"}', // ISO with an offset: the window before
      '{"n":5}', // no time: arrival
      '{"n":6,"ts":"soon"}', // not a time: arrival
      'plain text', // not JSON: arrival
      `{"n":7,"ts":${T0 + 1_000}}`,
    ].join('\n') + '\n',
  );
  await sink.close();
  t.deepEqual(
    await objectsByMinute('lines/'),
    new Map([
      ['2026-01-02T03:02', [['{"n":1,"ts":1767322921}', `{"n":2,"ts":${T0 - 2 * MINUTE + 2_500}}`]]],
      ['2026-01-02T03:03', [['{"n":4,"ts":"2026-01-02T04:03:00+01:00"}']]],
      ['2026-01-02T03:04', [['{"n":5}', '{"n":6,"ts":"soon"}', 'plain text', `{"n":7,"ts":${T0 + 1_000}}`]]],
      ['2026-01-02T03:05', [['{"n":3,"ts":"2026-01-02T03:05:59.999+00:00"}']]],
    ]),
  );
  const stats = sink.stats();
  t.is(stats.untimed, 3);
  t.is(stats.late, 2, 'the two of a window that ended more than lateMs ago');
  t.is(stats.eventsOut, 8);
  t.is(stats.objects, 4);
});

test('a late event after its window\'s object was written goes to another object for its window; records with a time function', async (t) => {
  const clock = new ManualClock(T0 + 30_000);
  const sink = s3Sink({ bucket: 'bucket', prefix: 'records/', s3: env.s3.s3Config, clock, time: { get: (payload) => (payload as { at?: Date }).at, lateMs: 5_000 } });
  const receipts: Receipt[] = [];
  sink.on('object', (r: Receipt) => receipts.push(r));
  const payloads = [{ n: 1, at: new Date(T0 + 10_000) }, { n: 2, at: new Date(T0 - 20_000) }, { n: 3 }];
  for (const payload of payloads) sink.write({ payload });
  const bytes = payloads.reduce((n, p) => n + JSON.stringify(p).length + 1, 0);
  await eventually(() => sink.stats().bytesIn === bytes, 'the three events in their batches');
  // n 2's window ended 25 s before it came: late, and its batch waits only a lateMs. n 1's waits a lateMs past its window's end.
  t.is(sink.stats().late, 1);
  clock.set(T0 + 35_000);
  await eventually(() => receipts.length === 1, 'the late batch written');
  clock.set(T0 + MINUTE + 5_000);
  await eventually(() => receipts.length === 2, 'the current window\'s batch written');
  sink.write({ payload: { n: 4, at: new Date(T0 + 59_000) } });
  await eventually(() => sink.stats().late === 2, 'n 4 taken');
  await sink.close();
  t.deepEqual(
    await objectsByMinute('records/'),
    new Map([
      ['2026-01-02T03:03', [['{"n":2,"at":"2026-01-02T03:03:40.000Z"}']]],
      ['2026-01-02T03:04', [['{"n":1,"at":"2026-01-02T03:04:10.000Z"}', '{"n":3}'], ['{"n":4,"at":"2026-01-02T03:04:59.000Z"}']]],
    ]),
  );
  t.is(sink.stats().untimed, 1);
});

test('a time function that throws is said once; its events follow arrival and are counted', async (t) => {
  const clock = new ManualClock(T0 + 30_000);
  const sink = s3Sink({ bucket: 'bucket', prefix: 'throws/', s3: env.s3.s3Config, clock, time: () => { throw new Error('no clock here'); } });
  const warnings: string[] = [];
  sink.on('warning', (w: { code: string; message: string }) => warnings.push(`${w.code}: ${w.message}`));
  for (let n = 0; n < 3; n++) sink.write({ payload: { n } });
  await sink.close();
  t.deepEqual(warnings, ["S3SINK_TIME_FUNCTION: the time option's function threw (no clock here): such events are batched by arrival (stats().untimed counts them)"]);
  t.is(sink.stats().untimed, 3);
  t.deepEqual([...(await objectsByMinute('throws/')).keys()], ['2026-01-02T03:04']);
});

test('CLI: --time-field batches by each line\'s own time; a bad field is a usage error; not with the kafka command', async (t) => {
  const input = ['{"at":{"t":"2020-03-04T05:06:07Z"},"n":1}', '{"at":{"t":1583298377},"n":2}', '{"at":{"t":1583298487000},"n":3}', '{"n":4}'].join('\n') + '\n';
  const { code, stderr } = await runCli(['--bucket', 'bucket', '--prefix', 'cli/', '--endpoint', env.s3.endpoint, '--time-field', 'at.t'], input);
  t.is(code, 0, stderr);
  t.regex(stderr, /done: 4 events in 3 objects, .*; 1 without a usable time \(batched by arrival\), 3 late/);
  const byMinute = await objectsByMinute('cli/');
  t.deepEqual(byMinute.get('2020-03-04T05:06'), [['{"at":{"t":"2020-03-04T05:06:07Z"},"n":1}', '{"at":{"t":1583298377},"n":2}']]);
  t.deepEqual(byMinute.get('2020-03-04T05:08'), [['{"at":{"t":1583298487000},"n":3}']]);
  t.is(byMinute.size, 3, 'and the line without a time in the minute it arrived');

  const bad = await runCli(['--bucket', 'bucket', '--time-field', 'a b']);
  t.is(bad.code, 2);
  t.is(bad.stderr.trim(), 's3-sink: --time-field: got "a b", expected a field name or dotted path, like ts, @timestamp or event.time');
  const kafka = await runCli(['kafka', '--brokers', 'localhost:9092', '--topic', 't', '--group', 'g', '--bucket', 'bucket', '--time-field', 'ts']);
  t.is(kafka.code, 2);
  t.regex(kafka.stderr, /--time-field does not go with the kafka command/);
});
