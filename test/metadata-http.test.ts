// Issue 3 over HTTP against a running server: namespaces, images, leases and GC through the API —
// what survives a restart, what a synchronous delete frees, and bad input (a clear 4xx, nothing
// changed).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestServer, type TestServer } from './fixtures/server.js';

const digestOf = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const manifestType = 'application/vnd.oci.image.manifest.v1+json';

interface Answer {
  status: number;
  json: any;
}

function client(server: () => TestServer) {
  return async (
    method: string,
    path: string,
    opts: { json?: unknown; body?: Buffer | string; ns?: string; lease?: string; headers?: Record<string, string> } = {},
  ): Promise<Answer> => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.ns) headers['berth-namespace'] = opts.ns;
    if (opts.lease) headers['berth-lease'] = opts.lease;
    let body: string | Buffer | undefined = opts.body;
    if (opts.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.json);
    } else if (body !== undefined) {
      headers['content-type'] ??= 'application/octet-stream';
    }
    const res = await fetch(`${server().url}${path}`, {
      method,
      headers,
      body: typeof body === 'string' || body === undefined ? body : new Uint8Array(body),
    });
    const text = await res.text();
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = text;
    }
    if (res.status >= 500) assert.fail(`${method} ${path} answered ${res.status}: ${text}`);
    return { status: res.status, json };
  };
}

function blobFile(server: TestServer, digest: string): string {
  return join(server.config.root, 'io.berth.content.v1.content', 'blobs', 'sha256', digest.slice('sha256:'.length));
}

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting for: ${what}`);
}

/** A manifest blob whose labels reference `layers`, as a pull labels it. */
async function putImageContent(call: ReturnType<typeof client>, tag: string, lease: string, ns?: string) {
  const layers = [0, 1, 2].map((i) => Buffer.from(`${tag} layer ${i}`));
  for (const l of layers) {
    const r = await call('PUT', `/v1/content/${digestOf(l)}`, { body: l, lease, ns });
    assert.equal(r.status, 201, JSON.stringify(r.json));
  }
  const manifest = Buffer.from(JSON.stringify({ tag, layers: layers.map(digestOf) }));
  const labels = Object.fromEntries(layers.map((l, i) => [`containerd.io/gc.ref.content.l.${i}`, digestOf(l)]));
  const r = await call('PUT', `/v1/content/${digestOf(manifest)}`, {
    body: manifest,
    lease,
    ns,
    headers: { 'berth-labels': JSON.stringify(labels) },
  });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  return { manifest: digestOf(manifest), size: manifest.length, layers: layers.map(digestOf) };
}

describe('metadata over HTTP', () => {
  let server: TestServer;
  const call = client(() => server);

  before(async () => {
    server = await startTestServer();
  });
  after(async () => server?.destroy());

  test('a write with Berth-Lease becomes a resource of the lease', async () => {
    assert.equal((await call('POST', '/v1/leases', { json: { id: 'attach' } })).status, 201);
    const body = Buffer.from('leased bytes');
    assert.equal((await call('PUT', `/v1/content/${digestOf(body)}`, { body, lease: 'attach' })).status, 201);
    const res = await call('GET', '/v1/leases/attach/resources');
    assert.equal(res.status, 200);
    assert.deepEqual(res.json.items, [{ id: digestOf(body), type: 'content' }]);
  });

  test('DELETE /v1/images/{name}?sync=true returns after the GC removed what the image held', async () => {
    assert.equal((await call('POST', '/v1/leases', { json: { id: 'pull-sync' } })).status, 201);
    const img = await putImageContent(call, 'sync', 'pull-sync');
    const name = 'registry.test/sync:1';
    const created = await call('POST', '/v1/images', {
      json: { name, target: { mediaType: manifestType, digest: img.manifest, size: img.size } },
    });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    // The image now holds the content: the pull's lease can go, nothing is freed.
    assert.equal((await call('DELETE', '/v1/leases/pull-sync?sync=true')).status, 204);
    for (const d of [img.manifest, ...img.layers]) assert.ok(existsSync(blobFile(server, d)), `${d} kept by the image`);

    const explained = await call('GET', `/v1/gc/explain?digest=${img.layers[2]}`);
    assert.equal(explained.status, 200);
    assert.equal(explained.json.collectable, false);
    const path = explained.json.namespaces[0].path as Array<{ type: string; key: string; via: string }>;
    assert.deepEqual(
      path.map((p) => [p.type, p.key]),
      [
        ['image', name],
        ['content', img.manifest],
        ['content', img.layers[2]],
      ],
    );
    assert.equal(path[2].via, 'containerd.io/gc.ref.content.l.2');

    const del = await call('DELETE', `/v1/images/${encodeURIComponent(name)}?sync=true`);
    assert.equal(del.status, 204);
    for (const d of [img.manifest, ...img.layers]) {
      assert.equal(existsSync(blobFile(server, d)), false, `${d} freed when the delete returned`);
      assert.equal((await call('GET', `/v1/content/${d}/info`)).status, 404);
    }
  });

  test('namespaces: content of one is not another\'s; delete only when empty', async () => {
    const body = Buffer.from('only in team-a');
    assert.equal((await call('POST', '/v1/leases', { json: { id: 'a-lease' }, ns: 'team-a' })).status, 201);
    assert.equal((await call('PUT', `/v1/content/${digestOf(body)}`, { body, ns: 'team-a', lease: 'a-lease' })).status, 201);
    assert.equal((await call('GET', `/v1/content/${digestOf(body)}/info`, { ns: 'team-a' })).status, 200);
    assert.equal((await call('GET', `/v1/content/${digestOf(body)}/info`, { ns: 'team-b' })).status, 404);
    const refused = await call('DELETE', '/v1/namespaces/team-a');
    assert.equal(refused.status, 412);
    assert.match(refused.json.error.message, /team-a.*must be empty.*blobs/);
    assert.equal((await call('DELETE', `/v1/content/${digestOf(body)}`, { ns: 'team-a' })).status, 204);
    assert.equal((await call('DELETE', '/v1/namespaces/team-a')).status, 204);
    assert.equal((await call('GET', '/v1/namespaces/team-a')).status, 404);
  });

  test('bad input: a clear 4xx naming the object, nothing changed', async () => {
    const before = await call('GET', '/v1/images');
    const beforeLeases = await call('GET', '/v1/leases');
    const cases: Array<[string, Answer, number, RegExp]> = [
      ['namespace header', await call('GET', '/v1/images', { ns: 'bad/ns' }), 400, /bad\/ns/],
      ['namespace name', await call('POST', '/v1/namespaces', { json: { name: '-bad-' } }), 400, /-bad-/],
      ['empty image name', await call('POST', '/v1/images', { json: { name: '', target: { mediaType: manifestType, digest: digestOf('x'), size: 1 } } }), 400, /name/],
      ['image digest', await call('POST', '/v1/images', { json: { name: 'x:1', target: { mediaType: manifestType, digest: 'sha256:nope', size: 1 } } }), 400, /x:1/],
      ['image size', await call('POST', '/v1/images', { json: { name: 'x:1', target: { mediaType: manifestType, digest: digestOf('x'), size: 0 } } }), 400, /size/],
      ['image media type', await call('POST', '/v1/images', { json: { name: 'x:1', target: { mediaType: '', digest: digestOf('x'), size: 1 } } }), 400, /mediaType/],
      [
        'label too long',
        await call('POST', '/v1/images', { json: { name: 'x:1', target: { mediaType: manifestType, digest: digestOf('x'), size: 1 }, labels: { k: 'v'.repeat(4096) } } }),
        400,
        /4096/,
      ],
      ['namespace label too long', await call('POST', '/v1/namespaces', { json: { name: 'longlabels', labels: { ['k'.repeat(5000)]: 'v' } } }), 400, /4096/],
      ['image filter', await call('GET', '/v1/images?filter=labels.'), 400, /parse error/],
      ['lease filter', await call('GET', '/v1/leases?filter=id=="unterminated'), 400, /parse error/],
      ['unknown lease', await call('DELETE', '/v1/leases/no-such-lease'), 404, /no-such-lease/],
      ['unknown lease resources', await call('GET', '/v1/leases/no-such-lease/resources'), 404, /no-such-lease/],
      ['unknown image', await call('GET', `/v1/images/${encodeURIComponent('nope:1')}`), 404, /nope:1/],
      ['unknown namespace', await call('GET', '/v1/namespaces/nowhere'), 404, /nowhere/],
      ['lease id', await call('POST', '/v1/leases', { json: { id: 'bad id' } }), 400, /bad id/],
      ['lease expiry', await call('POST', '/v1/leases', { json: { expiresIn: 'soon' } }), 400, /soon/],
      ['explain digest', await call('GET', '/v1/gc/explain?digest=sha256:zz'), 400, /sha256:zz/],
    ];
    for (const [what, res, status, message] of cases) {
      assert.equal(res.status, status, `${what}: ${JSON.stringify(res.json)}`);
      assert.match(res.json.error.message, message, `${what}: message names the object`);
    }
    // A write under a lease that does not exist is refused and leaves nothing.
    const body = Buffer.from('orphan');
    const orphan = await call('PUT', `/v1/content/${digestOf(body)}`, { body, lease: 'ghost' });
    assert.equal(orphan.status, 404);
    assert.match(orphan.json.error.message, /ghost/);
    assert.equal((await call('GET', `/v1/content/${digestOf(body)}/info`)).status, 404);
    assert.deepEqual((await call('GET', '/v1/ingests')).json.items.filter((s: { ref: string }) => s.ref.includes(digestOf(body))), []);
    assert.deepEqual((await call('GET', '/v1/images')).json, before.json);
    assert.deepEqual((await call('GET', '/v1/leases')).json, beforeLeases.json);
  });
});

describe('restart', () => {
  let server: TestServer;
  const call = client(() => server);

  before(async () => {
    server = await startTestServer();
  });
  after(async () => server?.destroy());

  test('images, leases, labels and expiries survive; an expired lease is collected after start', async () => {
    assert.equal((await call('POST', '/v1/namespaces', { json: { name: 'kept', labels: { team: 'infra' } } })).status, 201);
    const lasting = await call('POST', '/v1/leases', { json: { id: 'lasting', expiresIn: '1h', labels: { why: 'test' } }, ns: 'kept' });
    assert.equal(lasting.status, 201);
    const img = await putImageContent(call, 'restart', 'lasting', 'kept');
    const image = await call('POST', '/v1/images', {
      ns: 'kept',
      json: { name: 'registry.test/restart:1', target: { mediaType: manifestType, digest: img.manifest, size: img.size }, labels: { a: 'b' } },
    });
    assert.equal(image.status, 201);
    const short = await call('POST', '/v1/leases', { json: { id: 'short', expiresIn: '2s' }, ns: 'kept' });
    assert.equal(short.status, 201);
    const doomed = Buffer.from('kept only by a lease that expires while the server is down');
    assert.equal((await call('PUT', `/v1/content/${digestOf(doomed)}`, { body: doomed, ns: 'kept', lease: 'short' })).status, 201);

    await server.close();
    await sleep(3000); // "short" expires while nothing runs
    server = await server.restart();

    const ns = await call('GET', '/v1/namespaces/kept');
    assert.deepEqual(ns.json.labels, { team: 'infra' });
    const leases = await call('GET', '/v1/leases', { ns: 'kept' });
    const kept = leases.json.items.find((l: { id: string }) => l.id === 'lasting');
    assert.ok(kept, 'the lease survives');
    assert.equal(kept.labels.why, 'test');
    assert.equal(kept.labels['containerd.io/gc.expire'], lasting.json.labels['containerd.io/gc.expire']);
    const got = await call('GET', `/v1/images/${encodeURIComponent('registry.test/restart:1')}`, { ns: 'kept' });
    assert.equal(got.status, 200);
    assert.deepEqual(got.json.labels, { a: 'b' });
    assert.equal(got.json.target.digest, img.manifest);
    const manifestInfo = await call('GET', `/v1/content/${img.manifest}/info`, { ns: 'kept' });
    assert.equal(manifestInfo.json.labels['containerd.io/gc.ref.content.l.0'], img.layers[0]);

    // The expired lease goes at the start-up collection, and with it what only it kept.
    await until('the expired lease is collected', async () => (await call('GET', '/v1/leases', { ns: 'kept' })).json.items.every((l: { id: string }) => l.id !== 'short'));
    await until('its content is freed', () => !existsSync(blobFile(server, digestOf(doomed))));
    assert.equal((await call('GET', `/v1/content/${digestOf(doomed)}/info`, { ns: 'kept' })).status, 404);
    for (const d of [img.manifest, ...img.layers]) assert.ok(existsSync(blobFile(server, d)), `${d} still kept`);
  });
});
