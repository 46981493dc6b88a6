import test from 'ava';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));

/** Another project with s3-sink installed (linked, as npm links a local dependency) and `files` written in it; removed after the test. */
async function consumer(t: import('ava').ExecutionContext, type: 'module' | 'commonjs', files: Record<string, string>): Promise<string> {
  const project = await mkdtemp(join(tmpdir(), `s3-sink-${type}-`));
  t.teardown(() => rm(project, { recursive: true, force: true }));
  await mkdir(join(project, 'node_modules'));
  await symlink(root, join(project, 'node_modules', 's3-sink'), 'dir');
  await writeFile(join(project, 'package.json'), JSON.stringify({ type }));
  for (const [name, text] of Object.entries(files)) await writeFile(join(project, name), text);
  return project;
}

// Another project that has s3-sink installed (linked, as npm links a local
// dependency): the package's `exports` must give it the built ESM and its types.
test('import { s3Sink } from \'s3-sink\' works, with types, from another project', async (t) => {
  const project = await consumer(t, 'module', {
    'use.ts': [
      "import { s3Sink, sinkContext, parse, type Receipt, type SinkOptions } from 's3-sink';",
      "const options: SinkOptions = { bucket: 'bucket', s3: { region: 'us-east-1' } };",
      'const sink = s3Sink(options);',
      "sink.on('object', (receipt: Receipt) => receipt.key.toUpperCase());",
      'const stage = parse(sinkContext(options));',
      'sink.destroy();',
      'stage.destroy();',
      "console.log(typeof sink.close, typeof sink.stats, sink.writable !== undefined ? 'writable' : '');",
    ].join('\n'),
    'tsconfig.json': JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: true, types: ['node'] }, files: ['use.ts'] }),
    'use.mjs': "import { s3Sink } from 's3-sink';\nconst sink = s3Sink({ bucket: 'bucket', s3: { region: 'us-east-1' } });\nconsole.log(typeof sink.close, typeof sink.stats);\nsink.destroy();\n",
  });
  // A TypeScript project for Node has Node's types.
  await mkdir(join(project, 'node_modules', '@types'));
  await symlink(join(root, 'node_modules', '@types', 'node'), join(project, 'node_modules', '@types', 'node'), 'dir');
  await t.notThrowsAsync(run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project]), 'types resolve through exports');
  const { stdout } = await run(process.execPath, [join(project, 'use.mjs')], { cwd: project });
  t.is(stdout.trim(), 'function function');
});

test('the tarball holds the MIT LICENSE, and installing it runs no script of ours (no prepare, install or postinstall)', async (t) => {
  const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root });
  const [pack] = JSON.parse(stdout) as { files: { path: string }[] }[];
  const files = (pack?.files ?? []).map((f) => f.path);
  t.true(files.includes('LICENSE'), files.join(', '));
  t.regex(await readFile(join(root, 'LICENSE'), 'utf8'), /^MIT License/);
  const { license, scripts } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { license: string; scripts: Record<string, string> };
  t.is(license, 'MIT');
  // npm warns about (and asks to approve) a dependency's install-time scripts.
  t.deepEqual(Object.keys(scripts).filter((name) => ['preinstall', 'install', 'postinstall', 'prepare'].includes(name)), []);
});

test('require(\'s3-sink\') works from a CommonJS project (Node\'s require of ES modules), and the library leaves process.env alone', async (t) => {
  const project = await consumer(t, 'commonjs', {
    'use.js': [
      "const { s3Sink } = require('s3-sink');",
      "const sink = s3Sink({ bucket: 'bucket', s3: { region: 'us-east-1' } });",
      "sink.on('error', () => {});",
      'sink.destroy();',
      "console.log(typeof s3Sink, process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ?? 'unset');",
    ].join('\n'),
  });
  const env = { ...process.env };
  delete env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
  const { stdout } = await run(process.execPath, [join(project, 'use.js')], { cwd: project, env });
  t.is(stdout.trim(), 'function unset');
  // The README's way to silence the SDK's Node 22 warning: the SDK's own switch, in the environment.
  const silenced = await run(process.execPath, [join(project, 'use.js')], { cwd: project, env: { ...env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' } });
  t.is(silenced.stdout.trim(), 'function true');
  t.false(silenced.stderr.includes('NodeVersionSupportWarning'), silenced.stderr);
});

test('s3-sink demo where s3rver is not installed (installed from the registry) says how to get it in one line, exit 1', async (t) => {
  const project = await mkdtemp(join(tmpdir(), 's3-sink-no-s3rver-'));
  try {
    // The package as installed: its files, and every dependency but the development-only s3rver.
    await cp(join(root, 'dist'), join(project, 'dist'), { recursive: true });
    await cp(join(root, 'package.json'), join(project, 'package.json'));
    await mkdir(join(project, 'node_modules'));
    for (const name of await readdir(join(root, 'node_modules'))) {
      if (name !== 's3rver' && !name.startsWith('.')) await symlink(join(root, 'node_modules', name), join(project, 'node_modules', name), 'dir');
    }
    const child = await run(process.execPath, [join(project, 'dist', 'cli.js'), 'demo'], { cwd: project }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => err,
    );
    t.is(child.code, 1);
    t.is(child.stderr, 's3-sink: the embedded S3 needs the s3rver package, a development dependency of s3-sink: npm install s3rver@3\n');
  } finally {
    await rm(project, { recursive: true, force: true });
  }
});
