// Content verification: a blob whose bytes changed on disk is found and, with repair, removed.
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { digestOf } from '../store/digest.js';
import { writeBlob } from '../store/copy.js';
import { LocalStore } from '../store/index.js';
import { blobPath } from '../store/paths.js';
import { verifyContent } from '../store/verify.js';
import { startTestServer } from './fixtures/server.js';

const dirs: string[] = [];
after(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

async function storeWith(blobs: Buffer[]): Promise<{ store: LocalStore; digests: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-verify-'));
  dirs.push(dir);
  const store = await LocalStore.open(dir);
  const digests = [];
  for (const b of blobs) {
    const digest = digestOf(b);
    await writeBlob(store, digest, [b], { size: b.length, digest });
    digests.push(digest);
  }
  return { store, digests };
}

async function corrupt(store: LocalStore, digest: string): Promise<void> {
  const path = blobPath(store.root, digest);
  await chmod(path, 0o644);
  await writeFile(path, 'not what it was');
  await chmod(path, 0o444);
}

test('verify reports a corrupted blob and leaves the good ones', async () => {
  const { store, digests } = await storeWith([Buffer.from('one'), Buffer.alloc(3 << 20, 7), Buffer.from('three')]);
  await corrupt(store, digests[1]);
  const report = await verifyContent(store);
  assert.equal(report.checked, 3);
  assert.deepEqual(report.corrupt.map((c) => c.digest), [digests[1]]);
  assert.match(report.corrupt[0].reason, /does not match/);
  assert.deepEqual(report.removed, []);
  await store.info(digests[1]); // still there without repair
});

test('verify --repair removes only the corrupted blob', async () => {
  const { store, digests } = await storeWith([Buffer.from('a'), Buffer.from('b')]);
  await corrupt(store, digests[0]);
  const report = await verifyContent(store, { repair: true });
  assert.deepEqual(report.removed, [digests[0]]);
  await assert.rejects(store.info(digests[0]), (err: Error & { code?: string }) => err.code === 'not_found');
  assert.equal((await store.info(digests[1])).size, 1);
  assert.equal((await verifyContent(store)).corrupt.length, 0);
});

test('POST /v1/content/verify?repair=true over HTTP removes the blob and its labels', async () => {
  const server = await startTestServer();
  try {
    const body = Buffer.from('labelled and then corrupted');
    const digest = digestOf(body);
    const put = await fetch(`${server.url}/v1/content/${digest}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'berth-labels': '{"k":"v"}' },
      body,
    });
    assert.equal(put.status, 201);
    await corrupt(await LocalStore.open(join(server.config.root, 'io.berth.content.v1.content')), digest);
    const res = await fetch(`${server.url}/v1/content/verify?repair=true`, { method: 'POST' });
    assert.equal(res.status, 200);
    const report = (await res.json()) as { corrupt: Array<{ digest: string }>; removed: string[] };
    assert.deepEqual(report.removed, [digest]);
    assert.equal((await fetch(`${server.url}/v1/content/${digest}/info`)).status, 404);
    // Written again, it must not inherit the labels of the corrupt copy.
    const again = await fetch(`${server.url}/v1/content/${digest}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body,
    });
    assert.equal(again.status, 201);
    assert.deepEqual(((await again.json()) as { labels: object }).labels, {});
  } finally {
    await server.destroy();
  }
});
