// Layer application (src/unpack, reference §6.4–6.6): containerd's breakout expectations
// (TestBreakouts) with a sentinel folder outside the root that must stay unchanged, the same
// against the applier's remembered parent directories (a tree changed within a layer), whiteouts
// in naive and overlay mode (with a real overlay mount of the result), every entry type and
// attribute, gzip/zstd/plain sniffing and diffIDs, a file-by-file comparison with GNU tar,
// parallel applies, and corrupt, truncated and cancelled streams.
//
// Breakout cases never aim at the host's real /etc: where containerd's cases use "/etc", these
// use the sentinel's absolute path (OUT/etc), so an escape would show in the sentinel, and
// a correct apply re-roots it to <root>/<OUT>/etc.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { join, posix } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { gzipSync } from 'node:zlib';
import { getAttributeSync, listAttributesSync } from '@napi-rs/xattr';

import { BerthError, errorCode } from '../store/errors.js';
import { applyLayer, type ApplyOptions } from '../src/unpack/apply-layer.js';
import { createDecompressor } from '../src/unpack/decompress.js';
import { diffCompression, isLayerType } from '../src/oci/mediatypes.js';
import { chunksOf, expectCode, seededBytes, sha256, tempDir } from './fixtures/helpers.js';
import { layer, MediaType, tar, tarHeader, zstdSync, type Entry, type LayerSpec } from './fixtures/images.js';

// ---------------------------------------------------------------------------------------------
// Helpers

/** A tar from specs and raw headers (for names the spec builder normalises), in order. */
function tarOf(...parts: Array<LayerSpec | Buffer>): Buffer {
  const body = parts.map((p) => (Buffer.isBuffer(p) ? p : tar(p).subarray(0, -1024)));
  return Buffer.concat([...body, Buffer.alloc(1024)]);
}

/** A raw header-only entry: symlink '2' or hardlink '1' with the names exactly as given. */
const rawLink = (name: string, typeflag: '1' | '2', linkname: string): Buffer => tarHeader({ name, mode: 0o777, size: 0, typeflag, linkname });

function applyTar(root: string, data: Buffer, opts: Partial<ApplyOptions> = {}) {
  return applyLayer(chunksOf(data), { mediaType: MediaType.ociLayer, root, ...opts });
}

interface Node {
  type: 'file' | 'dir' | 'symlink' | 'fifo' | 'char' | 'block';
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  content?: string;
  target?: string;
  mtime?: number;
  rdev?: number;
  xattrs?: Record<string, string>;
  /** Hardlinked files: the first path (in sorted order) of the inode. */
  inode?: string;
}

/** Everything about a tree that an apply decides (dir mtimes optional: whiteouts change them). */
function snapshot(dir: string, opts: { dirTimes?: boolean } = {}): Record<string, Node> {
  const out: Record<string, Node> = {};
  const firstOfInode = new Map<number, string>();
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const p = join(dir, r);
      const st = lstatSync(p);
      const type: Node['type'] = st.isFile()
        ? 'file'
        : st.isDirectory()
          ? 'dir'
          : st.isSymbolicLink()
            ? 'symlink'
            : st.isFIFO()
              ? 'fifo'
              : st.isCharacterDevice()
                ? 'char'
                : 'block';
      const node: Node = { type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
      if (type !== 'dir' || opts.dirTimes) node.mtime = Math.floor(st.mtimeMs);
      if (type === 'file') {
        node.size = st.size;
        node.content = createHash('sha256').update(readFileSync(p)).digest('hex');
        if (st.nlink > 1) {
          if (!firstOfInode.has(st.ino)) firstOfInode.set(st.ino, r);
          node.inode = firstOfInode.get(st.ino);
        }
      }
      if (type === 'symlink') node.target = readlinkSync(p);
      if (type === 'char' || type === 'block') node.rdev = st.rdev;
      if (type !== 'symlink') {
        const keys = listAttributesSync(p).sort();
        if (keys.length > 0) node.xattrs = Object.fromEntries(keys.map((k) => [k, getAttributeSync(p, k)!.toString('hex')]));
      }
      out[r] = node;
      if (type === 'dir') walk(r);
    }
  };
  walk('');
  return out;
}

const ino = (p: string): number => lstatSync(p).ino;

// ---------------------------------------------------------------------------------------------
// Media types

describe('media types', () => {
  test('DiffCompression follows containerd’s table; unknown types are not_implemented', () => {
    const cases: Array<[string, string]> = [
      [MediaType.dockerLayer, 'unknown'],
      ['application/vnd.docker.image.rootfs.foreign.diff.tar', 'unknown'],
      [MediaType.dockerLayerGzip, 'gzip'],
      ['application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', 'gzip'],
      [MediaType.dockerLayerZstd, 'zstd'],
      [`${MediaType.dockerLayerGzip}+encrypted`, 'none'],
      [MediaType.ociLayer, 'none'],
      ['application/vnd.oci.image.layer.nondistributable.v1.tar', 'none'],
      [MediaType.ociLayerGzip, 'gzip'],
      [MediaType.ociLayerZstd, 'zstd'],
      // Suffixes are sorted: "gzip" < "zstd", so the last one decides.
      ['application/vnd.oci.image.layer.v1.tar+zstd+gzip', 'zstd'],
      ['application/vnd.oci.image.layer.v1.tar+gzip+encrypted', 'gzip'],
      ['application/vnd.oci.image.layer.v1.tar+encrypted', 'none'],
    ];
    for (const [mt, want] of cases) assert.equal(diffCompression(mt), want, mt);
    assert.throws(() => diffCompression('application/octet-stream'), (err: unknown) => {
      assert.equal(errorCode(err), 'not_implemented');
      assert.match((err as Error).message, /unrecognised mediatype application\/octet-stream/);
      return true;
    });
  });

  test('isLayerType: OCI layers, Docker layers with any suffix, erofs; not configs or manifests', () => {
    for (const mt of [MediaType.ociLayer, MediaType.ociLayerGzip, 'application/vnd.oci.image.layer.v1.tar+foo', MediaType.dockerLayerGzip, `${MediaType.dockerLayer}+encrypted`, MediaType.dockerLayerZstd, 'application/vnd.erofs.layer.v1']) {
      assert.equal(isLayerType(mt), true, mt);
    }
    for (const mt of [MediaType.ociConfig, MediaType.ociManifest, MediaType.dockerConfig, 'application/octet-stream']) assert.equal(isLayerType(mt), false, mt);
  });

  test('applyLayer refuses an unknown media type before reading anything', async (t) => {
    const root = await tempDir(t, 'berth-unpack-mt-');
    await expectCode(applyTar(root, tar({ a: 'x' }), { mediaType: 'application/json' }), 'not_implemented', 'unknown media type', /unrecognised mediatype application\/json/);
  });
});

// ---------------------------------------------------------------------------------------------
// Breakouts (containerd pkg/archive TestBreakouts, and the ones the brief adds)

interface Sandbox {
  root: string;
  /** The sentinel folder beside the root, absolute. */
  out: string;
  /** OUT/etc as an absolute path (the stand-in for "/etc"). */
  etc: string;
  /** `etc` without its leading slash: where it lands inside the root. */
  etcRel: string;
  /** Enough `../` to climb from anywhere in the root to `/`. */
  up: string;
  inRoot: (p: string) => string;
}

async function sandbox(t: TestContext): Promise<Sandbox> {
  const base = await tempDir(t, 'berth-unpack-breakout-');
  const root = join(base, 'root');
  const out = join(base, 'outside');
  mkdirSync(root);
  mkdirSync(join(out, 'etc'), { recursive: true });
  writeFileSync(join(out, 'etc/passwd'), 'host passwd\n');
  writeFileSync(join(out, 'etc/whitedout'), 'host file\n');
  writeFileSync(join(out, 'perm400'), '...');
  chmodSync(join(out, 'perm400'), 0o400);
  writeFileSync(join(out, 'also-exists-outside-root'), '...');
  chmodSync(join(out, 'also-exists-outside-root'), 0o640);
  const etc = join(out, 'etc');
  return { root, out, etc, etcRel: etc.slice(1), up: '../'.repeat(16), inRoot: (p) => join(root, p) };
}

interface BreakoutCase {
  name: string;
  tar: (s: Sandbox) => Buffer;
  check?: (s: Sandbox) => void;
  /** The apply must fail with invalid_argument and a message matching this. */
  error?: RegExp;
}

/** A tar that starts with <root>/OUT/etc/passwd = "inside" (containerd's cases start with /etc/passwd). */
const withEtc = (s: Sandbox, ...rest: Array<LayerSpec | Buffer>): Buffer =>
  tarOf({ [`${s.etcRel}/`]: { type: 'dir', mode: 0o770 }, [`${s.etcRel}/passwd`]: 'inside\n' }, ...rest);

const sameFile = (s: Sandbox, a: string, b: string): void => assert.equal(ino(s.inRoot(a)), ino(s.inRoot(b)), `${a} and ${b} are one inode`);

const breakouts: BreakoutCase[] = [
  {
    name: 'SymlinkAbsolute: a file through an absolute symlink lands in the re-rooted target',
    tar: (s) => withEtc(s, { localetc: { type: 'symlink', target: s.etc }, 'localetc/unbroken': '' }),
    check: (s) => assert.ok(existsSync(s.inRoot(`${s.etcRel}/unbroken`))),
  },
  {
    name: 'SymlinkUpAndOut: /dummy/../../… stops at the root',
    tar: (s) => withEtc(s, { 'dummy/': { type: 'dir', mode: 0o700 }, localetc: { type: 'symlink', target: `/dummy/${s.up}${s.etcRel}` }, 'localetc/unbroken': '' }),
    check: (s) => assert.ok(existsSync(s.inRoot(`${s.etcRel}/unbroken`))),
  },
  {
    name: 'SymlinkMultipleAbsolute: chained absolute symlinks',
    tar: (s) =>
      withEtc(s, {
        'dummy/': { type: 'dir', mode: 0o700 },
        'dummy/etc': { type: 'symlink', target: s.etc },
        localetc: { type: 'symlink', target: '/dummy/etc' },
        'localetc/unbroken': '',
      }),
    check: (s) => assert.ok(existsSync(s.inRoot(`${s.etcRel}/unbroken`))),
  },
  {
    name: 'SymlinkMultipleRelative: chained relative symlinks',
    tar: (s) =>
      withEtc(s, {
        'dummy/': { type: 'dir', mode: 0o700 },
        'dummy/etc': { type: 'symlink', target: `${s.up}${s.etcRel}` },
        localetc: { type: 'symlink', target: './dummy/etc' },
        'localetc/unbroken': '',
      }),
    check: (s) => assert.ok(existsSync(s.inRoot(`${s.etcRel}/unbroken`))),
  },
  {
    name: 'HardlinkRelative: hardlink through a symlinked directory',
    tar: (s) => withEtc(s, { 'breakouts/': { type: 'dir', mode: 0o700 }, 'breakouts/d1': { type: 'symlink', target: `../${s.up}${s.etcRel}` }, 'breakouts/mypasswd': { type: 'hardlink', target: 'breakouts/d1/passwd' } }),
    check: (s) => sameFile(s, 'breakouts/mypasswd', `${s.etcRel}/passwd`),
  },
  {
    name: 'HardlinkDownAndOut: ../downandout/../../… stops at the root',
    tar: (s) =>
      withEtc(s, {
        'breakouts/': { type: 'dir', mode: 0o700 },
        'downandout/': { type: 'dir', mode: 0o755 },
        'breakouts/d1': { type: 'symlink', target: `../downandout/${s.up}${s.etcRel}` },
        'breakouts/mypasswd': { type: 'hardlink', target: 'breakouts/d1/passwd' },
      }),
    check: (s) => sameFile(s, 'breakouts/mypasswd', `${s.etcRel}/passwd`),
  },
  {
    name: 'HardlinkAbsolute: hardlink through an absolute symlink',
    tar: (s) => withEtc(s, { localetc: { type: 'symlink', target: s.etc }, localpasswd: { type: 'hardlink', target: 'localetc/passwd' } }),
    check: (s) => sameFile(s, 'localpasswd', `${s.etcRel}/passwd`),
  },
  {
    name: 'HardlinkRelativeUpAndOut: upandout/../../… symlink',
    tar: (s) => withEtc(s, { localetc: { type: 'symlink', target: `upandout/${s.up}${s.etcRel}` }, localpasswd: { type: 'hardlink', target: 'localetc/passwd' } }),
    check: (s) => sameFile(s, 'localpasswd', `${s.etcRel}/passwd`),
  },
  {
    name: 'HardlinkDirectRelative: link name ../../…/etc/passwd',
    tar: (s) => withEtc(s, rawLink('localpasswd', '1', `${s.up}${s.etcRel}/passwd`)),
    check: (s) => sameFile(s, 'localpasswd', `${s.etcRel}/passwd`),
  },
  {
    name: 'HardlinkDirectAbsolute: link name /…/etc/passwd',
    tar: (s) => withEtc(s, rawLink('localpasswd', '1', `${s.etc}/passwd`)),
    check: (s) => sameFile(s, 'localpasswd', `${s.etcRel}/passwd`),
  },
  {
    name: 'HardlinkSymlinkBeforeCreateTarget: the hardlink links the symlink, not its target',
    tar: (s) =>
      tarOf({
        [`${s.etcRel}/`]: { type: 'dir', mode: 0o770 },
        localpasswd: { type: 'symlink', target: `${s.etc}/passwd` },
        'localpasswd-dup': { type: 'hardlink', target: 'localpasswd' },
        [`${s.etcRel}/passwd`]: 'after\n',
      }),
    check: (s) => {
      sameFile(s, 'localpasswd-dup', 'localpasswd');
      assert.equal(readlinkSync(s.inRoot('localpasswd-dup')), `${s.etc}/passwd`);
      assert.equal(readFileSync(s.inRoot(`${s.etcRel}/passwd`), 'utf8'), 'after\n');
    },
  },
  {
    name: 'HardlinkSymlinkRelative: hardlink to a relative symlink pointing out',
    tar: (s) => withEtc(s, { passwdlink: { type: 'symlink', target: `${s.up}${s.etcRel}/passwd` }, localpasswd: { type: 'hardlink', target: '/passwdlink' } }),
    check: (s) => {
      sameFile(s, 'localpasswd', 'passwdlink');
      assert.ok(lstatSync(s.inRoot('localpasswd')).isSymbolicLink());
    },
  },
  {
    name: 'HardlinkSymlinkAbsolute: hardlink to an absolute symlink pointing out',
    tar: (s) => withEtc(s, { passwdlink: { type: 'symlink', target: `${s.etc}/passwd` }, localpasswd: { type: 'hardlink', target: '/passwdlink' } }),
    check: (s) => {
      sameFile(s, 'localpasswd', 'passwdlink');
      assert.ok(lstatSync(s.inRoot('localpasswd')).isSymbolicLink());
    },
  },
  {
    name: 'SymlinkParentDirectory: a symlink named ".." is ignored',
    tar: (s) => withEtc(s, rawLink('..', '2', `${s.etc}/`), rawLink('localpasswd', '1', `${s.etc}/passwd`)),
    check: (s) => {
      assert.ok(lstatSync(s.root).isDirectory());
      sameFile(s, 'localpasswd', `${s.etcRel}/passwd`);
    },
  },
  {
    name: 'SymlinkEmptyFilename: a symlink named "" is ignored',
    tar: (s) => withEtc(s, rawLink('', '2', `${s.etc}/`), rawLink('localpasswd', '1', `${s.etc}/passwd`)),
    check: (s) => sameFile(s, 'localpasswd', `${s.etcRel}/passwd`),
  },
  {
    name: 'SymlinkParentRelative: a symlink named "localetc/.." is ignored',
    tar: (s) => withEtc(s, rawLink('localetc/..', '2', `${s.etc}/`), rawLink('localpasswd', '1', `${s.etc}/passwd`)),
    check: (s) => {
      assert.ok(!existsSync(s.inRoot('localetc')));
      sameFile(s, 'localpasswd', `${s.etcRel}/passwd`);
    },
  },
  {
    name: 'SymlinkSlashEnded: a hardlink named "/localetc/" replaces the directory',
    tar: (s) => withEtc(s, { 'localetc/': { type: 'dir', mode: 0o770 } }, rawLink('/localetc/', '1', `${s.etc}/passwd`)),
    check: (s) => sameFile(s, 'localetc', `${s.etcRel}/passwd`),
  },
  {
    name: 'SymlinkOverrideDirectory: a symlink replaces a directory',
    tar: (s) => withEtc(s, { 'localetc/': { type: 'dir', mode: 0o770 }, localetc: { type: 'symlink', target: s.etc } }),
    check: (s) => assert.equal(readlinkSync(s.inRoot('localetc')), s.etc),
  },
  {
    name: 'SymlinkOverrideDirectoryRelative: a relative symlink replaces a directory',
    tar: (s) => withEtc(s, { 'localetc/': { type: 'dir', mode: 0o770 }, localetc: { type: 'symlink', target: `${s.up}${s.etcRel}` } }),
    check: (s) => assert.equal(readlinkSync(s.inRoot('localetc')), `${s.up}${s.etcRel}`),
  },
  {
    name: 'DirectoryOverrideSymlink: a directory replaces a symlink (not followed)',
    tar: (s) => withEtc(s, { localetc: { type: 'symlink', target: s.etc }, 'localetc/': { type: 'dir', mode: 0o700 } }),
    check: (s) => {
      assert.equal(lstatSync(s.inRoot('localetc')).mode & 0o7777, 0o700);
      assert.ok(lstatSync(s.inRoot('localetc')).isDirectory());
      assert.equal(lstatSync(s.inRoot(s.etcRel)).mode & 0o7777, 0o770, 'the symlink target is untouched');
    },
  },
  {
    name: 'DirectoryOverrideSymlinkAndHardlink: a directory replaces a hardlinked symlink',
    tar: () => tarOf({ localetc: { type: 'symlink', target: 'etc' }, 'localetc-dir': { type: 'hardlink', target: 'localetc' }, 'localetc-dir/': { type: 'dir', mode: 0o770 } }),
    check: (s) => assert.ok(lstatSync(s.inRoot('localetc-dir')).isDirectory()),
  },
  { name: 'WhiteoutRootParent: .wh... is invalid', tar: (s) => withEtc(s, { '.wh...': '' }), error: /layer entry "\.wh\.\.\.": invalid whiteout name: \.wh\.\.\.: invalid archive/ },
  { name: 'WhiteoutParent: etc/.wh... is invalid', tar: (s) => withEtc(s, { 'etc/.wh...': '' }), error: /layer entry "etc\/\.wh\.\.\.": invalid whiteout name: \.wh\.\.\.: invalid archive/ },
  { name: 'WhiteoutRoot: .wh.. is invalid', tar: (s) => withEtc(s, { '.wh..': '' }), error: /layer entry "\.wh\.\.": invalid whiteout name: \.wh\.\.: invalid archive/ },
  { name: 'WhiteoutCurrentDirectory: etc/.wh.. is invalid', tar: (s) => withEtc(s, { 'etc/.wh..': '' }), error: /layer entry "etc\/\.wh\.\.": invalid whiteout name/ },
  {
    name: 'WhiteoutSymlink: .wh.localetc removes the symlink, not its target',
    tar: (s) => withEtc(s, { localetc: { type: 'symlink', target: s.etc }, '.wh.localetc': '' }),
    check: (s) => {
      assert.ok(existsSync(s.inRoot(`${s.etcRel}/passwd`)));
      assert.ok(!existsSync(s.inRoot('localetc')));
    },
  },
  {
    name: 'WhiteoutSymlinkPath: localetc/.wh.whitedout removes <root>/…/etc/whitedout',
    tar: (s) => withEtc(s, { [`${s.etcRel}/whitedout`]: 'inside\n', localetc: { type: 'symlink', target: s.etc }, 'localetc/.wh.whitedout': '' }),
    check: (s) => {
      assert.ok(existsSync(s.inRoot(`${s.etcRel}/passwd`)));
      assert.ok(!existsSync(s.inRoot(`${s.etcRel}/whitedout`)));
    },
  },
  {
    name: 'WhiteoutDirectoryName: .wh.etc/somefile is a real directory',
    tar: () => tarOf({ 'etc/': { type: 'dir', mode: 0o770 }, 'etc/passwd': 'x', '.wh.etc/somefile': 'non-empty' }),
    check: (s) => {
      assert.ok(existsSync(s.inRoot('etc/passwd')));
      assert.equal(readFileSync(s.inRoot('.wh.etc/somefile'), 'utf8'), 'non-empty');
    },
  },
  {
    name: 'WhiteoutDeadSymlinkParent: a whiteout under a dead symlink is a no-op',
    tar: () => tarOf({ 'etc/': { type: 'dir', mode: 0o770 }, 'etc/passwd': 'x', localetc: { type: 'symlink', target: '/dne' }, 'localetc/.wh.etc': '' }),
    check: (s) => assert.ok(existsSync(s.inRoot('etc/passwd'))),
  },
  {
    name: 'WhiteoutRelativePath: dne/../.wh.etc removes <root>/etc',
    tar: () => tarOf({ 'etc/': { type: 'dir', mode: 0o770 }, 'etc/passwd': 'x', localetc: { type: 'symlink', target: '/dne' }, 'dne/../.wh.etc': '' }),
    check: (s) => assert.ok(!existsSync(s.inRoot('etc'))),
  },
  {
    name: 'HardlinkSymlinkChmod: chmod of a hardlinked symlink never touches the outside file',
    tar: (s) => {
      const ep = join(s.out, 'also-exists-outside-root');
      return tarOf({ [ep]: { type: 'symlink', target: join(s.out, 'perm400') }, sketchylink: { type: 'hardlink', target: ep, mode: 0o777 } });
    },
    check: (s) => assert.ok(lstatSync(s.inRoot('sketchylink')).isSymbolicLink()),
  },
  {
    name: 'a symlink to / then a file under it writes inside the root',
    tar: (s) => tarOf({ foo: { type: 'symlink', target: '/' }, [`foo/${s.out.slice(1)}/x`]: 'pwned?', 'foo/tmp/x': 'tmp' }),
    check: (s) => {
      assert.equal(readFileSync(s.inRoot(`${s.out}/x`), 'utf8'), 'pwned?');
      assert.equal(readFileSync(s.inRoot('tmp/x'), 'utf8'), 'tmp');
    },
  },
  {
    name: '../ entries stay inside the root',
    tar: () => tarOf({ '../outside/escape': 'no', '../../../../x': 'no' }),
    check: (s) => {
      assert.equal(readFileSync(s.inRoot('outside/escape'), 'utf8'), 'no');
      assert.equal(readFileSync(s.inRoot('x'), 'utf8'), 'no');
    },
  },
  {
    name: 'absolute entry names are re-rooted',
    tar: (s) => tarOf(tarHeader({ name: `${s.out}/abs`, mode: 0o644, size: 0, typeflag: '0' }), tarHeader({ name: '/abs2', mode: 0o644, size: 0, typeflag: '0' })),
    check: (s) => {
      assert.ok(existsSync(s.inRoot(`${s.out}/abs`)));
      assert.ok(existsSync(s.inRoot('abs2')));
    },
  },
  {
    name: 'a hardlink to ../outside/… resolves inside the root, where its target is missing',
    tar: () => tarOf({ escape: { type: 'hardlink', target: '../outside/etc/passwd' } }),
    error: /layer entry "escape": .*hardlink target "\.\.\/outside\/etc\/passwd" does not exist/,
  },
  {
    name: 'a symlink loop fails with too many links, naming the entry',
    tar: () => tarOf({ a: { type: 'symlink', target: 'b' }, b: { type: 'symlink', target: 'a' }, 'a/x': 'loop' }),
    error: /layer entry "a\/x": too many links/,
  },
  {
    name: 'a symlink that refers to itself through ../ fails with too many links',
    tar: () => tarOf({ 'd/': { type: 'dir' }, 'd/up': { type: 'symlink', target: '../d/up/../..' }, 'd/up/x': 'ok' }),
    error: /layer entry "d\/up\/x": too many links/,
  },
];

describe('breakouts: nothing outside the root changes', () => {
  for (const c of breakouts) {
    test(c.name, async (t) => {
      const s = await sandbox(t);
      const before = snapshot(s.out, { dirTimes: true });
      const data = c.tar(s);
      if (c.error) {
        await expectCode(applyTar(s.root, data), 'invalid_argument', c.name, c.error);
      } else {
        const applied = await applyTar(s.root, data);
        assert.equal(applied.diffId, sha256(data));
        c.check?.(s);
      }
      assert.deepEqual(snapshot(s.out, { dirTimes: true }), before, 'the sentinel outside the root is unchanged');
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Remembered parents (resolved-dirs.ts): within one layer, make a directory be resolved (an
// entry inside it), change what its name resolves to, then write through the old name again.
// Each case is checked three ways: the sentinel outside is unchanged; the tree equals the one
// the same entries give applied one layer each (a fresh applier per entry, so nothing is
// remembered: the uncached resolution, containerd's fs.RootPath per entry); and the entries
// that matter are where containerd's resolution puts them. Cases marked `gnu` (clean names,
// symlinks that stay inside the root) are also compared with GNU tar.

type Part = LayerSpec | Buffer;

interface CacheCase {
  name: string;
  /** Applied first as one layer (naive: into the same root; overlay: the lower). */
  lower?: (s: Sandbox) => Part[];
  /** The layer under test, in archive order. */
  layer: (s: Sandbox) => Part[];
  overlay?: boolean;
  /** Also compare with GNU tar (-P: symlinks made as they come, as ours; --recursive-unlink: a directory is replaced, as ours). */
  gnu?: boolean;
  check?: (s: Sandbox) => void;
  /** The apply must fail with invalid_argument matching this (the uncached apply fails at the same entry). */
  error?: RegExp;
}

/** A layer's parts in archive order (one argument each, so each spec keeps its own keys' types). */
const inOrder = (...list: Part[]): Part[] => list;

/** Each entry of `list` as a tar of its own. */
const oneTarPerEntry = (list: Part[]): Buffer[] =>
  list.flatMap((p) => (Buffer.isBuffer(p) ? [tarOf(p)] : Object.entries(p).map(([k, v]) => tar({ [k]: v }))));

const directory = (mode = 0o755): Entry => ({ type: 'dir', mode });
const symlinkTo = (target: string): Entry => ({ type: 'symlink', target });
const hardlinkTo = (target: string): Entry => ({ type: 'hardlink', target });
/** A raw header with the name exactly as given (the spec builder would drop leading `../`). */
const rawEntry = (name: string, typeflag: '0' | '5'): Buffer => tarHeader({ name, mode: typeflag === '5' ? 0o755 : 0o644, size: 0, typeflag });

/** A file's content, read only through real directories of `root` (never a symlink on the host). */
function readInRoot(s: Sandbox, rel: string): string {
  let p = s.root;
  for (const part of rel.split('/').slice(0, -1)) {
    p = join(p, part);
    assert.ok(lstatSync(p).isDirectory(), `${p} is a real directory`);
  }
  return readFileSync(join(p, posix.basename(rel)), 'utf8');
}

const isSymlinkIn = (s: Sandbox, rel: string): boolean => lstatSync(s.inRoot(rel), { throwIfNoEntry: false })?.isSymbolicLink() ?? false;

const outRel = (s: Sandbox): string => s.out.slice(1);

const cacheCases: CacheCase[] = [
  {
    name: 'a directory replaced by a file, then by an absolute symlink out, then written through',
    layer: (s) => inOrder({ 'a/': directory(), 'a/x': 'x' }, { a: 'file' }, { a: symlinkTo(s.out) }, { 'a/pwned': 'p' }),
    check: (s) => {
      assert.ok(isSymlinkIn(s, 'a'));
      assert.equal(readInRoot(s, `${outRel(s)}/pwned`), 'p');
    },
  },
  {
    name: 'a directory replaced at once by a relative symlink climbing out',
    layer: (s) => inOrder({ 'a/': directory(), 'a/x': 'x', a: symlinkTo(`${s.up}${outRel(s)}`), 'a/pwned': 'p' }),
    check: (s) => assert.equal(readInRoot(s, `${outRel(s)}/pwned`), 'p'),
  },
  {
    name: 'a whiteout removes an ancestor of a remembered directory; a symlink out takes its name',
    layer: (s) => inOrder({ 'a/': directory(), 'a/b/': directory(), 'a/b/x': 'x', '.wh.a': '', a: symlinkTo(s.out), 'a/b/pwned': 'p' }),
    check: (s) => {
      assert.ok(isSymlinkIn(s, 'a'));
      assert.equal(readInRoot(s, `${outRel(s)}/b/pwned`), 'p');
    },
  },
  {
    name: 'an opaque marker removes a remembered directory (made by mkparent); a symlink out takes its name',
    layer: (s) => inOrder({ 'p/a/x': 'x', 'p/.wh..wh..opq': '', 'p/a': symlinkTo(s.out), 'p/a/pwned': 'p' }),
    check: (s) => {
      assert.deepEqual(readdirSync(s.inRoot('p')), ['a']);
      assert.ok(isSymlinkIn(s, 'p/a'));
      assert.equal(readInRoot(s, `${outRel(s)}/pwned`), 'p');
    },
  },
  {
    name: 'a symlink written at a missing name a remembered resolution passed (l -> missing/../d, then missing -> OUT/etc)',
    // The kernel would take l/g to OUT/d/g; re-rooted it is <root>/OUT/d/g.
    layer: (s) => inOrder({ 'd/': directory(), l: symlinkTo('missing/../d'), 'l/f': 'f', missing: symlinkTo(s.etc), 'l/g': 'g' }),
    check: (s) => {
      assert.equal(readInRoot(s, 'd/f'), 'f');
      assert.equal(readInRoot(s, `${outRel(s)}/d/g`), 'g');
      assert.ok(!existsSync(s.inRoot('d/g')));
    },
  },
  {
    name: 'a symlink written at a missing name a remembered resolution passed, staying inside',
    // Not for GNU tar: the kernel does not pass a missing name with `..` (l/f is ENOENT there).
    layer: () => inOrder({ 'd/': directory(), 'sub/': directory(), 'sub/deeper/': directory(), 'sub/d/': directory(), l: symlinkTo('missing/../d'), 'l/f': 'f', missing: symlinkTo('sub/deeper'), 'l/g': 'g' }),
    check: (s) => {
      assert.equal(readInRoot(s, 'd/f'), 'f');
      assert.equal(readInRoot(s, 'sub/d/g'), 'g');
    },
  },
  {
    name: 'a hardlink to a symlink made at a missing name a remembered resolution passed, staying inside',
    // m becomes a symlink (a hardlink links the symlink itself), so l -> m/../d now means e/d.
    layer: () => inOrder({ 'd/': directory(), 'e/': directory(), 'e/sub/': directory(), 'e/d/': directory(), s: symlinkTo('e/sub'), l: symlinkTo('m/../d'), 'l/f': 'f', m: hardlinkTo('s'), 'l/g': 'g' }),
    check: (s) => {
      assert.ok(isSymlinkIn(s, 'm'));
      assert.equal(readInRoot(s, 'd/f'), 'f');
      assert.equal(readInRoot(s, 'e/d/g'), 'g');
    },
  },
  {
    name: 'a hardlink to an absolute symlink out made at a missing name a remembered resolution passed',
    // The kernel would take l/g to OUT/d/g; re-rooted it is <root>/OUT/d/g.
    layer: (s) => inOrder({ 'd/': directory(), s: symlinkTo(s.etc), l: symlinkTo('m/../d'), 'l/f': 'f', m: hardlinkTo('s'), 'l/g': 'g' }),
    check: (s) => {
      assert.equal(readInRoot(s, 'd/f'), 'f');
      assert.equal(readInRoot(s, `${outRel(s)}/d/g`), 'g');
    },
  },
  {
    name: 'the last symlink of a chain replaced by one out',
    layer: (s) => inOrder({ 'd/': directory(), l1: symlinkTo('l2'), l2: symlinkTo('./l3'), l3: symlinkTo('d'), 'l1/f': 'f' }, { l3: symlinkTo(s.out) }, { 'l1/g': 'g' }),
    check: (s) => {
      assert.equal(readInRoot(s, 'd/f'), 'f');
      assert.equal(readInRoot(s, `${outRel(s)}/g`), 'g');
    },
  },
  {
    name: 'the last symlink of a chain replaced by one to another directory inside',
    gnu: true,
    layer: () => inOrder({ 'd/': directory(), 'e/': directory(), l1: symlinkTo('l2'), l2: symlinkTo('./l3'), l3: symlinkTo('d'), 'l1/f': 'f' }, { l3: symlinkTo('e') }, { 'l1/g': 'g' }),
    check: (s) => {
      assert.equal(readInRoot(s, 'd/f'), 'f');
      assert.equal(readInRoot(s, 'e/g'), 'g');
    },
  },
  {
    name: 'a middle directory of a deep remembered path replaced by a relative symlink out',
    layer: (s) => inOrder({ 'x/y/z/w/': directory(), 'x/y/z/w/f': 'f' }, { 'x/y': symlinkTo(`../${s.up}${outRel(s)}`) }, { 'x/y/z/w/pwned': 'p' }),
    check: (s) => {
      assert.ok(isSymlinkIn(s, 'x/y'));
      assert.equal(readInRoot(s, `${outRel(s)}/z/w/pwned`), 'p');
    },
  },
  {
    name: '../-leading names share the directory they name with the clean name',
    layer: (s) => inOrder(rawEntry('../a/', '5'), rawEntry('../a/x', '0'), { 'a/y': 'y' }, { a: symlinkTo(s.out) }, rawEntry('../a/pwned', '0'), rawEntry('../../a/pwned2', '0')),
    check: (s) => {
      assert.ok(isSymlinkIn(s, 'a'));
      assert.equal(readInRoot(s, `${outRel(s)}/pwned`), '');
      assert.equal(readInRoot(s, `${outRel(s)}/pwned2`), '');
    },
  },
  {
    name: 'a directory made by mkparent replaced by a symlink out',
    layer: (s) => inOrder({ 'a/b/x': 'x', a: symlinkTo(s.out), 'a/b/y': 'y' }),
    check: (s) => assert.equal(readInRoot(s, `${outRel(s)}/b/y`), 'y'),
  },
  {
    name: 'a directory replaced by a file and back, keeping only what came after',
    gnu: true,
    layer: () => inOrder({ 'a/': directory(), 'a/x': 'x' }, { a: 'file' }, { 'a/': directory(0o711), 'a/y': 'y' }),
    check: (s) => {
      assert.deepEqual(readdirSync(s.inRoot('a')), ['y']);
      assert.equal(lstatSync(s.inRoot('a')).mode & 0o7777, 0o711);
    },
  },
  {
    name: 'a directory replaced by a hardlink to a symlink out',
    layer: (s) => inOrder({ 'a/': directory(), 'a/x': 'x', s: symlinkTo(s.out) }, { a: hardlinkTo('s') }, { 'a/pwned': 'p' }),
    check: (s) => {
      sameFile(s, 'a', 's');
      assert.equal(readInRoot(s, `${outRel(s)}/pwned`), 'p');
    },
  },
  {
    name: 'a directory replaced by a hardlink to a file: writing through it is not a directory',
    layer: () => inOrder({ 'a/': directory(), 'a/x': 'x', t: 't' }, { a: hardlinkTo('t') }, { 'a/y': 'y' }),
    error: /layer entry "a\/y": .*not a directory/,
  },
  {
    name: 'a symlink written elsewhere leaves a resolution through another symlink right',
    layer: (s) => inOrder({ 'd/': directory(), l: symlinkTo('d'), 'l/f': 'f', other: symlinkTo(s.out), 'l/g': 'g' }),
    check: (s) => assert.deepEqual(readdirSync(s.inRoot('d')).sort(), ['f', 'g']),
  },
  {
    name: 'two layers: what the lower made is replaced by symlinks out in the upper, then written through',
    lower: () => inOrder({ 'a/': directory(), 'a/x': 'x', 'd/': directory(), l: symlinkTo('m/../d') }),
    layer: (s) => inOrder({ 'a/y': 'y', 'l/f': 'f' }, { a: symlinkTo(s.out), m: symlinkTo(s.etc) }, { 'a/pwned': 'p', 'l/g': 'g' }),
    check: (s) => {
      assert.equal(readInRoot(s, 'd/f'), 'f');
      assert.equal(readInRoot(s, `${outRel(s)}/pwned`), 'p');
      assert.equal(readInRoot(s, `${outRel(s)}/d/g`), 'g');
    },
  },
  {
    name: 'overlay, one layer: a directory replaced by a symlink out, then written through',
    overlay: true,
    layer: (s) => inOrder({ 'a/': directory(), 'a/x': 'x', a: symlinkTo(s.out), 'a/pwned': 'p' }),
    check: (s) => assert.equal(readInRoot(s, `${outRel(s)}/pwned`), 'p'),
  },
  {
    name: 'overlay, two layers: a symlink out in the lower is not followed; one in the upper is re-rooted',
    overlay: true,
    lower: (s) => inOrder({ a: symlinkTo(s.out), 'd/': directory(), l: symlinkTo('m/../d') }),
    layer: (s) => inOrder({ 'a/x': 'x', 'l/f': 'f' }, { a: symlinkTo(s.out), m: symlinkTo(s.etc) }, { 'a/pwned': 'p', 'l/g': 'g' }),
    check: (s) => {
      // The upper resolves in itself only (containerd): l is missing there, so l/f made a directory l.
      assert.equal(readInRoot(s, 'l/f'), 'f');
      assert.equal(readInRoot(s, 'l/g'), 'g');
      assert.equal(readInRoot(s, `${outRel(s)}/pwned`), 'p');
    },
  },
];

describe('remembered parents: a change under a resolved directory is seen by the next entry', () => {
  for (const c of cacheCases) {
    test(c.name, async (t) => {
      const s = await sandbox(t);
      const before = snapshot(s.out, { dirTimes: true });
      const uncached = join(s.root, '..', 'uncached');
      const lowerDir = join(s.root, '..', 'lower');
      mkdirSync(uncached);
      mkdirSync(lowerDir);
      const opts: Partial<ApplyOptions> = c.overlay ? { overlay: { lowers: [lowerDir] } } : {};
      if (c.lower) {
        const lowerTar = tarOf(...c.lower(s));
        if (c.overlay) await applyTar(lowerDir, lowerTar, { overlay: { lowers: [] } });
        else for (const r of [s.root, uncached]) await applyTar(r, lowerTar);
      }
      const layerParts = c.layer(s);
      const data = tarOf(...layerParts);

      // The uncached reference: one entry per apply; with an error case, up to the failing entry.
      let uncachedError: unknown;
      for (const one of oneTarPerEntry(layerParts)) {
        try {
          await applyTar(uncached, one, opts);
        } catch (err) {
          uncachedError = err;
          break;
        }
      }
      if (c.error) {
        await expectCode(applyTar(s.root, data, opts), 'invalid_argument', c.name, c.error);
        assert.match((uncachedError as Error)?.message ?? '', c.error, 'the uncached apply fails at the same entry');
      } else {
        assert.equal(uncachedError, undefined, 'the uncached apply succeeds');
        assert.equal((await applyTar(s.root, data, opts)).diffId, sha256(data));
      }
      assert.deepEqual(snapshot(s.out, { dirTimes: true }), before, 'the sentinel outside the root is unchanged');
      c.check?.(s);
      assert.deepEqual(snapshot(s.root), snapshot(uncached), 'the same tree as with nothing remembered');

      if (c.gnu) {
        const gnu = join(s.root, '..', 'gnu');
        const file = join(s.root, '..', 'layer.tar');
        mkdirSync(gnu);
        writeFileSync(file, data);
        execFileSync('tar', ['-xpf', file, '-P', '--recursive-unlink', '--xattrs', '--xattrs-include=*', '--numeric-owner', '-C', gnu], { stdio: ['ignore', 'ignore', 'pipe'] });
        assert.deepEqual(snapshot(s.root), snapshot(gnu), 'the same tree as GNU tar');
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Whiteouts

const lower: LayerSpec = {
  'a/': { type: 'dir', mode: 0o750, uid: 1000, gid: 1000, mtime: 1_500_000_000 },
  'a/f1': 'one',
  'a/f2': 'two',
  'd/': { type: 'dir' },
  'd/x': 'x',
  'o/': { type: 'dir' },
  'o/keep': 'hidden by opaque',
  'o/sub/': { type: 'dir' },
  'o/sub/deep': 'hidden too',
  top: 'top',
};
const upper: LayerSpec = {
  'a/.wh.f1': '',
  '.wh.d': '',
  'o/': { type: 'dir' },
  'o/.wh..wh..opq': '',
  'o/new': 'new',
  'gone/.wh.nothing': '',
};

describe('whiteouts', () => {
  test('overlay: a whiteout of an entry the same layer wrote is the layer\'s conflict (invalid_argument naming it), as containerd fails it', async (t) => {
    const root = await tempDir(t, 'berth-wh-own-');
    await expectCode(
      applyTar(root, tar({ 'a/': { type: 'dir' }, 'a/x': 'x', '.wh.a': '' }), { overlay: { lowers: [] } }),
      'invalid_argument',
      'whiteout of its own entry',
      /layer entry "\.wh\.a": .*File exists/,
    );
  });

  test('naive: two layers in one directory; .wh. removes, the opaque marker empties, nothing of the markers is written', async (t) => {
    const root = await tempDir(t, 'berth-unpack-wh-');
    await applyTar(root, tar(lower));
    await applyTar(root, tar(upper));
    const tree = snapshot(root);
    assert.deepEqual(Object.keys(tree).sort(), ['a', 'a/f2', 'gone', 'o', 'o/new', 'top']);
    // The opaque marker keeps what this layer wrote before it in the directory.
    await applyTar(root, tarOf({ 'o/later': 'l', 'o/.wh..wh..opq': '' }));
    assert.deepEqual(readdirSync(join(root, 'o')), ['later']);
  });

  test('overlay: 0:0 char devices and trusted.overlay.opaque=y; parents copied from the lower; a real overlay mount merges them', async (t) => {
    const base = await tempDir(t, 'berth-unpack-ovl-');
    const [l1, l2, mnt] = ['l1', 'l2', 'mnt'].map((d) => join(base, d));
    for (const d of [l1, l2, mnt]) mkdirSync(d);
    await applyTar(l1, tar(lower), { overlay: { lowers: [] } });
    await applyTar(l2, tar({ ...upper, '.wh.top': { type: 'file', content: '', uid: 7, gid: 8 } }), { overlay: { lowers: [l1] } });

    for (const w of ['a/f1', 'd', 'top']) {
      const st = lstatSync(join(l2, w));
      assert.ok(st.isCharacterDevice(), `${w} is a whiteout device`);
      assert.equal(st.rdev, 0, `${w} is 0:0`);
    }
    assert.equal(lstatSync(join(l2, 'top')).uid, 7, 'the whiteout is owned as the header says');
    assert.equal(getAttributeSync(join(l2, 'o'), 'trusted.overlay.opaque')?.toString(), 'y');
    assert.ok(!existsSync(join(l2, 'o/.wh..wh..opq')));
    // a/ is not in the upper layer: created with the lower's owner and mode (its times too,
    // though the whiteout made in it afterwards changes its mtime, as in containerd).
    const a = lstatSync(join(l2, 'a'));
    assert.deepEqual([a.mode & 0o7777, a.uid, a.gid], [0o750, 1000, 1000]);
    // A parent with no lower counterpart: root-owned 0755.
    assert.deepEqual([lstatSync(join(l2, 'gone')).mode & 0o7777, lstatSync(join(l2, 'gone')).uid], [0o755, 0]);
    assert.ok(lstatSync(join(l2, 'gone/nothing')).isCharacterDevice());
    // overlayfs lists the whiteouts of a directory no lower layer has (without letting them be
    // looked up); out of the way before mounting, so the listing below is the merged view.
    rmSync(join(l2, 'gone'), { recursive: true });

    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${l2}:${l1}`, mnt]);
    try {
      const merged = snapshot(mnt);
      assert.deepEqual(Object.keys(merged).sort(), ['a', 'a/f2', 'o', 'o/new']);
      assert.equal(readFileSync(join(mnt, 'o/new'), 'utf8'), 'new');
    } finally {
      execFileSync('umount', [mnt]);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Entry types and attributes

// cap_setuid,cap_setfcap+ep: bytes ≥ 0x80, which a UTF-8 decode of the PAX record would break.
const CAP_SETUID = Buffer.from('0100000280000080000000000000000000000000', 'hex');

describe('entries', () => {
  test('types, modes, owners, times, xattrs, devices', async (t) => {
    const root = await tempDir(t, 'berth-unpack-entries-');
    const spec: LayerSpec = {
      'bin/': { type: 'dir', mode: 0o755, mtime: 1_400_000_000 },
      'bin/su': { type: 'file', content: 'setuid', mode: 0o4755, mtime: 1_600_000_000 },
      'bin/sg': { type: 'file', content: 'setgid', mode: 0o2711, uid: 0, gid: 42 },
      'bin/ping': { type: 'file', content: 'caps', mode: 0o755, xattrs: { 'security.capability': CAP_SETUID, 'user.note': 'hello', 'trusted.evil': 'refused' } },
      'bin/sh': { type: 'symlink', target: '/usr/bin/dash', mtime: 1_300_000_000, uid: 5, gid: 6 },
      'bin/rel': { type: 'symlink', target: '../lib/x' },
      'bin/su-link': { type: 'hardlink', target: 'bin/su', mode: 0o4755, mtime: 1_600_000_000 },
      'tmp/': { type: 'dir', mode: 0o1777 },
      'shared/': { type: 'dir', mode: 0o2775, gid: 100 },
      'private/': { type: 'dir', mode: 0o700, uid: 1000, gid: 1000, mtime: 1_200_000_000 },
      'private/file': { type: 'file', content: 'p', mode: 0o600, uid: 1000, gid: 1000 },
      'big-ids': { type: 'file', content: 'pax ids', uid: 3_000_000, gid: 4_000_000 },
      'dev/': { type: 'dir' },
      'dev/null': { type: 'char', devmajor: 1, devminor: 3, mode: 0o666 },
      'dev/loop9': { type: 'block', devmajor: 7, devminor: 9, mode: 0o660, gid: 6 },
      'dev/fifo': { type: 'fifo', mode: 0o620 },
      [`long/${'d'.repeat(90)}/${'n'.repeat(90)}/${'f'.repeat(99)}`]: 'long name',
    };
    const data = tar(spec);
    const applied = await applyTar(root, data);
    assert.deepEqual(applied, { diffId: sha256(data), size: data.length });
    const tree = snapshot(root, { dirTimes: true });

    assert.equal(tree['bin/su'].mode, 0o4755);
    assert.equal(tree['bin/su'].mtime, 1_600_000_000_000);
    assert.equal(tree['bin/sg'].mode, 0o2711);
    assert.equal(tree['bin/sg'].gid, 42);
    assert.equal(ino(join(root, 'bin/su')), ino(join(root, 'bin/su-link')));
    assert.equal(tree['bin/su'].inode, 'bin/su');
    assert.equal(tree['bin/su-link'].inode, 'bin/su');
    assert.deepEqual(tree['bin/ping'].xattrs, { 'security.capability': CAP_SETUID.toString('hex'), 'user.note': Buffer.from('hello').toString('hex') });
    assert.deepEqual(tree['bin/sh'], { type: 'symlink', mode: 0o777, uid: 5, gid: 6, mtime: 1_300_000_000_000, target: '/usr/bin/dash' });
    assert.equal(tree['bin/rel'].target, '../lib/x');
    assert.equal(tree.tmp.mode, 0o1777);
    assert.deepEqual([tree.shared.mode, tree.shared.gid], [0o2775, 100]);
    assert.deepEqual([tree.private.mode, tree.private.uid, tree.private.gid, tree.private.mtime], [0o700, 1000, 1000, 1_200_000_000_000]);
    // Directory times are set after their children were created.
    assert.equal(tree.bin.mtime, 1_400_000_000_000);
    assert.deepEqual([tree['big-ids'].uid, tree['big-ids'].gid], [3_000_000, 4_000_000]);
    assert.deepEqual([tree['dev/null'].type, tree['dev/null'].rdev, tree['dev/null'].mode], ['char', (1 << 8) | 3, 0o666]);
    assert.deepEqual([tree['dev/loop9'].type, tree['dev/loop9'].rdev, tree['dev/loop9'].gid], ['block', (7 << 8) | 9, 6]);
    assert.deepEqual([tree['dev/fifo'].type, tree['dev/fifo'].mode], ['fifo', 0o620]);
    assert.equal(readFileSync(join(root, Object.keys(spec).at(-1)!), 'utf8'), 'long name');
  });

  test('a file replaced by a directory and back, across layers and within one', async (t) => {
    const root = await tempDir(t, 'berth-unpack-replace-');
    await applyTar(root, tar({ x: 'file', y: 'file' }));
    await applyTar(root, tar({ 'x/': { type: 'dir' }, 'x/inner': 'in' }));
    assert.equal(readFileSync(join(root, 'x/inner'), 'utf8'), 'in');
    await applyTar(root, tar({ x: 'file again', 'y/': { type: 'dir', mode: 0o711 }, 'y/z': 'z', y2: { type: 'symlink', target: 'y' } }));
    assert.equal(readFileSync(join(root, 'x'), 'utf8'), 'file again');
    assert.equal(lstatSync(join(root, 'y')).mode & 0o7777, 0o711);
    // A directory entry over an existing directory merges: contents stay, metadata changes.
    await applyTar(root, tar({ 'y/': { type: 'dir', mode: 0o755, uid: 9 } }));
    assert.deepEqual(readdirSync(join(root, 'y')), ['z']);
    assert.deepEqual([lstatSync(join(root, 'y')).mode & 0o7777, lstatSync(join(root, 'y')).uid], [0o755, 9]);
  });

  test('a parent that is a file, an unknown entry type, and a device number out of range are invalid', async (t) => {
    const root = await tempDir(t, 'berth-unpack-invalid-');
    await expectCode(applyTar(root, tar({ f: 'file', 'f/child': 'x' })), 'invalid_argument', 'parent is a file', /layer entry "f\/child": .*not a directory/);
    const cont = tarOf(tarHeader({ name: 'contiguous', mode: 0o644, size: 0, typeflag: '7' }));
    await expectCode(applyTar(root, cont), 'invalid_argument', 'type 7', /layer entry "contiguous": unhandled tar header type 55/);
    const huge = tar({ dev: { type: 'char', devmajor: 2 ** 33, devminor: 0 } });
    await expectCode(applyTar(root, huge), 'invalid_argument', 'device number', /layer entry "dev": device number 8589934592:0 out of range: invalid archive/);
  });
});

// ---------------------------------------------------------------------------------------------
// Compression and the diffID

const mixedSpec: LayerSpec = {
  'etc/': { type: 'dir' },
  'etc/os-release': 'ID=berth\n',
  'data/': { type: 'dir', mode: 0o700 },
  'data/random.bin': seededBytes(7, 700 * 1024),
  'data/text': 'abc\n'.repeat(50_000),
  'data/link': { type: 'symlink', target: '/etc/os-release' },
};

describe('decompression', () => {
  test('gzip, zstd and plain layers give the same tree and the same diffID; declared types are not trusted', async (t) => {
    const raw = tar(mixedSpec);
    const variants: Array<[string, string, Buffer]> = [
      ['plain', MediaType.ociLayer, raw],
      ['gzip', MediaType.ociLayerGzip, layer(mixedSpec).data!],
      ['zstd (oci)', MediaType.ociLayerZstd, layer(mixedSpec, { compression: 'zstd' }).data!],
      ['zstd (docker)', MediaType.dockerLayerZstd, zstdSync(raw)],
      ['plain bytes declared gzip', MediaType.ociLayerGzip, raw],
      ['gzip bytes declared docker tar', MediaType.dockerLayer, gzipSync(raw)],
      ['zstd bytes declared gzip', MediaType.dockerLayerGzip, zstdSync(raw)],
    ];
    let reference: Record<string, Node> | undefined;
    for (const [name, mediaType, data] of variants) {
      const root = await tempDir(t, 'berth-unpack-comp-');
      const progress: number[] = [];
      const applied = await applyLayer(chunksOf(data, 100_000), { mediaType, root, onProgress: (n) => progress.push(n) });
      assert.deepEqual(applied, { diffId: sha256(raw), size: raw.length }, name);
      assert.equal(progress.at(-1), data.length, `${name}: progress ends at the blob size`);
      const tree = snapshot(root, { dirTimes: true });
      reference ??= tree;
      assert.deepEqual(tree, reference, name);
    }
  });

  test('an uncompressed media type passes gzip bytes to the tar reader as they are (containerd: no sniffing)', async (t) => {
    const root = await tempDir(t, 'berth-unpack-raw-');
    await expectCode(applyTar(root, gzipSync(tar(mixedSpec)), { mediaType: MediaType.ociLayer }), 'invalid_argument', 'gzip as raw tar', /layer tar: invalid tar header/);
  });

  test('fzstd (no zstd binary) decodes the same bytes from a reused input buffer; a skippable frame first is still zstd', async () => {
    const raw = tar(mixedSpec);
    const skippable = Buffer.from([0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]);
    for (const zstd of [undefined, '/usr/bin/zstd']) {
      const parts: Buffer[] = [];
      // Output is copied as it comes: a decoder may reuse its buffers.
      const d = createDecompressor((b) => parts.push(Buffer.from(b)), zstd);
      // One input buffer, reused for each part once its write says it is consumed.
      const input = Buffer.alloc(64 << 10);
      for (const part of [skippable, zstdSync(raw)]) {
        for (let off = 0; off < part.length; off += input.length) {
          const n = part.copy(input, 0, off, off + input.length);
          await d.write(input.subarray(0, n));
        }
      }
      await d.end();
      assert.equal(sha256(Buffer.concat(parts)), sha256(raw), zstd ?? 'fzstd');
    }
  });

  test('a blob larger than the ring, in odd-sized chunks from one reused buffer, applies whole in each compression', async (t) => {
    // 9 MiB of data crosses applyLayer's 4 MiB ring twice, at offsets no chunk size lines up with;
    // the source overwrites its one buffer for every chunk, so any byte used after it was handed
    // on would show in the tree or the diffID.
    const big = seededBytes(11, 9 * 1024 * 1024 + 123);
    const spec: LayerSpec = { 'big.bin': big, 'after/': { type: 'dir' }, 'after/small': 'small\n' };
    const raw = tar(spec);
    const reusing = async function* (data: Buffer, size: number): AsyncGenerator<Uint8Array> {
      const buf = Buffer.alloc(size);
      for (let off = 0; off < data.length; off += size) {
        const n = data.copy(buf, 0, off, off + size);
        yield buf.subarray(0, n);
      }
    };
    for (const [name, data, size, mediaType] of [
      // An uncompressed media type: the bytes are read straight from the ring.
      ['plain, not sniffed', raw, 100_003, MediaType.ociLayer],
      ['plain, sniffed', raw, 100_003, MediaType.ociLayerGzip],
      ['gzip', gzipSync(raw, { level: 1 }), 77_777, MediaType.ociLayerGzip],
      ['zstd', zstdSync(raw), 1_048_583, MediaType.ociLayerZstd],
    ] as const) {
      const root = await tempDir(t, 'berth-unpack-ring-');
      const applied = await applyLayer(reusing(data, size), { mediaType, root });
      assert.deepEqual(applied, { diffId: sha256(raw), size: raw.length }, name);
      assert.equal(sha256(readFileSync(join(root, 'big.bin'))), sha256(big), `${name}: big.bin`);
      assert.equal(readFileSync(join(root, 'after/small'), 'utf8'), 'small\n', name);
    }
  });

  test('trailing data after the end-of-archive marker is hashed and ignored; an empty blob is an empty layer', async (t) => {
    const root = await tempDir(t, 'berth-unpack-trailing-');
    const data = Buffer.concat([tar({ a: 'a' }), Buffer.from('trailing bytes, not a tar header')]);
    assert.deepEqual(await applyTar(root, data), { diffId: sha256(data), size: data.length });
    assert.equal(readFileSync(join(root, 'a'), 'utf8'), 'a');
    const empty = await tempDir(t, 'berth-unpack-empty-');
    assert.deepEqual(await applyTar(empty, Buffer.alloc(0), { mediaType: MediaType.ociLayerGzip }), { diffId: sha256(''), size: 0 });
  });
});

// ---------------------------------------------------------------------------------------------
// Against GNU tar

/** Three layers with every entry type, owners, modes, xattrs, times, whiteouts and an opaque dir. Hardlink headers repeat their target's metadata (containerd applies them to the shared inode; GNU tar does not). */
const gnuLayers: LayerSpec[] = [
  {
    'usr/': { type: 'dir', mtime: 1_000 },
    'usr/bin/': { type: 'dir', mtime: 1_000 },
    'usr/bin/passwd': { type: 'file', content: seededBytes(1, 40_000), mode: 0o4755, mtime: 1_700_000_000 },
    'usr/bin/newuidmap': { type: 'file', content: 'caps', mode: 0o755, mtime: 1_700_000_001, xattrs: { 'security.capability': CAP_SETUID } },
    'usr/bin/sh': { type: 'symlink', target: '/usr/bin/dash', mtime: 1_700_000_002 },
    'usr/bin/dash': { type: 'file', content: 'dash', mode: 0o755, mtime: 1_700_000_003 },
    'usr/bin/passwd2': { type: 'hardlink', target: 'usr/bin/passwd', mode: 0o4755, mtime: 1_700_000_000 },
    'home/': { type: 'dir', mtime: 1_000 },
    'home/user/': { type: 'dir', mode: 0o700, uid: 1000, gid: 1000, mtime: 1_000 },
    'home/user/.profile': { type: 'file', content: 'export A=1\n', mode: 0o600, uid: 1000, gid: 1000, mtime: 1_650_000_000, xattrs: { 'user.origin': 'layer0' } },
    'var/': { type: 'dir', mtime: 1_000 },
    'var/cache/': { type: 'dir', mtime: 1_000 },
    'var/cache/a': 'a',
    'var/cache/b/': { type: 'dir', mtime: 1_000 },
    'var/cache/b/c': 'c',
    'tmp/': { type: 'dir', mode: 0o1777, mtime: 1_000 },
    'dev/': { type: 'dir', mtime: 1_000 },
    'dev/null': { type: 'char', devmajor: 1, devminor: 3, mode: 0o666, mtime: 1_000 },
    'dev/pipe': { type: 'fifo', mode: 0o600, mtime: 1_000 },
    'etc/': { type: 'dir', mtime: 1_000 },
    'etc/group': { type: 'file', content: 'root:x:0:\n', mtime: 1_600_000_000 },
  },
  {
    'usr/bin/.wh.dash': '',
    'usr/bin/sh': { type: 'symlink', target: 'busybox', mtime: 1_710_000_000 },
    'usr/bin/busybox': { type: 'file', content: seededBytes(2, 100_000), mode: 0o755, uid: 0, gid: 0, mtime: 1_710_000_001 },
    'var/cache/': { type: 'dir', mtime: 1_000 },
    'var/cache/.wh..wh..opq': '',
    'var/cache/fresh': { type: 'file', content: 'fresh', mtime: 1_710_000_002 },
    'home/user/.profile': { type: 'file', content: 'export A=2\n', mode: 0o640, uid: 1000, gid: 100, mtime: 1_710_000_003 },
    'srv/': { type: 'dir', mode: 0o2750, gid: 33, mtime: 1_000 },
    'srv/www': { type: 'file', content: 'www', mode: 0o640, uid: 33, gid: 33, mtime: 1_710_000_004 },
  },
  {
    '.wh.tmp': '',
    'etc/.wh.group': '',
    'etc/hosts': { type: 'file', content: '127.0.0.1 localhost\n', mtime: 1_720_000_000 },
    'srv/www': { type: 'file', content: 'www v2', mode: 0o600, uid: 33, gid: 33, mtime: 1_720_000_001, xattrs: { 'user.rev': '2' } },
  },
];

describe('against GNU tar', () => {
  test('GNU tar plus whiteouts by hand gives the same tree as naive applyLayer, file by file', async (t) => {
    const base = await tempDir(t, 'berth-unpack-gnutar-');
    const [gnu, ours] = [join(base, 'gnu'), join(base, 'ours')];
    mkdirSync(gnu);
    mkdirSync(ours);
    for (const [i, spec] of gnuLayers.entries()) {
      const data = tar(spec);
      const file = join(base, `layer${i}.tar`);
      writeFileSync(file, data);
      // Whiteouts first (so an opaque directory keeps what this layer brings), then extract, then drop the markers.
      const whiteouts = Object.keys(spec).filter((p) => posix.basename(p).startsWith('.wh.'));
      for (const p of whiteouts) {
        const dir = join(gnu, posix.dirname(p));
        const name = posix.basename(p);
        if (name === '.wh..wh..opq') for (const c of readdirSync(dir)) rmSync(join(dir, c), { recursive: true, force: true });
        else rmSync(join(dir, name.slice(4)), { recursive: true, force: true });
      }
      execFileSync('tar', ['-xpf', file, '--xattrs', '--xattrs-include=*', '--numeric-owner', '-C', gnu], { stdio: ['ignore', 'ignore', 'pipe'] });
      for (const p of whiteouts) rmSync(join(gnu, p), { force: true });
      await applyLayer(chunksOf(layer(spec).data!), { mediaType: MediaType.ociLayerGzip, root: ours });
    }
    const expected = snapshot(gnu);
    const actual = snapshot(ours);
    assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort());
    for (const p of Object.keys(expected)) assert.deepEqual(actual[p], expected[p], p);
    assert.equal(actual['usr/bin/passwd'].mode, 0o4755, 'setuid survives');
    assert.ok(actual['usr/bin/newuidmap'].xattrs?.['security.capability'], 'file capabilities survive');
  });
});

// ---------------------------------------------------------------------------------------------
// Concurrency, failures, cancellation

function manyFiles(seed: number): LayerSpec {
  const spec: LayerSpec = { 'd/': { type: 'dir' }, 'big.bin': seededBytes(seed, 6 << 20) };
  for (let i = 0; i < 1500; i++) spec[`d/f${String(i).padStart(4, '0')}`] = `${seed}:${i}\n`;
  return spec;
}

/** Threads of this process (each worker adds at least one). */
const threads = (): number => readdirSync('/proc/self/task').length;

describe('parallel, corrupt and cancelled applies', () => {
  test('three applyLayer calls at once into three directories all succeed', async (t) => {
    const layers = [1, 2, 3].map((seed) => ({ seed, l: layer(manyFiles(seed)) }));
    const roots = await Promise.all(layers.map(() => tempDir(t, 'berth-unpack-par-')));
    const results = await Promise.all(layers.map(({ l }, i) => applyLayer(chunksOf(l.data!), { mediaType: l.mediaType, root: roots[i] })));
    for (const [i, { seed, l }] of layers.entries()) {
      assert.deepEqual(results[i], { diffId: l.diffID, size: l.uncompressedSize });
      assert.equal(sha256(readFileSync(join(roots[i], 'big.bin'))), sha256(seededBytes(seed, 6 << 20)));
      const names = readdirSync(join(roots[i], 'd'));
      assert.equal(names.length, 1500);
      assert.equal(readFileSync(join(roots[i], 'd/f1234'), 'utf8'), `${seed}:1234\n`);
    }
  });

  test('a truncated or corrupt gzip stream, or a corrupt tar, is an invalid_argument BerthError; the worker is gone', async (t) => {
    const root = await tempDir(t, 'berth-unpack-corrupt-');
    const gz = layer(mixedSpec).data!;
    // Warm the pool, so the failing apply takes an idle worker that must then be terminated.
    await applyTar(root, tar({ warm: 'up' }));
    const before = threads();
    const truncated = applyLayer(chunksOf(gz.subarray(0, gz.length >> 1)), { mediaType: MediaType.ociLayerGzip, root });
    await expectCode(truncated, 'invalid_argument', 'truncated gzip', /layer gzip: unexpected end of file/);
    assert.ok(threads() < before, `the failed worker's thread is gone (${threads()} < ${before})`);

    const flipped = Buffer.from(gz);
    for (let i = 0; i < 64; i++) flipped[(gz.length >> 1) + i] ^= 0xff;
    await expectCode(applyLayer(chunksOf(flipped), { mediaType: MediaType.ociLayerGzip, root }), 'invalid_argument', 'corrupt gzip', /layer gzip: /);

    const badTar = tar({ a: 'a' });
    badTar[0] ^= 0xff; // checksum no longer matches
    await expectCode(applyTar(root, badTar), 'invalid_argument', 'corrupt tar', /layer tar: invalid tar header/);
    await expectCode(applyTar(root, tar({ a: 'a' }).subarray(0, 700)), 'invalid_argument', 'truncated tar', /layer tar: unexpected EOF/);

    const zst = zstdSync(tar(mixedSpec));
    await expectCode(applyLayer(chunksOf(zst.subarray(0, zst.length >> 1)), { mediaType: MediaType.ociLayerZstd, root }), 'invalid_argument', 'truncated zstd', /layer zstd: /);

    // Still usable afterwards.
    const fresh = await tempDir(t, 'berth-unpack-after-');
    assert.equal((await applyTar(fresh, tar({ ok: 'ok' }))).diffId, sha256(tar({ ok: 'ok' })));
  });

  test('a source that fails fails the apply with its own error', async (t) => {
    const root = await tempDir(t, 'berth-unpack-srcfail-');
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield tar({ a: 'a' }).subarray(0, 512);
      throw new BerthError('unavailable', 'registry went away');
    }
    await expectCode(applyLayer(failing(), { mediaType: MediaType.ociLayer, root }), 'unavailable', 'source error', /registry went away/);
  });

  test('cancellation via the signal rejects with its reason and terminates the worker', async (t) => {
    const root = await tempDir(t, 'berth-unpack-abort-');
    await applyTar(root, tar({ warm: 'up' })); // so the apply below takes a pooled worker
    const before = threads();
    const ac = new AbortController();
    let release: () => void = () => {};
    const stalled = new Promise<void>((r) => (release = r));
    t.after(() => release());
    async function* slow(): AsyncGenerator<Uint8Array> {
      // The first MiB of a tar (a header, then file data): consumed, so acknowledged (progress).
      yield tar({ big: Buffer.alloc(4 << 20, 0x61) }).subarray(0, 1 << 20);
      await stalled; // then nothing more until the test ends
    }
    const reason = new Error('stop now');
    const applying = applyLayer(slow(), {
      mediaType: MediaType.ociLayer,
      root,
      signal: ac.signal,
      onProgress: () => ac.abort(reason),
    });
    await assert.rejects(applying, (err) => err === reason);
    assert.ok(threads() < before, `the worker's thread is gone (${threads()} < ${before})`);
    const early = new AbortController();
    early.abort(reason);
    await assert.rejects(applyTar(root, tar({ a: 'a' }), { signal: early.signal }), (err) => err === reason);
  });
});

test('a zstd layer given up midway leaves no zstd process, running or unreaped', async (t) => {
  const root = await tempDir(t, 'berth-unpack-zstd-abort-');
  let release: () => void = () => {};
  const stalled = new Promise<void>((r) => (release = r));
  t.after(() => release());
  const zst = zstdSync(tar({ big: seededBytes(5, 4 << 20) }));
  async function* slow(): AsyncGenerator<Uint8Array> {
    yield zst.subarray(0, 256 << 10);
    await stalled;
  }
  /** This process's zstd children, with their state (Z: exited, never reaped). */
  const zstdChildren = (): string[] =>
    readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .flatMap((p) => {
        try {
          const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
          const [, comm, state, ppid] = /^\d+ \((.*)\) (\S) (\d+)/.exec(stat) ?? [];
          return comm === 'zstd' && Number(ppid) === process.pid ? [`${p} ${state}`] : [];
        } catch {
          return [];
        }
      });
  const ac = new AbortController();
  const applying = applyLayer(slow(), { mediaType: MediaType.ociLayerZstd, root, signal: ac.signal, onProgress: () => ac.abort(new Error('given up')) });
  await assert.rejects(applying, /given up/);
  assert.deepEqual(zstdChildren(), [], 'the zstd process was ended and reaped before the worker went');
});

test('sync: true flushes before resolving (smoke)', async (t) => {
  const root = await tempDir(t, 'berth-unpack-sync-');
  const data = tar({ f: 'durable' });
  assert.equal((await applyTar(root, data, { sync: true })).diffId, sha256(data));
});

test('the root must exist and be a directory', async (t) => {
  const base = await tempDir(t, 'berth-unpack-root-');
  await expectCode(applyTar(join(base, 'missing'), tar({ a: 'a' })), 'not_found', 'missing root', /does not exist/);
  writeFileSync(join(base, 'file'), '');
  await expectCode(applyTar(join(base, 'file'), tar({ a: 'a' })), 'invalid_argument', 'file root', /not a directory/);
});
