// The benchmark's S3: s3rver in a process of its own, so its CPU is not
// charged to the sink. Prints its endpoint as one JSON line, serves until
// stdin closes (the benchmark ends).
import { startLocalS3 } from '../lib/localS3.js';

const buckets = process.argv.slice(2);
const s3 = await startLocalS3({ buckets: buckets.length > 0 ? buckets : ['bench'] });
process.stdout.write(`${JSON.stringify({ endpoint: s3.endpoint, port: s3.port })}\n`);
process.stdin.resume();
process.stdin.on('end', () => {
  void s3.close().then(() => process.exit(0));
});
