import test from 'ava';
import { once } from 'node:events';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FILE_READ_BYTES, openStdin } from '../lib/cli/stdin.js';

test('a file on stdin is read FILE_READ_BYTES at a time, whole and in order; a directory fails to read', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 's3-sink-stdin-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const bytes = Buffer.alloc(2 * FILE_READ_BYTES + 1000);
  for (let i = 0; i < bytes.length; i++) bytes[i] = i % 251;
  await writeFile(join(dir, 'events'), bytes);
  const file = await open(join(dir, 'events'), 'r');
  t.teardown(() => file.close());
  const stream = openStdin(file.fd);
  t.not(stream, process.stdin);
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  await once(stream, 'end');
  t.deepEqual(chunks.map((c) => c.length), [FILE_READ_BYTES, FILE_READ_BYTES, 1000]);
  t.true(Buffer.concat(chunks).equals(bytes));
  t.true(FILE_READ_BYTES > 64 * 1024, "more than Node's own 64 KiB");

  const directory = await open(dir, 'r');
  t.teardown(() => directory.close());
  const failing = openStdin(directory.fd);
  failing.resume();
  const [err] = (await once(failing, 'error')) as [NodeJS.ErrnoException];
  t.is(err.code, 'EISDIR');
});
