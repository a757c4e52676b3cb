// Pulls that unpack (issue: snapshots + unpack; reference §6.1–6.3, §6.6, §6.7) against a real
// registry and a running server, with real mounts:
//   * an image of gzip, zstd and plain layers with file and folder whiteouts, an opaque folder,
//     hardlinks, absolute symlinks, setuid/setgid files, 0700 folders, devices, a fifo, an
//     xattr, a long name, and a file that becomes a folder and a file again — unpacked into
//     overlayfs and native, a view of its top chainID compared file by file with GNU tar's
//     extraction of the same layers (whiteouts applied by the test);
//   * containerd's names and labels: committed snapshots named by chainIDs computed here,
//     `containerd.io/snapshot.ref`, `containerd.io/uncompressed` = diffID on each layer blob,
//     `containerd.io/gc.ref.snapshot.<sn>` = top chainID on the config;
//   * a second pull (everything exists, nothing new), two images sharing base layers;
//   * the CLI: `berth pull` (unpacks by default), `--no-unpack`, `images unpack|mount|unmount`;
//   * a wrong diffID, a hostile layer (breakouts kept inside the root), a hardlink to a host file
//     (refused), a layer stream cut while being unpacked (resumed, the tree still right), a pull
//     cancelled mid-unpack.
// Each test works in a namespace of its own on one server. Where overlayfs cannot be mounted its
// cases are reported as skipped, with the reason.
import assert from 'node:assert/strict';
import { lstat, mkdtemp, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { getAttributeSync } from '@napi-rs/xattr';

import { BerthClient } from '../src/client/http.js';
import { T } from './fixtures/content-suite.js';
import { checkDirectoryEqual } from './fixtures/fstest.js';
import { seededBytes, sha256 } from './fixtures/helpers.js';
import { bigLayer, buildImage, layer, pushImage, type Image, type Layer, type LayerSpec } from './fixtures/images.js';
import { startProxy } from './fixtures/proxy.js';
import { startRegistry, type Registry } from './fixtures/registry.js';
import { startTestServer, type TestServer } from './fixtures/server.js';
import {
  berth,
  chainIdsOf,
  cliOk,
  entriesOf,
  expectApiError,
  fileTimes,
  gcRefSnapshot,
  listSnapshots,
  mountPoints,
  overlayUnsupported,
  referenceTree,
  SNAPSHOT_REF,
  snapshotPath,
  UNCOMPRESSED,
  until,
  withView,
  type SnapshotJson,
} from './fixtures/unpack.js';

const MiB = 1 << 20;
const overlaySkip = await overlayUnsupported();
const snapshotters: Array<['overlayfs' | 'native', string | false]> = [
  ['overlayfs', overlaySkip ?? false],
  ['native', false],
];

// ---------------------------------------------------------------------------------------------
// Images

const dir = (extra: object = {}) => ({ type: 'dir' as const, ...extra });
const longDir = `deep/${'d'.repeat(90)}`;
const longFile = `${longDir}/${'f'.repeat(120)}`;

/** Layer 0 (gzip): the base, with every kind of entry. */
const base: LayerSpec = {
  'etc/': dir(),
  'etc/passwd': 'root:x:0:0:root:/root:/bin/sh\n',
  'etc/hosts': '127.0.0.1 localhost\n',
  'etc/xattr-file': { type: 'file', content: 'has an xattr\n', xattrs: { 'user.berth': 'value-1' } },
  'bin/': dir(),
  'bin/busybox': { type: 'file', content: seededBytes(9001, 20_000), mode: 0o755 },
  'bin/sh': { type: 'symlink', target: '/bin/busybox' },
  'bin/ls': { type: 'hardlink', target: 'bin/busybox', mode: 0o755 },
  'usr/': dir(),
  'usr/bin/': dir(),
  'usr/bin/su': { type: 'file', content: 'setuid root\n', mode: 0o4755 },
  'usr/bin/wall': { type: 'file', content: 'setgid tty\n', mode: 0o2755, gid: 5 },
  'secret/': dir({ mode: 0o700, uid: 1000, gid: 1000 }),
  'secret/key': { type: 'file', content: 'private\n', mode: 0o600, uid: 1000, gid: 1000 },
  'var/': dir(),
  'var/cache/': dir(),
  'var/cache/a': 'cached a\n',
  'var/cache/sub/': dir(),
  'var/cache/sub/b': 'cached b\n',
  'opt/': dir(),
  'opt/olddir/': dir(),
  'opt/olddir/x': 'in a folder that goes\n',
  'opt/keep': 'stays\n',
  replace: 'was a file\n',
  'tmp/': dir({ mode: 0o1777 }),
  'home/': dir(),
  'home/user/': dir({ uid: 1000, gid: 1000 }),
  'home/user/.profile': { type: 'file', content: 'export PS1=$\n', uid: 1000, gid: 1000 },
  'dev/': dir(),
  'dev/null': { type: 'char', devmajor: 1, devminor: 3, mode: 0o666 },
  'run/': dir(),
  'run/fifo': { type: 'fifo', mode: 0o600 },
  'deep/': dir(),
  [`${longDir}/`]: dir(),
  [longFile]: 'a long name\n',
  dated: { type: 'file', content: 'old\n', mtime: 1_600_000_000 },
};

/** Layer 1 (zstd): whiteouts, an opaque folder, a file that becomes a folder, absolute links. */
const changes: LayerSpec = {
  'etc/': dir(),
  'etc/.wh.hosts': '',
  'etc/passwd': 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n',
  'opt/': dir(),
  'opt/.wh.olddir': '',
  'var/': dir(),
  'var/cache/': dir(),
  'var/cache/.wh..wh..opq': '',
  'var/cache/new': 'only this is left\n',
  'replace/': dir(),
  'replace/inner': 'now a folder\n',
  'bin/': dir(),
  'bin/.wh.ls': '',
  'link-abs': { type: 'symlink', target: '/etc/passwd' },
  'link-rel': { type: 'symlink', target: 'etc/passwd' },
};

/** Layer 2 (plain tar): the folder becomes a file again, new hardlinks, a 0700 folder again. */
const top: LayerSpec = {
  replace: 'a file again\n',
  'secret/': dir({ mode: 0o700, uid: 1000, gid: 1000 }),
  'secret/key2': { type: 'file', content: 'more\n', mode: 0o600, uid: 1000, gid: 1000 },
  'bin/': dir(),
  'bin/ls': { type: 'file', content: 'ls again\n', mode: 0o755 },
  'data/': dir(),
  'data/a': 'one inode, two names\n',
  'data/b': { type: 'hardlink', target: 'data/a' },
};

let registry: Registry;
let server: TestServer;
let rich: Image;
let shared: Image;
let small: Image;
let badDiff: Image;
let reference: string;
const scratch: string[] = [];

const ref = (repo: string): string => `${registry.host}/${repo}:v1`;
const client = (namespace: string, lease?: string) => new BerthClient(new URL(server.url).host, { namespace, lease });

interface PullJson {
  id: string;
  state: string;
  error?: { code: string; message: string };
  image?: string;
  blobs: Array<{ digest: string; state: string }>;
  unpacks: Array<{ snapshotter: string; chainId: string; unpacked: number; existing: number }>;
}

async function pullAndWait(c: BerthClient, body: Record<string, unknown>): Promise<PullJson> {
  return c.json<PullJson>('POST', '/v1/pulls', { json: body, query: { wait: 'true' } });
}

function assertPulled(p: PullJson, what: string): void {
  assert.equal(p.state, 'done', `${what}: the pull ended ${p.state}: ${p.error?.code} ${p.error?.message}`);
}

const committed = (items: SnapshotJson[]) => items.filter((s) => s.kind === 'committed').map((s) => s.name).sort();
const extracting = (items: SnapshotJson[]) => items.filter((s) => s.name.startsWith('extract-')).map((s) => s.name);

async function labelsOf(c: BerthClient, digest: string): Promise<Record<string, string>> {
  return (await c.json<{ labels?: Record<string, string> }>('GET', `/v1/content/${digest}/info`)).labels ?? {};
}

/** The view of `chainId` equals the reference tree: entries, times of files, the xattr. */
async function assertTreeMatches(c: BerthClient, sn: string, chainId: string, expected: string, what: string): Promise<void> {
  await withView(c, sn, chainId, async (view) => {
    await checkDirectoryEqual(expected, view, what);
    assert.deepEqual(await fileTimes(view), await fileTimes(expected), `${what}: modification times of files and links`);
    const xattr = (root: string) => getAttributeSync(join(root, 'etc/xattr-file'), 'user.berth')?.toString();
    assert.equal(xattr(view), 'value-1', `${what}: user.berth xattr`);
    assert.equal(xattr(view), xattr(expected));
  });
}

before(async () => {
  registry = await startRegistry();
  const layers = [layer(base, { compression: 'gzip' }), layer(changes, { compression: 'zstd' }), layer(top, { compression: 'none' })];
  rich = buildImage({ layers });
  shared = buildImage({ layers: [layers[0], layers[1], layer({ 'shared-top': 'only in the second image\n' }, { compression: 'gzip' })] });
  small = buildImage({ layers: [{ 'etc/': dir(), 'etc/motd': 'hello from the cli image\n' }, { 'app/': dir(), 'app/run': { type: 'file', content: '#!/bin/sh\n', mode: 0o755 } }] });
  const good = layer({ 'fine.txt': 'fine\n' });
  const wrong = layer({ 'mismatch.txt': 'the config lies about me\n' });
  badDiff = buildImage({ layers: [good, wrong], config: { rootfs: { type: 'layers', diff_ids: [good.diffID, sha256('not this layer')] } } });
  await Promise.all([
    pushImage(registry, 'test/rich', 'v1', rich),
    pushImage(registry, 'test/shared', 'v1', shared),
    pushImage(registry, 'test/small', 'v1', small),
    pushImage(registry, 'test/small-nounpack', 'v1', small),
    pushImage(registry, 'test/baddiff', 'v1', badDiff),
  ]);
  server = await startTestServer();
  reference = await mkdtemp(join(tmpdir(), 'berth-unpack-ref-'));
  scratch.push(reference);
  await referenceTree(reference, rich.layers);
});

after(async () => {
  await server?.destroy();
  await registry?.stop();
  for (const d of scratch) await rm(d, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------

describe('pull with unpack: the tree, the names and the labels', () => {
  for (const [sn, skip] of snapshotters) {
    test(`${sn}: the view of the top chainID equals GNU tar's extraction; chainIDs and labels as containerd's; a second pull adds nothing`, { ...T, skip }, async () => {
      const c = client(`rich-${sn}`);
      const chain = chainIdsOf(rich.layers.map((l) => l.diffID));
      const p = await pullAndWait(c, { ref: ref('test/rich'), unpack: true, snapshotter: sn });
      assertPulled(p, sn);
      assert.deepEqual(p.unpacks, [{ snapshotter: sn, chainId: chain[2], unpacked: 3, existing: 0 }]);

      const items = await listSnapshots(c, sn);
      assert.deepEqual(items.map((s) => s.name).sort(), [...chain].sort(), 'only the committed chain is left (no extraction snapshot)');
      for (const [i, id] of chain.entries()) {
        const s = items.find((x) => x.name === id)!;
        assert.equal(s.kind, 'committed', `${id}: kind`);
        assert.equal(s.parent, i === 0 ? undefined : chain[i - 1], `${id}: parent`);
        assert.equal(s.labels[SNAPSHOT_REF], id, `${id}: ${SNAPSHOT_REF}`);
      }
      for (const l of rich.layers) assert.equal((await labelsOf(c, l.digest))[UNCOMPRESSED], l.diffID, `layer ${l.digest}: ${UNCOMPRESSED}`);
      assert.equal((await labelsOf(c, rich.config.digest))[gcRefSnapshot(sn)], chain[2], `config: ${gcRefSnapshot(sn)}`);

      await assertTreeMatches(c, sn, chain[2], reference, `${sn} view of ${chain[2]}`);
      // The parts the comparison rests on, spelled out.
      await withView(c, sn, chain[2], async (view) => {
        assert.equal((await stat(join(view, 'usr/bin/su'))).mode & 0o7777, 0o4755, 'setuid kept');
        assert.equal((await stat(join(view, 'usr/bin/wall'))).mode & 0o7777, 0o2755, 'setgid kept');
        assert.equal((await stat(join(view, 'secret'))).mode & 0o7777, 0o700, '0700 folder');
        assert.equal(await readlink(join(view, 'bin/sh')), '/bin/busybox', 'absolute symlink kept verbatim');
        assert.equal((await lstat(join(view, 'replace'))).isFile(), true, 'file → folder → file');
        assert.deepEqual(await entriesOf(join(view, 'var/cache')), ['new'], 'opaque folder: nothing from below');
        assert.deepEqual(await entriesOf(join(view, 'opt')), ['keep'], 'folder whiteout');
        assert.equal((await lstat(join(view, 'data/a'))).ino, (await lstat(join(view, 'data/b'))).ino, 'hardlink');
        assert.equal(await readFile(join(view, longFile), 'utf8'), 'a long name\n');
      });

      // Again: every layer is there, nothing is made.
      const again = await pullAndWait(c, { ref: ref('test/rich'), unpack: true, snapshotter: sn });
      assertPulled(again, `${sn} again`);
      assert.deepEqual(again.unpacks, [{ snapshotter: sn, chainId: chain[2], unpacked: 0, existing: 3 }]);
      assert.deepEqual(await listSnapshots(c, sn), items, 'the same snapshots, untouched');
    });
  }

  for (const [sn, skip] of snapshotters) {
    test(`${sn}: two images sharing base layers share their snapshots`, { ...T, skip }, async () => {
      const c = client(`shared-${sn}`);
      const richChain = chainIdsOf(rich.layers.map((l) => l.diffID));
      const sharedChain = chainIdsOf(shared.layers.map((l) => l.diffID));
      assert.deepEqual(sharedChain.slice(0, 2), richChain.slice(0, 2));
      assertPulled(await pullAndWait(c, { ref: ref('test/rich'), unpack: true, snapshotter: sn }), 'first image');
      const before = await listSnapshots(c, sn);
      const p = await pullAndWait(c, { ref: ref('test/shared'), unpack: true, snapshotter: sn });
      assertPulled(p, 'second image');
      assert.deepEqual(p.unpacks, [{ snapshotter: sn, chainId: sharedChain[2], unpacked: 1, existing: 2 }]);
      const items = await listSnapshots(c, sn);
      assert.deepEqual(committed(items), [...new Set([...richChain, ...sharedChain])].sort());
      for (const id of richChain.slice(0, 2)) {
        assert.deepEqual(items.find((s) => s.name === id), before.find((s) => s.name === id), `${id} reused as it was`);
      }
      assert.equal(items.find((s) => s.name === sharedChain[2])!.parent, richChain[1]);
      await withView(c, sn, sharedChain[2], async (view) => {
        assert.equal(await readFile(join(view, 'shared-top'), 'utf8'), 'only in the second image\n');
        assert.equal(await readFile(join(view, 'var/cache/new'), 'utf8'), 'only this is left\n');
        assert.equal((await lstat(join(view, 'replace'))).isDirectory(), true, 'the second image stops at layer 1: a folder');
      });
    });
  }
});

// ---------------------------------------------------------------------------------------------

describe('the CLI', () => {
  test('berth pull unpacks by default; --no-unpack does not; images unpack, mount, unmount', T, async (t) => {
    const ns = 'cli';
    const c = client(ns);
    const address = new URL(server.url).host;
    const chain = chainIdsOf(small.layers.map((l) => l.diffID));
    const [pulled, fetchedOnly] = await Promise.all([
      berth(address, ['-n', ns, 'pull', ref('test/small')]),
      berth(address, ['-n', ns, 'pull', '--no-unpack', ref('test/small-nounpack')]),
    ]);
    const out = cliOk(pulled, 'berth pull');
    assert.match(out, new RegExp(`unpacked into overlayfs as ${chain[1].slice(0, 'sha256:'.length + 12)} \\(2 layers extracted\\)`), out);
    assert.doesNotMatch(cliOk(fetchedOnly, 'berth pull --no-unpack'), /unpacked/);
    // Both images share their layers: the first pull's snapshots are all there are.
    assert.deepEqual(committed(await listSnapshots(c, 'overlayfs')), [...chain].sort());
    assert.equal((await labelsOf(c, small.config.digest))[gcRefSnapshot('overlayfs')], chain[1]);

    // --no-unpack into another namespace leaves no snapshot at all.
    const other = client('cli-nounpack');
    cliOk(await berth(address, ['-n', 'cli-nounpack', 'pull', '--no-unpack', ref('test/small')]), 'pull --no-unpack');
    assert.deepEqual(await listSnapshots(other, 'overlayfs'), []);
    assert.equal((await labelsOf(other, small.config.digest))[gcRefSnapshot('overlayfs')], undefined, 'no snapshot label on the config');
    const unpacked = cliOk(await berth(address, ['-n', 'cli-nounpack', 'images', 'unpack', ref('test/small')]), 'images unpack');
    assert.equal(unpacked.trim(), `${ref('test/small')}: ${chain[1]} in overlayfs (2 layers extracted, 0 there already)`);
    assert.deepEqual(committed(await listSnapshots(other, 'overlayfs')), [...chain].sort());

    const target = await mkdtemp(join(tmpdir(), 'berth-cli-mount-'));
    t.after(async () => {
      for (const m of await mountPoints((p) => p === target)) await berth(address, ['images', 'unmount', m]);
      await rm(target, { recursive: true, force: true });
    });
    const mounted = cliOk(await berth(address, ['-n', 'cli-nounpack', 'images', 'mount', ref('test/small'), target]), 'images mount');
    assert.equal(mounted.trim(), target);
    assert.deepEqual(await mountPoints((p) => p === target), [target], 'mounted');
    assert.equal(await readFile(join(target, 'etc/motd'), 'utf8'), 'hello from the cli image\n');
    assert.equal((await stat(join(target, 'app/run'))).mode & 0o777, 0o755);
    await assert.rejects(writeFile(join(target, 'new'), 'x'), /EROFS|read-only/i, 'the mount is read-only');
    const view = await other.json<SnapshotJson>('GET', snapshotPath('overlayfs', target));
    assert.deepEqual([view.kind, view.parent], ['view', chain[1]]);

    cliOk(await berth(address, ['-n', 'cli-nounpack', 'images', 'unmount', target]), 'images unmount');
    assert.deepEqual(await mountPoints((p) => p === target), [], 'nothing mounted any more');
    await expectApiError(other.json('GET', snapshotPath('overlayfs', target)), 404, 'not_found', 'the view is removed');
    assert.deepEqual(await entriesOf(target), [], 'the folder is empty again');
  });
});

// ---------------------------------------------------------------------------------------------

describe('pull with unpack: what must fail, and what must not escape', () => {
  test('a layer whose diffID is not the config\'s: the pull fails naming the layer; no snapshot, no image', T, async (t) => {
    const good = badDiff.layers[0];
    const wrong = badDiff.layers[1];
    const configChain = chainIdsOf(badDiff.config.json.rootfs.diff_ids);
    const realChain = chainIdsOf(badDiff.layers.map((l) => l.diffID));
    for (const [sn, skip] of snapshotters) {
      await t.test(sn, { skip }, async () => {
        const c = client(`baddiff-${sn}`);
        const p = await pullAndWait(c, { ref: ref('test/baddiff'), unpack: true, snapshotter: sn });
        assert.equal(p.state, 'failed', `${sn}: ${p.state}`);
        assert.ok(p.error!.message.includes(wrong.digest), `${sn}: the message names the layer: ${p.error!.message}`);
        assert.match(p.error!.message, /diff id/i);
        const items = await listSnapshots(c, sn);
        assert.deepEqual(extracting(items), [], `${sn}: no extraction snapshot left`);
        const names = items.map((s) => s.name);
        assert.ok(!names.includes(configChain[1]) && !names.includes(realChain[1]), `${sn}: nothing committed for the bad layer: ${names}`);
        assert.ok(names.every((n) => n === good.diffID), `${sn}: at most the good layer's snapshot: ${names}`);
        await expectApiError(c.json('GET', `/v1/images/${encodeURIComponent(ref('test/baddiff'))}`), 404, 'not_found', `${sn}: no image record`);
      });
    }
  });

  test('a hostile layer (symlink to /, ../ names, a hardlink out of the root) changes nothing outside the snapshot', T, async (t) => {
    const sentinel = await mkdtemp(join(tmpdir(), 'berth-sentinel-'));
    t.after(() => rm(sentinel, { recursive: true, force: true }));
    await writeFile(join(sentinel, 'target'), 'host file\n');
    const up = '../../../../../../..';
    const inside = sentinel.slice(1); // where the sentinel's path lands inside the root
    const hostile = buildImage({
      layers: [
        {
          evil: { type: 'symlink', target: '/' },
          [`evil${sentinel}/pwned`]: 'written through a symlink to /\n',
          [`${up}${sentinel}/dotdot`]: 'written through ../\n',
          [`${up}${sentinel}/target`]: 'the root\'s own target\n',
          hl: { type: 'hardlink', target: `${up}${sentinel}/target` },
          sent: { type: 'symlink', target: sentinel },
          'sent/through': 'through an absolute symlink to a folder\n',
        },
        { 'after.txt': 'a later layer\n' },
      ],
    });
    await pushImage(registry, 'test/hostile', 'v1', hostile);
    const before = await stat(join(sentinel, 'target'));
    for (const [sn, skip] of snapshotters) {
      await t.test(sn, { skip }, async () => {
        const c = client(`hostile-${sn}`);
        const p = await pullAndWait(c, { ref: ref('test/hostile'), unpack: true, snapshotter: sn });
        // containerd's behaviour, and berth's: the layer is applied, every write re-rooted inside
        // the snapshot. A pull that failed (for whatever reason) never got to write anything, so
        // the checks below would prove nothing: it is a failure here.
        assertPulled(p, `${sn}: the hostile image`);
        assert.deepEqual(await entriesOf(sentinel), ['target'], `${sn}: nothing new in the sentinel folder`);
        const after = await stat(join(sentinel, 'target'));
        assert.equal(await readFile(join(sentinel, 'target'), 'utf8'), 'host file\n', `${sn}: the host file is unchanged`);
        assert.deepEqual([after.nlink, after.mode, after.mtimeMs], [before.nlink, before.mode, before.mtimeMs], `${sn}: not linked, not chmodded`);
        assert.deepEqual(extracting(await listSnapshots(c, sn)), [], `${sn}: no extraction snapshot left`);
        // Where the writes went: inside the snapshot.
        const chain = chainIdsOf(hostile.layers.map((l) => l.diffID));
        await withView(c, sn, chain[1], async (view) => {
          assert.equal(await readlink(join(view, 'evil')), '/');
          assert.equal(await readFile(join(view, inside, 'pwned'), 'utf8'), 'written through a symlink to /\n');
          assert.equal(await readFile(join(view, inside, 'dotdot'), 'utf8'), 'written through ../\n');
          assert.equal(await readFile(join(view, inside, 'through'), 'utf8'), 'through an absolute symlink to a folder\n');
          assert.equal((await lstat(join(view, 'hl'))).ino, (await lstat(join(view, inside, 'target'))).ino, 'the hardlink links the root\'s target');
          assert.equal(await readFile(join(view, 'hl'), 'utf8'), 'the root\'s own target\n');
        });
      });
    }
  });

  test('a hardlink to a host file the layer does not hold: the layer is refused naming the entry; the host file is not linked', T, async (t) => {
    const sentinel = await mkdtemp(join(tmpdir(), 'berth-sentinel-'));
    t.after(() => rm(sentinel, { recursive: true, force: true }));
    await writeFile(join(sentinel, 'target'), 'host file\n');
    const up = '../../../../../../..';
    // Re-rooted, the target is `<root><sentinel>/target`, which nothing in the layer made.
    const stealing = buildImage({ layers: [{ 'ok.txt': 'fine\n' }, { steal: { type: 'hardlink', target: `${up}${sentinel}/target` } }] });
    await pushImage(registry, 'test/steal', 'v1', stealing);
    const before = await stat(join(sentinel, 'target'));
    for (const [sn, skip] of snapshotters) {
      await t.test(sn, { skip }, async () => {
        const c = client(`steal-${sn}`);
        const p = await pullAndWait(c, { ref: ref('test/steal'), unpack: true, snapshotter: sn });
        assert.equal(p.state, 'failed', `${sn}: the pull ended ${p.state}`);
        assert.equal(p.error?.code, 'invalid_argument', `${sn}: ${p.error?.code} ${p.error?.message}`);
        assert.ok(p.error?.message.includes('layer entry "steal"'), `${sn}: the message names the entry: ${p.error?.message}`);
        assert.ok(p.error?.message.includes('does not exist'), `${sn}: and why: ${p.error?.message}`);
        // Then: nothing escaped.
        const after = await stat(join(sentinel, 'target'));
        assert.deepEqual([after.nlink, after.ino, after.mtimeMs], [before.nlink, before.ino, before.mtimeMs], `${sn}: the host file is not linked`);
        assert.deepEqual(await entriesOf(sentinel), ['target'], `${sn}: nothing new in the sentinel folder`);
        assert.deepEqual(extracting(await listSnapshots(c, sn)), [], `${sn}: no extraction snapshot left`);
        await expectApiError(c.json('GET', `/v1/images/${encodeURIComponent(ref('test/steal'))}`), 404, 'not_found', `${sn}: no image record`);
      });
    }
  });

  test('a layer stream cut while it is being unpacked: the download resumes and the tree is right', T, async (t) => {
    const randomFile = seededBytes(9002, 6 * MiB);
    const cutImage = buildImage({ layers: [{ 'small/': dir(), 'small/a': 'a\n' }, { 'big/': dir(), 'big/random.bin': randomFile, 'big/after': 'after the big file\n' }] });
    await pushImage(registry, 'test/cut', 'v1', cutImage);
    const blob = cutImage.layers[1];
    const stallAt = 2 * MiB;
    const proxy = await startProxy(registry.host, { stallAfterBytes: stallAt, match: `/blobs/${blob.digest}`, times: 1 });
    t.after(() => proxy.stop());
    const sn = overlaySkip ? 'native' : 'overlayfs';
    if (overlaySkip) t.diagnostic(`on native: ${overlaySkip}`);
    const c = client('cut');
    const started = await c.json<PullJson>('POST', '/v1/pulls', { json: { ref: `${proxy.host}/test/cut:v1`, unpack: true, snapshotter: sn } });
    // Stalled part way, with the layer's extraction snapshot made: the unpacker is reading it.
    await until('the layer download stalls', () => proxy.stalled().length === 1);
    const chain = chainIdsOf(cutImage.layers.map((l) => l.diffID));
    await until('the layer is being extracted', async () => (await listSnapshots(c, sn)).some((s) => s.name.endsWith(` ${chain[1]}`)));
    // `times: 0`: only the stalled response (the rules already acted on it) is cut, not the resumed one.
    proxy.set({ stallAfterBytes: undefined, cutAfterBytes: stallAt, times: 0 });
    const done = await waitPull(c, started.id);
    assertPulled(done, 'cut and resumed');
    const gets = proxy.responses.filter((r) => r.method === 'GET' && r.path.includes(`/blobs/${blob.digest}`));
    assert.equal(gets.length, 2, `one cut GET and one resumed: ${JSON.stringify(gets.map((g) => [g.requestHeaders.range, g.cut]))}`);
    assert.equal(gets[0].cut, true);
    assert.equal(gets[1].requestHeaders.range, `bytes=${stallAt}-`, 'resumed from where it was cut');
    const expected = await mkdtemp(join(tmpdir(), 'berth-unpack-ref-'));
    t.after(() => rm(expected, { recursive: true, force: true }));
    await referenceTree(expected, cutImage.layers);
    await withView(c, sn, chain[1], (view) => checkDirectoryEqual(expected, view, 'after a resumed download'));
  });

  test('cancelling a pull while a big layer is being unpacked leaves no extraction snapshot and no mount', T, async (t) => {
    const big: Layer = await bigLayer(24 * MiB, { seed: 9003 });
    const bigImage = buildImage({ layers: [{ 'base.txt': 'base\n' }, big] });
    await pushImage(registry, 'test/stall', 'v1', bigImage);
    const proxy = await startProxy(registry.host, { stallAfterBytes: 4 * MiB, match: `/blobs/${big.digest}`, times: 1 });
    t.after(() => proxy.stop());
    for (const [sn, skip] of snapshotters) {
      await t.test(sn, { skip }, async () => {
        const c = client(`cancel-${sn}`);
        proxy.set({ stallAfterBytes: 4 * MiB, times: 1 });
        const started = await c.json<PullJson>('POST', '/v1/pulls', { json: { ref: `${proxy.host}/test/stall:v1`, unpack: true, snapshotter: sn } });
        await until(`${sn}: the big layer stalls`, () => proxy.stalled().length === 1);
        await until(`${sn}: the big layer is being extracted`, async () => extracting(await listSnapshots(c, sn)).length > 0);
        const cancelled = await c.json<PullJson>('DELETE', `/v1/pulls/${started.id}`);
        assert.equal(cancelled.state, 'cancelled', `${sn}: ${cancelled.state} ${cancelled.error?.message}`);
        assert.deepEqual(extracting(await listSnapshots(c, sn)), [], `${sn}: no extraction snapshot left`);
        // (Only this server's: other test files may be mounting elsewhere right now.)
        assert.deepEqual(await mountPoints((p) => p.startsWith(server.dir)), [], `${sn}: no mount left`);
        await expectApiError(c.json('GET', `/v1/images/${encodeURIComponent(`${proxy.host}/test/stall:v1`)}`), 404, 'not_found', `${sn}: no image`);
        proxy.set({ stallAfterBytes: undefined });
      });
    }
  });
});

async function waitPull(c: BerthClient, id: string): Promise<PullJson> {
  let p = await c.json<PullJson>('GET', `/v1/pulls/${id}`);
  await until(`pull ${id} ends`, async () => (p = await c.json<PullJson>('GET', `/v1/pulls/${id}`)).state !== 'running', 40_000);
  return p;
}
