// The usage an apply counts while it writes (src/unpack/layer-usage.ts) must be what the
// snapshotter's diskUsage (`du`) measures of the same folder afterwards, since the commit takes it
// instead of measuring; when the layer removed something, the count is withdrawn (undefined).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';

import { applyLayer } from '../src/unpack/apply-layer.js';
import { diskUsage } from '../src/snapshots/usage.js';
import { chunksOf, seededBytes, tempDir } from './fixtures/helpers.js';
import { MediaType, tar, type LayerSpec } from './fixtures/images.js';

const apply = (root: string, spec: LayerSpec) =>
  applyLayer(chunksOf(gzipSync(tar(spec))), { mediaType: MediaType.ociLayerGzip, root, countUsage: true, overlay: { lowers: [] } });

test('counted usage equals du of the folder: files of every size, folders (made and implied), symlinks short and long, hardlinks once, devices, xattrs', async (t) => {
  const root = await tempDir(t, 'berth-usage-');
  const spec: LayerSpec = {
    'etc/': { type: 'dir', mode: 0o755 },
    'etc/empty': '',
    'etc/small': 'x',
    'etc/page': seededBytes(1, 4096),
    'etc/big': seededBytes(2, 3 * 1024 * 1024 + 17),
    'implied/deep/file': 'parents made by mkparent\n',
    'etc/short-link': { type: 'symlink', target: 'small' },
    'etc/long-link': { type: 'symlink', target: `${'d/'.repeat(60)}target` },
    'etc/hard': { type: 'hardlink', target: 'etc/big' },
    'etc/attrs': { type: 'file', content: 'with an xattr\n', xattrs: { 'user.berth': 'v'.repeat(2000) } },
    'dev/null': { type: 'char', devmajor: 1, devminor: 3 },
    'run/fifo': { type: 'fifo' },
  };
  for (let i = 0; i < 300; i++) spec[`many/f${i}`] = `file ${i}\n`; // a folder that grows past one block
  const applied = await apply(root, spec);
  assert.ok(applied.usage, 'nothing was removed: the usage is counted');
  assert.deepEqual(applied.usage, await diskUsage(root));
});

test('a layer that removes or replaces something gives no count (the snapshotter measures)', async (t) => {
  for (const [name, spec] of Object.entries<LayerSpec>({
    whiteout: { 'a/x': 'x', 'a/.wh.x': '' },
    replaced: { 'a/x': 'x', 'a/x/': { type: 'dir' } },
    opaque: { 'a/x': 'x', 'a/.wh..wh..opq': '' },
  })) {
    const root = await tempDir(t, `berth-usage-${name}-`);
    const naive = await applyLayer(chunksOf(gzipSync(tar(spec))), { mediaType: MediaType.ociLayerGzip, root, countUsage: true });
    assert.equal(naive.usage, undefined, `${name}: no count after a removal`);
  }
});
