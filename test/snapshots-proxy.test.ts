// A proxy snapshotter (containerd's proxy plugins; `[proxy_plugins.NAME] type = "snapshot"`):
// a second berth serves only its snapshots on a unix socket (the plugins it does not need
// disabled), and a first berth uses it as the snapshotter `remote` — plugin status, prepare,
// commit, view and mounts through the first's API landing in the second's namespace
// `berth-proxy`, a pull unpacked into it, and a clear error when the socket is not there.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { BerthClient } from '../src/client/http.js';
import type { PluginInfo } from '../src/plugins/registry.js';
import type { Mount } from '../src/snapshots/types.js';
import { T } from './fixtures/content-suite.js';
import { buildImage, pushImage, type Image } from './fixtures/images.js';
import { startRegistry, type Registry } from './fixtures/registry.js';
import { tempDir } from './fixtures/helpers.js';
import { startTestServer, type TestServer } from './fixtures/server.js';
import { chainIdsOf, expectApiError, GC_ROOT, listSnapshots, overlayUnsupported, snapshotPath, withView, type SnapshotJson } from './fixtures/unpack.js';

const backend = (await overlayUnsupported()) ? 'native' : 'overlayfs';

/** What a server that only serves snapshots can go without. */
const notNeeded = [
  'io.berth.service.v1.pulls',
  'io.berth.runtime.v1.runc',
  'io.berth.gc.v1.scheduler',
  'io.berth.service.v1.images',
  'io.berth.archive.v1.images',
  'io.berth.service.v1.leases',
];

let registry: Registry;
let image: Image;
let socketDir: string;
let remote: TestServer;
let local: TestServer;
const socket = () => join(socketDir, 'snapshots.sock');

const localClient = (namespace = 'default') => new BerthClient(new URL(local.url).host, { namespace });
const remoteClient = (namespace = 'berth-proxy') => new BerthClient(`unix://${socket()}`, { namespace });
const plugins = async (c: BerthClient) => (await c.json<{ items: PluginInfo[] }>('GET', '/v1/plugins')).items;

before(async () => {
  registry = await startRegistry();
  image = buildImage({
    layers: [
      { 'etc/': { type: 'dir' }, 'etc/motd': 'from the remote snapshotter\n', 'etc/gone': 'whited out\n' },
      { 'etc/': { type: 'dir' }, 'etc/.wh.gone': '', 'bin/': { type: 'dir' }, 'bin/tool': { type: 'file', content: '#!/bin/sh\n', mode: 0o755 } },
    ],
  });
  await pushImage(registry, 'test/proxied', 'v1', image);
  socketDir = await mkdtemp(join(tmpdir(), 'berth-proxy-sock-'));
  remote = await startTestServer({ config: { address: `unix://${socket()}`, disabledPlugins: notNeeded } });
  local = await startTestServer({ config: { proxyPlugins: { remote: { type: 'snapshot', address: socket(), snapshotter: backend } } } });
});

after(async () => {
  await local?.destroy();
  await remote?.destroy();
  await registry?.stop();
  if (socketDir) await rm(socketDir, { recursive: true, force: true });
});

describe('a proxy snapshotter served by a second berth', () => {
  test('the second berth runs with the plugins it does not need disabled; the first loads `remote`', T, async () => {
    const served = await plugins(remoteClient());
    assert.deepEqual(served.filter((p) => p.status === 'error').map((p) => `${p.type}.${p.id}: ${p.message}`), [], 'nothing failed on the serving berth');
    for (const key of notNeeded) assert.ok(!served.some((p) => `${p.type}.${p.id}` === key), `${key} is not loaded`);
    assert.equal(served.find((p) => p.type === 'io.berth.service.v1' && p.id === 'snapshots')?.status, 'ok');

    const loaded = (await plugins(localClient())).find((p) => p.type === 'io.berth.snapshotter.v1' && p.id === 'remote');
    assert.ok(loaded, 'io.berth.snapshotter.v1.remote is listed');
    assert.equal(loaded.status, 'ok', loaded.message);
    assert.deepEqual(loaded.exports, { address: `unix://${socket()}`, snapshotter: backend });
    const { items } = await localClient().json<{ items: Array<{ name: string; default: boolean }> }>('GET', '/v1/snapshotters');
    assert.deepEqual(items.find((s) => s.name === 'remote'), { name: 'remote', default: false });
  });

  test('prepare, commit, view and mounts through the first berth land in the second (namespace berth-proxy)', T, async () => {
    const c = localClient('proxied');
    const { mounts } = await c.json<{ mounts: Mount[] }>('POST', snapshotPath('remote', 'prepare'), { json: { key: 'base-a', labels: { mine: 'yes' } } });
    assert.ok(mounts[0].source.startsWith(remote.dir), `the mounts are the second berth's: ${JSON.stringify(mounts)}`);
    await writeFile(join(mounts[0].source, 'hello'), 'written through the proxy\n');
    assert.deepEqual((await c.json<{ mounts: Mount[] }>('GET', snapshotPath('remote', 'base-a', 'mounts'))).mounts, mounts);
    await c.json('POST', snapshotPath('remote', 'commit'), { json: { name: 'base', key: 'base-a', labels: { layer: '0' } } });
    await withView(c, 'remote', 'base', async (view) => {
      assert.equal(await readFile(join(view, 'hello'), 'utf8'), 'written through the proxy\n');
      await assert.rejects(writeFile(join(view, 'nope'), 'x'), /EROFS|read-only/i, 'a view is read-only');
    });
    await c.json('POST', snapshotPath('remote', 'view'), { json: { key: 'kept-view', parent: 'base' } });

    // As the first berth's namespace sees them: its keys and labels.
    const mine = await listSnapshots(c, 'remote');
    assert.deepEqual(mine.map((s) => [s.name, s.kind, s.parent ?? '']), [['base', 'committed', ''], ['kept-view', 'view', 'base']]);
    assert.deepEqual(mine[0].labels, { layer: '0' });

    // As the second berth keeps them: backend keys `<ns>/<seq>/<key>`, held by gc.root.
    const there = await listSnapshots(remoteClient(), backend);
    const base = there.find((s) => s.name.startsWith('proxied/') && s.name.endsWith('/base'));
    const view = there.find((s) => s.name.startsWith('proxied/') && s.name.endsWith('/kept-view'));
    assert.ok(base && view, `the second berth has both: ${there.map((s) => s.name)}`);
    assert.equal(base.kind, 'committed');
    assert.deepEqual([view.kind, view.parent], ['view', base.name]);
    assert.equal(base.labels[GC_ROOT], 'proxy', 'kept on the remote until the first berth removes it');
    assert.equal(there.some((s) => s.name.endsWith('/base-a')), false, 'the active snapshot became the committed one');

    await c.json('DELETE', snapshotPath('remote', 'kept-view'));
    await c.json('DELETE', snapshotPath('remote', 'base'));
    const left = await listSnapshots(remoteClient(), backend);
    assert.deepEqual(left.filter((s) => s.name.startsWith('proxied/')).map((s) => s.name), [], 'removed on the remote too');
  });

  test("the first berth's GC leaves alone what others keep in the remote namespace", T, async () => {
    // Someone else's snapshot in the same remote namespace: not made through this proxy.
    const other = remoteClient();
    await other.json('POST', snapshotPath(backend, 'prepare'), { json: { key: 'someone-else', labels: { [GC_ROOT]: 'theirs' } } });
    const gc = await localClient().json<{ backend: { snapshots: number } }>('POST', '/v1/gc');
    assert.equal(gc.backend.snapshots, 0, 'no backend snapshot removed');
    const there = await listSnapshots(other, backend);
    assert.ok(there.some((s) => s.name === 'someone-else'), 'still on the remote');
    await other.json('DELETE', snapshotPath(backend, 'someone-else'));
  });

  test('a pull unpacks into the remote snapshotter; a view of it shows the files', T, async () => {
    const c = localClient('pulled');
    const chain = chainIdsOf(image.layers.map((l) => l.diffID));
    const p = await c.json<{ state: string; error?: { message: string }; unpacks: unknown[] }>('POST', '/v1/pulls', {
      json: { ref: `${registry.host}/test/proxied:v1`, unpack: true, snapshotter: 'remote' },
      query: { wait: 'true' },
    });
    assert.equal(p.state, 'done', p.error?.message);
    assert.deepEqual(p.unpacks, [{ snapshotter: 'remote', chainId: chain[1], unpacked: 2, existing: 0 }]);
    assert.deepEqual((await listSnapshots(c, 'remote')).map((s: SnapshotJson) => s.name).sort(), [...chain].sort());
    const there = (await listSnapshots(remoteClient(), backend)).filter((s) => s.name.startsWith('pulled/')).map((s) => s.name);
    for (const id of chain) assert.ok(there.some((n) => n.endsWith(`/${id}`)), `${id} is on the remote: ${there}`);
    await withView(c, 'remote', chain[1], async (view) => {
      assert.equal(await readFile(join(view, 'etc/motd'), 'utf8'), 'from the remote snapshotter\n');
      assert.equal(await readFile(join(view, 'bin/tool'), 'utf8'), '#!/bin/sh\n');
      await assert.rejects(readFile(join(view, 'etc/gone')), /ENOENT/, 'the whiteout applied');
    });
  });

  test('a proxy plugin whose socket does not exist reports `error` naming the socket; the rest loads', T, async () => {
    const missing = join(socketDir, 'no-such.sock');
    const s = await startTestServer({ config: { proxyPlugins: { gone: { type: 'snapshot', address: missing } } } });
    try {
      const c = new BerthClient(new URL(s.url).host);
      const info = (await plugins(c)).find((p) => p.type === 'io.berth.snapshotter.v1' && p.id === 'gone');
      assert.ok(info, 'the proxy plugin is listed');
      assert.equal(info.status, 'error');
      assert.ok(info.message?.includes(missing), `the message names the socket: ${info.message}`);
      assert.match(info.message!, /ENOENT|no such file|connect|cannot reach/i);
      const { items } = await c.json<{ items: Array<{ name: string }> }>('GET', '/v1/snapshotters');
      assert.deepEqual(items.map((i) => i.name).sort(), (backend === 'overlayfs' ? ['native', 'overlayfs'] : ['native']).sort());
      await expectApiError(c.json('GET', snapshotPath('gone')), 404, 'not_found', 'the failed snapshotter', /gone/);
    } finally {
      await s.destroy();
    }
  });
});

// Any service can be disabled: its routes answer 501 naming it, as those of a plugin that failed.
test(
  'a server with the content service disabled starts; the content routes answer 501',
  T,
  async (t) => {
    const dir = await tempDir(t, 'berth-proxy-nocontent-');
    const s = await startTestServer({ dir, config: { disabledPlugins: [...notNeeded, 'io.berth.service.v1.content'] } });
    try {
      const res = await new BerthClient(new URL(s.url).host).send('GET', '/v1/content').catch((err: { status: number }) => err);
      assert.equal((res as { status?: number }).status, 501);
      const { items } = await new BerthClient(new URL(s.url).host).json<{ items: unknown[] }>('GET', '/v1/snapshotters');
      assert.ok(items.length > 0, 'the snapshots service still works');
    } finally {
      await s.destroy();
    }
  },
);
