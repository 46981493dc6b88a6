import test from 'ava';
import { formatBytes, parseDuration, parseSize } from '../lib/cli/units.js';

test('durations: 500ms, 30s, 1m, 1h; a bare number is milliseconds', (t) => {
  t.is(parseDuration('500ms'), 500);
  t.is(parseDuration('30s'), 30_000);
  t.is(parseDuration('1m'), 60_000);
  t.is(parseDuration('1h'), 3_600_000);
  t.is(parseDuration('1.5s'), 1500);
  t.is(parseDuration('250'), 250);
  for (const bad of ['', '5x', '-1s', '0s', '0.5ms', 's', '1 m']) t.is(parseDuration(bad), null, bad);
});

test('sizes: K/M/G and KiB/MiB/GiB are powers of 1024, KB/MB/GB of 1000', (t) => {
  t.is(parseSize('65536'), 65536);
  t.is(parseSize('64KiB'), 65536);
  t.is(parseSize('8M'), 8 * 1024 * 1024);
  t.is(parseSize('8mib'), 8 * 1024 * 1024);
  t.is(parseSize('5MB'), 5_000_000);
  t.is(parseSize('1.5GiB'), 1.5 * 1024 ** 3);
  for (const bad of ['', 'lots', '5XB', '-5M', '0']) t.is(parseSize(bad), null, bad);
});

test('formatBytes is for people', (t) => {
  t.is(formatBytes(512), '512 B');
  t.is(formatBytes(1536), '1.5 KiB');
  t.is(formatBytes(200 * 1024 * 1024), '200 MiB');
});
