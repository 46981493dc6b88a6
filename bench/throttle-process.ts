// A proxy in front of the benchmark's s3rver that lets request bodies through
// at a few MB/s (S3 throttled), in a process of its own. Arguments: target
// port, bytes per second. Prints its endpoint; serves until stdin closes.
import { startProxy } from '../test/helpers/proxy.js';

const [port, rate] = process.argv.slice(2).map(Number);
const proxy = await startProxy(port as number, { bytesPerSecond: rate as number });
process.stdout.write(`${JSON.stringify({ endpoint: proxy.endpoint })}\n`);
process.stdin.resume();
process.stdin.on('end', () => {
  void proxy.close().then(() => process.exit(0));
});
