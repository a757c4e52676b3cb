// The backend snapshotters (src/snapshots: native, overlay, their metastore, mount helpers):
//   * containerd's snapshotter conformance suite (test/fixtures/snapshotter-suite.ts) against
//     both, as containerd runs it against its native and overlayfs plugins (overlay is skipped,
//     with the reason, where overlayfs does not work);
//   * what the suite leaves open: exact Mounts (reference §5.3/§5.4), the error kinds of §5.6,
//     usage, folders left after removal, state after reopening, cleanup(), mount helpers.
// Real mounts, as root; every test unmounts what it mounted, pass or fail.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { lchown, link, lstat, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { NativeSnapshotter } from '../src/snapshots/native.js';
import { OverlaySnapshotter, overlaySupported } from '../src/snapshots/overlay.js';
import { mountAll, unmount, unmountAll } from '../src/snapshots/mount.js';
import type { Mount, Snapshotter } from '../src/snapshots/types.js';
import { T } from './fixtures/content-suite.js';
import { snapshotterSuite } from './fixtures/snapshotter-suite.js';
import { expectCode, tempDir } from './fixtures/helpers.js';

type Backend = 'native' | 'overlayfs';
const openers: Record<Backend, (root: string) => Promise<Snapshotter>> = {
  native: (root) => NativeSnapshotter.open(root),
  overlayfs: (root) => OverlaySnapshotter.open(root),
};

/** A fresh root (`<tmp>/root`) and a snapshotter on it, closed after the test. */
async function fresh(t: TestContext, backend: Backend): Promise<{ sn: Snapshotter; root: string }> {
  const root = join(await tempDir(t, `berth-sn-${backend}-`), 'root');
  const sn = await openers[backend](root);
  t.after(() => sn.close());
  return { sn, root };
}

const overlayProbe = join(tmpdir(), `berth-sn-probe-${process.pid}`);
const overlayUnsupported = await overlaySupported(overlayProbe);
await rm(overlayProbe, { recursive: true, force: true });
const indexOff = existsSync('/sys/module/overlay/parameters/index') ? ['index=off'] : [];

/** The backends this machine can run, each with why not when it cannot. */
const backends: Array<[Backend, string | false]> = [
  ['native', false],
  ['overlayfs', overlayUnsupported ?? false],
];

/** Mounts on a fresh folder under `scratch`, runs `fn` there, always unmounts. */
async function onMounted<R>(mounts: Mount[], scratch: string, fn: (dir: string) => Promise<R>): Promise<R> {
  const dir = join(scratch, `mnt-${Math.random().toString(36).slice(2)}`);
  await mkdir(dir);
  await mountAll(mounts, dir);
  try {
    return await fn(dir);
  } finally {
    await unmountAll(dir);
  }
}

// ---------------------------------------------------------------------------------------------
// The conformance suite
// ---------------------------------------------------------------------------------------------

// Both suites at once: their long cases (128LayersMount) wait on mount and cp, not on the CPU.
describe('conformance', { concurrency: 2 }, () => {
  snapshotterSuite('native', async (t) => {
    const root = join(await tempDir(t, 'berth-sn-native-'), 'root');
    return { sn: await NativeSnapshotter.open(root), root };
  });

  if (overlayUnsupported) {
    test('overlayfs snapshotter suite', { skip: overlayUnsupported }, () => undefined);
  } else {
    snapshotterSuite('overlayfs', async (t) => {
      const root = join(await tempDir(t, 'berth-sn-overlayfs-'), 'root');
      return { sn: await OverlaySnapshotter.open(root), root };
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Mounts, exactly (§5.3, §5.4)
// ---------------------------------------------------------------------------------------------

describe('native mounts', () => {
  test('bind mounts of own folders; a view of a parent mounts the parent read-only and has no folder', T, async (t) => {
    const { sn, root } = await fresh(t, 'native');
    const dir = (id: string) => join(root, 'snapshots', id);
    assert.deepEqual(await sn.prepare('base-a', ''), [{ type: 'bind', source: dir('1'), options: ['rbind', 'rw'] }]);
    await sn.commit('base', 'base-a');
    assert.deepEqual(await sn.prepare('active', 'base'), [{ type: 'bind', source: dir('2'), options: ['rbind', 'rw'] }]);
    assert.deepEqual(await sn.view('view-np', ''), [{ type: 'bind', source: dir('3'), options: ['rbind', 'ro'] }]);
    assert.deepEqual(await sn.view('view', 'base'), [{ type: 'bind', source: dir('1'), options: ['rbind', 'ro'] }]);
    assert.deepEqual(await sn.mounts('view'), [{ type: 'bind', source: dir('1'), options: ['rbind', 'ro'] }]);
    assert.deepEqual(await sn.mounts('active'), [{ type: 'bind', source: dir('2'), options: ['rbind', 'rw'] }]);
    assert.deepEqual((await readdir(join(root, 'snapshots'))).sort(), ['1', '2', '3'], 'no folder for the view of base');
    assert.equal((await stat(dir('2'))).mode & 0o777, 0o755);
  });

  test('a prepared snapshot is a copy of its parent, owners and hardlinks kept', T, async (t) => {
    const { sn, root } = await fresh(t, 'native');
    const scratch = await tempDir(t, 'berth-sn-scratch-');
    await onMounted(await sn.prepare('base-a', ''), scratch, async (d) => {
      await writeFile(join(d, 'f'), 'data');
      await link(join(d, 'f'), join(d, 'g'));
      await mkdir(join(d, 'owned'));
      await lchown(join(d, 'owned'), 7, 8);
    });
    await sn.commit('base', 'base-a');
    await sn.prepare('child', 'base');
    const child = join(root, 'snapshots', '2');
    const [f, g, owned] = await Promise.all(['f', 'g', 'owned'].map((n) => lstat(join(child, n))));
    assert.equal(f.ino, g.ino, 'hardlink kept');
    assert.equal(f.nlink, 2);
    assert.deepEqual([owned.uid, owned.gid], [7, 8]);
    assert.notEqual(f.ino, (await lstat(join(root, 'snapshots', '1', 'f'))).ino, 'a copy, not the parent');
  });
});

describe('overlay mounts', { skip: overlayUnsupported ?? false }, () => {
  test('bind for no parent and a one-parent view; overlay otherwise, immediate parent first', T, async (t) => {
    const { sn, root } = await fresh(t, 'overlayfs');
    const fs = (id: string) => join(root, 'snapshots', id, 'fs');
    const work = (id: string) => join(root, 'snapshots', id, 'work');

    assert.deepEqual(await sn.prepare('c1-a', ''), [{ type: 'bind', source: fs('1'), options: ['rw', 'rbind'] }]);
    await sn.commit('c1', 'c1-a');
    await sn.prepare('c2-a', 'c1');
    await sn.commit('c2', 'c2-a');
    assert.deepEqual(await sn.view('v-np', ''), [{ type: 'bind', source: fs('3'), options: ['ro', 'rbind'] }]);
    const active = [
      {
        type: 'overlay',
        source: 'overlay',
        options: [`workdir=${work('4')}`, `upperdir=${fs('4')}`, `lowerdir=${fs('2')}:${fs('1')}`, ...indexOff],
      },
    ];
    assert.deepEqual(await sn.prepare('a', 'c2'), active);
    assert.deepEqual(await sn.mounts('a'), active);
    assert.deepEqual(await sn.view('v1', 'c1'), [{ type: 'bind', source: fs('1'), options: ['ro', 'rbind'] }]);
    assert.deepEqual(await sn.view('v2', 'c2'), [
      { type: 'overlay', source: 'overlay', options: [`lowerdir=${fs('2')}:${fs('1')}`, ...indexOff] },
    ]);
    await sn.prepare('a-on-c1', 'c1');
    assert.deepEqual(await sn.mounts('a-on-c1'), [
      { type: 'overlay', source: 'overlay', options: [`workdir=${work('7')}`, `upperdir=${fs('7')}`, `lowerdir=${fs('1')}`, ...indexOff] },
    ]);

    // fs 0755 for all, work 0711 only for active snapshots.
    for (const id of ['1', '2', '3', '4', '5', '6', '7']) assert.equal((await stat(fs(id))).mode & 0o777, 0o755, `fs of ${id}`);
    assert.equal((await stat(work('4'))).mode & 0o777, 0o711);
    assert.equal(existsSync(work('5')), false, 'a view has no work folder');
  });

  test('a new layer belongs to the owner of its parent layer', T, async (t) => {
    const { sn, root } = await fresh(t, 'overlayfs');
    const scratch = await tempDir(t, 'berth-sn-scratch-');
    await onMounted(await sn.prepare('base-a', ''), scratch, (d) => lchown(d, 5, 6));
    await sn.commit('base', 'base-a');
    await sn.prepare('child', 'base');
    const st = await stat(join(root, 'snapshots', '2', 'fs'));
    assert.deepEqual([st.uid, st.gid], [5, 6]);
  });

  test('overlaySupported names why overlayfs cannot work on a filesystem (an overlay as upper)', T, async (t) => {
    const scratch = await tempDir(t, 'berth-sn-scratch-');
    for (const d of ['l1', 'l2', 'u', 'w', 'm']) await mkdir(join(scratch, d));
    const merged = join(scratch, 'm');
    await mountAll(
      [{ type: 'overlay', source: 'overlay', options: [`lowerdir=${join(scratch, 'l2')}:${join(scratch, 'l1')}`, `upperdir=${join(scratch, 'u')}`, `workdir=${join(scratch, 'w')}`] }],
      merged,
    );
    try {
      const reason = await overlaySupported(join(merged, 'root'));
      assert.match(reason ?? '', /overlayfs does not mount on the filesystem of .*\/m\/root: /);
    } finally {
      await unmountAll(merged);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Both backends: error kinds, usage, removal, reopening, cleanup
// ---------------------------------------------------------------------------------------------

for (const [backend, skip] of backends) {
  describe(`${backend} backend`, { skip }, () => {
    test('error kinds of reference §5.6', T, async (t) => {
      const { sn } = await fresh(t, backend);
      await sn.prepare('p-a', '');
      await sn.commit('p', 'p-a');
      await sn.prepare('q-a', '');
      await sn.commit('q', 'q-a');
      await sn.prepare('active', 'p');
      await sn.view('view', 'p');

      await expectCode(sn.prepare('active', 'p'), 'already_exists', 'Prepare, key exists', /snapshot active: already exists/);
      await expectCode(sn.view('p', ''), 'already_exists', 'View, key of a committed snapshot');
      await expectCode(sn.prepare('x', 'missing'), 'not_found', 'Prepare, parent missing', /missing parent "missing"/);
      await expectCode(sn.view('x', 'missing'), 'not_found', 'View, parent missing');
      await expectCode(sn.prepare('x', 'active'), 'invalid_argument', 'Prepare, parent active', /parent "active" is not committed snapshot/);
      await expectCode(sn.view('x', 'view'), 'invalid_argument', 'View, parent a view');

      await expectCode(sn.commit('q', 'active'), 'already_exists', 'Commit, name exists', /committed snapshot q: already exists/);
      await expectCode(sn.commit('n', 'missing'), 'not_found', 'Commit, key missing');
      await expectCode(sn.commit('n', 'view'), 'failed_precondition', 'Commit, key a view', /snapshot "view" is not active/);
      await expectCode(sn.commit('n', 'p'), 'failed_precondition', 'Commit, key committed');
      await expectCode(
        sn.commit('n', 'active', { parent: 'q' }),
        'invalid_argument',
        'Commit, another parent',
        /cannot change parent of active snapshot "active" on commit/,
      );

      await expectCode(sn.remove('missing'), 'not_found', 'Remove, missing');
      await expectCode(sn.remove('p'), 'failed_precondition', 'Remove, has children', /cannot remove snapshot with child/);

      await expectCode(sn.mounts('p'), 'failed_precondition', 'Mounts, committed', /requested snapshot p not active or view/);
      for (const [op, p] of [
        ['Stat', sn.stat('missing')],
        ['Usage', sn.usage('missing')],
        ['Mounts', sn.mounts('missing')],
        ['Update', sn.update({ name: 'missing', labels: {} })],
      ] as const) {
        await expectCode(p, 'not_found', `${op}, missing`, /snapshot "missing" does not exist/);
      }
      await expectCode(sn.update({ name: 'p', labels: {} }, ['kind']), 'invalid_argument', 'Update, immutable field', /"kind"/);
      await expectCode(sn.walk(() => undefined, ['name==']), 'invalid_argument', 'Walk, bad filter');

      // Nothing above changed anything.
      const names: string[] = [];
      await sn.walk((info) => void names.push(info.name));
      assert.deepEqual(names.sort(), ['active', 'p', 'q', 'view']);
    });

    test('commit may give a parent-less active snapshot its parent (rebase); labels are only the commit\'s', T, async (t) => {
      const { sn } = await fresh(t, backend);
      await sn.prepare('p-a', '');
      await sn.commit('p', 'p-a');
      await sn.prepare('loose', '', { labels: { keep: 'no' } });
      await sn.commit('rebased', 'loose', { parent: 'p', labels: { mine: 'yes', empty: '' } });
      const info = await sn.stat('rebased');
      assert.equal(info.parent, 'p');
      assert.deepEqual({ ...info.labels }, { mine: 'yes' });
      assert.equal(info.createdAt.getTime(), info.updatedAt.getTime());
      await expectCode(sn.remove('p'), 'failed_precondition', 'the rebased parent has a child now');
      await sn.remove('rebased');
      await sn.remove('p');
    });

    test('usage: measured live while active, recorded at commit, zero for a view; hardlinks count once', T, async (t) => {
      const { sn } = await fresh(t, backend);
      const scratch = await tempDir(t, 'berth-sn-scratch-');
      await sn.prepare('base-a', '');
      const measured = await onMounted(await sn.mounts('base-a'), scratch, async (d) => {
        await writeFile(join(d, 'big'), Buffer.alloc(100 * 1024, 7));
        await link(join(d, 'big'), join(d, 'big-link'));
        const [dir, big] = await Promise.all([lstat(d), lstat(join(d, 'big'))]);
        return { inodes: 2, size: (dir.blocks + big.blocks) * 512 };
      });
      assert.deepEqual(await sn.usage('base-a'), measured);
      await sn.commit('base', 'base-a');
      assert.deepEqual(await sn.usage('base'), measured);
      await sn.view('view', 'base');
      assert.deepEqual(await sn.usage('view'), { inodes: 0, size: 0 });
      await sn.prepare('child', 'base');
      const own = await sn.usage('child');
      assert.ok(own.inodes >= 1, 'the new layer counts at least its root');
    });

    test('removing every snapshot leaves no folder behind', T, async (t) => {
      const { sn, root } = await fresh(t, backend);
      const scratch = await tempDir(t, 'berth-sn-scratch-');
      await sn.prepare('base-a', '');
      await onMounted(await sn.mounts('base-a'), scratch, (d) => writeFile(join(d, 'f'), 'x'));
      await sn.commit('base', 'base-a');
      await sn.prepare('mid-a', 'base');
      await sn.commit('mid', 'mid-a');
      await sn.prepare('top', 'mid');
      await sn.view('view', 'mid');
      await sn.view('view-np', '');
      assert.ok((await readdir(join(root, 'snapshots'))).length >= 4);
      for (const key of ['top', 'view', 'view-np', 'mid', 'base']) await sn.remove(key);
      assert.deepEqual(await readdir(join(root, 'snapshots')), []);
      await expectCode(sn.stat('base'), 'not_found', 'removed');
    });

    test('state survives close and reopen: a committed chain with its usage, and the id sequence', T, async (t) => {
      const root = join(await tempDir(t, `berth-sn-${backend}-`), 'root');
      const scratch = await tempDir(t, 'berth-sn-scratch-');
      let sn = await openers[backend](root);
      let before: Array<[string, unknown]>;
      try {
        await sn.prepare('l1-a', '', { labels: { l: '1' } });
        await onMounted(await sn.mounts('l1-a'), scratch, (d) => writeFile(join(d, 'one'), '1'));
        await sn.commit('l1', 'l1-a', { labels: { l: '1' } });
        await sn.prepare('l2-a', 'l1');
        await onMounted(await sn.mounts('l2-a'), scratch, (d) => writeFile(join(d, 'two'), '2'));
        await sn.commit('l2', 'l2-a');
        await sn.prepare('open', 'l2');
        before = await Promise.all(['l1', 'l2', 'open'].map(async (k) => [k, { info: await sn.stat(k), usage: await sn.usage(k) }] as [string, unknown]));
      } finally {
        await sn.close();
      }

      sn = await openers[backend](root);
      try {
        const after = await Promise.all(['l1', 'l2', 'open'].map(async (k) => [k, { info: await sn.stat(k), usage: await sn.usage(k) }]));
        assert.deepEqual(after, before);
        assert.ok(((await sn.usage('l1')).inodes) >= 2, 'l1 has its recorded usage');
        // New ids continue the sequence: a new snapshot sees the chain, not some old folder.
        const files = await onMounted(await sn.view('check', 'l2'), scratch, async (d) => (await readdir(d)).sort());
        assert.deepEqual(files, ['one', 'two']);
        await sn.prepare('later', 'l2');
        const names: string[] = [];
        await sn.walk((info) => void names.push(info.name));
        assert.deepEqual(names.sort(), ['check', 'l1', 'l2', 'later', 'open']);
      } finally {
        await sn.close();
      }
    });

    test('cleanup() removes folders no snapshot owns and keeps the rest', T, async (t) => {
      const { sn, root } = await fresh(t, backend);
      await sn.prepare('kept', '');
      const snapshots = join(root, 'snapshots');
      for (const leftover of ['new-123', 'rm-7', '42']) {
        await mkdir(join(snapshots, leftover, 'deep'), { recursive: true });
        await writeFile(join(snapshots, leftover, 'deep', 'f'), 'x');
      }
      assert.ok(sn.cleanup, `${backend} has cleanup()`);
      await sn.cleanup();
      assert.deepEqual(await readdir(snapshots), ['1']);
      assert.equal((await sn.stat('kept')).kind, 'active');
    });

    test('labels are stored without empty values; Walk and Stat agree', T, async (t) => {
      const { sn } = await fresh(t, backend);
      await sn.prepare('a', '', { labels: { x: '1', gone: '' } });
      const info = await sn.stat('a');
      assert.deepEqual({ ...info.labels }, { x: '1' });
      const walked: unknown[] = [];
      await sn.walk((i) => void walked.push(i), ['labels.x==1']);
      assert.deepEqual(walked, [info]);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Mount helpers
// ---------------------------------------------------------------------------------------------

describe('mount helpers', () => {
  test('a read-only bind mount refuses writes; unmountAll takes down stacked and nested mounts', T, async (t) => {
    const scratch = await tempDir(t, 'berth-sn-mnt-');
    const [a, b, target] = ['a', 'b', 'target'].map((d) => join(scratch, d));
    for (const d of [a, b, target]) await mkdir(d);
    await mkdir(join(b, 'sub'));
    await writeFile(join(a, 'from-a'), 'a');
    try {
      await mountAll([{ type: 'bind', source: b, options: ['rbind', 'rw'] }], target);
      await mountAll([{ type: 'bind', source: a, options: ['rbind', 'ro'] }], join(target, 'sub'));
      assert.deepEqual(await readdir(join(target, 'sub')), ['from-a']);
      await assert.rejects(writeFile(join(target, 'sub', 'x'), 'x'), { code: 'EROFS' });
      await writeFile(join(target, 'rw'), 'x');
      await mountAll([{ type: 'bind', source: a, options: ['rbind', 'rw'] }], target);
      assert.deepEqual(await readdir(target), ['from-a'], 'the last mount is on top');
    } finally {
      await unmountAll(target);
    }
    const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
    assert.equal(mountinfo.includes(scratch), false, 'nothing mounted under the scratch folder');
    assert.deepEqual(await readdir(target), []);
    assert.deepEqual((await readdir(b)).sort(), ['rw', 'sub']);
  });

  test('a failing mount names the target and shows mount\'s complaint', T, async (t) => {
    const scratch = await tempDir(t, 'berth-sn-mnt-');
    const target = join(scratch, 'target');
    await mkdir(target);
    await assert.rejects(
      mountAll([{ type: 'bind', source: join(scratch, 'missing'), options: ['rbind', 'ro'] }], target),
      (err: Error) => err.message.includes(target) && /missing/.test(err.message),
    );
    await assert.rejects(unmount(target), (err: Error) => err.message.includes(target) && /not mounted/.test(err.message));
  });
});
