// berth installs like a daemon: `npm pack` of the project gives a tarball that `npm install -g`
// installs with only Node and npm — no dev dependencies, no TypeScript at run time, dist/ inside —
// and the installed `berth` says its version and commit, has help, and serves from a fresh root.
// The pack runs in a copy of the working tree (its `prepare` builds dist/ there, never under the
// feet of tests running from this checkout's dist/).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repo = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')) as { name: string; version: string; devDependencies: Record<string, string> };

/** The environment of a clean shell: none of the npm_* variables `npm test` sets, only Node's folder and the system's on PATH. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_|^NODE_OPTIONS$|^INIT_CWD$/i.test(k)) env[k] = v;
  env.PATH = [dirname(process.execPath), '/usr/local/bin', '/usr/bin', '/bin'].join(':');
  return { ...env, ...extra };
}

let dir: string;
let tarball: string;
let prefix: string;
let berth: string;
let buildCommit: string;

describe('the npm package', { timeout: 600_000 }, () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-pack-'));
    // The working tree as git sees it (tracked and new files, not ignored ones such as dist/).
    const src = join(dir, 'src');
    const { stdout } = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: repo, maxBuffer: 64 << 20 });
    for (const file of stdout.split('\0').filter(Boolean)) {
      const from = join(repo, file);
      if (!(await stat(from).catch(() => undefined))?.isFile()) continue; // deleted in the working tree
      await mkdir(dirname(join(src, file)), { recursive: true });
      await copyFile(from, join(src, file));
    }
    // The dev dependencies the build needs (tsc, openapi-typescript): the checkout's.
    await symlink(join(repo, 'node_modules'), join(src, 'node_modules'), 'dir');
    const out = join(dir, 'out');
    await mkdir(out);
    // GIT_DIR: the copy is not a checkout; the build asks this repository for the commit.
    const packed = await run('npm', ['pack', '--json', '--pack-destination', out], {
      cwd: src,
      env: cleanEnv({ GIT_DIR: join(repo, '.git') }),
      maxBuffer: 64 << 20,
    });
    // (after what the build printed: the JSON array starts on a line of its own)
    const [info] = JSON.parse(packed.stdout.slice(packed.stdout.search(/^\[$/m))) as Array<{ filename: string }>;
    tarball = join(out, info.filename);
    prefix = join(dir, 'prefix');
    berth = join(prefix, 'bin', 'berth');
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the tarball holds the compiled program, the document and the service files, and no sources or tests', async () => {
    const { stdout } = await run('tar', ['-tzf', tarball], { maxBuffer: 64 << 20 });
    const files = new Set(stdout.split('\n').filter(Boolean));
    for (const f of [
      'package/package.json',
      'package/bin/berth.js',
      'package/dist/src/cli/main.js',
      'package/dist/src/server.js',
      'package/dist/build-info.json',
      'package/openapi.yaml',
      'package/contrib/berth.service',
      'package/contrib/berth.toml',
    ]) {
      assert.ok(files.has(f), `${f} missing from the tarball`);
    }
    const stray = [...files].filter((f) => /\.ts$/.test(f) && !f.endsWith('.d.ts') || f.startsWith('package/test/') || f.startsWith('package/src/'));
    assert.deepEqual(stray, [], 'sources or tests in the tarball');
    const { stdout: info } = await run('tar', ['-xzOf', tarball, 'package/dist/build-info.json']);
    buildCommit = (JSON.parse(info) as { commit: string }).commit;
    assert.match(buildCommit, /^[0-9a-f]{40}$/, 'the build recorded no commit');
    // A commit of this repository (HEAD when it was packed; another may have landed since).
    const { stdout: type } = await run('git', ['cat-file', '-t', buildCommit], { cwd: repo });
    assert.equal(type.trim(), 'commit');
  });

  test('npm install -g of the tarball needs no dev dependency, and berth --version and --help answer', async () => {
    // Runtime dependencies come from the registry (or npm's cache); nothing runs a build.
    await run('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', '--prefer-offline', tarball], {
      env: cleanEnv(),
      maxBuffer: 64 << 20,
    });
    const installed = join(prefix, 'lib', 'node_modules', pkg.name);
    assert.ok((await readdir(join(installed, 'node_modules'))).includes('fastify'), 'runtime dependencies not installed');
    // The dev dependencies (but @types/node, which a runtime dependency's dependency brings).
    for (const dev of Object.keys(pkg.devDependencies).filter((d) => d !== '@types/node')) {
      assert.ok(!existsSync(join(installed, 'node_modules', dev)), `${dev} was installed with the package`);
    }
    const version = await run(berth, ['--version'], { env: cleanEnv() });
    assert.equal(version.stdout.trim(), `berth ${pkg.version} (commit ${buildCommit})`);
    const help = await run(berth, ['--help'], { env: cleanEnv() });
    for (const word of ['serve', 'config', 'pull', 'content', '--version']) assert.match(help.stdout, new RegExp(`\\s${word}\\b`), `--help lacks ${word}`);
    // The installed package prints the same configuration file as contrib/berth.toml.
    const config = await run(berth, ['config', 'default'], { env: cleanEnv() });
    assert.equal(config.stdout, await readFile(join(repo, 'contrib', 'berth.toml'), 'utf8'));
  });

  test('the installed berth serves from a fresh root: GET /v1/version names the build, /docs is served', async () => {
    const root = join(dir, 'root');
    let child: ChildProcess | undefined;
    try {
      child = spawn(berth, ['serve', '--root', root, '--state', join(dir, 'state'), '--address', '127.0.0.1:0'], {
        env: cleanEnv(),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr!.on('data', (d) => (stderr += d));
      const exited = once(child, 'exit');
      // The log line saying where it serves (JSON lines on stdout).
      const url = await new Promise<string>((resolve, reject) => {
        const lines = createInterface({ input: child!.stdout! });
        lines.on('line', (line) => {
          const entry = JSON.parse(line) as { msg?: string; url?: string };
          if (entry.msg === 'berth serving' && entry.url) resolve(entry.url);
        });
        void exited.then(([code]) => reject(new Error(`berth serve exited ${code} before serving: ${stderr}`)));
      });
      const res = await fetch(`${url}/v1/version`);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { version: pkg.version, commit: buildCommit });
      const docs = await fetch(`${url}/docs/static/swagger-ui-bundle.js`);
      await docs.arrayBuffer();
      assert.equal(docs.status, 200, 'the docs page assets are not in the installed package');
      assert.ok((await stat(join(root, 'io.berth.content.v1.content'))).isDirectory(), 'no content store made under --root');
      child.kill('SIGTERM');
      const [code] = await exited;
      assert.equal(code, 0, `berth serve exited ${code} on SIGTERM: ${stderr}`);
    } finally {
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
