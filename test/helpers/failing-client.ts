import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';

/**
 * A real client (to s3rver) wrapped so that one kind of request fails as S3
 * would refuse it: what no local server can be made to do on cue. It records
 * every command it is given.
 */
export function failingClient(config: S3ClientConfig, fails: (command: { constructor: { name: string }; input: Record<string, unknown> }) => boolean) {
  const real = new S3Client({ maxAttempts: 1, ...config });
  const sent: string[] = [];
  const client = {
    config: real.config,
    async send(command: { constructor: { name: string }; input: Record<string, unknown> }, options?: unknown) {
      sent.push(command.constructor.name.replace(/Command$/, ''));
      if (fails(command)) {
        throw Object.assign(new Error('Access Denied'), { name: 'AccessDenied', Code: 'AccessDenied', $fault: 'client', $metadata: { httpStatusCode: 403 } });
      }
      return real.send(command as never, options as never);
    },
    destroy: () => real.destroy(),
  } as unknown as S3Client;
  return { client, sent };
}
