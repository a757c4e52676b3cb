// The registry test fixtures work: a real `docker-registry` (no auth, htpasswd, token auth with
// the fixture's token server), images built by test/fixtures/images.ts pushed through the
// distribution API and fetched back with plain undici requests (digests checked), tar layers
// that tar(1) reads, and the fault-injecting proxy (counts, cuts, flips, stalls, chunked bodies).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { Client, request } from 'undici';

import {
  authorization,
  bigLayer,
  buildImage,
  buildIndex,
  layer,
  MANIFEST_ACCEPT,
  multiPlatformImage,
  MediaType,
  pushImage,
  sha256,
  type Image,
  type Index,
} from './fixtures/images.js';
import { startProxy } from './fixtures/proxy.js';
import { startRegistry, type Registry } from './fixtures/registry.js';

const execFileP = promisify(execFile);

// ---------------------------------------------------------------------------------------------

async function getManifest(base: string, repo: string, ref: string, auth?: string) {
  const res = await request(`${base}/v2/${repo}/manifests/${ref}`, {
    headers: { accept: MANIFEST_ACCEPT, ...(auth ? { authorization: auth } : {}) },
  });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body };
}

async function getBlob(base: string, repo: string, digest: string, auth?: string, range?: string) {
  const res = await request(`${base}/v2/${repo}/blobs/${digest}`, {
    headers: { ...(auth ? { authorization: auth } : {}), ...(range ? { range } : {}) },
  });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body };
}

/** GET whatever arrives before the body ends or breaks. */
async function getPartial(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { headers });
  const chunks: Buffer[] = [];
  let error: unknown;
  try {
    for await (const c of res.body) chunks.push(c as Buffer);
  } catch (err) {
    error = err;
  }
  return { status: res.statusCode, body: Buffer.concat(chunks), error };
}

/** Every manifest and blob of `image` (and, for an index, its images) comes back as pushed. */
async function verifyPulled(base: string, repo: string, tag: string, image: Image | Index, auth?: string): Promise<void> {
  const m = await getManifest(base, repo, tag, auth);
  assert.equal(m.status, 200, `manifest ${repo}:${tag}: ${m.body.toString()}`);
  assert.equal(m.headers['content-type'], image.mediaType);
  assert.equal(m.headers['docker-content-digest'], image.digest);
  assert.equal(sha256(m.body), image.digest);
  assert.deepEqual(m.body, image.manifest.data);
  const images = image.kind === 'index' ? image.images : [image];
  for (const img of images) {
    const mm = await getManifest(base, repo, img.digest, auth);
    assert.equal(mm.status, 200);
    assert.equal(mm.headers['content-type'], img.mediaType);
    assert.equal(sha256(mm.body), img.digest);
    for (const b of img.blobs) {
      const blob = await getBlob(base, repo, b.digest, auth);
      assert.equal(blob.status, 200, `blob ${b.digest}`);
      assert.equal(blob.body.length, b.size);
      assert.equal(sha256(blob.body), b.digest);
    }
    const config = JSON.parse((await getBlob(base, repo, img.config.digest, auth)).body.toString());
    assert.deepEqual(config.rootfs.diff_ids, img.layers.map((l) => l.diffID));
    assert.equal(config.architecture, img.platform.architecture);
  }
}

const ociImage = buildImage({
  format: 'oci',
  layers: [
    { 'etc/': { type: 'dir' }, 'etc/hostname': 'berth\n', 'bin/': { type: 'dir' }, 'bin/sh': { type: 'file', content: '#!/bin/true\n', mode: 0o755 } },
    { 'etc/alias': { type: 'symlink', target: 'hostname' }, 'etc/.wh.hostname': '' },
  ],
});
const dockerImage = buildImage({
  format: 'docker',
  layers: [{ 'docker.txt': 'docker schema2\n' }],
  config: { config: { Cmd: ['/bin/echo', 'hi'] } },
});
const platformImages = ['linux/amd64', 'linux/arm64/v8'].map((p) =>
  buildImage({ format: 'oci', platform: p, layers: [{ 'shared.txt': 'same in both\n' }, { 'arch.txt': `${p}\n` }] }),
);
const ociIndex = buildIndex(platformImages, 'oci');
const dockerList = buildIndex(
  ['linux/amd64', 'linux/arm64/v8'].map((p) => buildImage({ format: 'docker', platform: p, layers: [{ 'arch.txt': `${p}\n` }] })),
  'docker',
);

// ---------------------------------------------------------------------------------------------

describe('image building', () => {
  test('layers are tar archives tar(1) reads, diffIDs and digests as stated', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-tar-'));
    try {
      const long = `${'deep/'.repeat(30)}file.txt`;
      const l = layer({
        'a/': { type: 'dir' },
        'a/b.txt': 'hello\n',
        'a/link': { type: 'symlink', target: 'b.txt' },
        'a/hard': { type: 'hardlink', target: 'a/b.txt' },
        [long]: 'long name\n',
      });
      assert.equal(l.digest, sha256(l.data!));
      assert.equal(l.diffID, sha256(gunzipSync(l.data!)));
      assert.equal(l.mediaType, MediaType.ociLayerGzip);
      await writeFile(join(dir, 'l.tar.gz'), l.data!);
      const { stdout } = await execFileP('tar', ['-tvzf', join(dir, 'l.tar.gz')]);
      const lines = stdout.trim().split('\n');
      assert.equal(lines.length, 5, stdout);
      assert.match(lines[0], /^d.* a\/$/);
      assert.match(lines[1], /^-rw-r--r-- .* 6 .* a\/b\.txt$/);
      assert.match(lines[2], /^l.* a\/link -> b\.txt$/);
      assert.match(lines[3], /^h.* a\/hard link to a\/b\.txt$/);
      assert.ok(lines[4].endsWith(long), lines[4]);
      await execFileP('tar', ['-xzf', join(dir, 'l.tar.gz'), '-C', dir]);
      assert.equal((await execFileP('cat', [join(dir, long)])).stdout, 'long name\n');

      // A streamed big layer: valid gzip and tar, digests of what open() yields.
      const big = await bigLayer(300_000, { seed: 7 });
      const chunks: Buffer[] = [];
      for await (const c of big.open()) chunks.push(c as Buffer);
      const gz = Buffer.concat(chunks);
      assert.equal(gz.length, big.size);
      assert.equal(sha256(gz), big.digest);
      const raw = gunzipSync(gz);
      assert.equal(raw.length, big.uncompressedSize);
      assert.equal(sha256(raw), big.diffID);
      await writeFile(join(dir, 'big.tar.gz'), gz);
      assert.match((await execFileP('tar', ['-tvzf', join(dir, 'big.tar.gz')])).stdout, /300000 .* big\.bin/);
      const again = await bigLayer(300_000, { seed: 7 });
      assert.equal(again.digest, big.digest, 'deterministic');
      assert.notEqual((await bigLayer(300_000, { seed: 8 })).digest, big.digest);
      // Incompressible: gzip barely adds.
      assert.ok(big.size < 300_000 + 2048 + 5 * Math.ceil(big.uncompressedSize / 65535) + 20);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('manifests, configs and indexes have the right media types and descriptors', () => {
    assert.equal(ociImage.manifest.json.mediaType, MediaType.ociManifest);
    assert.equal(ociImage.config.mediaType, MediaType.ociConfig);
    assert.deepEqual(ociImage.manifest.json.layers.map((l) => l.mediaType), [MediaType.ociLayerGzip, MediaType.ociLayerGzip]);
    assert.equal(dockerImage.manifest.json.mediaType, MediaType.dockerManifest);
    assert.equal(dockerImage.config.mediaType, MediaType.dockerConfig);
    assert.equal(dockerImage.layers[0].mediaType, MediaType.dockerLayerGzip);
    assert.deepEqual(dockerImage.config.json.config, { Cmd: ['/bin/echo', 'hi'] });
    assert.equal(ociIndex.manifest.json.mediaType, MediaType.ociIndex);
    assert.deepEqual(ociIndex.manifest.json.manifests.map((m) => m.platform), [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64', variant: 'v8' },
    ]);
    assert.equal(dockerList.manifest.json.mediaType, MediaType.dockerManifestList);
    assert.equal(dockerList.manifest.json.manifests[0].mediaType, MediaType.dockerManifest);
    assert.equal(platformImages[1].config.json.variant, 'v8');
    const multi = multiPlatformImage(['linux/amd64', 'linux/arm64'], 'docker');
    assert.equal(multi.mediaType, MediaType.dockerManifestList);
    assert.deepEqual(multi.images.map((i) => i.platform.architecture), ['amd64', 'arm64']);
    assert.equal(multi.images[0].layers[0].digest, multi.images[1].layers[0].digest, 'shared bottom layer');
    assert.notEqual(multi.images[0].layers[1].digest, multi.images[1].layers[1].digest);
    // Same spec, same bytes.
    assert.equal(buildImage({ format: 'oci', layers: [{ 'shared.txt': 'same in both\n' }, { 'arch.txt': 'linux/amd64\n' }] }).digest, platformImages[0].digest);
  });
});

describe('registry without auth', () => {
  let reg: Registry;
  before(async () => {
    reg = await startRegistry();
  });
  after(() => reg?.stop());

  test('OCI, Docker schema2, an OCI index and a Docker manifest list push and come back intact', async () => {
    assert.match(reg.host, /^127\.0\.0\.1:\d+$/);
    assert.equal(reg.url, `http://${reg.host}`);
    const r1 = await pushImage(reg, 'test/oci', 'v1', ociImage);
    assert.deepEqual([r1.digest, r1.blobsUploaded, r1.manifestsPut], [ociImage.digest, 3, 1]);
    assert.equal(r1.reference, `${reg.host}/test/oci:v1`);
    await pushImage(reg, 'test/docker', 'latest', dockerImage);
    const r3 = await pushImage(reg, 'test/multi', 'latest', ociIndex);
    assert.equal(r3.manifestsPut, 3);
    assert.equal(r3.blobsUploaded, 5, 'the shared layer is uploaded once');
    assert.equal(r3.blobsSkipped, 1);
    await pushImage(reg, 'test/dockerlist', 'latest', dockerList);
    await verifyPulled(reg.url, 'test/oci', 'v1', ociImage);
    await verifyPulled(reg.url, 'test/docker', 'latest', dockerImage);
    await verifyPulled(reg.url, 'test/multi', 'latest', ociIndex);
    await verifyPulled(reg.url, 'test/dockerlist', 'latest', dockerList);
    // By digest too, and a HEAD gives the digest.
    const head = await request(`${reg.url}/v2/test/multi/manifests/latest`, { method: 'HEAD', headers: { accept: MANIFEST_ACCEPT } });
    await head.body.dump();
    assert.equal(head.headers['docker-content-digest'], ociIndex.digest);
    assert.equal(Number(head.headers['content-length']), ociIndex.size);
    // Storage is where the fixture says.
    const { stdout } = await execFileP('find', [reg.storageDir, '-name', 'data', '-path', `*${ociImage.layers[0].digest.slice(7)}*`]);
    assert.ok(stdout.trim().length > 0);
  });

  test('chunked uploads of a streamed layer; pushing again skips existing blobs; delete works', async () => {
    const big = await bigLayer(3 * 1024 * 1024 + 123, { seed: 3 });
    const img = buildImage({ format: 'oci', layers: [big, { 'x': 'y' }] });
    const r = await pushImage(reg, 'test/big', 'v1', img, { chunkSize: 1024 * 1024 });
    assert.equal(r.blobsUploaded, 3);
    await verifyPulled(reg.url, 'test/big', 'v1', img);
    const again = await pushImage(reg, 'test/big', 'v2', img);
    assert.deepEqual([again.blobsUploaded, again.blobsSkipped], [0, 3]);
    const del = await request(`${reg.url}/v2/test/big/manifests/${img.digest}`, { method: 'DELETE' });
    await del.body.dump();
    assert.equal(del.statusCode, 202);
    assert.equal((await getManifest(reg.url, 'test/big', img.digest)).status, 404);
  });

  test('a range request for a blob gets 206 from the offset', async () => {
    const l = ociImage.layers[0];
    const part = await getBlob(reg.url, 'test/oci', l.digest, undefined, 'bytes=10-');
    assert.equal(part.status, 206);
    assert.deepEqual(part.body, l.data!.subarray(10));
  });
});

describe('registry with basic auth', () => {
  let reg: Registry;
  before(async () => {
    reg = await startRegistry({ auth: 'basic', users: { alice: 's3cret', bob: 'hunter2' } });
  });
  after(() => reg?.stop());

  test('wrong or missing credentials get 401; right ones push and pull', async () => {
    const anon = await getManifest(reg.url, 'test/oci', 'v1');
    assert.equal(anon.status, 401);
    assert.match(String(anon.headers['www-authenticate']), /^Basic realm="berth-test"/);
    const wrong = `Basic ${Buffer.from('alice:nope').toString('base64')}`;
    assert.equal((await getManifest(reg.url, 'test/oci', 'v1', wrong)).status, 401);
    await assert.rejects(pushImage(reg, 'test/oci', 'v1', ociImage, { auth: { username: 'alice', password: 'nope' } }), /401/);
    await assert.rejects(pushImage(reg, 'test/oci', 'v1', ociImage), /wants basic credentials/);
    assert.deepEqual(reg.credentials, { username: 'alice', password: 's3cret' });
    await pushImage(reg, 'test/oci', 'v1', ociImage, { auth: reg.credentials });
    await pushImage(reg, 'test/docker', 'v1', dockerImage, { auth: { username: 'bob', password: 'hunter2' } });
    const auth = `Basic ${Buffer.from('bob:hunter2').toString('base64')}`;
    await verifyPulled(reg.url, 'test/oci', 'v1', ociImage, auth);
    await verifyPulled(reg.url, 'test/docker', 'v1', dockerImage, auth);
  });
});

describe('registry with token auth', () => {
  let reg: Registry;
  before(async () => {
    reg = await startRegistry({ auth: 'token' });
  });
  after(() => reg?.stop());

  test('the token server issues tokens the registry accepts, refuses bad credentials, counts requests', async () => {
    const token = reg.token!;
    assert.equal(token.requests, 0);
    const anon = await getManifest(reg.url, 'test/multi', 'latest');
    assert.equal(anon.status, 401);
    const challenge = String(anon.headers['www-authenticate']);
    assert.ok(challenge.startsWith(`Bearer realm="${token.realm}",service="${token.service}"`), challenge);
    assert.match(challenge, /scope="repository:test\/multi:pull"/);

    // Wrong credentials: the token server says 401.
    await assert.rejects(pushImage(reg, 'test/multi', 'latest', ociIndex, { auth: { username: 'testuser', password: 'wrong' } }), /token .*: 401/);
    assert.equal(token.log.at(-1)!.status, 401);
    // Anonymous: refused by default.
    await assert.rejects(authorization(reg, 'test/multi', undefined, ['pull']), /401/);

    token.reset();
    await pushImage(reg, 'test/multi', 'latest', ociIndex, { auth: reg.credentials });
    await pushImage(reg, 'test/docker', 'v1', dockerImage, { auth: reg.credentials });
    assert.equal(token.requests, 2, 'one token per push');
    assert.deepEqual(token.log[0].granted, [{ type: 'repository', name: 'test/multi', actions: ['pull', 'push'] }]);
    assert.equal(token.log[0].user, 'testuser');

    const auth = await authorization(reg, 'test/multi', reg.credentials, ['pull']);
    assert.match(auth!, /^Bearer /);
    await verifyPulled(reg.url, 'test/multi', 'latest', ociIndex, auth);
    // The token is for test/multi:pull only.
    assert.equal((await getManifest(reg.url, 'test/docker', 'v1', auth)).status, 401);
    const pushUpload = await request(`${reg.url}/v2/test/multi/blobs/uploads/`, { method: 'POST', headers: { authorization: auth! } });
    await pushUpload.body.dump();
    assert.equal(pushUpload.statusCode, 401, 'pull-only token cannot push');
    // Tampered signature / untrusted header → 401.
    const bad = auth!.slice(0, -6) + (auth!.endsWith('AAAAAA') ? 'BBBBBB' : 'AAAAAA');
    assert.equal((await getManifest(reg.url, 'test/multi', 'latest', bad)).status, 401);
    // Tokens signed directly: the registry finds the key by x5c (the certificate) or by kid
    // alone (libtrust key ID of the rootcertbundle's key); a wrong kid is refused.
    const access = [{ type: 'repository', name: 'test/docker', actions: ['pull'] }];
    for (const keyHeader of ['both', 'x5c', 'kid'] as const) {
      const direct = token.issue('testuser', access, { keyHeader });
      assert.equal((await getManifest(reg.url, 'test/docker', 'v1', `Bearer ${direct}`)).status, 200, keyHeader);
    }
    await verifyPulled(reg.url, 'test/docker', 'v1', dockerImage, `Bearer ${token.issue('testuser', access)}`);
    const kidOnly = token.issue('testuser', access, { keyHeader: 'kid' });
    const [h, c, sig] = kidOnly.split('.');
    const header = JSON.parse(Buffer.from(h, 'base64url').toString());
    assert.match(header.kid, /^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
    const wrongKid = Buffer.from(JSON.stringify({ ...header, kid: header.kid.replace(/^..../, 'AAAA') })).toString('base64url');
    assert.equal((await getManifest(reg.url, 'test/docker', 'v1', `Bearer ${wrongKid}.${c}.${sig}`)).status, 401);
    // An expired token is refused (the registry allows 60 s of leeway).
    const expired = token.issue('testuser', access, { ttlSeconds: -120 });
    assert.equal((await getManifest(reg.url, 'test/docker', 'v1', `Bearer ${expired}`)).status, 401);

    // The OAuth2 POST form, with a refresh token.
    const form = new URLSearchParams({ grant_type: 'password', username: 'testuser', password: 'testpassword', service: token.service, scope: 'repository:test/docker:pull', access_type: 'offline', client_id: 'berth-test' });
    const post = await request(token.realm, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() });
    const postBody = (await post.body.json()) as { access_token: string; refresh_token?: string };
    assert.equal(post.statusCode, 200);
    assert.ok(postBody.refresh_token);
    assert.equal((await getManifest(reg.url, 'test/docker', 'v1', `Bearer ${postBody.access_token}`)).status, 200);
    const refresh = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: postBody.refresh_token!, service: token.service, scope: 'repository:test/docker:pull' });
    const post2 = await request(token.realm, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: refresh.toString() });
    assert.equal(post2.statusCode, 200);
    await post2.body.dump();
    const wrongPost = await request(token.realm, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'password', username: 'testuser', password: 'x', service: token.service }).toString() });
    await wrongPost.body.dump();
    assert.equal(wrongPost.statusCode, 401);
  });

  test('anonymous pull tokens when configured', async () => {
    const reg2 = await startRegistry({ auth: 'token', token: { anonymous: 'pull' } });
    try {
      await pushImage(reg2, 'test/docker', 'v1', dockerImage, { auth: reg2.credentials });
      const anon = await authorization(reg2, 'test/docker', undefined, ['pull', 'push']);
      await verifyPulled(reg2.url, 'test/docker', 'v1', dockerImage, anon);
      assert.deepEqual(reg2.token!.log.at(-1)!.granted, [{ type: 'repository', name: 'test/docker', actions: ['pull'] }]);
    } finally {
      await reg2.stop();
    }
  });
});

describe('fault-injecting proxy', () => {
  let reg: Registry;
  let img: Image;
  const repo = 'test/proxied';
  const SIZE = 1024 * 1024;
  before(async () => {
    reg = await startRegistry();
    img = buildImage({ format: 'oci', layers: [await bigLayer(SIZE, { seed: 11 })] });
    await pushImage(reg, repo, 'v1', img);
  });
  after(() => reg?.stop());

  test('forwards and counts bytes, per connection and per response', async () => {
    const proxy = await startProxy(reg.host);
    try {
      await verifyPulled(proxy.url, repo, 'v1', img);
      const l = img.layers[0];
      const resp = proxy.responses.find((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${l.digest}`))!;
      assert.equal(resp.status, 200);
      assert.equal(resp.bodyBytes, l.size);
      assert.equal(resp.contentLength, l.size);
      assert.ok(resp.complete && !resp.cut && !resp.flipped);
      const total = proxy.connections.reduce((n, c) => n + c.bytesFromUpstream, 0);
      assert.equal(total, proxy.bytesFromUpstream);
      assert.equal(proxy.bytesToClient, proxy.bytesFromUpstream);
      const bodies = proxy.responses.reduce((n, r) => n + r.bodyBytes + r.headBytes, 0);
      assert.equal(bodies, proxy.bytesFromUpstream);
      assert.ok(proxy.bytesFromUpstream > l.size && proxy.bytesFromUpstream < l.size + 10_000);
      proxy.reset();
      assert.equal(proxy.bytesFromUpstream, 0);
      assert.equal(proxy.responses.length, 0);
    } finally {
      await proxy.stop();
    }
  });

  test('cuts after N body bytes, per response; resuming with Range gets the rest', async () => {
    const l = img.layers[0];
    const N = 100_000;
    const proxy = await startProxy(reg.host, { cutAfterBytes: N, match: '/blobs/' });
    try {
      const url = `${proxy.url}/v2/${repo}/blobs/${l.digest}`;
      // Manifests are untouched (not matched, and shorter anyway).
      assert.equal((await getManifest(proxy.url, repo, 'v1')).status, 200);
      const first = await getPartial(url);
      assert.equal(first.status, 200);
      assert.ok(first.error, 'the body breaks');
      assert.equal(first.body.length, N);
      assert.deepEqual(first.body, (await getBlob(reg.url, repo, l.digest)).body.subarray(0, N));
      const cutResp = proxy.responses.find((r) => r.cut)!;
      assert.equal(cutResp.bodyBytes, N);
      assert.ok(proxy.connections[cutResp.connection].cut);
      assert.equal(proxy.fired, 1);
      // Each response counts from 0: a Range request is cut N bytes later.
      const second = await getPartial(url, { range: `bytes=${N}-` });
      assert.equal(second.status, 206);
      assert.equal(second.body.length, N);
      proxy.set({ cutAfterBytes: undefined });
      const rest = await getPartial(url, { range: `bytes=${2 * N}-` });
      assert.equal(rest.error, undefined);
      assert.equal(sha256(Buffer.concat([first.body, second.body, rest.body])), l.digest);
      // times: only the first matching response is cut.
      proxy.set({ cutAfterBytes: 1000, times: 1 });
      assert.ok((await getPartial(url)).error);
      const ok = await getPartial(url);
      assert.equal(ok.error, undefined);
      assert.equal(sha256(ok.body), l.digest);
      assert.equal(proxy.fired, 1);
      // Upstream bytes stay close to what was delivered.
      assert.ok(proxy.bytesFromUpstream < proxy.bytesToClient + 2 * 1024 * 1024);
    } finally {
      await proxy.stop();
    }
  });

  test('flips one byte at a body offset', async () => {
    const l = img.layers[0];
    const proxy = await startProxy(reg.host, { flipByteAt: 4242 });
    try {
      // The manifest is shorter than 4242 bytes: untouched.
      const m = await getManifest(proxy.url, repo, 'v1');
      assert.equal(sha256(m.body), img.digest);
      const got = await getBlob(proxy.url, repo, l.digest);
      assert.equal(got.status, 200);
      assert.equal(got.body.length, l.size);
      assert.notEqual(sha256(got.body), l.digest);
      const good = (await getBlob(reg.url, repo, l.digest)).body;
      const diffs = [];
      for (let i = 0; i < good.length; i++) if (good[i] !== got.body[i]) diffs.push(i);
      assert.deepEqual(diffs, [4242]);
      assert.equal(got.body[4242], good[4242] ^ 0xff);
      assert.ok(proxy.responses.find((r) => r.flipped)!.path.includes(l.digest));
      // Offsets count from each body: a ranged response is flipped at its own offset 4242.
      const ranged = await getBlob(proxy.url, repo, l.digest, undefined, 'bytes=100000-');
      assert.equal(ranged.body[4242], good[104242] ^ 0xff);
    } finally {
      await proxy.stop();
    }
  });

  test('stalls after N body bytes until the rule is lifted', async () => {
    const l = img.layers[0];
    const proxy = await startProxy(reg.host, { stallAfterBytes: 5000, match: /\/blobs\/sha256:/ });
    try {
      const pending = getBlob(proxy.url, repo, l.digest);
      await proxy.waitFor(() => proxy.stalled().length === 1);
      const [stalled] = proxy.stalled();
      assert.equal(stalled.bodyBytes, 5000);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(stalled.bodyBytes, 5000, 'still stalled');
      proxy.set({ stallAfterBytes: undefined });
      const got = await pending;
      assert.equal(sha256(got.body), l.digest);
      assert.ok(stalled.complete && !stalled.stalled);
    } finally {
      await proxy.stop();
    }
  });

  test('follows chunked responses and keep-alive (counts decoded payload)', async (t) => {
    const payload = createHash('sha512').update('x').digest().toString('hex').repeat(100); // 12800 bytes
    const server = http.createServer((req, res) => {
      if (req.method === 'HEAD') {
        res.writeHead(200, { 'content-length': '999' }).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' });
      for (let i = 0; i < payload.length; i += 1000) res.write(payload.slice(i, i + 1000));
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as net.AddressInfo).port;
    const proxy = await startProxy(`127.0.0.1:${port}`, { flipByteAt: 2500 });
    try {
      // One undici Client: one connection at a time, reused while the server keeps it alive.
      const client = new Client(proxy.url);
      t.after(() => client.close());
      const get = async (): Promise<void> => {
        const res = await client.request({ method: 'GET', path: '/x' });
        const body = Buffer.from(await res.body.arrayBuffer());
        assert.equal(body.length, payload.length);
        assert.equal(body[2500], payload.charCodeAt(2500) ^ 0xff);
        assert.equal(body.subarray(0, 2500).toString(), payload.slice(0, 2500));
        assert.equal(body.subarray(2501).toString(), payload.slice(2501));
      };
      await get();
      await get();
      // (node's server closes the connection after this HEAD response)
      const head = await client.request({ method: 'HEAD', path: '/x' });
      await head.body.dump();
      await get();
      assert.deepEqual(proxy.responses.map((r) => [r.connection, r.method, r.bodyBytes, r.complete]), [
        [0, 'GET', payload.length, true],
        [0, 'GET', payload.length, true],
        [0, 'HEAD', 0, true],
        [1, 'GET', payload.length, true],
      ]);
      assert.equal(proxy.responses[1].headers['transfer-encoding'], 'chunked');
      proxy.set({ flipByteAt: undefined, cutAfterBytes: 3000 });
      const cut = await getPartial(`${proxy.url}/x`);
      assert.equal(cut.body.length, 3000);
      assert.ok(cut.error);
    } finally {
      await proxy.stop();
      await new Promise((r) => server.close(r));
    }
  });
});
