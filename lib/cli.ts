#!/usr/bin/env node
// The s3-sink command. The AWS SDK warns on every start that its 2027
// releases will need Node 22; that one warning is switched off with the SDK's
// own switch, before the SDK loads. Every other warning still prints.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// A reader that goes away (`s3-sink demo | head -1`) is no failure of ours:
// what would have gone to it is dropped and the command finishes as usual,
// quietly (the demo still removes its embedded S3's temporary folder).
// Unhandled, the EPIPE was a stack trace and an exit that skipped the clean-up.
for (const out of [process.stdout, process.stderr]) {
  out.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
}

const { main } = await import('./cli/main.js');
const { openStdin } = await import('./cli/stdin.js');
const code = await main(process.argv.slice(2), {
  stdin: openStdin(),
  stdout: process.stdout,
  stderr: process.stderr,
  signals: process,
  exitNow: (exitCode) => process.exit(exitCode),
});
// stdout and stderr are synchronous for files and pipes on Linux: nothing is cut off.
process.exit(code);
