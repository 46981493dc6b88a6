// The library scenario: pipeline(fs.createReadStream(file), s3Sink(...)), as
// a user's program would run it. Arguments: file endpoint bucket prefix
// [parallel|single] (parallelGzip true or false; left out, the default).
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { s3Sink } from '../dist/index.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const [file, endpoint, bucket, prefix, parallel] = process.argv.slice(2);
await pipeline(
  createReadStream(file),
  s3Sink({
    bucket,
    prefix,
    input: 'lines',
    ...(parallel === undefined ? {} : { parallelGzip: parallel === 'parallel' }),
    s3: { endpoint, region: 'us-east-1', forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } },
  }),
);
