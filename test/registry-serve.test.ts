// berth's registry listener (issue 11) as the distribution spec's pull API, against images the
// fixtures push to a real registry (Debian's docker-registry) that berth pulls through:
//   * conformance (distribution.md §5): ping; manifests by tag and by digest (GET exact bytes, HEAD
//     Content-Length / Content-Type / Docker-Content-Digest) for an OCI image, a Docker schema2
//     image and an OCI index; blobs GET/HEAD; missing manifests and blobs → 404 with
//     MANIFEST_UNKNOWN / BLOB_UNKNOWN; an invalid digest → 400 DIGEST_INVALID (or 404); the six
//     range checks of the conformance suite on a 2048-byte layer (4 × 206, 2 × 416); tags/list;
//     OCI-Namespace echoing `ns`; never a Content-Encoding, even to a client asking for gzip;
//   * bad input: malformed names, tags, digests, ranges, traversal attempts in every position,
//     every write method, the management API's paths → the spec's 4xx, never a 5xx, and nothing
//     written (berth's content, images and ingests unchanged);
//   * a bearer token (auth_token_file): none or a wrong one → 401 with WWW-Authenticate, the
//     right one → 200;
//   * without the registry plugin, GET /v1/registry/stats is a 501.
// One registry and one berth per file; a second berth (token) and a third (no registry plugin)
// for the tests that need another configuration.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { seededBytes } from './fixtures/helpers.js';
import { buildImage, MANIFEST_ACCEPT, multiPlatformImage, pushImage, sha256, type Image, type Index, type Layer } from './fixtures/images.js';
import {
  assertRefused,
  assertServed,
  exactSizeLayer,
  header,
  managementApi,
  reg,
  startMirror,
  type Mirror,
  type RegResponse,
} from './fixtures/registry-listener.js';
import { startRegistry, type Registry } from './fixtures/registry.js';
import { startTestServer } from './fixtures/server.js';

const T = { timeout: 60_000 };
const ACCEPT = { accept: MANIFEST_ACCEPT };

let registry: Registry;
let mirror: Mirror;
/** OCI image: the 2048-byte range layer and a small one; tags v1 and v2 upstream. */
let app: Image;
let rangeLayer: Layer;
/** Docker schema2 image. */
let dockerImg: Image;
/** OCI index of two platforms. */
let multi: Index;
/** Digests nothing holds, anywhere. */
const absentBlob = sha256(`absent blob ${process.pid} ${randomBytes(8).toString('hex')}`);
const absentManifest = sha256(`absent manifest ${process.pid} ${randomBytes(8).toString('hex')}`);

before(async () => {
  registry = await startRegistry({ auth: 'none' });
  rangeLayer = exactSizeLayer(2048, 1101);
  assert.equal(rangeLayer.size, 2048);
  app = buildImage({ format: 'oci', layers: [rangeLayer, { 'etc/hello': 'hello from the serve test\n' }] });
  dockerImg = buildImage({ format: 'docker', layers: [{ 'bin.txt': 'docker layer\n' }, { 'data.bin': seededBytes(1102, 20_000) }] });
  multi = multiPlatformImage(['linux/amd64', 'linux/arm64'], 'oci');
  await pushImage(registry, 'conf/app', 'v1', app);
  await pushImage(registry, 'conf/app', 'v2', app);
  await pushImage(registry, 'conf/docker', 'v1', dockerImg);
  await pushImage(registry, 'conf/multi', 'v1', multi);
  mirror = await startMirror({ upstream: registry.host });
});

after(async () => {
  await mirror?.destroy();
  await registry?.stop();
});

const get = (path: string, headers: Record<string, string> = {}): Promise<RegResponse> => reg(mirror.url, 'GET', path, headers);
const head = (path: string, headers: Record<string, string> = {}): Promise<RegResponse> => reg(mirror.url, 'HEAD', path, headers);

/** A manifest response's headers: digest, length, media type (no parameters). */
function assertManifestHeaders(r: RegResponse, m: { digest: string; size: number; mediaType: string }, what: string): void {
  assert.equal(r.status, 200, `${what}: status ${r.status}: ${r.body.toString('utf8').slice(0, 300)}`);
  assert.equal(header(r.headers, 'docker-content-digest'), m.digest, `${what}: Docker-Content-Digest`);
  assert.equal(header(r.headers, 'content-length'), String(m.size), `${what}: Content-Length`);
  assert.equal(header(r.headers, 'content-type'), m.mediaType, `${what}: Content-Type`);
  assert.equal(header(r.headers, 'content-encoding'), undefined, `${what}: Content-Encoding`);
}

// ---------------------------------------------------------------------------------------------

describe('registry listener: distribution-spec pull conformance', () => {
  test('ping: GET /v2/ answers 200 with Docker-Distribution-API-Version: registry/2.0', T, async () => {
    const r = await get('/v2/');
    assert.equal(r.status, 200, r.body.toString('utf8'));
    assert.equal(header(r.headers, 'docker-distribution-api-version'), 'registry/2.0');
  });

  test('manifests by tag: GET gives the exact bytes with digest, length and media type; HEAD the same headers', T, async () => {
    const cases: Array<[string, Image | Index]> = [
      ['conf/app', app],
      ['conf/docker', dockerImg],
      ['conf/multi', multi],
    ];
    for (const [repo, m] of cases) {
      const path = `/v2/${repo}/manifests/v1`;
      const g = await get(path, ACCEPT);
      assertServed(g, m.manifest.data, `GET ${path}`);
      assertManifestHeaders(g, m, `GET ${path}`);
      const h = await head(path, ACCEPT);
      assertManifestHeaders(h, m, `HEAD ${path}`);
      assert.equal(h.body.length, 0, `HEAD ${path}: no body`);
    }
    // A second tag of the same manifest.
    assertServed(await get('/v2/conf/app/manifests/v2', ACCEPT), app.manifest.data, 'GET conf/app:v2');
  });

  test('manifests by digest: GET exact bytes, HEAD headers (an image, a Docker image, an index and its manifests)', T, async () => {
    const cases: Array<[string, { digest: string; size: number; mediaType: string; manifest: { data: Buffer } }]> = [
      ['conf/app', app],
      ['conf/docker', dockerImg],
      ['conf/multi', multi],
      ...multi.images.map((i): [string, Image] => ['conf/multi', i]),
    ];
    for (const [repo, m] of cases) {
      const path = `/v2/${repo}/manifests/${m.digest}`;
      const g = await get(path, ACCEPT);
      assertServed(g, m.manifest.data, `GET ${path}`);
      assertManifestHeaders(g, m, `GET ${path}`);
      const h = await head(path, ACCEPT);
      assertManifestHeaders(h, m, `HEAD ${path}`);
      assert.equal(h.body.length, 0, `HEAD ${path}: no body`);
    }
  });

  test('blobs: GET exact bytes with Docker-Content-Digest and Content-Length; HEAD the full length', T, async () => {
    for (const [repo, img] of [['conf/app', app], ['conf/docker', dockerImg], ['conf/multi', multi.images[1]]] as const) {
      for (const b of img.blobs) {
        const path = `/v2/${repo}/blobs/${b.digest}`;
        const g = await get(path);
        assertServed(g, b.data!, `GET ${path}`);
        assert.equal(header(g.headers, 'docker-content-digest'), b.digest, `GET ${path}: Docker-Content-Digest`);
        assert.equal(header(g.headers, 'content-length'), String(b.size), `GET ${path}: Content-Length`);
        const h = await head(path);
        assert.equal(h.status, 200, `HEAD ${path}: ${h.status}`);
        assert.equal(header(h.headers, 'docker-content-digest'), b.digest, `HEAD ${path}: Docker-Content-Digest`);
        assert.equal(header(h.headers, 'content-length'), String(b.size), `HEAD ${path}: Content-Length`);
        assert.equal(h.body.length, 0, `HEAD ${path}: no body`);
      }
    }
  });

  test('missing: a manifest by tag or by digest → 404 MANIFEST_UNKNOWN; a blob → 404 BLOB_UNKNOWN; HEAD → 404', T, async () => {
    assertRefused(await get('/v2/conf/app/manifests/no-such-tag', ACCEPT), 'manifest by unknown tag', [404], ['MANIFEST_UNKNOWN']);
    assertRefused(await get(`/v2/conf/app/manifests/${absentManifest}`, ACCEPT), 'manifest by unknown digest', [404], ['MANIFEST_UNKNOWN']);
    assertRefused(await get(`/v2/conf/app/blobs/${absentBlob}`), 'unknown blob', [404], ['BLOB_UNKNOWN']);
    // "An attempt to pull a nonexistent repository MUST return response code 404".
    assertRefused(await get('/v2/conf/no-such-repo/manifests/v1', ACCEPT), 'nonexistent repository', [404], ['MANIFEST_UNKNOWN', 'NAME_UNKNOWN']);
    for (const path of ['/v2/conf/app/manifests/no-such-tag', `/v2/conf/app/manifests/${absentManifest}`, `/v2/conf/app/blobs/${absentBlob}`]) {
      const h = await head(path, ACCEPT);
      assert.equal(h.status, 404, `HEAD ${path}: ${h.status}`);
      assert.equal(h.body.length, 0, `HEAD ${path}: no body`);
    }
  });

  test('an invalid digest → 400 DIGEST_INVALID (or 404), for manifests and blobs', T, async () => {
    for (const path of ['/v2/conf/app/manifests/sha256:totallywrong', '/v2/conf/app/blobs/sha256:totallywrong']) {
      const r = await get(path, ACCEPT);
      const code = assertRefused(r, `GET ${path}`, [400, 404]);
      if (r.status === 400) assert.equal(code, 'DIGEST_INVALID', `GET ${path}`);
    }
  });

  test('ranges on a 2048-byte blob: the conformance suite’s 4 × 206 and 2 × 416', T, async () => {
    const data = rangeLayer.data!;
    const path = `/v2/conf/app/blobs/${rangeLayer.digest}`;
    assertServed(await get(path), data, 'whole blob first');
    const satisfiable: Array<[string, number, number]> = [
      ['bytes=500-1499', 500, 1500],
      ['bytes=500-', 500, 2048],
      ['bytes=-500', 1548, 2048],
      ['bytes=2000-5000', 2000, 2048],
    ];
    for (const [range, start, end] of satisfiable) {
      const r = await get(path, { range });
      assertServed(r, data.subarray(start, end), `Range ${range}`, 206);
      assert.equal(header(r.headers, 'content-length'), String(end - start), `Range ${range}: Content-Length`);
      const cr = header(r.headers, 'content-range');
      assert.ok(cr === `bytes ${start}-${end - 1}/2048` || cr === `bytes ${start}-${end - 1}/*`, `Range ${range}: Content-Range ${cr}`);
      assert.equal(header(r.headers, 'docker-content-digest'), rangeLayer.digest, `Range ${range}: Docker-Content-Digest`);
    }
    for (const range of ['bytes=500-0', 'bytes=5000-10000']) {
      const r = await get(path, { range });
      assert.equal(r.status, 416, `Range ${range}: status ${r.status} (a 200 is "range request unsupported", a 400 is Spegel's bug)`);
      const cr = header(r.headers, 'content-range');
      if (cr !== undefined) assert.equal(cr, 'bytes */2048', `Range ${range}: Content-Range`);
    }
  });

  test('tags/list names the tags berth holds for the repository', T, async () => {
    // conf/app:v1 and :v2 were served (pulled through) above.
    const r = await get('/v2/conf/app/tags/list');
    assert.equal(r.status, 200, r.body.toString('utf8'));
    const body = JSON.parse(r.body.toString('utf8')) as { name: string; tags: string[] };
    assert.equal(body.name, 'conf/app');
    assert.ok(Array.isArray(body.tags), JSON.stringify(body));
    for (const tag of ['v1', 'v2']) assert.ok(body.tags.includes(tag), `tags ${JSON.stringify(body.tags)} lack ${tag}`);
    const docker = JSON.parse((await get('/v2/conf/docker/tags/list')).body.toString('utf8')) as { name: string; tags: string[] };
    assert.deepEqual(docker, { name: 'conf/docker', tags: ['v1'] });
    // A repository berth holds nothing of: 404 NAME_UNKNOWN, or an empty list; never a 5xx.
    const none = await get('/v2/conf/nothing-held/tags/list');
    if (none.status === 200) assert.deepEqual((JSON.parse(none.body.toString('utf8')) as { tags: unknown }).tags ?? [], []);
    else assertRefused(none, 'tags/list of an unknown repository', [404], ['NAME_UNKNOWN']);
  });

  test('ns names the upstream and comes back as OCI-Namespace', T, async () => {
    const ns = encodeURIComponent(registry.host);
    const m = await get(`/v2/conf/app/manifests/v1?ns=${ns}`, ACCEPT);
    assertServed(m, app.manifest.data, 'manifest with ns');
    assert.equal(header(m.headers, 'oci-namespace'), registry.host, 'manifest: OCI-Namespace');
    const h = await head(`/v2/conf/app/manifests/${app.digest}?ns=${ns}`, ACCEPT);
    assert.equal(h.status, 200);
    assert.equal(header(h.headers, 'oci-namespace'), registry.host, 'HEAD manifest: OCI-Namespace');
    const b = await get(`/v2/conf/app/blobs/${app.config.digest}?ns=${ns}`);
    assertServed(b, app.config.data, 'blob with ns');
    assert.equal(header(b.headers, 'oci-namespace'), registry.host, 'blob: OCI-Namespace');
    // The image served with ns is the one a pull names: <upstream>/<repo>:<tag>.
    const images = await mirror.images();
    assert.equal(images.get(`${registry.host}/conf/app:v1`)?.digest, app.digest, `images: ${JSON.stringify([...images.keys()])}`);
  });

  test('no Content-Encoding, even when the client accepts gzip: the bytes are the digest’s', T, async () => {
    const enc = { 'accept-encoding': 'gzip, deflate, br, zstd' };
    const m = await get('/v2/conf/docker/manifests/v1', { ...ACCEPT, ...enc });
    assertServed(m, dockerImg.manifest.data, 'manifest, Accept-Encoding gzip');
    const c = await get(`/v2/conf/docker/blobs/${dockerImg.config.digest}`, enc);
    assertServed(c, dockerImg.config.data, 'config blob, Accept-Encoding gzip');
    const l = await get(`/v2/conf/docker/blobs/${dockerImg.layers[1].digest}`, enc);
    assertServed(l, dockerImg.layers[1].data!, 'layer, Accept-Encoding gzip');
  });

  test('a blob served again is a hit', T, async () => {
    const b = app.layers[1];
    const first = await get(`/v2/conf/app/blobs/${b.digest}`);
    assertServed(first, b.data!, 'first');
    assert.ok(await mirror.hasBlob(b.digest), 'held after it was served');
    const again = await get(`/v2/conf/app/blobs/${b.digest}`);
    assert.equal(assertServed(again, b.data!, 'again'), 'hit', 'Berth-Cache of a held blob');
  });
});

// ---------------------------------------------------------------------------------------------

describe('registry listener: bad input → the spec’s 4xx, never a 5xx, nothing written', () => {
  /** Runs one case; a failed assertion is recorded (every failing case is reported at the end). */
  type Check = (one: () => Promise<void> | void) => Promise<void>;

  /**
   * Runs `fn` with `check` for its cases, then asserts that every case passed and that berth's
   * content, images and ingests did not change.
   */
  async function nothingWritten(fn: (check: Check) => Promise<void>): Promise<void> {
    // Everything the conformance tests pulled through is held by now.
    assertServed(await get(`/v2/conf/app/blobs/${rangeLayer.digest}`), rangeLayer.data!, 'held blob');
    const before = await mirror.snapshot();
    const problems: string[] = [];
    let cases = 0;
    await fn(async (one) => {
      cases++;
      try {
        await one();
      } catch (err) {
        problems.push((err as Error).message.split('\n')[0]);
      }
    });
    assert.equal(problems.length, 0, `${problems.length} of ${cases} cases failed:\n  ${problems.join('\n  ')}`);
    assert.deepEqual(await mirror.snapshot(), before, 'bad input changed what berth holds');
  }

  test('malformed names → 400 NAME_INVALID; traversal and empty segments → 400 or 404', T, async () => {
    await nothingWritten(async (check) => {
      // Names that the spec's pattern refuses, however the path is otherwise formed.
      for (const name of ['Conf/App', 'CONF', 'conf/App', '-conf/app', 'conf/app-', 'conf/.app', 'conf/a..b', 'conf/app_', 'conf/a___b']) {
        for (const path of [`/v2/${name}/manifests/v1`, `/v2/${name}/blobs/${app.config.digest}`, `/v2/${name}/tags/list`]) {
          await check(async () => void assertRefused(await get(path, ACCEPT), `GET ${path}`, [400, 404], ['NAME_INVALID', 'NAME_UNKNOWN']));
        }
      }
      for (const path of [`/v2/Conf/app/manifests/v1`, `/v2/conf/App/blobs/${app.config.digest}`]) {
        await check(async () => void assertRefused(await get(path, ACCEPT), `GET ${path}`, [400], ['NAME_INVALID']));
      }
      // A name longer than clients and registries accept (255).
      await check(async () => void assertRefused(await get(`/v2/conf/${'a'.repeat(300)}/manifests/v1`, ACCEPT), '300-character name', [400, 404]));
      // Traversal and empty segments in the name.
      const traversal = [
        '/v2/../manifests/v1',
        '/v2/conf/../manifests/v1',
        '/v2/../../v1/content/manifests/v1',
        '/v2/conf/../../../etc/manifests/v1',
        '/v2/%2e%2e/manifests/v1',
        '/v2/%2e%2e/%2e%2e/etc/manifests/v1',
        '/v2/conf/%2e%2e/%2e%2e/blobs/' + app.config.digest,
        '/v2/conf%2f..%2f..%2fetc/manifests/v1',
        '/v2/conf%2Fapp/manifests/v1',
        '/v2/./conf/app/manifests/v1',
        '/v2/conf/x/../app/manifests/v1',
        '/v2/conf/app/x/../blobs/' + app.config.digest,
        '/v2//manifests/v1',
        '/v2/conf//app/manifests/v1',
        '/v2/conf/app//manifests/v1',
        '/v2//conf/app/blobs/' + app.config.digest,
        '/v2/conf/app%00/manifests/v1',
        '/v2/conf/app%20x/manifests/v1',
      ];
      for (const path of traversal) await check(async () => void assertRefused(await get(path, ACCEPT), `GET ${path}`, [400, 404]));
    });
  });

  test('malformed tags → 4xx', T, async () => {
    await nothingWritten(async (check) => {
      const longest = 'a'.repeat(128);
      // The longest tag the pattern allows is a well-formed (missing) tag.
      await check(async () => void assertRefused(await get(`/v2/conf/app/manifests/${longest}`, ACCEPT), '128-character tag', [404], ['MANIFEST_UNKNOWN']));
      for (const tag of ['a'.repeat(129), '-v1', '.v1', 'v1!', 'v1%21', 'v1$', 'v1%2Fx', '%2e%2e', '..', 'v1%00', 'v1%0d%0aX-Injected:%201', 'v%C3%A9']) {
        const path = `/v2/conf/app/manifests/${tag}`;
        await check(async () => {
          const r = await get(path, ACCEPT);
          assertRefused(r, `GET ${path}`, [400, 404]);
          assert.equal(header(r.headers, 'x-injected'), undefined, `${path}: header injection`);
        });
        await check(async () => {
          const h = await head(path, ACCEPT);
          assert.ok(h.status === 400 || h.status === 404, `HEAD ${path}: ${h.status}`);
        });
      }
    });
  });

  test('malformed digests, also as traversal → 400 DIGEST_INVALID or 404', T, async () => {
    await nothingWritten(async (check) => {
      const hex = absentBlob.slice('sha256:'.length);
      const digests = [
        'sha256:totallywrong',
        `sha256:${hex.slice(1)}`,
        `sha256:${hex}0`,
        `sha256:${hex.toUpperCase()}`,
        `sha256:${hex.slice(0, -2)}..`,
        `SHA256:${hex}`,
        'sha256:',
        `:${hex}`,
        `md5:${'0'.repeat(32)}`,
        'sha256:..%2F..%2F..%2Fetc%2Fpasswd',
        'sha256:%2e%2e%2f%2e%2e%2fetc',
        `sha256:${hex}%00`,
        `sha256%3a${hex}`,
      ];
      for (const d of digests) {
        for (const path of [`/v2/conf/app/blobs/${d}`, `/v2/conf/app/manifests/${d}`]) {
          await check(async () => {
            const r = await get(path, ACCEPT);
            const code = assertRefused(r, `GET ${path}`, [400, 404]);
            if (r.status === 400) assert.ok(['DIGEST_INVALID', 'NAME_INVALID', 'MANIFEST_UNKNOWN', 'MANIFEST_INVALID'].includes(code), `GET ${path}: ${code}`);
          });
        }
      }
      // Traversal after the digest: the path names no route of the API.
      for (const path of [`/v2/conf/app/blobs/${app.config.digest}/../../../v1/content`, `/v2/conf/app/blobs/${app.config.digest}/x`]) {
        await check(async () => void assertRefused(await get(path), `GET ${path}`, [400, 404]));
      }
    });
  });

  test('ns that is not a registry host → 4xx', T, async () => {
    await nothingWritten(async (check) => {
      for (const ns of ['../../etc', '..%2F..%2Fetc', `${registry.host}%2F..%2F..`, 'http://evil.example', 'a b', '127.0.0.1:99999/x', '%00']) {
        await check(async () => void assertRefused(await get(`/v2/conf/app/manifests/v1?ns=${ns.replace(/ /g, '%20')}`, ACCEPT), `ns=${ns}`, [400, 404]));
      }
    });
  });

  test('ranges: several at once, malformed or of another unit → 416 or the whole blob, never a 5xx', T, async () => {
    await nothingWritten(async (check) => {
      const data = rangeLayer.data!;
      const path = `/v2/conf/app/blobs/${rangeLayer.digest}`;
      for (const range of ['bytes=0-1,5-6', 'bytes=0-99, 200-299', 'bytes=abc', 'bytes=--5', 'bytes=5-4-3', 'bytes=-', 'bytes=-0', 'items=0-5', 'bytes=99999999999999999999999-']) {
        await check(async () => {
          const r = await get(path, { range });
          assert.ok(r.status === 416 || r.status === 200, `Range ${range}: status ${r.status} (416, or the whole blob)`);
          if (r.status === 200) assertServed(r, data, `Range ${range}`);
          assert.notEqual(header(r.headers, 'content-type')?.split(';')[0], 'multipart/byteranges', `Range ${range}: multipart`);
        });
      }
    });
  });

  test('every write method → 405 UNSUPPORTED: push is refused and nothing is stored', T, async () => {
    const pushed = buildImage({ format: 'oci', layers: [{ 'pushed.txt': `pushed to berth ${process.pid}\n` }] });
    const layerBytes = pushed.layers[0].data!;
    await nothingWritten(async (check) => {
      const writes: Array<[string, string, Record<string, string>, Buffer | undefined]> = [
        ['POST', '/v2/conf/app/blobs/uploads/', {}, undefined],
        ['POST', `/v2/conf/app/blobs/uploads/?digest=${pushed.layers[0].digest}`, { 'content-type': 'application/octet-stream' }, layerBytes],
        ['POST', `/v2/conf/app/blobs/uploads/?mount=${app.config.digest}&from=conf/docker`, {}, undefined],
        ['PATCH', '/v2/conf/app/blobs/uploads/0b4d7c3e-0000-4000-8000-000000000000', { 'content-type': 'application/octet-stream' }, layerBytes],
        ['PUT', `/v2/conf/app/blobs/uploads/0b4d7c3e-0000-4000-8000-000000000000?digest=${pushed.layers[0].digest}`, { 'content-type': 'application/octet-stream' }, layerBytes],
        ['PUT', `/v2/conf/app/blobs/${pushed.layers[0].digest}`, { 'content-type': 'application/octet-stream' }, layerBytes],
        ['PUT', '/v2/conf/app/manifests/pushed', { 'content-type': pushed.mediaType }, pushed.manifest.data],
        ['PUT', `/v2/conf/app/manifests/${pushed.digest}`, { 'content-type': pushed.mediaType }, pushed.manifest.data],
        ['PUT', '/v2/conf/app/manifests/v1', { 'content-type': pushed.mediaType }, pushed.manifest.data],
        ['DELETE', `/v2/conf/app/manifests/${app.digest}`, {}, undefined],
        ['DELETE', '/v2/conf/app/manifests/v1', {}, undefined],
        ['DELETE', `/v2/conf/app/blobs/${app.config.digest}`, {}, undefined],
        ['PUT', '/v2/', {}, undefined],
        ['DELETE', '/v2/', {}, undefined],
      ];
      for (const [method, path, headers, body] of writes) {
        await check(async () => void assertRefused(await reg(mirror.url, method, path, headers, body), `${method} ${path}`, [405], ['UNSUPPORTED']));
      }
    });
    // What a push would have stored is not there; what DELETE named is still served.
    assert.equal(await mirror.hasBlob(pushed.layers[0].digest), false, 'the pushed layer');
    assert.equal(await mirror.hasBlob(pushed.digest), false, 'the pushed manifest');
    assertServed(await get(`/v2/conf/app/manifests/${app.digest}`, ACCEPT), app.manifest.data, 'manifest after DELETE');
    assertServed(await get(`/v2/conf/app/blobs/${app.config.digest}`), app.config.data, 'blob after DELETE');
  });

  test('paths of the management API on the registry listener → 404 with the spec’s error body', T, async () => {
    await nothingWritten(async (check) => {
      const paths: Array<[string, string]> = [
        ['GET', '/healthz'],
        ['GET', '/v1/content'],
        ['GET', `/v1/content/${app.config.digest}`],
        ['GET', '/v1/images'],
        ['GET', '/v1/plugins'],
        ['GET', '/v1/registry/stats'],
        ['GET', '/v1/namespaces'],
        ['POST', '/v1/pulls'],
        ['POST', '/v1/gc'],
        ['DELETE', `/v1/content/${app.config.digest}`],
        ['GET', '/'],
        ['GET', '/v3/'],
        ['GET', '/v2/_catalog'],
      ];
      for (const [method, path] of paths) {
        await check(async () => {
          const r = await reg(mirror.url, method, path, method === 'POST' ? { 'content-type': 'application/json' } : {}, method === 'POST' ? '{}' : undefined);
          assertRefused(r, `${method} ${path} on the registry listener`, method === 'GET' ? [404] : [404, 405]);
        });
      }
    });
    // The blob named above is still held.
    assert.ok(await mirror.hasBlob(app.config.digest));
  });
});

// ---------------------------------------------------------------------------------------------

describe('registry listener: a bearer token', () => {
  test('auth_token_file set: no token or a wrong one → 401 UNAUTHORIZED with WWW-Authenticate; the right one → 200', T, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-registry-token-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const token = `berth-${randomBytes(16).toString('hex')}`;
    const tokenFile = join(dir, 'registry.token');
    // As `echo TOKEN > file` writes it: the line's end is not part of the token.
    await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
    const guarded = await startMirror({ upstream: registry.host, authTokenFile: tokenFile });
    t.after(() => guarded.destroy());

    const paths = ['/v2/', '/v2/conf/app/manifests/v1', `/v2/conf/app/blobs/${app.config.digest}`, '/v2/conf/app/tags/list'];
    const refusals: Array<[string, Record<string, string>]> = [
      ['no token', {}],
      ['a wrong token', { authorization: `Bearer ${token}x` }],
      ['a token prefix', { authorization: `Bearer ${token.slice(0, -1)}` }],
      ['an empty bearer', { authorization: 'Bearer ' }],
      ['basic credentials', { authorization: `Basic ${Buffer.from(`user:${token}`).toString('base64')}` }],
      ['the token without a scheme', { authorization: token }],
    ];
    for (const path of paths) {
      for (const [what, headers] of refusals) {
        const r = await reg(guarded.url, 'GET', path, { ...ACCEPT, ...headers });
        assertRefused(r, `${what}: GET ${path}`, [401], ['UNAUTHORIZED']);
        const challenge = header(r.headers, 'www-authenticate');
        assert.ok(challenge !== undefined && /^Bearer\b/i.test(challenge), `${what}: GET ${path}: WWW-Authenticate ${JSON.stringify(challenge)}`);
        assert.ok(!r.body.toString('utf8').includes(token), `${what}: the token must not be echoed`);
      }
      const h = await reg(guarded.url, 'HEAD', path, ACCEPT);
      assert.equal(h.status, 401, `HEAD ${path} without a token`);
    }
    // Nothing was pulled through for a refused request.
    assert.equal((await guarded.images()).size, 0, 'images after refused requests');
    assert.equal(await guarded.hasBlob(app.config.digest), false, 'blob after refused requests');

    const bearer = { authorization: `Bearer ${token}` };
    const ping = await reg(guarded.url, 'GET', '/v2/', bearer);
    assert.equal(ping.status, 200, `ping with the token: ${ping.body.toString('utf8')}`);
    assertServed(await reg(guarded.url, 'GET', '/v2/conf/app/manifests/v1', { ...ACCEPT, ...bearer }), app.manifest.data, 'manifest with the token');
    assertServed(await reg(guarded.url, 'GET', `/v2/conf/app/blobs/${app.config.digest}`, bearer), app.config.data, 'blob with the token');
    // The scheme is case-insensitive (RFC 9110 §11.1).
    assertServed(await reg(guarded.url, 'GET', `/v2/conf/app/blobs/${app.config.digest}`, { authorization: `bearer ${token}` }), app.config.data, 'lower-case scheme');
  });
});

describe('registry stats without the registry plugin', () => {
  test('GET /v1/registry/stats → 501 not_implemented', T, async (t) => {
    const plain = await startTestServer();
    t.after(() => plain.destroy());
    const r = await managementApi(plain)('GET', '/v1/registry/stats');
    assert.equal(r.status, 501, r.text);
    assert.equal((r.json as { error: { code: string } }).error.code, 'not_implemented', r.text);
  });
});
