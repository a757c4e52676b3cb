// Pushes to the real registry (Debian's docker-registry, started by the fixtures; issue 16): an
// image pulled from one registry is pushed to another and served back byte-identical; a second
// push uploads no blob (seen at the fault-injecting proxy: HEADs only); an image sharing layers
// with another repository of the registry mounts them (201 to the mount POST, no PATCH); a PATCH
// cut mid-blob is resumed within the push (under 2x the blob sent); hosts.toml picks the host
// with the push capability; the push's lease holds an image deleted and collected mid-push;
// basic and token auth push with the right credentials, and a refusal names the registry and
// the scope; a push is cancelled mid-upload.
//
// The stack is built directly, as in pull.test.ts (RegistryClient + Authorizer + Resolver +
// PullManager to get images into the store, PushManager to send them); the last tests go
// through the HTTP API and the CLI of a berth server.
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import net from 'node:net';

import { Authorizer } from '../src/remotes/auth.js';
import { RegistryClient } from '../src/remotes/client.js';
import { credentialsFrom } from '../src/remotes/credentials.js';
import { Resolver } from '../src/remotes/resolver.js';
import { fetchToken } from '../src/remotes/token.js';
import { BlobFetcher } from '../src/pull/fetch.js';
import { PullManager } from '../src/pull/manager.js';
import { PushManager, type PushRequest, type PushView } from '../src/push/manager.js';
import { EventBus } from '../src/events/bus.js';
import type { OpContext } from '../src/metadata/context.js';

import { authorization, bigLayer, buildImage, multiPlatformImage, pushImage, type Image, type Index, type Layer } from './fixtures/images.js';
import { startProxy, type Proxy, type ProxyResponse } from './fixtures/proxy.js';
import { startRegistry, type Registry } from './fixtures/registry.js';
import { metadataEnv, type MetadataEnv } from './fixtures/metadata.js';
import { escapeRe, tempDir } from './fixtures/helpers.js';
import { startTestServer } from './fixtures/server.js';
import { berth, cliOk } from './fixtures/unpack.js';

const ctx: OpContext = { namespace: 'default' };
const MiB = 1 << 20;
const SOURCE = 'containerd.io/distribution.source.';

// ---------------------------------------------------------------------------------------------
// The stack

interface Stack {
  env: MetadataEnv;
  client: RegistryClient;
  pulls: PullManager;
  pushes: PushManager;
}

interface StackOptions {
  prefix: string;
  creds?: { host: string; username: string; secret: string };
  chunkSize?: number;
  hostsDir?: string;
}

async function stack(t: TestContext, opts: StackOptions): Promise<Stack> {
  const env = await metadataEnv(t, { prefix: `berth-push-${opts.prefix}-` });
  const configured = opts.creds ? { [opts.creds.host]: { username: opts.creds.username, secret: opts.creds.secret } } : {};
  const client = new RegistryClient(new Authorizer(credentialsFrom(configured, {}), fetchToken), { backoffMs: 20 });
  t.after(() => client.close());
  const resolver = new Resolver(client);
  const bus = new EventBus();
  const pulls = new PullManager(env.cs, env.images, env.leases, resolver, new BlobFetcher(env.cs, resolver), bus);
  const pushes = new PushManager(env.cs, env.images, env.leases, client, bus, { chunkSize: opts.chunkSize, hostsDir: opts.hostsDir });
  t.after(() => pushes.close());
  return { env, client, pulls, pushes };
}

const ref = (host: string, repo: string, tag: string): string => `${host}/${repo}:${tag}`;

/** Pulls `name` into the stack's store (so that it has an image to push). */
async function pullInto(s: Stack, name: string, opts: { allPlatforms?: boolean } = {}): Promise<void> {
  const started = await s.pulls.start(ctx, { ref: name, ...opts });
  const v = await s.pulls.wait(started.id);
  assert.equal(v.state, 'done', `pull ${name}: ${v.error?.message}`);
}

async function push(s: Stack, req: PushRequest): Promise<PushView> {
  const started = await s.pushes.start(ctx, req);
  assert.equal(started.state, 'running');
  return s.pushes.wait(started.id);
}

function assertDone(v: PushView, what: string): void {
  assert.equal(v.state, 'done', `${what}: push ended ${v.state}: ${v.error?.code} ${v.error?.message}`);
}

// ---------------------------------------------------------------------------------------------
// What the registry holds, read back with plain HTTP

async function get(reg: { url: string }, path: string, accept?: string, authorization?: string): Promise<{ status: number; body: Buffer; type: string | null }> {
  const headers: Record<string, string> = accept ? { accept } : {};
  if (authorization) headers.authorization = authorization;
  const res = await fetch(`${reg.url}/v2/${path}`, { headers });
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()), type: res.headers.get('content-type') };
}

/** The registry serves the image's manifest under `tag` and every blob, byte for byte as berth holds them. */
async function assertServed(reg: { url: string }, repo: string, tag: string, img: Image, auth?: string): Promise<void> {
  const m = await get(reg, `${repo}/manifests/${tag}`, img.mediaType, auth);
  assert.equal(m.status, 200, `manifest ${repo}:${tag}`);
  assert.ok(m.body.equals(img.manifest.data!), `manifest ${repo}:${tag}: bytes differ from what was pulled`);
  assert.equal(m.type, img.mediaType, 'manifest media type');
  for (const b of img.blobs) {
    const got = await get(reg, `${repo}/blobs/${b.digest}`, undefined, auth);
    assert.equal(got.status, 200, `blob ${b.digest} in ${repo}`);
    if (b.data) assert.ok(got.body.equals(b.data), `blob ${b.digest} in ${repo}: bytes differ`);
    else assert.equal(got.body.length, b.size, `blob ${b.digest} in ${repo}: size`);
  }
}

const pathOnly = (p: string): string => p.split('?')[0];
const uploads = (proxy: Proxy): ProxyResponse[] => proxy.responses.filter((r) => r.method === 'PATCH' || (r.method === 'PUT' && pathOnly(r.path).includes('/blobs/uploads/')));
const mounts = (proxy: Proxy): ProxyResponse[] => proxy.responses.filter((r) => r.method === 'POST' && r.path.includes('mount='));

// ---------------------------------------------------------------------------------------------
// A cut in the request direction. The fixture proxy's rules act on response bodies, and a PATCH's
// bytes go the other way (its answer has no body): this small relay forwards both ways and, once,
// destroys the connection after `cutAfter` bytes of a PATCH request have gone through.

interface Cutter {
  host: string;
  /** Bytes of PATCH requests forwarded (headers and bodies), cut ones included; the cut comes after `cutAfter` of them. */
  patchBytes: number;
  cuts: number;
  /** Holds (does not forward) PATCH bytes from now on, until released. */
  hold(on: boolean): void;
  /** Resolves once a PATCH is held. */
  held(): Promise<void>;
  stop(): Promise<void>;
}

async function startCutter(target: string, cutAfter: number): Promise<Cutter> {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const sockets = new Set<net.Socket>();
  let holding = false;
  let onHeld: (() => void) | undefined;
  const parked: Array<() => void> = [];
  const self = {
    host: '',
    patchBytes: 0,
    cuts: 0,
    hold(on: boolean) {
      holding = on;
      if (!on) for (const go of parked.splice(0)) go();
    },
    held: () => new Promise<void>((resolve) => (onHeld = resolve)),
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    sockets.add(client).add(upstream);
    let inPatch = false;
    const forward = (b: Buffer) => {
      if (b.indexOf('PATCH /') >= 0) inPatch = true;
      else if (/^(GET|HEAD|POST|PUT|DELETE) \//.test(b.subarray(0, 8).toString('latin1'))) inPatch = false;
      if (!inPatch) return void upstream.write(b);
      if (holding) {
        client.pause();
        parked.push(() => {
          client.resume();
          forward(b);
        });
        onHeld?.();
        return;
      }
      if (self.cuts === 0 && self.patchBytes + b.length > cutAfter) {
        self.cuts++;
        const n = cutAfter - self.patchBytes;
        self.patchBytes += n;
        upstream.write(b.subarray(0, n), () => {
          upstream.destroy();
          client.destroy();
        });
        return;
      }
      self.patchBytes += b.length;
      upstream.write(b);
    };
    client.on('data', forward);
    upstream.on('data', (b) => client.write(b));
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  self.host = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return self;
}

// ---------------------------------------------------------------------------------------------
// One source registry for the file: the images berth pulls before pushing them elsewhere.

let source: Registry;
let app: Image;
let sibling: Image;
let bigImage: Image;
let big: Layer;
let multi: Index;

before(async () => {
  source = await startRegistry();
  const shared = { 'etc/': { type: 'dir' as const }, 'etc/os-release': 'ID=berth-push-test\n' };
  app = buildImage({ layers: [shared, { 'app/main.txt': 'the app\n' }] });
  // Shares its first layer with `app`.
  sibling = buildImage({ layers: [shared, { 'sibling/readme.txt': 'another image\n' }], format: 'docker' });
  big = await bigLayer(6 * MiB, { seed: 16 });
  bigImage = buildImage({ layers: [big] });
  multi = multiPlatformImage(['linux/amd64', 'linux/arm64']);
  await pushImage(source, 'test/app', 'v1', app);
  await pushImage(source, 'test/sibling', 'v1', sibling);
  await pushImage(source, 'test/big', 'v1', bigImage);
  await pushImage(source, 'test/multi', 'v1', multi);
});

after(async () => {
  await source?.stop();
});

describe('push: to a plain registry', () => {
  let dest: Registry;
  let proxy: Proxy;
  before(async () => {
    dest = await startRegistry();
    proxy = await startProxy(dest.host);
  });
  after(async () => {
    await proxy?.stop();
    await dest?.stop();
  });

  test('the registry serves the pushed image byte-identical; a second push uploads no blob; a sibling mounts the shared layer', { timeout: 60_000 }, async (t) => {
    const s = await stack(t, { prefix: 'plain' });
    await pullInto(s, ref(source.host, 'test/app', 'v1'));
    await pullInto(s, ref(source.host, 'test/sibling', 'v1'));

    // First push: every blob is uploaded, then the manifest under the tag.
    proxy.reset();
    const first = await push(s, { ref: ref(proxy.host, 'copy/app', 'v1'), image: ref(source.host, 'test/app', 'v1') });
    assertDone(first, 'first push');
    assert.equal(first.digest, app.digest, 'the tag names the manifest berth holds');
    await assertServed(dest, 'copy/app', 'v1', app);
    for (const b of app.blobs) assert.equal(first.blobs.find((x) => x.digest === b.digest)?.state, 'uploaded', `blob ${b.digest}`);
    const sent = app.blobs.reduce((n, b) => n + b.size, 0);
    const patched = uploads(proxy).filter((r) => r.method === 'PATCH');
    assert.equal(patched.length, app.blobs.length, 'one PATCH per blob (each smaller than a chunk)');
    assert.equal(first.bytesSent, sent + app.size, 'bytes sent: the blobs and the manifest');
    assert.ok(proxy.bytesFromClient >= sent, `the proxy carried the blobs from berth (${proxy.bytesFromClient} < ${sent})`);
    // The repository pushed to is remembered for mounts.
    const labels = (await s.env.cs.info(ctx, app.layers[0].digest)).labels;
    assert.equal(labels[`${SOURCE}${proxy.host}`], 'copy/app', `source label after the push: ${JSON.stringify(labels)}`);

    // Second push of the same image: HEADs only — no upload, no PATCH, no blob bytes.
    proxy.reset();
    const second = await push(s, { ref: ref(proxy.host, 'copy/app', 'v1'), image: ref(source.host, 'test/app', 'v1') });
    assertDone(second, 'second push');
    assert.deepEqual(uploads(proxy), [], 'the second push uploaded nothing');
    assert.deepEqual(proxy.responses.filter((r) => r.method === 'POST'), [], 'no upload session opened');
    for (const b of app.blobs) assert.equal(second.blobs.find((x) => x.digest === b.digest)?.state, 'exists', `blob ${b.digest}`);
    assert.ok(proxy.bytesFromClient < 16 << 10, `only requests without bodies, and the manifest (${proxy.bytesFromClient} bytes)`);

    // The sibling shares its first layer with copy/app: mounted from there, the rest uploaded.
    proxy.reset();
    const third = await push(s, { ref: ref(proxy.host, 'copy/sibling', 'v1'), image: ref(source.host, 'test/sibling', 'v1') });
    assertDone(third, 'sibling push');
    await assertServed(dest, 'copy/sibling', 'v1', sibling);
    const shared = sibling.layers[0].digest;
    assert.equal(shared, app.layers[0].digest, 'the fixture shares the layer');
    assert.equal(third.blobs.find((b) => b.digest === shared)?.state, 'mounted');
    const mounted = mounts(proxy);
    assert.equal(mounted.length, 1, `one mount request: ${JSON.stringify(proxy.responses.map((r) => `${r.method} ${r.path} ${r.status}`))}`);
    assert.equal(mounted[0].status, 201, 'the registry mounted the blob');
    assert.match(mounted[0].path, escapeRe(`mount=${encodeURIComponent(shared)}&from=${encodeURIComponent('copy/app')}`));
    const patchedNow = uploads(proxy).filter((r) => r.method === 'PATCH');
    assert.equal(patchedNow.length, sibling.blobs.length - 1, 'every blob but the mounted one uploaded');
  });

  test('a multi-platform image: its manifests, then the index; --platform pushes one manifest under the tag', { timeout: 60_000 }, async (t) => {
    const s = await stack(t, { prefix: 'multi' });
    const name = ref(source.host, 'test/multi', 'v1');
    await pullInto(s, name, { allPlatforms: true });
    const whole = await push(s, { ref: ref(proxy.host, 'copy/multi', 'v1'), image: name });
    assertDone(whole, 'index push');
    const index = await get(dest, 'copy/multi/manifests/v1', multi.mediaType);
    assert.equal(index.status, 200);
    assert.ok(index.body.equals(multi.manifest.data!), 'the index, byte for byte');
    for (const img of multi.images) await assertServed(dest, 'copy/multi', img.digest, img);
    const order = whole.blobs.map((b) => b.digest);
    assert.equal(order.at(-1), multi.digest, 'the index last');

    const arm = multi.images.find((i) => i.platform.architecture === 'arm64')!;
    const one = await push(s, { ref: ref(proxy.host, 'copy/multi-arm', 'v1'), image: name, platform: 'linux/arm64' });
    assertDone(one, 'platform push');
    assert.equal(one.digest, arm.digest, 'the tag names the arm64 manifest');
    await assertServed(dest, 'copy/multi-arm', 'v1', arm);
  });

  test('hosts.toml: the push goes to the first host with the push capability; none is a 412 naming the registry', { timeout: 30_000 }, async (t) => {
    const hostsDir = await tempDir(t, 'berth-push-hosts-');
    // A pull-only mirror first (the source registry: it must not be pushed to), then the server.
    await mkdir(join(hostsDir, 'push.test_5000_'), { recursive: true });
    await writeFile(
      join(hostsDir, 'push.test_5000_', 'hosts.toml'),
      `server = "http://${proxy.host}"\n\n[host."http://${source.host}"]\n  capabilities = ["pull", "resolve"]\n`,
    );
    await mkdir(join(hostsDir, 'pullonly.test'), { recursive: true });
    await writeFile(join(hostsDir, 'pullonly.test', 'hosts.toml'), `server = "http://${proxy.host}"\ncapabilities = ["pull", "resolve"]\n`);
    const s = await stack(t, { prefix: 'hosts', hostsDir });
    await pullInto(s, ref(source.host, 'test/app', 'v1'));
    proxy.reset();
    const v = await push(s, { ref: 'push.test:5000/hosted/app:v1', image: ref(source.host, 'test/app', 'v1') });
    assertDone(v, 'push through hosts.toml');
    await assertServed(dest, 'hosted/app', 'v1', app);
    assert.ok(uploads(proxy).length > 0, 'the uploads went to the server of hosts.toml');
    const none = await push(s, { ref: 'pullonly.test/app:v1', image: ref(source.host, 'test/app', 'v1') });
    assert.equal(none.state, 'failed');
    assert.equal(none.error?.code, 'failed_precondition', none.error?.message);
    assert.match(none.error!.message, /no host of pullonly\.test has the push capability/);
  });

  test('a platform that was not pulled is refused naming the blob; an image not here is not_found', { timeout: 30_000 }, async (t) => {
    const s = await stack(t, { prefix: 'missing' });
    const name = ref(source.host, 'test/multi', 'v1');
    await pullInto(s, name); // this host's platform only
    const v = await push(s, { ref: ref(proxy.host, 'copy/partial', 'v1'), image: name });
    assert.equal(v.state, 'failed');
    assert.equal(v.error?.code, 'failed_precondition', v.error?.message);
    assert.match(v.error!.message, /sha256:[0-9a-f]{64}.*not in the store.*--platform/);
    await assert.rejects(s.pushes.start(ctx, { ref: ref(proxy.host, 'copy/none', 'v1') }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'not_found');
      assert.match(err.message, escapeRe(`${proxy.host}/copy/none:v1`));
      return true;
    });
    await assert.rejects(s.pushes.start(ctx, { ref: 'Not A Ref' }), (err: Error & { code?: string }) => err.code === 'invalid_argument');
  });
});

describe('push: cut and cancelled', () => {
  let dest: Registry;
  before(async () => {
    dest = await startRegistry();
  });
  after(async () => {
    await dest?.stop();
  });

  // docker-registry 2.8 cancels an upload session whose PATCH was cut (its state token's offset no
  // longer matches what it wrote: "upload resumed at wrong offset"), so the status GET of the
  // session answers 404 and the blob starts again in a new session: the bytes sent before the cut
  // are the whole cost, under the blob's size. A registry that keeps the session resumes at its Range.
  test('a PATCH cut mid-blob is resumed within the push; under 2x the blob is sent', { timeout: 60_000 }, async (t) => {
    const chunk = 2 * MiB;
    const cutter = await startCutter(dest.host, chunk + MiB); // inside the second chunk of the big layer
    t.after(() => cutter.stop());
    const s = await stack(t, { prefix: 'cut', chunkSize: chunk });
    await pullInto(s, ref(source.host, 'test/big', 'v1'));
    const v = await push(s, { ref: ref(cutter.host, 'copy/big', 'v1'), image: ref(source.host, 'test/big', 'v1') });
    assertDone(v, 'cut push');
    assert.equal(cutter.cuts, 1, 'the relay cut one PATCH');
    await assertServed(dest, 'copy/big', 'v1', bigImage);
    const got = await get(dest, `copy/big/blobs/${big.digest}`);
    assert.equal(got.body.length, big.size, 'the big layer, whole');
    const blob = v.blobs.find((b) => b.digest === big.digest)!;
    assert.equal(blob.state, 'uploaded');
    assert.ok(blob.bytesSent > big.size, `the cut chunk was sent again (${blob.bytesSent})`);
    assert.ok(blob.bytesSent < 2 * big.size, `under 2x the blob sent (${blob.bytesSent} for ${big.size})`);
    const allBlobs = bigImage.blobs.reduce((n, b) => n + b.size, 0);
    assert.ok(cutter.patchBytes < 2 * allBlobs, `bytes seen by the relay under 2x (${cutter.patchBytes} for ${allBlobs})`);
  });

  test('the image is held by the push\'s lease: deleted and collected mid-push, its blobs still go', { timeout: 60_000 }, async (t) => {
    const cutter = await startCutter(dest.host, Number.MAX_SAFE_INTEGER);
    t.after(() => cutter.stop());
    const s = await stack(t, { prefix: 'lease', chunkSize: MiB });
    const name = ref(source.host, 'test/big', 'v1');
    await pullInto(s, name);
    cutter.hold(true);
    const held = cutter.held();
    const started = await s.pushes.start(ctx, { ref: ref(cutter.host, 'copy/held', 'v1'), image: name });
    await held;
    await s.env.images.delete(ctx, name);
    await s.env.gc.collect();
    for (const b of bigImage.blobs) assert.ok((await s.env.cs.info(ctx, b.digest)).size === b.size, `blob ${b.digest} kept by the lease`);
    cutter.hold(false);
    const v = await s.pushes.wait(started.id);
    assertDone(v, 'push of a deleted image');
    await assertServed(dest, 'copy/held', 'v1', bigImage);
    // The lease went with the push: now nothing keeps the blobs.
    await s.env.gc.collect();
    await assert.rejects(s.env.cs.info(ctx, big.digest), (err: Error & { code?: string }) => err.code === 'not_found');
  });

  test('a push cancelled mid-upload ends cancelled, and releases its lease', { timeout: 60_000 }, async (t) => {
    const cutter = await startCutter(dest.host, Number.MAX_SAFE_INTEGER);
    t.after(() => cutter.stop());
    const s = await stack(t, { prefix: 'cancel', chunkSize: MiB });
    await pullInto(s, ref(source.host, 'test/big', 'v1'));
    cutter.hold(true);
    const held = cutter.held();
    const started = await s.pushes.start(ctx, { ref: ref(cutter.host, 'copy/cancelled', 'v1'), image: ref(source.host, 'test/big', 'v1') });
    await held;
    assert.equal(s.pushes.get(started.id).state, 'running');
    const v = await s.pushes.cancel(started.id);
    cutter.hold(false);
    assert.equal(v.state, 'cancelled');
    assert.match(v.error!.message, escapeRe(`push ${started.id} cancelled`));
    assert.deepEqual((await s.env.leases.list(ctx)).map((l) => l.id).filter((id) => id === v.lease), [], 'the lease is gone');
    const tag = await get(dest, 'copy/cancelled/manifests/v1', bigImage.mediaType);
    assert.equal(tag.status, 404, 'no manifest was put');
  });
});

describe('push: authentication', () => {
  for (const auth of ['basic', 'token'] as const) {
    test(`${auth} auth: the right credentials push; a refusal names the registry and the scope`, { timeout: 60_000 }, async (t) => {
      // Token auth: the user may push to `private/...`, nobody to `readonly/...`.
      const reg = await startRegistry({
        auth,
        token: { grant: (user, scope) => (!user ? [] : scope.name.startsWith('readonly/') ? scope.actions.filter((a) => a === 'pull') : scope.actions) },
      });
      t.after(() => reg.stop());
      const creds = reg.credentials!;
      const good = await stack(t, { prefix: `${auth}-good`, creds: { host: reg.host, username: creds.username, secret: creds.password } });
      await pullInto(good, ref(source.host, 'test/app', 'v1'));
      const v = await push(good, { ref: ref(reg.host, 'private/app', 'v1'), image: ref(source.host, 'test/app', 'v1') });
      assertDone(v, `${auth} auth, right credentials`);
      await assertServed(reg, 'private/app', 'v1', app, await authorization(reg, 'private/app', creds, ['pull']));
      if (auth === 'token') {
        const granted = reg.token!.log.filter((e) => e.status === 200 && e.user === creds.username);
        assert.ok(
          granted.some((e) => e.granted.some((g) => g.name === 'private/app' && g.actions.includes('push'))),
          `a push token for private/app: ${JSON.stringify(granted)}`,
        );
        const refused = await push(good, { ref: ref(reg.host, 'readonly/app', 'v1'), image: ref(source.host, 'test/app', 'v1') });
        assert.equal(refused.state, 'failed');
        assert.match(refused.error!.code, /^(unauthenticated|denied)$/);
        assert.match(refused.error!.message, escapeRe(`registry ${reg.host}`));
        assert.match(refused.error!.message, escapeRe('repository:readonly/app:pull,push'));
      }

      const bad = await stack(t, { prefix: `${auth}-bad`, creds: { host: reg.host, username: creds.username, secret: 'not-the-password' } });
      await pullInto(bad, ref(source.host, 'test/app', 'v1'));
      const w = await push(bad, { ref: ref(reg.host, 'private/other', 'v1'), image: ref(source.host, 'test/app', 'v1') });
      assert.equal(w.state, 'failed', `${auth} auth, wrong credentials: ${w.state}`);
      assert.equal(w.error?.code, 'unauthenticated', w.error?.message);
      assert.match(w.error!.message, escapeRe(`registry ${reg.host}`), `names the registry: ${w.error!.message}`);
      assert.match(w.error!.message, escapeRe('scope repository:private/other:pull,push'), `names the scope: ${w.error!.message}`);
    });
  }
});

describe('push: the API and the CLI', () => {
  let dest: Registry;
  before(async () => {
    dest = await startRegistry();
  });
  after(async () => {
    await dest?.stop();
  });

  test('POST /v1/pushes, its events, and berth push with progress', { timeout: 90_000 }, async (t) => {
    const server = await startTestServer();
    t.after(() => server.destroy());
    const api = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${server.url}${path}`, { method, headers: body ? { 'content-type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined });
      return { status: res.status, json: (await res.json()) as Record<string, any> };
    };
    const pulled = await api('POST', '/v1/pulls?wait=true', { ref: ref(source.host, 'test/app', 'v1') });
    assert.equal(pulled.json.state, 'done', JSON.stringify(pulled.json));

    const started = await api('POST', '/v1/pushes', { ref: ref(dest.host, 'api/app', 'v1'), image: ref(source.host, 'test/app', 'v1') });
    assert.equal(started.status, 202, JSON.stringify(started.json));
    const events = await fetch(`${server.url}/v1/pushes/${started.json.id}/events`);
    const text = await events.text();
    assert.match(text, /^event: push\n/, 'the push as it is first');
    assert.match(text, /event: done\ndata: \{"type":"done","image":"[^"]+","target":"sha256:/, `the final event: ${text.slice(-300)}`);
    const final = await api('GET', `/v1/pushes/${started.json.id}`);
    assert.equal(final.json.state, 'done');
    await assertServed(dest, 'api/app', 'v1', app);

    const missing = await api('POST', '/v1/pushes', { ref: ref(dest.host, 'api/none', 'v1') });
    assert.equal(missing.status, 404, JSON.stringify(missing.json));
    assert.match(missing.json.error.message, escapeRe(`${dest.host}/api/none:v1`));
    const bad = await api('POST', '/v1/pushes', { ref: ref(dest.host, 'api/app', 'v1'), platform: 'not/a/plat/form' });
    assert.equal(bad.status, 400, JSON.stringify(bad.json));
    assert.equal((await api('GET', '/v1/pushes/nope')).status, 404);

    // The CLI: the image named by the reference (tagged under the destination name first).
    await api('POST', '/v1/images', { name: ref(dest.host, 'cli/app', 'v1'), target: { mediaType: app.mediaType, digest: app.digest, size: app.size } });
    const out = cliOk(await berth(new URL(server.url).host, ['push', ref(dest.host, 'cli/app', 'v1')]), 'berth push');
    assert.match(out, /manifest sha256:[0-9a-f]{12} uploaded/, out);
    assert.match(out, new RegExp(`${escapeRe(ref(dest.host, 'cli/app', 'v1')).source}: pushed ${app.digest}`), out);
    await assertServed(dest, 'cli/app', 'v1', app);
  });
});
