// A pull survives the server being killed: SIGKILL mid-pull, start again on the same root, pull
// again — committed blobs are not fetched again and the partial one resumes from its offset
// (bytes counted at a proxy in front of the real registry).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { bigLayer, buildImage, pushImage } from './fixtures/images.js';
import { startProxy, type Proxy } from './fixtures/proxy.js';
import { freePort, startRegistry, type Registry } from './fixtures/registry.js';

const root = new URL('..', import.meta.url).pathname;
let registry: Registry;
let proxy: Proxy;
let dir: string;

before(async () => {
  registry = await startRegistry();
  proxy = await startProxy(registry.host);
  dir = await mkdtemp(join(tmpdir(), 'berth-pull-restart-'));
});
after(async () => {
  await proxy?.stop();
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function serve(port: number): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    ['bin/berth.js', 'serve', '--root', join(dir, 'root'), '--state', join(dir, 'state'), '--address', `127.0.0.1:${port}`, '--log-level', 'warn'],
    { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) return child;
    } catch {
      // not up yet
    }
    await sleep(50);
  }
  child.kill('SIGKILL');
  throw new Error('berth did not start');
}

async function api(port: number, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await res.json();
  assert.ok(res.status < 500, `${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

test('SIGKILL mid-pull, restart, pull again: committed blobs are not fetched again, the partial one resumes', { timeout: 120_000 }, async () => {
  const big = await bigLayer(8 << 20, { seed: 7 });
  const image = buildImage({ layers: [{ 'etc/a': 'small layer a\n' }, { 'etc/b': 'small layer b\n' }, big] });
  await pushImage(registry, 'restart/app', 'v1', image);
  const bigPath = `/v2/restart/app/blobs/${big.digest}`;
  const stallAt = (3 << 20) + 4321;
  proxy.set({ stallAfterBytes: stallAt, match: bigPath });

  const port = await freePort();
  let server = await serve(port);
  try {
    const ref = `${proxy.host}/restart/app:v1`;
    const started = await api(port, 'POST', '/v1/pulls', { ref });
    assert.equal(started.state, 'running');
    // Wait until the small blobs are in and the big one has bytes on disk, held by the stall.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const view = await api(port, 'GET', `/v1/pulls/${started.id}`);
      const bigBlob = view.blobs.find((b: { digest: string }) => b.digest === big.digest);
      const smallDone = image.layers
        .filter((l) => l.digest !== big.digest)
        .every((l) => view.blobs.some((b: { digest: string; state: string }) => b.digest === l.digest && (b.state === 'done' || b.state === 'exists')));
      if (smallDone && bigBlob && bigBlob.offset >= 2 << 20) break;
      assert.ok(Date.now() < deadline, `pull did not reach the stall: ${JSON.stringify(view)}`);
      await sleep(50);
    }
    server.kill('SIGKILL');
    await new Promise((resolve) => server.once('exit', resolve));

    proxy.set({ stallAfterBytes: undefined });
    proxy.reset();
    server = await serve(port);
    const done = await api(port, 'POST', '/v1/pulls?wait=true', { ref });
    assert.equal(done.state, 'done', JSON.stringify(done.error));

    const gets = proxy.responses.filter((r) => r.method === 'GET' && r.path.includes('/blobs/'));
    for (const l of image.layers.filter((x) => x.digest !== big.digest)) {
      assert.equal(gets.filter((r) => r.path.endsWith(l.digest)).length, 0, `${l.digest} was committed before the kill: not fetched again`);
    }
    const bigGets = gets.filter((r) => r.path === bigPath);
    assert.equal(bigGets.length, 1, 'the big layer is fetched once more');
    const range = /^bytes=(\d+)-$/.exec(bigGets[0].requestHeaders.range ?? '');
    assert.ok(range, `resumed with a Range request, got ${JSON.stringify(bigGets[0].requestHeaders)}`);
    const from = Number(range[1]);
    assert.ok(from >= 1 << 20 && from <= stallAt, `resumed from what was on disk (${from})`);
    assert.equal(bigGets[0].status, 206);
    assert.equal(bigGets[0].bodyBytes, big.size - from, 'only the rest of the blob was served');

    const image2 = await api(port, 'GET', `/v1/images/${encodeURIComponent(ref)}`);
    assert.equal(image2.target.digest, image.digest);
  } finally {
    server.kill('SIGKILL');
  }
});
