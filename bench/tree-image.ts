// A benchmark image made of real file trees of this machine (tens of thousands of files of every
// size, not one big file): each layer is GNU tar of a few folders, gzip -1, with a few whiteouts
// of the layer below appended (files, a folder, an opaque folder) from the second layer on.
// The layers are built once and kept in a cache folder whose name hashes the choice of folders
// and a listing of what they hold (path, type, size, mtime), so a rerun on an unchanged machine
// reuses them and a changed folder makes a new build.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { buildImage, layer, MediaType, type Image, type Layer } from '../test/fixtures/images.js';
import { hashFileInto } from '../store/writer.js';
import { run, SetupError } from './harness.js';

/**
 * The default layers (folders below /, one list per layer): about 1.1 GB of tar and 70,000
 * entries on this Debian 12 machine (Go, Python, PostgreSQL installed): headers, man pages and
 * icons; script languages; Go's sources; locales; Go's toolchain (large binaries).
 */
export const DEFAULT_TREES: string[][] = [
  ['usr/include', 'usr/share/man', 'usr/share/icons'],
  ['usr/lib/python3', 'usr/lib/python3.11', 'usr/share/perl', 'usr/share/vim', 'usr/share/i18n', 'usr/share/cmake-3.25'],
  ['usr/share/go-1.19'],
  ['usr/share/locale', 'usr/lib/git-core', 'usr/lib/postgresql'],
  ['usr/lib/go-1.19'],
];

/** `--trees` syntax: layers separated by ';', folders of a layer by ','; leading '/' optional. */
export function parseTrees(spec: string): string[][] {
  const trees = spec.split(';').map((l) => l.split(',').map((p) => p.trim().replace(/^\/+|\/+$/g, '')).filter(Boolean));
  if (trees.length === 0 || trees.some((t) => t.length === 0)) throw new SetupError(`--trees ${JSON.stringify(spec)}: every layer needs a folder`);
  return trees;
}

/** Bumped when the way layers are made changes, so that old caches are not reused. */
const RECIPE = 'berth-bench-tree-image-1';

/** GNU tar, writing what Go's archive/tar writes (ustar, PAX records only where needed: long names). */
const TAR_FORMAT = ['--format=pax', '--pax-option=delete=atime,delete=ctime,delete=mtime', '--numeric-owner'];

export interface TreeLayer {
  /** The gzip file in the cache. */
  file: string;
  digest: string;
  size: number;
  diffID: string;
  uncompressedSize: number;
  /** Entries of the tar (folders, files, links, whiteouts). */
  entries: number;
  whiteouts: number;
  folders: string[];
}

export interface TreeImage {
  image: Image;
  layers: TreeLayer[];
  cacheDir: string;
  /** Whether the layers came from the cache. */
  cached: boolean;
}

interface Listing {
  /** Path (relative to /) → find's type letter (f, d, l, ...). */
  types: Map<string, string>;
  hash: string;
}

/** What the folders hold, from `find -xdev` (path, type, size, mtime), and a hash of it. */
async function listTrees(folders: string[]): Promise<Listing> {
  const missing = folders.filter((f) => !existsSync(`/${f}`));
  if (missing.length > 0) throw new SetupError(`no such folder: /${missing.join(', /')} (choose others with --trees)`);
  const out = await run('find', [...folders.map((f) => `/${f}`), '-xdev', '-printf', '%y %s %T@ %p\\n']);
  const types = new Map<string, string>();
  for (const line of out.split('\n')) {
    const m = /^(\S) \d+ \S+ \/(.*)$/.exec(line);
    if (m) types.set(m[2], m[1]);
  }
  return { types, hash: createHash('sha256').update(out).digest('hex') };
}

/** Folders above `folders` not in the layer by themselves (they come first, without their contents). */
function parentsOf(folders: string[]): string[] {
  const parents = new Set<string>();
  for (const f of folders) for (let d = posix.dirname(f); d !== '.'; d = posix.dirname(d)) parents.add(d);
  for (const f of folders) parents.delete(f);
  return [...parents].sort();
}

/** A stable pseudo-random order (by hash), so that the choice of whiteouts spreads over the tree. */
const scatter = (xs: string[]): string[] =>
  xs.map((x) => [createHash('sha256').update(x).digest('hex'), x]).sort((a, b) => (a[0] < b[0] ? -1 : 1)).map((p) => p[1]);

/**
 * Whiteouts of what `below` holds: three files, a leaf folder (`.wh.NAME`, its whole subtree) and
 * another leaf folder made opaque (`NAME/.wh..wh..opq`). Paths of the marker files, relative to /.
 */
function whiteoutsOf(below: Listing, top: string[]): string[] {
  const paths = [...below.types.keys()];
  const hasSubfolder = new Set(paths.filter((p) => below.types.get(p) === 'd').map((p) => posix.dirname(p)));
  const leafFolders = scatter(paths.filter((p) => below.types.get(p) === 'd' && !hasSubfolder.has(p) && !top.includes(p)));
  const [gone, opaque] = leafFolders;
  if (!opaque) throw new SetupError(`too few folders below ${top.join(', ')} to make whiteouts of`);
  const inside = (p: string, dir: string) => p.startsWith(`${dir}/`);
  const files = scatter(paths.filter((p) => below.types.get(p) === 'f' && !inside(p, gone) && !inside(p, opaque))).slice(0, 3);
  const wh = (p: string) => posix.join(posix.dirname(p), `.wh.${posix.basename(p)}`);
  return [...files.map(wh), wh(gone), `${opaque}/.wh..wh..opq`];
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await hashFileInto(path, hash);
  return `sha256:${hash.digest('hex')}`;
}

/** `gzip -1 -n` of `src` into `dest`. */
const gzipInto = (src: string, dest: string) => run('sh', ['-c', 'exec gzip -1 -n -c "$0" > "$1"', src, dest]);

/** One layer: tar of the folders (parents first), whiteouts appended, then gzip. */
async function buildLayer(dir: string, index: number, folders: string[], whiteouts: string[], entries: number): Promise<TreeLayer> {
  const tarPath = join(dir, `layer-${index}.tar`);
  const file = join(dir, `layer-${index}.tar.gz`);
  const parents = parentsOf(folders);
  await run('tar', ['-C', '/', ...TAR_FORMAT, '--sort=name', '-cf', tarPath, '--no-recursion', ...parents, '--recursion', ...folders]);
  if (whiteouts.length > 0) {
    // Empty files at the markers' paths in a folder of their own. They go in with the folders
    // above them that the layer lacks, as a layer taken from an overlay upper folder has them.
    const staging = join(dir, `whiteouts-${index}`);
    for (const w of whiteouts) {
      await mkdir(join(staging, dirname(w)), { recursive: true });
      await writeFile(join(staging, w), '');
    }
    const inLayer = (d: string) => parents.includes(d) || folders.some((f) => d === f || d.startsWith(`${f}/`));
    const markerParents = parentsOf(whiteouts).filter((d) => !inLayer(d));
    await run('tar', ['-C', staging, ...TAR_FORMAT, '-rf', tarPath, '--no-recursion', ...markerParents, ...whiteouts]);
    await rm(staging, { recursive: true });
    entries += markerParents.length;
  }
  const diffID = await sha256File(tarPath);
  const uncompressedSize = (await stat(tarPath)).size;
  await gzipInto(tarPath, file);
  await rm(tarPath);
  const digest = await sha256File(file);
  const size = (await stat(file)).size;
  return { file, digest, size, diffID, uncompressedSize, entries: entries + parents.length + whiteouts.length, whiteouts: whiteouts.length, folders };
}

// images.ts keeps its Layer brand private (test specs and ready layers go through one door);
// a layer read from a file borrows the brand of an empty in-memory layer.
const brand = layer({});

function fileLayer(l: TreeLayer): Layer {
  return {
    ...brand,
    data: undefined,
    mediaType: MediaType.ociLayerGzip,
    digest: l.digest,
    size: l.size,
    diffID: l.diffID,
    uncompressedSize: l.uncompressedSize,
    compression: 'gzip',
    open: () => createReadStream(l.file, { highWaterMark: 1 << 20 }),
  };
}

/**
 * The image of `trees` (one list of folders below / per layer), from the cache under `cacheRoot`
 * or built there (a few minutes for 1 GB: tar, then gzip -1 on one CPU per layer in turn).
 */
export async function treeImage(trees: string[][], cacheRoot: string, log: (line: string) => void): Promise<TreeImage> {
  const listings = await Promise.all(trees.map((folders) => listTrees(folders)));
  const key = createHash('sha256').update(JSON.stringify([RECIPE, trees, listings.map((l) => l.hash)])).digest('hex').slice(0, 16);
  const cacheDir = join(cacheRoot, `tree-image-${key}`);
  const metaPath = join(cacheDir, 'layers.json');
  let layers: TreeLayer[];
  const cached = existsSync(metaPath);
  if (cached) {
    layers = JSON.parse(await readFile(metaPath, 'utf8')) as TreeLayer[];
  } else {
    // Built beside and renamed when complete: an interrupted build is never taken for a cache.
    const partial = `${cacheDir}.partial`;
    await rm(partial, { recursive: true, force: true });
    await mkdir(partial, { recursive: true });
    layers = [];
    for (let i = 0; i < trees.length; i++) {
      const t0 = performance.now();
      const whiteouts = i === 0 ? [] : whiteoutsOf(listings[i - 1], trees[i - 1]);
      const built = await buildLayer(partial, i, trees[i], whiteouts, listings[i].types.size);
      layers.push({ ...built, file: join(cacheDir, `layer-${i}.tar.gz`) });
      log(`  built layer ${i} (${trees[i].join(' ')}) in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    }
    await writeFile(join(partial, 'layers.json'), JSON.stringify(layers, null, 2));
    await rm(cacheDir, { recursive: true, force: true });
    await rename(partial, cacheDir);
  }
  const image = buildImage({ layers: layers.map(fileLayer) });
  return { image, layers, cacheDir, cached };
}
