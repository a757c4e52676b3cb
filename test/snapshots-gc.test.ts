// Snapshots and the garbage collector (reference §3.7, §4.3–4.7) on running servers, with images
// pulled from a real registry and unpacked for real:
//   * deleting an image with ?sync=true removes its snapshots — records and the snapshotter's
//     folders — and its blobs (overlayfs and native);
//   * what keeps snapshots: a lease naming one (and so its parents), a snapshot prepared under a
//     lease, the `containerd.io/gc.root` label, a container record naming one as its root file
//     system; and, for a while, having been made without a lease (unleased expiry, 24 h by
//     default, none with `unleased_expiry_ms = 0`);
//   * a dry run reports the snapshots a collection would remove, and removes nothing.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { BerthClient } from '../src/client/http.js';
import { ContainerStore } from '../src/metadata/containers.js';
import { metadataType, type Metadata } from '../src/plugins/metadata.js';
import { T } from './fixtures/content-suite.js';
import { buildImage, pushImage, type Image } from './fixtures/images.js';
import { startRegistry, type Registry } from './fixtures/registry.js';
import { startTestServer, type TestServer } from './fixtures/server.js';
import { chainIdsOf, entriesOf, GC_ROOT, listSnapshots, overlayUnsupported, snapshotPath } from './fixtures/unpack.js';

const overlaySkip = await overlayUnsupported();
const snapshotters: Array<['overlayfs' | 'native', string | false]> = [
  ['overlayfs', overlaySkip ?? false],
  ['native', false],
];
const defaultSn = overlaySkip ? 'native' : 'overlayfs';

let registry: Registry;
/** Default configuration: unleased snapshots are kept 24 h. */
let server: TestServer;
/** `unleased_expiry_ms = 0`, and no collection triggered by the number of writes. */
let strict: TestServer;
const images = new Map<string, Image>();

/** Three layers of content no other image has (so no other namespace holds its blobs). */
function imageFor(tag: string): Image {
  return buildImage({
    layers: [
      { [`${tag}/`]: { type: 'dir' }, [`${tag}/base`]: `${tag} base\n` },
      { [`${tag}/middle`]: `${tag} middle\n` },
      { [`${tag}/top`]: `${tag} top\n` },
    ],
  });
}
const tags = ['delete-overlayfs', 'delete-native', 'lease-top', 'lease-prepared', 'container'];

const refOf = (tag: string) => `${registry.host}/test/${tag}:v1`;
const client = (s: TestServer, namespace: string, lease?: string) => new BerthClient(new URL(s.url).host, { namespace, lease });
const snapshotDirs = (s: TestServer, sn: string) => entriesOf(join(s.config.root, `io.berth.snapshotter.v1.${sn}`, 'snapshots'));
const blobFile = (s: TestServer, digest: string) => join(s.config.root, 'io.berth.content.v1.content', 'blobs', 'sha256', digest.slice('sha256:'.length));
const names = async (c: BerthClient, sn: string) => (await listSnapshots(c, sn)).map((s) => s.name).sort();

interface GcJson {
  removed: { snapshots: number; images: number; content: number; leases: number };
  backend: { snapshots: number; blobs: number };
}

/** Pulls and unpacks `tag`'s image; its chainIDs and the snapshot folders the pull made. */
async function pullUnpacked(c: BerthClient, s: TestServer, tag: string, sn: string): Promise<{ chain: string[]; dirs: string[] }> {
  const before = await snapshotDirs(s, sn);
  const p = await c.json<{ state: string; error?: { message: string } }>('POST', '/v1/pulls', {
    json: { ref: refOf(tag), unpack: true, snapshotter: sn },
    query: { wait: 'true' },
  });
  assert.equal(p.state, 'done', `pull ${tag}: ${p.error?.message}`);
  const chain = chainIdsOf(images.get(tag)!.layers.map((l) => l.diffID));
  assert.deepEqual(await names(c, sn), [...chain].sort(), `${tag}: the unpacked chain`);
  const dirs = (await snapshotDirs(s, sn)).filter((d) => !before.includes(d));
  assert.equal(dirs.length, 3, `${tag}: one folder per layer: ${dirs}`);
  return { chain, dirs };
}

const deleteImage = (c: BerthClient, tag: string) => c.json('DELETE', `/v1/images/${encodeURIComponent(refOf(tag))}`, { query: { sync: 'true' } });
const collect = (c: BerthClient, dryRun = false) => c.json<GcJson>('POST', '/v1/gc', { query: dryRun ? { dryRun: 'true' } : {} });

async function assertGone(s: TestServer, c: BerthClient, sn: string, dirs: string[], what: string): Promise<void> {
  assert.deepEqual(await names(c, sn), [], `${what}: no snapshot records`);
  const left = await snapshotDirs(s, sn);
  assert.deepEqual(dirs.filter((d) => left.includes(d)), [], `${what}: the snapshots' folders are removed`);
}

before(async () => {
  registry = await startRegistry();
  for (const tag of tags) images.set(tag, imageFor(tag));
  await Promise.all(tags.map((tag) => pushImage(registry, `test/${tag}`, 'v1', images.get(tag)!)));
  [server, strict] = await Promise.all([
    startTestServer(),
    startTestServer({
      config: {
        plugins: {
          'io.berth.metadata.v1.level': { unleased_expiry_ms: 0 },
          'io.berth.gc.v1.scheduler': { mutation_threshold: 0 },
        },
      },
    }),
  ]);
});

after(async () => {
  await Promise.all([server?.destroy(), strict?.destroy()]);
  await registry?.stop();
});

// ---------------------------------------------------------------------------------------------

describe('deleting an image', () => {
  for (const [sn, skip] of snapshotters) {
    test(`${sn}: with sync=true its snapshots (records and folders) and its blobs are gone when the call returns`, { ...T, skip }, async () => {
      const tag = `delete-${sn}`;
      const c = client(server, tag);
      const img = images.get(tag)!;
      const { chain, dirs } = await pullUnpacked(c, server, tag, sn);
      const blobs = [img.digest, ...img.blobs.map((b) => b.digest)];
      for (const d of blobs) assert.ok(existsSync(blobFile(server, d)), `blob ${d} on disk`);
      const config = await c.json<{ labels: Record<string, string> }>('GET', `/v1/content/${img.config.digest}/info`);
      assert.equal(config.labels[`containerd.io/gc.ref.snapshot.${sn}`], chain[2], 'the config holds the snapshots');

      await deleteImage(c, tag);
      await assertGone(server, c, sn, dirs, sn);
      assert.deepEqual((await c.json<{ items: unknown[] }>('GET', '/v1/content')).items, [], 'no blob records');
      for (const d of blobs) assert.equal(existsSync(blobFile(server, d)), false, `blob ${d} removed from disk`);
    });
  }
});

describe('what keeps snapshots', () => {
  test('a lease naming the top snapshot keeps it and its parents; deleting the lease frees them', T, async () => {
    const tag = 'lease-top';
    const c = client(server, tag);
    const { chain, dirs } = await pullUnpacked(c, server, tag, defaultSn);
    await c.json('POST', '/v1/leases', { json: { id: 'keep-top' } });
    await c.json('POST', '/v1/leases/keep-top/resources', { json: { type: `snapshots/${defaultSn}`, id: chain[2] } });

    await deleteImage(c, tag);
    assert.deepEqual(await names(c, defaultSn), [...chain].sort(), 'the leased snapshot and its parents are kept');
    const left = await snapshotDirs(server, defaultSn);
    assert.deepEqual(dirs.filter((d) => !left.includes(d)), [], 'their folders too');
    assert.deepEqual((await c.json<{ items: unknown[] }>('GET', '/v1/content')).items, [], 'the blobs are not kept by the snapshots');

    await c.json('DELETE', '/v1/leases/keep-top', { query: { sync: 'true' } });
    await assertGone(server, c, defaultSn, dirs, 'after the lease');
  });

  test('a snapshot prepared under a lease (Berth-Lease) keeps itself and the chain below it', T, async () => {
    const tag = 'lease-prepared';
    const c = client(server, tag);
    const { chain, dirs } = await pullUnpacked(c, server, tag, defaultSn);
    await c.json('POST', '/v1/leases', { json: { id: 'work' } });
    await client(server, tag, 'work').json('POST', snapshotPath(defaultSn, 'prepare'), { json: { key: 'work', parent: chain[2] } });
    const workDir = (await snapshotDirs(server, defaultSn)).filter((d) => !dirs.includes(d));

    await deleteImage(c, tag);
    assert.deepEqual(await names(c, defaultSn), [...chain, 'work'].sort(), 'the leased active snapshot and its parents are kept');

    await c.json('DELETE', '/v1/leases/work', { query: { sync: 'true' } });
    await assertGone(server, c, defaultSn, [...dirs, ...workDir], 'after the lease');
  });

  test('a container record keeps its root file system snapshot and the chain below it', T, async () => {
    const tag = 'container';
    const c = client(server, tag);
    const { chain, dirs } = await pullUnpacked(c, server, tag, defaultSn);
    // Made under a lease (as containerd's client does), which then goes: only the container holds it.
    await c.json('POST', '/v1/leases', { json: { id: 'making' } });
    await client(server, tag, 'making').json('POST', snapshotPath(defaultSn, 'prepare'), { json: { key: 'c1-rootfs', parent: chain[2] } });
    const containers = new ContainerStore(server.plugins.get<Metadata>(metadataType).db);
    await containers.create(
      { namespace: tag },
      { id: 'c1', image: refOf(tag), runtime: { name: 'io.containerd.runc.v2' }, spec: {}, snapshotter: defaultSn, snapshotKey: 'c1-rootfs' },
    );
    await c.json('DELETE', '/v1/leases/making', { query: { sync: 'true' } });
    await deleteImage(c, tag);
    assert.deepEqual(await names(c, defaultSn), [...chain, 'c1-rootfs'].sort(), 'the container keeps its snapshots');

    // (The deletion may start a collection by itself; either way, after this one they are gone.)
    await containers.delete({ namespace: tag }, 'c1');
    await collect(c);
    await assertGone(server, c, defaultSn, dirs, 'after the container');
  });

  test('the containerd.io/gc.root label keeps a snapshot; an unlabelled one beside it goes', T, async () => {
    const c = client(strict, 'gc-root');
    const before = await snapshotDirs(strict, defaultSn);
    for (const [key, labels] of [['rooted', { [GC_ROOT]: 'yes' }], ['plain', {}]] as const) {
      await c.json('POST', snapshotPath(defaultSn, 'prepare'), { json: { key: `${key}-a` } });
      await c.json('POST', snapshotPath(defaultSn, 'commit'), { json: { name: key, key: `${key}-a`, labels } });
    }
    const made = (await snapshotDirs(strict, defaultSn)).filter((d) => !before.includes(d));
    assert.equal(made.length, 2);
    const result = await collect(c);
    assert.equal(result.removed.snapshots, 1, JSON.stringify(result));
    assert.deepEqual(await names(c, defaultSn), ['rooted']);
    const left = await snapshotDirs(strict, defaultSn);
    assert.equal(made.filter((d) => left.includes(d)).length, 1, 'the unlabelled one\'s folder is removed, the rooted one\'s kept');
  });

  test('an active snapshot made without a lease survives a collection (24 h by default); with unleased_expiry_ms = 0 it does not', T, async () => {
    const kept = client(server, 'unleased');
    await kept.json('POST', snapshotPath(defaultSn, 'prepare'), { json: { key: 'scratch' } });
    await collect(kept);
    assert.deepEqual(await names(kept, defaultSn), ['scratch'], 'kept by the default unleased expiry');

    const gone = client(strict, 'unleased');
    const before = await snapshotDirs(strict, defaultSn);
    await gone.json('POST', snapshotPath(defaultSn, 'prepare'), { json: { key: 'scratch' } });
    const made = (await snapshotDirs(strict, defaultSn)).filter((d) => !before.includes(d));
    assert.equal(made.length, 1);
    const result = await collect(gone);
    assert.equal(result.removed.snapshots, 1, JSON.stringify(result));
    await assertGone(strict, gone, defaultSn, made, 'unleased, no expiry');
  });
});

describe('a dry run', () => {
  test('reports the snapshots a collection would remove, and removes nothing', T, async () => {
    const c = client(strict, 'dry-run');
    const before = await snapshotDirs(strict, defaultSn);
    let parent = '';
    for (const name of ['l0', 'l1', 'l2']) {
      await c.json('POST', snapshotPath(defaultSn, 'prepare'), { json: { key: `${name}-a`, parent } });
      await c.json('POST', snapshotPath(defaultSn, 'commit'), { json: { name, key: `${name}-a` } });
      parent = name;
    }
    const all = await snapshotDirs(strict, defaultSn);
    const dirs = all.filter((d) => !before.includes(d));
    const dry = await collect(c, true);
    assert.equal(dry.removed.snapshots, 3, `records: ${JSON.stringify(dry)}`);
    assert.equal(dry.backend.snapshots, 3, `folders: ${JSON.stringify(dry)}`);
    assert.deepEqual(await names(c, defaultSn), ['l0', 'l1', 'l2'], 'the records are still there');
    assert.deepEqual(await snapshotDirs(strict, defaultSn), all, 'the folders are still there');

    const real = await collect(c);
    assert.deepEqual([real.removed.snapshots, real.backend.snapshots], [3, 3]);
    await assertGone(strict, c, defaultSn, dirs, 'after the real collection');
  });
});
