// Pulls against a real registry (Debian's docker-registry, started by the fixtures): OCI and
// Docker schema2 images, a multi-platform index, basic and token auth, and — through the fault
// injecting proxy — cut connections (resumed within the pull), a flipped byte (digest error,
// nothing committed), a repeated pull (nothing fetched), 10 concurrent pulls (each blob fetched
// once), a cancelled pull resumed by the next one (Range from the partial offset), a 429 with
// Retry-After, and pull → delete → GC leaving the store empty (issue 4, reference §7 and §4.7).
//
// The pull stack is built directly: RegistryClient + Authorizer + Resolver + BlobFetcher +
// PullManager over the metadata environment of the GC tests.
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

import { Authorizer } from '../src/remotes/auth.js';
import { RegistryClient } from '../src/remotes/client.js';
import { credentialsFrom } from '../src/remotes/credentials.js';
import { Resolver } from '../src/remotes/resolver.js';
import { fetchToken } from '../src/remotes/token.js';
import { BlobFetcher } from '../src/pull/fetch.js';
import { PullManager, type PullRequest, type PullView } from '../src/pull/manager.js';
import { EventBus } from '../src/events/bus.js';
import type { OpContext } from '../src/metadata/context.js';
import { readBlob } from '../store/copy.js';

import { bigLayer, buildImage, layer, multiPlatformImage, pushImage, sha256, type Image, type ImageBlob, type Index, type Layer } from './fixtures/images.js';
import { startProxy, type Proxy, type ProxyResponse } from './fixtures/proxy.js';
import { startRegistry, type Registry } from './fixtures/registry.js';
import { blobFiles, hasRecord, metadataEnv, onDisk, walkedBlobs, type MetadataEnv } from './fixtures/metadata.js';
import { escapeRe, seededBytes } from './fixtures/helpers.js';

const ctx: OpContext = { namespace: 'default' };
const GC_CONFIG = 'containerd.io/gc.ref.content.config';
const GC_LAYER = 'containerd.io/gc.ref.content.l.';
const GC_MANIFEST = 'containerd.io/gc.ref.content.m.';
const SOURCE = 'containerd.io/distribution.source.';
const MiB = 1 << 20;
const BIG_SIZE = 8 * MiB;

// ---------------------------------------------------------------------------------------------
// The pull stack

interface Stack {
  env: MetadataEnv;
  client: RegistryClient;
  resolver: Resolver;
  fetcher: BlobFetcher;
  manager: PullManager;
}

interface StackOptions {
  prefix: string;
  /** Credentials for one host. */
  creds?: { host: string; username: string; secret: string };
}

async function stack(t: TestContext, opts: StackOptions): Promise<Stack> {
  const env = await metadataEnv(t, { prefix: `berth-pull-${opts.prefix}-` });
  const configured = opts.creds ? { [opts.creds.host]: { username: opts.creds.username, secret: opts.creds.secret } } : {};
  const client = new RegistryClient(new Authorizer(credentialsFrom(configured, {}), fetchToken), { backoffMs: 20 });
  t.after(() => client.close());
  const resolver = new Resolver(client);
  const fetcher = new BlobFetcher(env.cs, resolver);
  const manager = new PullManager(env.cs, env.images, env.leases, resolver, fetcher, new EventBus());
  return { env, client, resolver, fetcher, manager };
}

async function pull(s: Stack, req: PullRequest): Promise<PullView> {
  const started = await s.manager.start(ctx, req);
  assert.equal(started.state, 'running');
  return s.manager.wait(started.id);
}

function assertDone(v: PullView, what: string): void {
  assert.equal(v.state, 'done', `${what}: pull ended ${v.state}: ${v.error?.code} ${v.error?.message}`);
}

// ---------------------------------------------------------------------------------------------
// What a pull must leave behind

/** The blob is recorded in the namespace and its bytes hash to its digest (and equal the fixture's). */
async function assertBlob(s: Stack, b: ImageBlob | { digest: string; size: number; data?: Buffer }, what: string): Promise<void> {
  assert.ok(await hasRecord(s.env, ctx, b.digest), `${what} ${b.digest}: no blob record`);
  const info = await s.env.cs.info(ctx, b.digest);
  assert.equal(info.size, b.size, `${what} ${b.digest}: size`);
  const bytes = await readBlob({ readerAt: (d) => s.env.cs.readerAt(ctx, d) }, b.digest);
  assert.equal(bytes.length, b.size, `${what} ${b.digest}: bytes read`);
  assert.equal(sha256(bytes), b.digest, `${what} ${b.digest}: bytes do not hash to the digest`);
  if (b.data) assert.ok(bytes.equals(b.data), `${what} ${b.digest}: bytes differ from what was pushed`);
}

/** The distribution source label names the repository on the host pulled from. */
async function assertSource(s: Stack, digest: string, host: string, repo: string, what: string): Promise<void> {
  const labels = (await s.env.cs.info(ctx, digest)).labels ?? {};
  assert.equal(labels[`${SOURCE}${host}`], repo, `${what} ${digest}: ${SOURCE}${host} (labels ${JSON.stringify(labels)})`);
}

/** Manifest, config and layers present and verified; GC labels on the manifest; source labels on all. */
async function assertImagePulled(s: Stack, img: Image, host: string, repo: string): Promise<void> {
  await assertBlob(s, img.manifest, 'manifest');
  for (const b of img.blobs) await assertBlob(s, b, b === img.config ? 'config' : 'layer');
  const labels = (await s.env.cs.info(ctx, img.digest)).labels ?? {};
  assert.equal(labels[GC_CONFIG], img.config.digest, `manifest label ${GC_CONFIG}`);
  img.layers.forEach((l, i) => assert.equal(labels[`${GC_LAYER}${i}`], l.digest, `manifest label ${GC_LAYER}${i}`));
  assert.equal(labels[`${GC_LAYER}${img.layers.length}`], undefined, 'no extra layer label');
  for (const d of [img.digest, ...img.blobs.map((b) => b.digest)]) await assertSource(s, d, host, repo, 'fetched blob');
}

async function assertImageRecord(s: Stack, name: string, target: Image | Index): Promise<void> {
  const rec = await s.env.images.get(ctx, name);
  assert.equal(rec.name, name);
  assert.deepEqual(
    { mediaType: rec.target.mediaType, digest: rec.target.digest, size: rec.target.size },
    { mediaType: target.mediaType, digest: target.digest, size: target.size },
    `image ${name}: target`,
  );
}

async function hasImage(s: Stack, name: string): Promise<boolean> {
  return (await s.env.images.list(ctx)).some((i) => i.name === name);
}

// ---------------------------------------------------------------------------------------------
// Counting at the proxy

const pathOnly = (p: string): string => p.split('?')[0];
const isBlobGet = (r: ProxyResponse): boolean => r.method === 'GET' && pathOnly(r.path).includes('/blobs/');
const blobGets = (proxy: Proxy, digest?: string): ProxyResponse[] =>
  proxy.responses.filter((r) => isBlobGet(r) && (digest === undefined || pathOnly(r.path).endsWith(`/blobs/${digest}`)));

async function waitUntil(pred: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ---------------------------------------------------------------------------------------------
// Images, pushed once to one registry without auth

let registry: Registry;
let ociImage: Image;
let dockerImage: Image;
let multi: Index;
let bigImage: Image;
let big: Layer;
let flipImage: Image;
let flipLayer: Layer;

const ref = (host: string, repo: string, tag: string): string => `${host}/${repo}:${tag}`;

before(async () => {
  registry = await startRegistry({ auth: 'none' });
  ociImage = buildImage({
    format: 'oci',
    layers: [{ 'etc/': { type: 'dir' }, 'etc/hello': 'hello from oci\n' }, { 'app.txt': 'app layer\n' }, { 'data.bin': seededBytes(401, 50_000) }],
  });
  dockerImage = buildImage({
    format: 'docker',
    layers: [{ 'etc/': { type: 'dir' }, 'etc/hello': 'hello from docker\n' }, { 'bin.txt': 'docker layer\n' }],
  });
  multi = multiPlatformImage(['linux/amd64', 'linux/arm64', 'linux/arm/v7'], 'oci');
  big = await bigLayer(BIG_SIZE, { seed: 7 });
  bigImage = buildImage({ format: 'oci', layers: [{ 'small.txt': 'beside the big one\n' }, big] });
  flipLayer = layer({ 'random.bin': seededBytes(402, 256 * 1024) }, { compression: 'none' });
  flipImage = buildImage({ format: 'oci', layers: [{ 'a.txt': 'a\n' }, flipLayer] });
  await pushImage(registry, 'test/oci', 'v1', ociImage);
  await pushImage(registry, 'test/docker', 'v1', dockerImage);
  await pushImage(registry, 'test/multi', 'v1', multi);
  await pushImage(registry, 'test/big', 'v1', bigImage);
  await pushImage(registry, 'test/flip', 'v1', flipImage);
});

after(async () => {
  await registry?.stop();
});

// ---------------------------------------------------------------------------------------------

describe('pull: image formats', () => {
  test('an OCI image: record, verified blobs, GC and source labels', { timeout: 30_000 }, async (t) => {
    const s = await stack(t, { prefix: 'oci' });
    const name = ref(registry.host, 'test/oci', 'v1');
    const v = await pull(s, { ref: name, platform: 'linux/amd64' });
    assertDone(v, 'oci');
    assert.equal(v.image, name);
    await assertImageRecord(s, name, ociImage);
    await assertImagePulled(s, ociImage, registry.host, 'test/oci');
    // Every blob of the image is in the view, done; the bytes fetched are the image's bytes.
    const want = [ociImage.digest, ...ociImage.blobs.map((b) => b.digest)].sort();
    assert.deepEqual(v.blobs.map((b) => b.digest).sort(), want);
    for (const b of v.blobs) assert.equal(b.state, 'done', `blob ${b.digest}`);
    assert.equal(v.bytesFetched, ociImage.size + ociImage.blobs.reduce((n, b) => n + b.size, 0));
    // The pull's lease is gone once the image holds everything; no ingest is left over.
    assert.deepEqual((await s.env.leases.list(ctx)).map((l) => l.id), []);
    assert.deepEqual(await s.env.cs.listStatuses(ctx), []);
  });

  test('a Docker schema2 image: record, verified blobs, GC and source labels', { timeout: 30_000 }, async (t) => {
    const s = await stack(t, { prefix: 'docker' });
    const name = ref(registry.host, 'test/docker', 'v1');
    const v = await pull(s, { ref: name });
    assertDone(v, 'docker');
    await assertImageRecord(s, name, dockerImage);
    assert.equal(dockerImage.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.equal((await s.env.images.get(ctx, name)).target.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    await assertImagePulled(s, dockerImage, registry.host, 'test/docker');
  });
});

describe('pull: multi-platform index', () => {
  test('platform linux/amd64 picks the amd64 manifest only; the index labels every manifest', { timeout: 30_000 }, async (t) => {
    const s = await stack(t, { prefix: 'amd64' });
    const name = ref(registry.host, 'test/multi', 'v1');
    const v = await pull(s, { ref: name, platform: 'linux/amd64' });
    assertDone(v, 'multi amd64');
    await assertImageRecord(s, name, multi);
    await assertBlob(s, multi.manifest, 'index');
    const indexLabels = (await s.env.cs.info(ctx, multi.digest)).labels ?? {};
    multi.images.forEach((img, i) => assert.equal(indexLabels[`${GC_MANIFEST}${i}`], img.digest, `index label ${GC_MANIFEST}${i}`));
    await assertSource(s, multi.digest, registry.host, 'test/multi', 'index');
    const [amd64, arm64, armv7] = multi.images;
    assert.equal(amd64.platform.architecture, 'amd64');
    await assertImagePulled(s, amd64, registry.host, 'test/multi');
    for (const other of [arm64, armv7]) {
      assert.equal(await hasRecord(s.env, ctx, other.digest), false, `${other.platform.architecture} manifest fetched`);
      assert.equal(await hasRecord(s.env, ctx, other.config.digest), false, `${other.platform.architecture} config fetched`);
      // The platform's own layer (the shared one is amd64's too).
      assert.equal(await hasRecord(s.env, ctx, other.layers[1].digest), false, `${other.platform.architecture} layer fetched`);
    }
  });

  test('allPlatforms fetches every manifest and its blobs', { timeout: 30_000 }, async (t) => {
    const s = await stack(t, { prefix: 'allplat' });
    const name = ref(registry.host, 'test/multi', 'v1');
    const v = await pull(s, { ref: name, allPlatforms: true });
    assertDone(v, 'multi all');
    await assertImageRecord(s, name, multi);
    await assertBlob(s, multi.manifest, 'index');
    for (const img of multi.images) await assertImagePulled(s, img, registry.host, 'test/multi');
  });
});

describe('pull: authentication', () => {
  for (const auth of ['basic', 'token'] as const) {
    test(`${auth} auth: the right credentials pull, wrong ones fail naming the registry`, { timeout: 40_000 }, async (t) => {
      const reg = await startRegistry({ auth });
      t.after(() => reg.stop());
      const creds = reg.credentials!;
      const img = buildImage({ layers: [{ 'secret.txt': `behind ${auth} auth\n` }] });
      await pushImage(reg, 'private/app', 'v1', img, { auth: creds });
      const name = ref(reg.host, 'private/app', 'v1');
      reg.token?.reset();

      const good = await stack(t, { prefix: `${auth}-good`, creds: { host: reg.host, username: creds.username, secret: creds.password } });
      const v = await pull(good, { ref: name });
      assertDone(v, `${auth} auth, right credentials`);
      await assertImageRecord(good, name, img);
      await assertImagePulled(good, img, reg.host, 'private/app');
      if (auth === 'token') {
        const granted = reg.token!.log.filter((e) => e.status === 200 && e.user === creds.username);
        assert.ok(granted.length > 0, `no token issued to ${creds.username}: ${JSON.stringify(reg.token!.log)}`);
        assert.ok(
          granted.some((e) => e.granted.some((g) => g.name === 'private/app' && g.actions.includes('pull'))),
          `no pull token for private/app: ${JSON.stringify(granted)}`,
        );
      }

      const bad = await stack(t, { prefix: `${auth}-bad`, creds: { host: reg.host, username: creds.username, secret: 'not-the-password' } });
      const w = await pull(bad, { ref: name });
      assert.equal(w.state, 'failed', `${auth} auth, wrong credentials: ${w.state}`);
      assert.ok(w.error, 'a failed pull has an error');
      assert.equal(w.error.code, 'unauthenticated', `error code: ${w.error.code} ${w.error.message}`);
      assert.match(w.error.message, escapeRe(reg.host), `the error names the registry ${reg.host}: ${w.error.message}`);
      assert.equal(await hasImage(bad, name), false, 'no image record after a failed pull');
      assert.deepEqual(await blobFiles(bad.env), [], 'nothing fetched with wrong credentials');
    });
  }
});

describe('pull: through the fault-injecting proxy', () => {
  test('a connection cut mid-blob is resumed within the pull; the registry serves the blob about once', { timeout: 40_000 }, async (t) => {
    const cutAt = 3 * MiB;
    const proxy = await startProxy(registry.host, { cutAfterBytes: cutAt, match: `/blobs/${big.digest}` });
    t.after(() => proxy.stop());
    const s = await stack(t, { prefix: 'cut' });
    const name = ref(proxy.host, 'test/big', 'v1');
    const v = await pull(s, { ref: name });
    assertDone(v, 'cut');
    await assertImageRecord(s, name, bigImage);
    await assertImagePulled(s, bigImage, proxy.host, 'test/big');

    const gets = blobGets(proxy, big.digest);
    const cut = gets.filter((r) => r.cut);
    assert.ok(cut.length >= 2, `expected the big blob cut at least twice, got ${cut.length} of ${gets.length} responses`);
    assert.ok(gets.some((r) => r.complete), 'one response ends the blob');
    const served = gets.reduce((n, r) => n + r.bodyBytes, 0);
    assert.ok(served >= big.size, `served ${served} < ${big.size}`);
    // A resume that started over would cost another cut's worth (3 MiB) each time.
    assert.ok(served <= big.size + cut.length * MiB, `the registry served ${served} body bytes for a ${big.size} byte blob (resume lost?)`);
    // Each retry asks for the rest, from what reached the ingest: never before the last retry's
    // start, never past what the proxy forwarded. (Bytes the client still had buffered when the
    // connection ended are asked for again: a few KiB, more on a busy machine.)
    let from = 0;
    let forwarded = 0;
    for (const [i, r] of gets.entries()) {
      if (i === 0) {
        assert.equal(r.requestHeaders.range, undefined, 'the first request has no Range');
      } else {
        const range = /^bytes=(\d+)-$/.exec(r.requestHeaders.range ?? '');
        assert.ok(range, `retry ${i}: Range ${r.requestHeaders.range}`);
        const at = Number(range[1]);
        assert.ok(at > from && at <= forwarded, `retry ${i}: Range from ${at}, after ${from} and by ${forwarded} forwarded`);
        from = at;
      }
      forwarded = from + r.bodyBytes;
    }
    assert.equal(forwarded, big.size, 'the last response ends the blob');
  });

  test('a flipped byte fails the pull naming the blob; nothing of it is committed', { timeout: 30_000 }, async (t) => {
    const proxy = await startProxy(registry.host, { flipByteAt: 1000, match: `/blobs/${flipLayer.digest}` });
    t.after(() => proxy.stop());
    const s = await stack(t, { prefix: 'flip' });
    const name = ref(proxy.host, 'test/flip', 'v1');
    const v = await pull(s, { ref: name });
    assert.equal(proxy.responses.filter((r) => r.flipped).length >= 1, true, 'the proxy flipped a byte');
    assert.equal(v.state, 'failed', `pull with a flipped byte ended ${v.state}`);
    assert.ok(v.error, 'a failed pull has an error');
    assert.match(v.error.message, escapeRe(flipLayer.digest), `the error names the blob: ${v.error.message}`);
    assert.equal(v.blobs.find((b) => b.digest === flipLayer.digest)?.state, 'failed', 'the blob is failed in the view');
    assert.equal(await hasRecord(s.env, ctx, flipLayer.digest), false, 'no blob record for the corrupt blob');
    assert.equal(await onDisk(s.env, flipLayer.digest), false, 'no blob file for the corrupt blob');
    assert.ok(!(await blobFiles(s.env)).includes(flipLayer.digest));
    assert.equal(await hasImage(s, name), false, 'no image record');
  });

  test('a second pull of a complete image fetches nothing', { timeout: 30_000 }, async (t) => {
    const proxy = await startProxy(registry.host);
    t.after(() => proxy.stop());
    const s = await stack(t, { prefix: 'again' });
    const name = ref(proxy.host, 'test/oci', 'v1');
    assertDone(await pull(s, { ref: name }), 'first pull');
    assert.equal(blobGets(proxy).length, ociImage.blobs.length, 'the first pull GETs each blob');
    proxy.reset();
    const v = await pull(s, { ref: name });
    assertDone(v, 'second pull');
    assert.deepEqual(blobGets(proxy).map((r) => r.path), [], 'the second pull GETs no blob');
    assert.deepEqual(
      proxy.responses.filter((r) => r.method === 'GET').map((r) => r.path),
      [],
      'the second pull GETs nothing (the manifest is in the store)',
    );
    assert.equal(v.bytesFetched, 0);
    for (const b of v.blobs) assert.equal(b.state, 'exists', `blob ${b.digest}`);
    await assertImageRecord(s, name, ociImage);
  });

  test('10 concurrent pulls of one image fetch every blob from the registry once', { timeout: 40_000 }, async (t) => {
    const proxy = await startProxy(registry.host);
    t.after(() => proxy.stop());
    const s = await stack(t, { prefix: 'ten' });
    const name = ref(proxy.host, 'test/big', 'v1');
    const started = await Promise.all(Array.from({ length: 10 }, () => s.manager.start(ctx, { ref: name })));
    assert.equal(new Set(started.map((p) => p.id)).size, 10);
    const views = await Promise.all(started.map((p) => s.manager.wait(p.id)));
    views.forEach((v, i) => assertDone(v, `pull ${i}`));
    await assertImageRecord(s, name, bigImage);
    await assertImagePulled(s, bigImage, proxy.host, 'test/big');
    const counts = new Map<string, number>();
    for (const r of blobGets(proxy)) counts.set(pathOnly(r.path), (counts.get(pathOnly(r.path)) ?? 0) + 1);
    for (const b of bigImage.blobs) {
      assert.equal(counts.get(`/v2/test/big/blobs/${b.digest}`), 1, `blob ${b.digest} (${b.mediaType}) GET count: ${JSON.stringify([...counts])}`);
    }
    assert.equal(counts.size, bigImage.blobs.length, `unexpected blob GETs: ${JSON.stringify([...counts])}`);
    const manifestGets = proxy.responses.filter((r) => r.method === 'GET' && pathOnly(r.path) === `/v2/test/big/manifests/${bigImage.digest}`);
    assert.equal(manifestGets.length, 1, 'the manifest is fetched once too');
    const fetched = views.reduce((n, v) => n + v.bytesFetched, 0);
    assert.equal(fetched, bigImage.size + bigImage.blobs.reduce((n, b) => n + b.size, 0), 'bytes fetched over all pulls = the image once');
  });

  test('a cancelled pull keeps its partial blob; the next pull resumes it with Range', { timeout: 40_000 }, async (t) => {
    const stallAt = 3 * MiB + 12_345;
    const proxy = await startProxy(registry.host, { stallAfterBytes: stallAt, match: `/blobs/${big.digest}`, times: 1 });
    t.after(() => proxy.stop());
    const s = await stack(t, { prefix: 'cancel' });
    const name = ref(proxy.host, 'test/big', 'v1');
    const first = await s.manager.start(ctx, { ref: name });
    await proxy.waitFor(() => proxy.stalled().length === 1, 15_000);
    // The pull's offset counts bytes written to the ingest: every byte before the stall is there.
    await waitUntil(() => s.manager.get(first.id).blobs.find((b) => b.digest === big.digest)?.offset === stallAt, `all ${stallAt} bytes before the stall in the ingest`);
    const cancelled = await s.manager.cancel(first.id);
    assert.equal(cancelled.state, 'cancelled');
    assert.equal(await hasImage(s, name), false);
    assert.equal(await hasRecord(s.env, ctx, big.digest), false, 'the big blob is not committed');
    const status = await s.env.cs.status(ctx, `layer-${big.digest}`);
    assert.equal(status.offset, stallAt, 'the ingest keeps every byte that arrived');
    // The cancelled pull's lease stays (with an expiry), so GC keeps the partial blob.
    await s.env.gc.collect();
    assert.equal((await s.env.cs.status(ctx, `layer-${big.digest}`)).offset, stallAt, 'GC keeps the partial ingest');

    proxy.set({ stallAfterBytes: undefined });
    proxy.reset();
    const v = await pull(s, { ref: name });
    assertDone(v, 'second pull');
    await assertImageRecord(s, name, bigImage);
    await assertImagePulled(s, bigImage, proxy.host, 'test/big');
    const gets = blobGets(proxy, big.digest);
    assert.equal(gets.length, 1, 'one GET of the big blob');
    assert.equal(gets[0].requestHeaders.range, `bytes=${stallAt}-`, 'resumed from the partial offset');
    assert.equal(gets[0].status, 206);
    assert.equal(gets[0].bodyBytes, big.size - stallAt, 'only the rest is served');
  });
});

describe('pull: 429 Too Many Requests', () => {
  test('Retry-After: 1 is honoured and the pull succeeds', { timeout: 30_000 }, async (t) => {
    // A tiny front: the first blob GET gets 429 Retry-After: 1, everything else goes to the registry.
    const log: Array<{ method: string; path: string; at: number; status: number }> = [];
    let refused = false;
    const front = http.createServer((req, res) => {
      const path = req.url ?? '/';
      if (!refused && req.method === 'GET' && path.includes('/blobs/')) {
        refused = true;
        log.push({ method: req.method, path, at: Date.now(), status: 429 });
        res.writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down' }] }));
        return;
      }
      const entry = { method: req.method ?? '', path, at: Date.now(), status: 0 };
      log.push(entry);
      const up = http.request(
        { host: '127.0.0.1', port: registry.port, method: req.method, path, headers: { ...req.headers, host: registry.host } },
        (upRes) => {
          entry.status = upRes.statusCode ?? 0;
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => {
      front.close(() => resolve());
      front.closeAllConnections();
    }));
    const host = `127.0.0.1:${(front.address() as AddressInfo).port}`;

    const s = await stack(t, { prefix: '429' });
    const name = ref(host, 'test/oci', 'v1');
    const v = await pull(s, { ref: name });
    assertDone(v, '429');
    await assertImageRecord(s, name, ociImage);
    await assertImagePulled(s, ociImage, host, 'test/oci');
    const i429 = log.findIndex((e) => e.status === 429);
    assert.ok(i429 >= 0, 'the front answered 429');
    const refusedPath = log[i429].path.split('?')[0];
    const retry = log.slice(i429 + 1).find((e) => e.method === 'GET' && e.path.split('?')[0] === refusedPath);
    assert.ok(retry, `the refused blob ${refusedPath} was asked for again`);
    assert.equal(retry.status, 200);
    const waited = retry.at - log[i429].at;
    assert.ok(waited >= 950, `retried after ${waited} ms, not after the Retry-After second`);
  });
});

describe('pull: GC', () => {
  test('pull, delete the image, collect: the content store is empty again', { timeout: 30_000 }, async (t) => {
    const s = await stack(t, { prefix: 'gc' });
    const name = ref(registry.host, 'test/multi', 'v1');
    assertDone(await pull(s, { ref: name, platform: 'linux/amd64' }), 'pull');
    const amd64 = multi.images[0];
    const all = [multi.digest, amd64.digest, ...amd64.blobs.map((b) => b.digest)].sort();
    assert.deepEqual(await blobFiles(s.env), all, 'the pulled blobs are on disk');
    // While the image exists GC keeps all of it (the labels make it whole).
    await s.env.gc.collect();
    assert.deepEqual(await blobFiles(s.env), all, 'GC keeps a pulled image whole');
    for (const d of all) assert.ok(await hasRecord(s.env, ctx, d), `record ${d} kept`);

    await s.env.images.delete(ctx, name);
    await s.env.gc.collect();
    assert.deepEqual(await s.env.cs.list(ctx), [], 'no blob records');
    assert.deepEqual(await s.env.cs.listStatuses(ctx), [], 'no ingests');
    assert.deepEqual(await blobFiles(s.env), [], 'no blob files');
    assert.deepEqual(await walkedBlobs(s.env.backend), [], 'the local store walks nothing');
    assert.deepEqual(await s.env.backend.listStatuses(), [], 'no ingests in the local store');
  });
});
