// Export, import and tag (issue 16), against real parts: images pushed to Debian's
// docker-registry and pulled by berth; berth's export read by GNU tar, by skopeo
// (`oci-archive:` → `oci:`) and imported into an empty berth (byte-identical blobs, the same
// image records); skopeo's own `oci-archive:` and `docker-archive:` from the registry imported by
// berth (and unpacked); a multi-platform index kept whole; a platform not pulled → 412 unless
// skipMissing; hostile archives (traversal, absolute path, symlinked blobs/, a hard link, a wrong
// digest, a blob the index does not list, a truncated tar) → 400 naming the entry, with nothing
// committed unverified and nothing kept once the import's lease is gone; tags; the CLI.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { promisify } from 'node:util';

import { sha256 } from './fixtures/helpers.js';
import { buildImage, multiPlatformImage, pushImage, tar, tarHeader, type Image, type ImageBlob } from './fixtures/images.js';
import { startRegistry, type Registry } from './fixtures/registry.js';
import { startTestServer, type TestServer } from './fixtures/server.js';
import { berth, cliOk } from './fixtures/unpack.js';

const run = promisify(execFile);
const T = { timeout: 180_000 };

type Json = Record<string, any>;

let registry: Registry;
/** The berth that pulls from the registry and exports. */
let source: TestServer;
/** A single-platform OCI image and a Docker one, pushed once for every test. */
let oci: Image;
let docker: Image;
let ociRef: string;
let dockerRef: string;

before(async () => {
  registry = await startRegistry({ auth: 'none' });
  source = await startTestServer();
  oci = buildImage({ format: 'oci', layers: [{ 'etc/': { type: 'dir' }, 'etc/hello': 'from an oci image\n' }, { 'bin/': { type: 'dir' }, 'bin/tool': 'x'.repeat(70_000) }] });
  docker = buildImage({ format: 'docker', layers: [{ 'etc/': { type: 'dir' }, 'etc/hello': 'from a docker image\n' }] });
  await pushImage(registry, 'archive/oci', 'v1', oci);
  await pushImage(registry, 'archive/docker', 'v1', docker);
  ociRef = `${registry.host}/archive/oci:v1`;
  dockerRef = `${registry.host}/archive/docker:v1`;
  await pull(source, ociRef);
  await pull(source, dockerRef);
});

after(async () => {
  await source?.destroy();
  await registry?.stop();
});

// ---------------------------------------------------------------------------------------------

async function call(s: { url: string }, method: string, path: string, opts: { json?: unknown; body?: Buffer; headers?: Record<string, string> } = {}): Promise<{ status: number; json: Json; bytes: Buffer }> {
  const res = await fetch(s.url + path, {
    method,
    headers: {
      ...(opts.json !== undefined ? { 'content-type': 'application/json' } : opts.body ? { 'content-type': 'application/x-tar' } : {}),
      ...opts.headers,
    },
    body: opts.json !== undefined ? JSON.stringify(opts.json) : opts.body ? new Uint8Array(opts.body) : undefined,
  });
  const bytes = Buffer.from(await res.arrayBuffer());
  let json: Json = {};
  if ((res.headers.get('content-type') ?? '').includes('json') && bytes.length > 0) json = JSON.parse(bytes.toString('utf8'));
  return { status: res.status, json, bytes };
}

async function pull(s: TestServer, ref: string, extra: Json = {}): Promise<void> {
  const r = await call(s, 'POST', '/v1/pulls?wait=true', { json: { ref, unpack: false, ...extra } });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.state, 'done', JSON.stringify(r.json.error));
}

const enc = encodeURIComponent;

async function exportOf(s: TestServer, name: string, query = ''): Promise<Buffer> {
  const r = await call(s, 'GET', `/v1/images/${enc(name)}/export${query}`);
  assert.equal(r.status, 200, r.bytes.toString('utf8').slice(0, 500));
  return r.bytes;
}

async function importInto(s: TestServer, archive: Buffer, query = ''): Promise<Json> {
  const r = await call(s, 'POST', `/v1/images/import${query}`, { body: archive });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json;
}

async function temp(t: TestContext, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function emptyServer(t: TestContext): Promise<TestServer> {
  const s = await startTestServer();
  t.after(() => s.destroy());
  return s;
}

/** The blob's bytes as berth serves them. */
async function blobOf(s: TestServer, digest: string): Promise<Buffer> {
  const r = await call(s, 'GET', `/v1/content/${digest}`);
  assert.equal(r.status, 200, `${digest} is stored`);
  return r.bytes;
}

async function assertHolds(s: TestServer, blobs: ImageBlob[], what: string): Promise<void> {
  for (const b of blobs) {
    const bytes = await blobOf(s, b.digest);
    assert.equal(sha256(bytes), b.digest, `${what}: ${b.digest} byte-identical`);
  }
}

const allBlobs = (img: Image): ImageBlob[] => [img.manifest, ...img.blobs];

/** The archive unpacked by GNU tar: file → bytes. */
async function untar(t: TestContext, archive: Buffer): Promise<Map<string, Buffer>> {
  const dir = await temp(t, 'berth-archive-x-');
  await writeFile(join(dir, 'a.tar'), archive);
  await mkdir(join(dir, 'x'));
  await run('tar', ['-xf', join(dir, 'a.tar'), '-C', join(dir, 'x')]);
  const out = new Map<string, Buffer>();
  const walk = async (rel: string): Promise<void> => {
    for (const e of await readdir(join(dir, 'x', rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(p);
      else out.set(p, await readFile(join(dir, 'x', p)));
    }
  };
  await walk('');
  return out;
}

/** Runs a GC and checks that the server holds no content and no ingest. */
async function assertNothingKept(s: TestServer, what: string): Promise<void> {
  const gc = await call(s, 'POST', '/v1/gc');
  assert.equal(gc.status, 200, JSON.stringify(gc.json));
  const content = await call(s, 'GET', '/v1/content');
  assert.deepEqual(content.json.items.map((i: Json) => i.digest), [], `${what}: no content kept`);
  const ingests = await call(s, 'GET', '/v1/ingests');
  assert.deepEqual(ingests.json.items, [], `${what}: no ingest left`);
  const images = await call(s, 'GET', '/v1/images');
  assert.deepEqual(images.json.items, [], `${what}: no image recorded`);
}

// ---------------------------------------------------------------------------------------------

describe('export', () => {
  test('an OCI layout with index.json naming the image, oci-layout, blobs and Docker\'s manifest.json', T, async (t) => {
    const archive = await exportOf(source, ociRef);
    const files = await untar(t, archive);
    assert.deepEqual(JSON.parse(files.get('oci-layout')!.toString()), { imageLayoutVersion: '1.0.0' });
    const index = JSON.parse(files.get('index.json')!.toString());
    assert.equal(index.schemaVersion, 2);
    assert.equal(index.manifests.length, 1);
    const [m] = index.manifests;
    assert.equal(m.digest, oci.digest);
    assert.equal(m.mediaType, oci.mediaType);
    assert.equal(m.annotations['io.containerd.image.name'], ociRef);
    assert.equal(m.annotations['org.opencontainers.image.ref.name'], 'v1');
    for (const b of allBlobs(oci)) {
      const bytes = files.get(`blobs/sha256/${b.digest.slice(7)}`);
      assert.ok(bytes, `${b.digest} in the archive`);
      assert.equal(sha256(bytes), b.digest);
    }
    assert.equal([...files.keys()].filter((f) => f.startsWith('blobs/')).length, allBlobs(oci).length, 'no other blob');
    const dockerManifest = JSON.parse(files.get('manifest.json')!.toString());
    assert.deepEqual(dockerManifest, [
      {
        Config: `blobs/sha256/${oci.config.digest.slice(7)}`,
        RepoTags: [`${registry.host}/archive/oci:v1`],
        Layers: oci.layers.map((l) => `blobs/sha256/${l.digest.slice(7)}`),
      },
    ]);
  });

  test('round trip: imported into an empty berth, byte-identical blobs and the same image record', T, async (t) => {
    const target = await emptyServer(t);
    const archive = await call(source, 'POST', '/v1/images/export', { json: { names: [ociRef, dockerRef] } });
    assert.equal(archive.status, 200, archive.bytes.toString().slice(0, 300));
    const result = await importInto(target, archive.bytes);
    assert.deepEqual(result.images.map((i: Json) => i.name).sort(), [dockerRef, ociRef].sort());
    assert.equal(result.blobs, allBlobs(oci).length + allBlobs(docker).length);
    for (const name of [ociRef, dockerRef]) {
      const before = await call(source, 'GET', `/v1/images/${enc(name)}`);
      const after = await call(target, 'GET', `/v1/images/${enc(name)}`);
      assert.equal(after.status, 200);
      assert.equal(after.json.target.digest, before.json.target.digest, name);
      assert.equal(after.json.target.mediaType, before.json.target.mediaType, name);
      assert.equal(after.json.target.size, before.json.target.size, name);
    }
    await assertHolds(target, allBlobs(oci), 'oci image');
    await assertHolds(target, allBlobs(docker), 'docker image');
    // The import's lease is gone and the image keeps its blobs: a GC removes nothing.
    const gc = await call(target, 'POST', '/v1/gc');
    assert.equal(gc.status, 200);
    await assertHolds(target, allBlobs(oci), 'after a GC');
    const inspect = await call(target, 'GET', `/v1/images/${enc(ociRef)}/inspect`);
    assert.equal(inspect.status, 200, JSON.stringify(inspect.json));
    // A second import writes nothing new.
    const again = await importInto(target, archive.bytes);
    assert.equal(again.bytes, 0);
  });

  test('skopeo reads the export: oci-archive: → oci:', T, async (t) => {
    const dir = await temp(t, 'berth-archive-skopeo-');
    await writeFile(join(dir, 'image.tar'), await exportOf(source, ociRef));
    await run('skopeo', ['--insecure-policy', 'copy', `oci-archive:${join(dir, 'image.tar')}`, `oci:${join(dir, 'layout')}:copied`]);
    for (const b of allBlobs(oci)) {
      const bytes = await readFile(join(dir, 'layout', 'blobs', 'sha256', b.digest.slice(7)));
      assert.equal(sha256(bytes), b.digest, `skopeo's copy of ${b.digest}`);
    }
  });

  test('a multi-platform image: allPlatforms keeps the index and every manifest; a platform not pulled is a 412 unless skipMissing', T, async (t) => {
    const index = multiPlatformImage(['linux/amd64', 'linux/arm64']);
    await pushImage(registry, 'archive/multi', 'v1', index);
    const ref = `${registry.host}/archive/multi:v1`;
    const all = await emptyServer(t);
    await pull(all, ref, { allPlatforms: true });
    const archive = await exportOf(all, ref, '?allPlatforms=true');
    const target = await emptyServer(t);
    const result = await importInto(target, archive);
    assert.equal(result.images[0].target.digest, index.digest);
    assert.equal(result.images[0].target.mediaType, index.mediaType);
    for (const img of index.images) await assertHolds(target, allBlobs(img), img.platform.architecture);
    await assertHolds(target, [index.manifest], 'the index');
    const inspect = await call(target, 'GET', `/v1/images/${enc(ref)}/inspect?platform=linux/arm64`);
    assert.equal(inspect.status, 200, JSON.stringify(inspect.json));
    assert.deepEqual(inspect.json.platforms.sort(), ['linux/amd64', 'linux/arm64']);

    // One platform pulled: the other is refused by name, or left out with skipMissing.
    const one = await emptyServer(t);
    await pull(one, ref, { platform: 'linux/amd64' });
    const arm = index.images.find((i) => i.platform.architecture === 'arm64')!;
    const missing = await call(one, 'GET', `/v1/images/${enc(ref)}/export?platform=linux/arm64`);
    assert.equal(missing.status, 412, missing.bytes.toString());
    assert.equal(missing.json.error.code, 'failed_precondition');
    assert.match(missing.json.error.message, new RegExp(`${arm.digest}.*linux/arm64`));
    const skipped = await exportOf(one, ref, '?allPlatforms=true&skipMissing=true');
    const files = await untar(t, skipped);
    assert.ok(files.has(`blobs/sha256/${index.digest.slice(7)}`), 'the index is kept');
    assert.ok(!files.has(`blobs/sha256/${arm.digest.slice(7)}`), 'the missing manifest is left out');
    const partial = await emptyServer(t);
    const imported = await importInto(partial, skipped);
    assert.equal(imported.images[0].target.digest, index.digest, 'the partial archive imports with its index');
  });

  test('an unknown image is a 404; platform and allPlatforms together a 400', T, async () => {
    const r = await call(source, 'GET', `/v1/images/${enc('no/such:image')}/export`);
    assert.equal(r.status, 404);
    assert.match(r.json.error.message, /no\/such:image/);
    const both = await call(source, 'GET', `/v1/images/${enc(ociRef)}/export?platform=linux/amd64&allPlatforms=true`);
    assert.equal(both.status, 400);
  });
});

describe('import', () => {
  test('skopeo\'s oci-archive (named by tag: baseName) and docker-archive (unpacked)', T, async (t) => {
    const dir = await temp(t, 'berth-archive-skopeo-in-');
    const target = await emptyServer(t);
    const ociFile = join(dir, 'oci.tar');
    await run('skopeo', ['--insecure-policy', 'copy', '--src-tls-verify=false', `docker://${ociRef}`, `oci-archive:${ociFile}:v1`]);
    const fromOci = await importInto(target, await readFile(ociFile), `?baseName=${enc(`${registry.host}/archive/oci`)}`);
    assert.deepEqual(fromOci.images.map((i: Json) => i.name), [ociRef]);
    assert.equal(fromOci.images[0].target.digest, oci.digest, 'skopeo copies the manifest unchanged');
    await assertHolds(target, allBlobs(oci), 'from oci-archive');

    const dockerFile = join(dir, 'docker.tar');
    await run('skopeo', ['--insecure-policy', 'copy', '--src-tls-verify=false', `docker://${dockerRef}`, `docker-archive:${dockerFile}:${dockerRef}`]);
    const fromDocker = await importInto(target, await readFile(dockerFile), '?unpack=true');
    assert.deepEqual(fromDocker.images.map((i: Json) => i.name), [dockerRef]);
    const image = fromDocker.images[0];
    assert.equal(image.target.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.equal(fromDocker.unpacked.length, 1);
    assert.equal(fromDocker.unpacked[0].image, dockerRef);
    assert.equal(fromDocker.unpacked[0].unpacked + fromDocker.unpacked[0].existing, docker.layers.length);
    const inspect = await call(target, 'GET', `/v1/images/${enc(dockerRef)}/inspect`);
    assert.equal(inspect.status, 200, JSON.stringify(inspect.json));
    assert.equal(inspect.json.config.rootfs.diff_ids.join(), docker.config.json.rootfs.diff_ids.join(), 'the same config');
    assert.equal(inspect.json.platform, 'linux/amd64');
    // A docker-archive holds uncompressed layers: each is its own diff ID.
    assert.deepEqual(inspect.json.layers.map((l: Json) => l.digest), docker.config.json.rootfs.diff_ids);
    // The built manifest and its blobs survive a GC (labelled like a pull's).
    await call(target, 'POST', '/v1/gc');
    assert.equal((await call(target, 'GET', `/v1/images/${enc(dockerRef)}/inspect`)).status, 200, 'complete after a GC');
  });

  test('an archive naming no image is a 400 unless digests names them', T, async (t) => {
    const target = await emptyServer(t);
    const files = await untar(t, await exportOf(source, ociRef));
    const index = JSON.parse(files.get('index.json')!.toString());
    delete index.manifests[0].annotations;
    files.set('index.json', Buffer.from(JSON.stringify(index)));
    files.delete('manifest.json');
    const spec: Record<string, Buffer> = {};
    for (const [k, v] of files) spec[k] = v;
    const r = await call(target, 'POST', '/v1/images/import', { body: tar(spec) });
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /names no image/);
    await assertNothingKept(target, 'an unnamed archive');
    const named = await importInto(target, tar(spec), '?digests=true&baseName=imported');
    assert.deepEqual(named.images.map((i: Json) => i.name), [`imported@${oci.digest}`]);
  });
});

describe('hostile archives', () => {
  /** The OCI export of the test image as a path → bytes spec the fixture's tar() writes. */
  async function exported(t: TestContext): Promise<Record<string, Buffer>> {
    const spec: Record<string, Buffer> = {};
    for (const [k, v] of await untar(t, await exportOf(source, ociRef))) spec[k] = v;
    return spec;
  }

  async function refused(t: TestContext, archive: Buffer, entry: RegExp, what: string): Promise<TestServer> {
    const target = await emptyServer(t);
    const r = await call(target, 'POST', '/v1/images/import', { body: archive });
    assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.error.code, 'invalid_argument');
    assert.match(r.json.error.message, entry, what);
    await assertNothingKept(target, what);
    return target;
  }

  test('a path leaving the root, an absolute path', T, async (t) => {
    const spec = await exported(t);
    await refused(t, tar({ ...spec, '../evil': 'x' }), /"\.\.\/evil".*leaves the archive's root/, 'traversal');
    const absolute = Buffer.concat([tarHeader({ name: '/tmp/berth-evil', mode: 0o644, size: 1, typeflag: '0' }), Buffer.from('x'), Buffer.alloc(511), tar(spec)]);
    await refused(t, absolute, /"\/tmp\/berth-evil".*absolute/, 'absolute');
    await assert.rejects(stat('/tmp/berth-evil'), 'nothing written outside');
  });

  test('a symlinked blobs/, a symlink inside blobs/, a hard link, a symlink out of the archive', T, async (t) => {
    const spec = await exported(t);
    await refused(t, tar({ blobs: { type: 'symlink', target: '/etc' }, ...spec }), /"blobs".*symlink/, 'symlinked blobs/');
    const [first] = Object.keys(spec).filter((k) => k.startsWith('blobs/sha256/'));
    await refused(t, tar({ ...spec, [first]: { type: 'symlink', target: '../../index.json' } }), new RegExp(`"${first}".*symlink`), 'a symlink as a blob');
    await refused(t, tar({ ...spec, link: { type: 'hardlink', target: 'index.json' } }), /"link".*hard link/, 'hard link');
    // Docker's legacy layer symlinks are names inside the archive; one that leaves it is refused.
    await refused(t, tar({ 'id/layer.tar': { type: 'symlink', target: '../../outside.tar' }, ...spec }), /"id\/layer\.tar".*outside the archive/, 'a symlink out');
  });

  test('a wrong digest: refused, nothing committed under either digest', T, async (t) => {
    const spec = await exported(t);
    const layerPath = `blobs/sha256/${oci.layers[1].digest.slice(7)}`;
    const forged = Buffer.from(spec[layerPath]);
    forged[forged.length - 1] ^= 0xff;
    const target = await refused(t, tar({ ...spec, [layerPath]: forged }), new RegExp(`"${layerPath}".*digest`), 'wrong digest');
    for (const digest of [oci.layers[1].digest, sha256(forged)]) {
      assert.equal((await call(target, 'GET', `/v1/content/${digest}/info`)).status, 404, `${digest} not committed`);
    }
  });

  test('a blob the index does not list; a manifest over 4 MiB', T, async (t) => {
    const spec = await exported(t);
    const extra = Buffer.from('not part of any image');
    await refused(t, tar({ ...spec, [`blobs/sha256/${sha256(extra).slice(7)}`]: extra }), /not listed by the archive's index/, 'unlisted blob');
    const big = Buffer.alloc((4 << 20) + 1, 0x20);
    await refused(t, tar({ ...spec, 'index.json': big }), /"index\.json".*larger than/, 'a 4 MiB index.json');
  });

  test('a refused import reads and drops the rest of its body: the same connection serves the next request', T, async (t) => {
    const target = await emptyServer(t);
    // Refused at its first entry (an absolute path); then 8 MiB more, sent only once the answer
    // is in: more than the request's and the socket's buffers, so a server that stopped reading
    // would hold the connection with the next request unread behind it.
    const head = tarHeader({ name: '/tmp/berth-evil', mode: 0o644, size: 1, typeflag: '0' });
    const rest = Buffer.alloc(8 << 20);
    const u = new URL(target.url);
    const sock = net.connect(Number(u.port), u.hostname);
    t.after(() => sock.destroy());
    let received = '';
    const answers: Array<() => void> = [];
    sock.on('data', (b: Buffer) => {
      received += b.toString('latin1');
      answers.splice(0).forEach((wake) => wake());
    });
    sock.on('error', () => {});
    const answered = async (n: number): Promise<void> => {
      while ((received.match(/HTTP\/1\.1 \d{3} /g) ?? []).length < n) await new Promise<void>((r) => answers.push(r));
    };
    sock.write(
      `POST /v1/images/import HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/x-tar\r\n` +
        `Content-Length: ${head.length + rest.length}\r\n\r\n`,
    );
    sock.write(head);
    await answered(1);
    assert.match(received, /^HTTP\/1\.1 400 /);
    assert.match(received, /absolute/);
    sock.write(rest);
    sock.write(`GET /v1/images HTTP/1.1\r\nHost: ${u.host}\r\n\r\n`);
    await answered(2);
    assert.match(received.slice(received.lastIndexOf('HTTP/1.1 ')), /^HTTP\/1\.1 200 /, 'the next request on the connection is answered');
    await assertNothingKept(target, 'refused at its first entry');
  });

  test('a truncated tar names the entry it ends in', T, async (t) => {
    const archive = await exportOf(source, ociRef);
    // Cut inside the largest layer's bytes.
    const big = oci.layers[1];
    const at = archive.indexOf(big.data!.subarray(0, 64)) + 100;
    assert.ok(at > 100);
    await refused(t, archive.subarray(0, at), new RegExp(`"blobs/sha256/${big.digest.slice(7)}".*truncated`), 'truncated');
  });
});

describe('tag', () => {
  test('a second record for the target; 409 for an existing name unless force', T, async () => {
    const name = `${registry.host}/archive/tagged:v2`;
    const r = await call(source, 'POST', `/v1/images/${enc(ociRef)}/tag`, { json: { target: name } });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    assert.equal(r.json.name, name);
    assert.equal(r.json.target.digest, oci.digest);
    const again = await call(source, 'POST', `/v1/images/${enc(dockerRef)}/tag`, { json: { target: name } });
    assert.equal(again.status, 409);
    assert.match(again.json.error.message, /already exists.*force/);
    const forced = await call(source, 'POST', `/v1/images/${enc(dockerRef)}/tag`, { json: { target: name, force: true } });
    assert.equal(forced.status, 201);
    assert.equal(forced.json.target.digest, docker.digest);
    const missing = await call(source, 'POST', `/v1/images/${enc('no/such:image')}/tag`, { json: { target: 'x' } });
    assert.equal(missing.status, 404);
    await call(source, 'DELETE', `/v1/images/${enc(name)}`);
  });
});

describe('CLI', () => {
  test('berth images export | import | tag', T, async (t) => {
    const dir = await temp(t, 'berth-archive-cli-');
    const address = new URL(source.url).host;
    const file = join(dir, 'out.tar');
    cliOk(await berth(address, ['images', 'export', file, ociRef]), 'images export');
    assert.ok((await stat(file)).size > oci.layers[1].size);
    const target = await emptyServer(t);
    const out = cliOk(await berth(new URL(target.url).host, ['images', 'import', file]), 'images import');
    assert.match(out, new RegExp(ociRef.replace(/[.]/g, '\\.')));
    await assertHolds(target, allBlobs(oci), 'imported by the CLI');
    cliOk(await berth(new URL(target.url).host, ['images', 'tag', ociRef, 'local/copy:1']), 'images tag');
    const tagged = await call(target, 'GET', `/v1/images/${enc('local/copy:1')}`);
    assert.equal(tagged.json.target.digest, oci.digest);
    const clash = await berth(new URL(target.url).host, ['images', 'tag', ociRef, 'local/copy:1']);
    assert.notEqual(clash.code, 0);
    cliOk(await berth(new URL(target.url).host, ['images', 'tag', '--force', ociRef, 'local/copy:1']), 'images tag --force');
  });
});
