import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));

// Another project that has s3-sink installed (linked, as npm links a local
// dependency): the package's `exports` must give it the built ESM and its types.
test('import { s3Sink } from \'s3-sink\' works, with types, from another project', async (t) => {
  const project = await mkdtemp(join(tmpdir(), 's3-sink-consumer-'));
  try {
    await mkdir(join(project, 'node_modules'));
    await symlink(root, join(project, 'node_modules', 's3-sink'), 'dir');
    // A TypeScript project for Node has Node's types.
    await mkdir(join(project, 'node_modules', '@types'));
    await symlink(join(root, 'node_modules', '@types', 'node'), join(project, 'node_modules', '@types', 'node'), 'dir');
    await writeFile(join(project, 'package.json'), JSON.stringify({ type: 'module' }));
    await writeFile(
      join(project, 'use.ts'),
      [
        "import { s3Sink, sinkContext, parse, type Receipt, type SinkOptions } from 's3-sink';",
        "const options: SinkOptions = { bucket: 'bucket', s3: { region: 'us-east-1' } };",
        'const sink = s3Sink(options);',
        "sink.on('object', (receipt: Receipt) => receipt.key.toUpperCase());",
        'const stage = parse(sinkContext(options));',
        'sink.destroy();',
        'stage.destroy();',
        "console.log(typeof sink.close, typeof sink.stats, sink.writable !== undefined ? 'writable' : '');",
      ].join('\n'),
    );
    await writeFile(
      join(project, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: true, types: ['node'] }, files: ['use.ts'] }),
    );
    await t.notThrowsAsync(run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project]), 'types resolve through exports');
    await writeFile(join(project, 'use.mjs'), "import { s3Sink } from 's3-sink';\nconst sink = s3Sink({ bucket: 'bucket', s3: { region: 'us-east-1' } });\nconsole.log(typeof sink.close, typeof sink.stats);\nsink.destroy();\n");
    const { stdout } = await run(process.execPath, [join(project, 'use.mjs')], { cwd: project });
    t.is(stdout.trim(), 'function function');
  } finally {
    await rm(project, { recursive: true, force: true });
  }
});
