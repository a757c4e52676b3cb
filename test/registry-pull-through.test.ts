// berth's registry listener as a pull-through mirror (issue 11): what it lacks it fetches from
// the upstream once, whoever asks, and streams to every waiting client as it arrives. The
// upstream is a real registry (Debian's docker-registry) behind the loopback proxy of
// test/fixtures/proxy.ts, which counts the upstream's responses and injects the faults:
//   * single flight: 4 clients of a cold mirror at once; the upstream serves each blob once and
//     every client gets the exact bytes, at most one of them as `pull-through`, the others as
//     followers or hits; and, deterministically, clients arriving while the upstream fetch is
//     stalled are followers;
//   * streaming: with the upstream stalled part-way through a blob, a client's first body byte
//     arrives (and a Range inside what has arrived is answered) before the blob is complete — by
//     events, not by timing;
//   * a client that disconnects mid-blob does not stop the fetch for another client;
//   * corrupt upstream bytes (a flipped byte near the end): no client gets a complete body, and
//     berth does not commit the blob; once the upstream is sound again, the next client gets it;
//   * a retag upstream is seen by the very next client (tags are resolved upstream);
//   * the upstream stopped once berth holds an image: the tag is served from berth's record with
//     `Warning: 299 - "served from cache: <host> unreachable"`, blobs by digest are served;
//   * what was pulled through is an image of berth's (`GET /v1/images`), kept by the GC; the
//     stats count requests, pull-throughs, hits and the bytes fetched upstream.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { seededBytes } from './fixtures/helpers.js';
import { bigLayer, buildImage, MANIFEST_ACCEPT, pushImage, type Image, type ImageBlob } from './fixtures/images.js';
import { startProxy, type Proxy, type ProxyResponse } from './fixtures/proxy.js';
import {
  assertServed,
  blobBytes,
  CACHE_VALUES,
  header,
  openStream,
  reg,
  startMirror,
  waitUntil,
  within,
  type Mirror,
  type RegResponse,
} from './fixtures/registry-listener.js';
import { startRegistry, type Registry } from './fixtures/registry.js';

const T = { timeout: 120_000 };
const KiB = 1024;
const MiB = 1024 * KiB;
const ACCEPT = { accept: MANIFEST_ACCEPT };

let registry: Registry;
/** The default upstream as berth sees it: a proxy in front of the registry. */
let up: Proxy;
let mirror: Mirror;
/** Other proxies in front of the same registry (reached with ?ns=), stopped at the end. */
const extraProxies: Proxy[] = [];
const startedAt = Date.now();

before(async () => {
  registry = await startRegistry({ auth: 'none' });
  up = await startProxy(registry.host);
  mirror = await startMirror({ upstream: up.host });
});

after(async () => {
  await mirror?.destroy();
  for (const p of [up, ...extraProxies]) await p?.stop();
  await registry?.stop();
});

// ---------------------------------------------------------------------------------------------
// Helpers

const pathOnly = (p: string): string => p.split('?')[0];
/** The upstream's GET responses for blob `digest` (as the proxy in front of it saw them). */
const blobGets = (proxy: Proxy, digest: string): ProxyResponse[] =>
  proxy.responses.filter((r) => r.method === 'GET' && pathOnly(r.path).endsWith(`/blobs/${digest}`));

/** The bytes of every blob of `img`, by digest. */
async function bytesOf(img: Image): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const b of img.blobs) out.set(b.digest, await blobBytes(b));
  return out;
}

interface ClientPull {
  manifest: RegResponse;
  blobs: Map<string, RegResponse>;
}

/** What a client does: the manifest by tag, then every blob at once. */
async function clientPull(repo: string, tag: string, img: Image, query = ''): Promise<ClientPull> {
  const manifest = await reg(mirror.url, 'GET', `/v2/${repo}/manifests/${tag}${query}`, ACCEPT);
  const blobs = new Map<string, RegResponse>();
  await Promise.all(
    img.blobs.map(async (b) => {
      blobs.set(b.digest, await reg(mirror.url, 'GET', `/v2/${repo}/blobs/${b.digest}${query}`));
    }),
  );
  return { manifest, blobs };
}

/** Every response of the pull is served, with the exact bytes; returns Berth-Cache per blob. */
function assertPulled(p: ClientPull, img: Image, bytes: Map<string, Buffer>, what: string): Map<string, string> {
  assertServed(p.manifest, img.manifest.data, `${what}: manifest`);
  assert.equal(header(p.manifest.headers, 'docker-content-digest'), img.digest, `${what}: manifest digest`);
  const cache = new Map<string, string>();
  for (const b of img.blobs) {
    const r = p.blobs.get(b.digest)!;
    cache.set(b.digest, assertServed(r, bytes.get(b.digest)!, `${what}: blob ${b.digest}`));
    assert.equal(header(r.headers, 'docker-content-digest'), b.digest, `${what}: blob ${b.digest}: Docker-Content-Digest`);
  }
  return cache;
}

async function push(repo: string, tag: string, img: Image): Promise<Map<string, Buffer>> {
  await pushImage(registry, repo, tag, img);
  return bytesOf(img);
}

// ---------------------------------------------------------------------------------------------

describe('pull-through: one upstream fetch per blob, whoever asks', () => {
  test('4 clients of a cold mirror at once: each blob fetched upstream once, every client gets the exact bytes', T, async () => {
    const big = await bigLayer(3 * MiB, { seed: 1201 });
    const img = buildImage({ format: 'oci', layers: [{ 'etc/flight': 'single flight\n' }, big, { 'data.bin': seededBytes(1202, 100_000) }] });
    const bytes = await push('pt/flight', 'v1', img);
    for (const b of img.blobs) assert.equal(blobGets(up, b.digest).length, 0, 'nothing fetched before');

    const clients = await Promise.all([0, 1, 2, 3].map(() => clientPull('pt/flight', 'v1', img)));
    const caches = clients.map((c, i) => assertPulled(c, img, bytes, `client ${i}`));

    for (const b of img.blobs) {
      const gets = blobGets(up, b.digest);
      assert.equal(gets.length, 1, `blob ${b.digest} (${b.size} bytes): the upstream served ${gets.length} GETs: ${JSON.stringify(gets.map((g) => [g.status, g.requestHeaders.range]))}`);
      assert.equal(gets[0].status, 200, `blob ${b.digest}: upstream status`);
      assert.ok(gets[0].complete, `blob ${b.digest}: the upstream response went through whole`);
      const seen = caches.map((c) => c.get(b.digest)!);
      assert.ok(seen.filter((s) => s === 'pull-through').length <= 1, `blob ${b.digest}: Berth-Cache ${JSON.stringify(seen)}: one pull-through at most`);
      for (const s of seen) assert.ok(CACHE_VALUES.has(s), s);
    }
    // Each blob is held now, and a fifth client is served from the store.
    for (const b of img.blobs) await waitUntil(`blob ${b.digest} committed`, () => mirror.hasBlob(b.digest));
    const late = await clientPull('pt/flight', 'v1', img);
    const lateCache = assertPulled(late, img, bytes, 'late client');
    for (const b of img.blobs) {
      assert.equal(lateCache.get(b.digest), 'hit', `late client: blob ${b.digest}`);
      assert.equal(blobGets(up, b.digest).length, 1, `blob ${b.digest}: fetched again for the late client`);
    }
  });

  test('streaming, by events: while the upstream is stalled part-way, the first bytes arrive, a Range within them is served, and later clients follow the same fetch', T, async (t) => {
    const big = await bigLayer(8 * MiB, { seed: 1203 });
    const img = buildImage({ format: 'oci', layers: [{ 'etc/stream': 'streaming\n' }, big] });
    const bytes = await push('pt/stream', 'v1', img);
    const data = bytes.get(big.digest)!;
    // Well before the end, and past any write batching of a MiB or so.
    const STALL = 3 * MiB + 512 * KiB;
    // The rule first: whoever fetches the blob (this client, or berth on its own once it has
    // the manifest), the upstream response stalls after STALL bytes.
    up.set({ stallAfterBytes: STALL, match: `/blobs/${big.digest}` });
    t.after(() => up.set({ stallAfterBytes: undefined, match: undefined }));
    // The manifest first, as a client does.
    assertServed(await reg(mirror.url, 'GET', '/v2/pt/stream/manifests/v1', ACCEPT), img.manifest.data, 'manifest');
    const path = `/v2/pt/stream/blobs/${big.digest}`;
    const a = openStream(mirror.url, path);
    t.after(() => a.destroy());
    await up.waitFor(() => up.stalled().length === 1, 20_000);
    const aHead = await within(a.head, 'the first client’s response head while the upstream is stalled');
    assert.equal(aHead.statusCode, 200);
    assert.equal(aHead.headers['content-length'], String(big.size), 'Content-Length: the whole blob, known before it arrives');
    await within(a.firstByte, `the first body byte while the upstream is stalled after ${STALL} bytes (time to first byte must not wait for the blob)`);
    // The upstream is still stalled: the blob cannot be complete anywhere.
    assert.equal(up.stalled().length, 1, 'still stalled');
    assert.equal(blobGets(up, big.digest).length, 1);
    assert.equal(blobGets(up, big.digest)[0].complete, false);
    assert.ok(a.received <= STALL, `client got ${a.received} bytes of ${STALL} that arrived`);
    assert.equal(await mirror.hasBlob(big.digest), false, 'not committed while it is still arriving');
    assert.ok(['pull-through', 'follower'].includes(String(aHead.headers['berth-cache'])), `first client: Berth-Cache ${aHead.headers['berth-cache']}`);

    // A Range within what has arrived is served now.
    const early = await within(reg(mirror.url, 'GET', path, { range: 'bytes=1000-1999' }), 'a Range within the bytes that have arrived');
    assertServed(early, data.subarray(1000, 2000), 'Range within the arrived bytes', 206);
    const cr = header(early.headers, 'content-range');
    assert.ok(cr === `bytes 1000-1999/${big.size}` || cr === 'bytes 1000-1999/*', `Content-Range ${cr}`);

    // Clients arriving now follow the one fetch.
    const followers = [0, 1, 2].map(() => openStream(mirror.url, path));
    for (const f of followers) t.after(() => f.destroy());
    const late = openStream(mirror.url, path, { range: `bytes=${6 * MiB}-${6 * MiB + 4095}` });
    t.after(() => late.destroy());
    for (const [i, f] of followers.entries()) {
      const h = await within(f.head, `follower ${i}: response head`);
      assert.equal(h.statusCode, 200);
      assert.equal(h.headers['berth-cache'], 'follower', `follower ${i}: Berth-Cache`);
      await within(f.firstByte, `follower ${i}: first byte while stalled`);
    }
    assert.equal(up.stalled().length, 1, 'still stalled after the followers started');
    assert.equal(late.received, 0, 'bytes past what has arrived cannot have been sent');

    up.set({ stallAfterBytes: undefined });
    for (const [i, s] of [a, ...followers].entries()) {
      const r = await within(s.done, `client ${i}: the whole body`, 60_000);
      assertServed(r, data, `client ${i}`);
    }
    const lateRes = await within(late.done, 'the Range past the stall', 60_000);
    assertServed(lateRes, data.subarray(6 * MiB, 6 * MiB + 4096), 'Range past the stall', 206);
    assert.equal(blobGets(up, big.digest).length, 1, 'one upstream fetch for 6 clients');
    await waitUntil('the blob committed', () => mirror.hasBlob(big.digest));
  });

  test('a client that disconnects mid-blob does not stop the fetch for another client', T, async (t) => {
    const big = await bigLayer(6 * MiB, { seed: 1204 });
    const img = buildImage({ format: 'oci', layers: [{ 'etc/leave': 'leaving\n' }, big] });
    const bytes = await push('pt/leave', 'v1', img);
    up.set({ stallAfterBytes: 3 * MiB + 512 * KiB, match: `/blobs/${big.digest}` });
    t.after(() => up.set({ stallAfterBytes: undefined, match: undefined }));
    assertServed(await reg(mirror.url, 'GET', '/v2/pt/leave/manifests/v1', ACCEPT), img.manifest.data, 'manifest');
    const path = `/v2/pt/leave/blobs/${big.digest}`;

    const leaver = openStream(mirror.url, path);
    t.after(() => leaver.destroy());
    await up.waitFor(() => up.stalled().length === 1, 20_000);
    await within(leaver.firstByte, 'the leaving client’s first byte');
    const stayer = openStream(mirror.url, path);
    t.after(() => stayer.destroy());
    await within(stayer.firstByte, 'the staying client’s first byte');

    leaver.destroy();
    await within(leaver.closed, 'the leaving client’s socket closed');
    // A request after the disconnect: berth has seen the close before it answers this one.
    assert.equal((await reg(mirror.url, 'GET', '/v2/')).status, 200);
    assert.equal(blobGets(up, big.digest).length, 1);
    assert.equal(blobGets(up, big.digest)[0].stalled, true, 'the upstream fetch goes on (still stalled, not cut)');

    up.set({ stallAfterBytes: undefined });
    const r = await within(stayer.done, 'the staying client’s whole body', 60_000);
    assertServed(r, bytes.get(big.digest)!, 'the staying client');
    const gets = blobGets(up, big.digest);
    assert.equal(gets.length, 1, `the fetch was not restarted: ${gets.length} upstream GETs`);
    assert.ok(gets[0].complete && !gets[0].cut, 'the one upstream response went through whole');
    await waitUntil('the blob committed', () => mirror.hasBlob(big.digest));
  });

  test('corrupt upstream bytes: no client gets a complete body, nothing is committed; a sound upstream then serves it', T, async (t) => {
    // Big enough that most of it reaches the clients before the end arrives.
    const bad = await bigLayer(3 * MiB, { seed: 1205, compression: 'none' });
    const img = buildImage({ format: 'oci', layers: [{ 'etc/corrupt': 'corrupt\n' }, bad] });
    const bytes = await push('pt/corrupt', 'v1', img);
    // Every upstream response for the blob has a byte flipped near its end: a client that got
    // every byte but the last few would have all of a wrong blob.
    up.set({ flipByteAt: bad.size - 100, match: `/blobs/${bad.digest}`, stallAfterBytes: undefined });
    t.after(() => up.set({ flipByteAt: undefined, match: undefined }));
    assertServed(await reg(mirror.url, 'GET', '/v2/pt/corrupt/manifests/v1', ACCEPT), img.manifest.data, 'manifest');
    const path = `/v2/pt/corrupt/blobs/${bad.digest}`;
    const clients = [0, 1].map(() => openStream(mirror.url, path));
    for (const c of clients) t.after(() => c.destroy());
    const results = await Promise.all(
      clients.map(async (c, i) => {
        const refused = await within(c.head.then(() => undefined, (err: Error) => err), `client ${i}: a response head or a reset`, 100_000);
        if (refused) return { i, status: 0, body: Buffer.alloc(0), complete: false, error: refused };
        const r = await within(c.done, `client ${i}: the end of its response`, 100_000);
        return { i, ...r };
      }),
    );
    assert.ok(up.fired > 0 && blobGets(up, bad.digest).some((g) => g.flipped), 'the upstream sent the corrupt bytes');
    for (const r of results) {
      const what = `client ${r.i}: status ${r.status}, ${r.body.length} of ${bad.size} bytes, complete ${r.complete}`;
      assert.ok(!(r.status === 200 && r.complete), `${what}: a response that ends cleanly passes for the blob`);
      assert.ok(r.body.length < bad.size, `${what}: the last bytes must be held back until the digest is verified`);
      // 0: the connection was reset before a response head.
      if (r.status !== 200) assert.ok(r.status === 0 || r.status >= 400, what);
    }
    assert.equal(await mirror.hasBlob(bad.digest), false, 'a blob whose bytes do not match its digest is not committed');
    assert.ok(!(await mirror.snapshot()).content.includes(bad.digest), 'not in GET /v1/content');

    // The upstream is sound again: the next client gets the blob (fetched anew, verified).
    up.set({ flipByteAt: undefined, match: undefined });
    const again = await reg(mirror.url, 'GET', path);
    assertServed(again, bytes.get(bad.digest)!, 'after the upstream recovered');
    await waitUntil('the blob committed', () => mirror.hasBlob(bad.digest));
  });
});

describe('pull-through: tags', () => {
  test('a retag upstream is seen by the very next client', T, async () => {
    const first = buildImage({ format: 'oci', layers: [{ 'etc/version': 'one\n' }] });
    const second = buildImage({ format: 'oci', layers: [{ 'etc/version': 'two\n' }] });
    const b1 = await push('pt/retag', 'v1', first);
    const g1 = await reg(mirror.url, 'GET', '/v2/pt/retag/manifests/v1', ACCEPT);
    assertServed(g1, first.manifest.data, 'before the retag');
    assert.equal(header(g1.headers, 'docker-content-digest'), first.digest);
    assertPulled(await clientPull('pt/retag', 'v1', first), first, b1, 'first image');
    await waitUntil('the first image recorded', async () => (await mirror.images()).get(`${up.host}/pt/retag:v1`)?.digest === first.digest);

    const b2 = await push('pt/retag', 'v1', second);
    const h2 = await reg(mirror.url, 'HEAD', '/v2/pt/retag/manifests/v1', ACCEPT);
    assert.equal(h2.status, 200);
    assert.equal(header(h2.headers, 'docker-content-digest'), second.digest, 'HEAD after the retag: the new digest');
    const g2 = await reg(mirror.url, 'GET', '/v2/pt/retag/manifests/v1', ACCEPT);
    assertServed(g2, second.manifest.data, 'GET after the retag');
    assert.equal(header(g2.headers, 'docker-content-digest'), second.digest);
    assert.equal(header(g2.headers, 'warning'), undefined, 'the upstream answered: no Warning');
    assertPulled(await clientPull('pt/retag', 'v1', second), second, b2, 'second image');
    // The old manifest stays reachable by digest; the record follows the tag.
    assertServed(await reg(mirror.url, 'GET', `/v2/pt/retag/manifests/${first.digest}`, ACCEPT), first.manifest.data, 'old manifest by digest');
    await waitUntil('the record names the new digest', async () => (await mirror.images()).get(`${up.host}/pt/retag:v1`)?.digest === second.digest);
  });

  test('upstream stopped once berth holds the image: the tag from berth’s record with Warning 299, blobs by digest', T, async () => {
    const upstream = await startProxy(registry.host);
    extraProxies.push(upstream);
    const img = buildImage({ format: 'oci', layers: [{ 'etc/offline': 'offline\n' }, { 'data.bin': seededBytes(1206, 64 * KiB) }] });
    const bytes = await push('pt/offline', 'v1', img);
    const ns = `?ns=${encodeURIComponent(upstream.host)}`;
    const name = `${upstream.host}/pt/offline:v1`;
    const held = await clientPull('pt/offline', 'v1', img, ns);
    assertPulled(held, img, bytes, 'while the upstream is up');
    assert.equal(header(held.manifest.headers, 'warning'), undefined, 'no Warning while the upstream answers');
    await waitUntil(`image ${name} recorded`, async () => (await mirror.images()).get(name)?.digest === img.digest);
    for (const b of img.blobs) await waitUntil(`blob ${b.digest} committed`, () => mirror.hasBlob(b.digest));

    await upstream.stop();
    const warning = `299 - "served from cache: ${upstream.host} unreachable"`;
    const g = await reg(mirror.url, 'GET', `/v2/pt/offline/manifests/v1${ns}`, ACCEPT);
    assertServed(g, img.manifest.data, 'manifest by tag, upstream down');
    assert.equal(header(g.headers, 'docker-content-digest'), img.digest);
    assert.equal(header(g.headers, 'warning'), warning, 'Warning header');
    assert.equal(header(g.headers, 'oci-namespace'), upstream.host);
    const h = await reg(mirror.url, 'HEAD', `/v2/pt/offline/manifests/v1${ns}`, ACCEPT);
    assert.equal(h.status, 200, 'HEAD by tag, upstream down (containerd resolves with HEAD)');
    assert.equal(header(h.headers, 'docker-content-digest'), img.digest);
    assert.equal(header(h.headers, 'content-length'), String(img.size));
    assert.equal(header(h.headers, 'warning'), warning, 'HEAD: Warning header');
    assertServed(await reg(mirror.url, 'GET', `/v2/pt/offline/manifests/${img.digest}${ns}`, ACCEPT), img.manifest.data, 'manifest by digest, upstream down');
    for (const b of img.blobs) {
      const r = await reg(mirror.url, 'GET', `/v2/pt/offline/blobs/${b.digest}${ns}`);
      assert.equal(assertServed(r, bytes.get(b.digest)!, `blob ${b.digest}, upstream down`), 'hit');
    }
  });
});

describe('pull-through: images and numbers', () => {
  test('what was pulled through is a berth image the GC keeps; stats count requests, hits and bytes fetched upstream', T, async () => {
    const img = buildImage({ format: 'docker', layers: [{ 'etc/stats': 'stats\n' }, { 'data.bin': seededBytes(1207, 200 * KiB) }] });
    const bytes = await push('pt/stats', 'v1', img);
    const blobSizes = img.blobs.reduce((n, b) => n + b.size, 0);
    const s0 = await mirror.stats();
    const proxiesBytes = (): number => [up, ...extraProxies].reduce((n, p) => n + p.bytesFromUpstream, 0);

    const p = await clientPull('pt/stats', 'v1', img);
    assertPulled(p, img, bytes, 'pull');
    const name = `${up.host}/pt/stats:v1`;
    await waitUntil(`image ${name} in GET /v1/images`, async () => (await mirror.images()).has(name));
    assert.deepEqual((await mirror.images()).get(name), { digest: img.digest, mediaType: img.mediaType, size: img.size });
    for (const b of img.blobs) await waitUntil(`blob ${b.digest} committed`, () => mirror.hasBlob(b.digest));

    const s1 = await mirror.stats();
    assert.equal(s1.address, mirror.address);
    assert.equal(s1.namespace, 'default');
    const started = Date.parse(s1.startedAt);
    assert.ok(Number.isFinite(started) && started >= startedAt - 1000 && started <= Date.now(), `startedAt ${s1.startedAt}`);
    assert.ok(s1.requests >= s0.requests + 1 + img.blobs.length, `requests ${s0.requests} → ${s1.requests}`);
    assert.ok(s1.pullThroughs > s0.pullThroughs || s1.followers > s0.followers, `pullThroughs ${s0.pullThroughs} → ${s1.pullThroughs}`);
    assert.ok(s1.bytesFetchedUpstream - s0.bytesFetchedUpstream >= blobSizes + img.size, `bytesFetchedUpstream ${s0.bytesFetchedUpstream} → ${s1.bytesFetchedUpstream}, the image is ${blobSizes + img.size} bytes`);
    assert.ok(s1.bytesFetchedUpstream <= proxiesBytes(), `bytesFetchedUpstream ${s1.bytesFetchedUpstream} > the ${proxiesBytes()} bytes the upstream sent`);
    assert.ok(s1.bytesServed - s0.bytesServed >= blobSizes + img.size, `bytesServed ${s0.bytesServed} → ${s1.bytesServed}`);

    // Served again: hits, nothing fetched upstream.
    const gets = new Map(img.blobs.map((b) => [b.digest, blobGets(up, b.digest).length]));
    for (const b of img.blobs) {
      const r = await reg(mirror.url, 'GET', `/v2/pt/stats/blobs/${b.digest}`);
      assert.equal(assertServed(r, bytes.get(b.digest)!, `again: ${b.digest}`), 'hit');
      assert.equal(blobGets(up, b.digest).length, gets.get(b.digest), `again: ${b.digest} fetched upstream`);
    }
    const s2 = await mirror.stats();
    assert.ok(s2.hits >= s1.hits + img.blobs.length, `hits ${s1.hits} → ${s2.hits}`);
    assert.ok(s2.requests >= s1.requests + img.blobs.length, `requests ${s1.requests} → ${s2.requests}`);
    assert.ok(s2.bytesServed - s1.bytesServed >= blobSizes, `bytesServed ${s1.bytesServed} → ${s2.bytesServed}`);
    assert.ok(typeof s2.hitRatio === 'number' && s2.hitRatio > 0 && s2.hitRatio <= 1, `hitRatio ${s2.hitRatio}`);
    for (const k of ['requests', 'hits', 'pullThroughs', 'followers', 'bytesServed', 'bytesFetchedUpstream'] as const) {
      assert.ok(Number.isSafeInteger(s2[k]) && s2[k] >= 0, `${k}: ${s2[k]}`);
    }

    // The GC keeps what clients pulled.
    const gc = await mirror.api('POST', '/v1/gc');
    assert.equal(gc.status, 200, gc.text);
    for (const b of [img.manifest as ImageBlob, ...img.blobs]) {
      assert.ok(await mirror.hasBlob(b.digest), `${b.digest} removed by the GC`);
      const why = await mirror.api('GET', `/v1/gc/explain?digest=${encodeURIComponent(b.digest)}`);
      assert.equal(why.status, 200, why.text);
      assert.equal(why.json.collectable, false, `${b.digest}: ${why.text}`);
    }
    assertPulled(await clientPull('pt/stats', 'v1', img), img, bytes, 'after the GC');
  });
});
