import { createRequire } from 'node:module';
import { S3SinkError } from '../errors.js';
import { parseCommand, USAGE, UsageError } from './args.js';
import { bucketPolicy } from './policy.js';
import type { Io } from './run.js';

export interface MainIo extends Io {
  stdin: import('node:stream').Readable;
  stdout: NodeJS.WritableStream;
}

/** The CLI: resolves with the exit code (0 ok, 1 delivery failed, 2 usage). */
export async function main(argv: readonly string[], io: MainIo): Promise<number> {
  try {
    const command = parseCommand(argv);
    switch (command.kind) {
      case 'help':
        io.stdout.write(`${USAGE}\n`);
        return 0;
      case 'version': {
        const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };
        io.stdout.write(`s3-sink ${version}\n`);
        return 0;
      }
      case 'policy':
        io.stdout.write(`${JSON.stringify(bucketPolicy(command), null, 2)}\n`);
        return 0;
      // The AWS SDK loads only for the commands that talk to S3 (--help stays quick).
      case 'demo': {
        const { runDemo } = await import('./demo.js');
        return (await runDemo(io, io.stdout, command.quiet)).code;
      }
      case 'flush': {
        const { runFlush } = await import('./flush.js');
        return await runFlush(command, io);
      }
      case 'kafka': {
        const { runKafka } = await import('./kafka.js');
        return await runKafka(command, io);
      }
      case 'serve': {
        const { runServe } = await import('./serve.js');
        return await runServe(command, io);
      }
      case 'run': {
        const { runSink } = await import('./run.js');
        return (await runSink(command, io.stdin, io)).code;
      }
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`s3-sink: ${err.message}\n`);
      return 2;
    }
    // Installed from the registry, s3rver is not there: one line saying how to get it, not a stack trace.
    if (err instanceof S3SinkError && err.code === 'ERR_S3SINK_NO_S3RVER') {
      io.stderr.write(`s3-sink: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
