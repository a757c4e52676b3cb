// The CLI never trips (issue 14): a bad file, a directory, a reader that goes away, a bare label
// key and a server without a runtime each end in one line on stderr and the right exit code —
// against a real server, the CLI as a real subprocess. The pull display's terminal mode is
// tested on the renderer itself, with a fake terminal.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';

import type { PullEvent } from '../src/client/types.js';
import { PullProgress } from '../src/cli/progress.js';
import { startTestServer, type TestServer } from './fixtures/server.js';
import { berth, cliOk, projectRoot, type CliRun } from './fixtures/unpack.js';

/** One line, no stack trace. */
function oneLine(r: CliRun, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `exit ${r.code}\n${r.stderr}${r.stdout}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line on stderr:\n${r.stderr}`);
  assert.match(lines[0], pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at |Unhandled|node:internal/);
}

describe('the CLI never trips', { timeout: 120_000 }, () => {
  let server: TestServer;
  let address: string;
  let dir: string;

  before(async () => {
    // No runc to run: the runtime plugin is skipped, with the reason.
    server = await startTestServer({ config: { plugins: { 'io.berth.runtime.v1.runc': { binary: '/nonexistent/runc' } } } });
    address = new URL(server.url).host;
    dir = await mkdtemp(join(tmpdir(), 'berth-cli-trips-'));
  });
  after(async () => {
    await server?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('content put of a missing file: one line naming it, exit 1', async () => {
    const missing = join(dir, 'nonexistent');
    oneLine(await berth(address, ['content', 'put', missing]), 1, new RegExp(`^berth: ${missing}: no such file$`));
  });

  test('content put of a directory: "… is a directory", exit 1 (not "cannot reach the server")', async () => {
    oneLine(await berth(address, ['content', 'put', dir]), 1, new RegExp(`^berth: ${dir} is a directory$`));
    oneLine(await berth(address, ['content', 'put', '--digest', `sha256:${'0'.repeat(64)}`, dir]), 1, / is a directory$/);
  });

  test('content put of a file still works', async () => {
    const file = join(dir, 'small');
    await writeFile(file, 'hello trips\n');
    const digest = `sha256:${createHash('sha256').update('hello trips\n').digest('hex')}`;
    assert.equal(cliOk(await berth(address, ['content', 'put', file]), 'put').trim(), digest);
  });

  test('a reader that goes away (berth … | head): quiet, exit 0', async () => {
    const big = randomBytes(16 << 20);
    const file = join(dir, 'big');
    await writeFile(file, big);
    const digest = cliOk(await berth(address, ['content', 'put', file]), 'put big').trim();

    // Closes the pipe after the first chunk, as head does.
    const afterFirstChunk = await headRun(address, ['content', 'get', digest], 'first-chunk');
    assert.equal(afterFirstChunk.code, 0, afterFirstChunk.stderr);
    assert.equal(afterFirstChunk.stderr, '');
    // Closes it before anything is written.
    const closedEarly = await headRun(address, ['content', 'ls'], 'at-once');
    assert.equal(closedEarly.code, 0, closedEarly.stderr);
    assert.equal(closedEarly.stderr, '');
  });

  test('content label with a bare key: refused naming it, exit 1; k= still removes', async () => {
    const file = join(dir, 'labelled');
    await writeFile(file, 'label me\n');
    const digest = cliOk(await berth(address, ['content', 'put', '--label', 'keep=1', file]), 'put').trim();
    oneLine(await berth(address, ['content', 'label', digest, 'a=b', 'novalue']), 1, /"novalue".*k=v/);
    const info = JSON.parse(cliOk(await berth(address, ['content', 'info', digest]), 'info')) as { labels?: Record<string, string> };
    assert.deepEqual(info.labels, { keep: '1' }, 'nothing changed by the refused command');
    cliOk(await berth(address, ['content', 'label', digest, 'a=b', 'keep=']), 'label');
    const after = JSON.parse(cliOk(await berth(address, ['content', 'info', digest]), 'info')) as { labels?: Record<string, string> };
    assert.deepEqual(after.labels, { a: 'b' });
  });

  test('berth run without a runtime: refused at once naming the reason, nothing pulled', async () => {
    // The registry is never asked: port 1 would fail differently.
    const r = await berth(address, ['run', '--rm', '127.0.0.1:1/nothing/here:latest', 'trip', 'true']);
    oneLine(r, 1, /^berth: cannot run containers: the server has no runtime \(io\.berth\.runtime\.v1\.runc skipped: .*\/nonexistent\/runc/);
    const pulls = (await (await fetch(`${server.url}/v1/pulls`)).json()) as { items: unknown[] };
    assert.deepEqual(pulls.items, []);
  });

  test('a server that cannot be reached is still exit 2', async () => {
    const r = await berth('127.0.0.1:1', ['content', 'ls']);
    assert.equal(r.code, 2, r.stderr);
  });
});

/** Runs the CLI with its stdout piped into a reader that closes early. */
function headRun(address: string, args: string[], when: 'first-chunk' | 'at-once'): Promise<{ code: number | null; stderr: string }> {
  return (async () => {
    // The same bundled CLI berth() runs; built by the earlier berth() calls.
    const entry = await cliEntryPath();
    const { BERTH_ADDRESS: _a, BERTH_NAMESPACE: _n, ...env } = process.env;
    const child = spawn(process.execPath, [entry, '--address', address, ...args], { cwd: projectRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    if (when === 'at-once') child.stdout.destroy();
    else child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((done) => child.on('close', (c) => done(c)));
    return { code, stderr };
  })();
}

async function cliEntryPath(): Promise<string> {
  return join(projectRoot, 'node_modules', '.cache', `berth-test-cli-${process.pid}`, 'berth.mjs');
}

describe('the pull display on a terminal', () => {
  const layer = { digest: `sha256:${'a'.repeat(64)}`, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', size: 1000 };

  function fakeTty(columns: number, rows: number) {
    let text = '';
    const out = Object.assign(
      new Writable({
        write(chunk, _enc, cb) {
          text += String(chunk);
          cb();
        },
      }),
      { isTTY: true, columns, rows },
    );
    let t = 0;
    const progress = new PullProgress({ out, tty: true, columns: () => out.columns, rows: () => out.rows, now: () => (t += 1000) });
    return { progress, text: () => text };
  }

  const ev = (e: Partial<PullEvent> & { type: PullEvent['type'] }) => e as PullEvent;

  test('a layer shows downloading, extracting and unpacked', () => {
    const { progress, text } = fakeTty(100, 30);
    const states: string[] = [];
    const lastFrame = () => text().split('\x1b[2K').filter((l) => l.includes('sha256:aaaaaaaaaaaa')).at(-1) ?? '';
    progress.event(ev({ type: 'downloading', ...layer, offset: 0 }));
    states.push(lastFrame());
    progress.event(ev({ type: 'unpack', digest: layer.digest, state: 'extracting' }));
    states.push(lastFrame());
    progress.event(ev({ type: 'done', ...layer }));
    states.push(lastFrame());
    progress.event(ev({ type: 'unpack', digest: layer.digest, state: 'unpacked', chainId: `sha256:${'c'.repeat(64)}` }));
    states.push(lastFrame());
    progress.finish();
    assert.match(states[0], /\bdownloading\b/);
    assert.match(states[1], /\bextracting\b/);
    assert.match(states[2], /\bextracting\b/, 'downloaded but still extracting');
    assert.match(states[3], /\bunpacked\b/);
  });

  test('a terminal reporting 0×0 gets 80 columns', () => {
    const { progress, text } = fakeTty(0, 0);
    progress.event(ev({ type: 'downloading', ...layer, offset: 500 }));
    progress.finish();
    const lines = text()
      .split('\x1b[2K')
      .map((l) => l.split('\n')[0]);
    const line = lines.find((l) => l.includes('sha256:aaaaaaaaaaaa'));
    assert.ok(line, text());
    assert.ok(line.length > 40, `wider than the 40-column minimum: ${JSON.stringify(line)}`);
    assert.ok(line.length <= 79, `within 80 columns: ${JSON.stringify(line)}`);
    assert.match(line, /500 B\/1000 B|500.*1000/);
  });
});
