// The tar applier: containerd's applyNaive (pkg/archive/tar.go) entry by entry, with
// synchronous fs calls (per-entry metadata calls through the libuv pool are 5–6× slower, and
// this runs in a worker thread anyway). Paths resolve inside the root only (root-path.ts);
// whiteouts are either applied by removing (a plain directory) or written as overlay whiteouts
// (straight into an overlay upperdir).
import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  futimesSync,
  linkSync,
  lchownSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  chmodSync,
  openSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { constants as osConstants } from 'node:os';
import { posix } from 'node:path';
import { getAttributeSync, listAttributesSync, setAttributeSync } from '@napi-rs/xattr';

import { BerthError, invalidArgument } from '../../store/errors.js';
import { mknod, type NodeKind } from './mknod.js';
import { LayerUsage } from './layer-usage.js';
import { ResolvedDirs } from './resolved-dirs.js';
import { hardlinkRootPath, rootPath, TooManyLinksError } from './root-path.js';
import type { EntryHandler, EntrySink, TarHeader } from './tar-reader.js';
import type { Usage } from '../snapshots/types.js';

export interface ApplierOptions {
  /** Absolute and normalised; must exist. */
  root: string;
  /**
   * Apply into an overlay upperdir: whiteouts become 0:0 character devices and opaque markers
   * the `trusted.overlay.opaque=y` xattr. `lowers` (immediate parent first) lend their
   * attributes to parent directories the layer does not list.
   */
  overlay?: { lowers: string[] };
  /** The root is empty: count what is written (usage()), so the commit need not measure it. */
  countUsage?: boolean;
}

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';
/** Go's maxTime is ~2^63 s; anything near it overflows libuv's timespec conversion. */
const MAX_SECONDS = 2 ** 62;
const MAX_DEVICE = 2 ** 32 - 1;
const errnos = osConstants.errno;

type Kind = 'file' | 'hardlink' | 'symlink' | 'dir' | NodeKind;

const kindOfType: Record<string, Kind> = {
  '0': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  '6': 'fifo',
};

/** Go's filepath.Clean: lexical, no trailing slash, "" → ".". */
function clean(name: string): string {
  const c = posix.normalize(name);
  return c.length > 1 && c.endsWith('/') ? c.slice(0, -1) : c;
}

/** containerd's boundTime: times outside [epoch, max] become the epoch. */
const bound = (t: number): number => (Number.isFinite(t) && t >= 0 && t <= MAX_SECONDS ? t : 0);

/** [atime, mtime] as containerd sets them: atime = max(atime, mtime). */
function timesOf(h: TarHeader): [number, number] {
  return [bound(Math.max(h.atime ?? h.mtime, h.mtime)), bound(h.mtime)];
}

/** The errno an @napi-rs/xattr error carries only in its message ("… (os error 95)"). */
function xattrErrno(err: unknown): number | undefined {
  const m = /\(os error (\d+)\)/.exec((err as Error)?.message ?? '');
  return m ? Number(m[1]) : undefined;
}

/** An error with an fs-style code, so entryError classifies it like one from node:fs. */
const fsError = (code: string, message: string): Error => Object.assign(new Error(`${code}: ${message}`), { code });

/** fs error codes that mean "this layer's content conflicts with itself or the tree": the layer's fault. */
const contentConflict = new Set(['ENOTDIR', 'EEXIST', 'ELOOP', 'ENOENT', 'EISDIR', 'ENAMETOOLONG', 'EINVAL', 'ENOTEMPTY', 'EMLINK']);

/** Every failure names the entry: `layer entry "<name>": <why>`. */
function entryError(name: string, err: unknown): BerthError {
  const why = (err as Error)?.message ?? String(err);
  const message = `layer entry ${JSON.stringify(name)}: ${why}`;
  if (err instanceof BerthError) return new BerthError(err.code, message, { cause: err });
  if (err instanceof TooManyLinksError) return invalidArgument(message, err);
  const code = (err as NodeJS.ErrnoException)?.code;
  return new BerthError(code && contentConflict.has(code) ? 'invalid_argument' : 'internal', message, { cause: err });
}

function writeAll(fd: number, data: Buffer): void {
  for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
}

export class Applier implements EntryHandler {
  private readonly root: string;
  private readonly lowers: string[];
  private readonly overlay: boolean;
  /**
   * Paths written by this layer: a naive opaque marker keeps these and removes the rest. Not kept
   * for an overlay upperdir (its opaque marker is an xattr): a string per entry adds up.
   */
  private readonly unpacked: Set<string> | undefined;
  /** Directory times are set last: creating their children changes them. */
  private readonly dirTimes: Array<{ path: string; atime: number; mtime: number }> = [];
  /** The file being written, closed by close() if the apply fails half-way. */
  private openFd: number | undefined;
  /** Entries' parent directories as resolved so far (forgotten when the tree changes under them). */
  private readonly dirs: ResolvedDirs;
  private readonly counted: LayerUsage | undefined;

  constructor(opts: ApplierOptions) {
    this.root = opts.root;
    this.dirs = new ResolvedDirs(opts.root);
    this.overlay = opts.overlay !== undefined;
    this.unpacked = this.overlay ? undefined : new Set();
    this.lowers = opts.overlay?.lowers ?? [];
    this.counted = opts.countUsage ? new LayerUsage() : undefined;
  }

  /** After finish(): the root's disk usage, when counted and still exact. */
  usage(): Usage | undefined {
    return this.counted?.total(this.root);
  }

  entry(h: TarHeader): EntrySink | undefined {
    try {
      return this.apply(h);
    } catch (err) {
      throw entryError(h.name, err);
    }
  }

  /** After the last entry: directory times. A directory a later entry removed is skipped. */
  finish(): void {
    for (const d of this.dirTimes) {
      try {
        lutimesSync(d.path, d.atime, d.mtime);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }

  /** Releases the file of an entry cut short (the apply failed). */
  close(): void {
    if (this.openFd !== undefined) closeSync(this.openFd);
    this.openFd = undefined;
  }

  private apply(h: TarHeader): EntrySink | undefined {
    const name = clean(h.name);
    const slash = name.lastIndexOf('/');
    // The parent exists as a directory once resolved (mkparent makes what is missing).
    const parent = this.dirs.resolve(name.slice(0, slash + 1), (ppath) => this.mkparent(ppath));
    // Join the base to "/" first: ".." and "." then name the parent itself.
    const base = posix.join('/', name.slice(slash + 1));
    const path = base === '/' ? parent.path : parent.path + base;
    if (path === this.root) return undefined;

    validateWhiteout(path);
    if (this.convertWhiteout(h, path)) return undefined;

    const kind = kindOfType[h.type];
    if (!kind) throw invalidArgument(`unhandled tar header type ${h.type.charCodeAt(0)} (${JSON.stringify(h.type)})`);

    switch (kind) {
      case 'file':
        return this.file(h, path);
      case 'dir':
        if (this.create(path, kind, () => mkdirSync(path, 0o700))) this.counted?.folder(path);
        this.dirs.directory(name, path, parent);
        break;
      case 'symlink':
        this.create(path, kind, () => symlinkSync(h.linkname, path));
        this.dirs.symlinkWritten();
        this.counted?.inode(lstatSync(path).blocks);
        break;
      case 'hardlink':
        this.hardlink(h, path);
        break;
      default:
        if (kind !== 'fifo' && (h.devmajor < 0 || h.devmajor > MAX_DEVICE || h.devminor < 0 || h.devminor > MAX_DEVICE)) {
          throw invalidArgument(`device number ${h.devmajor}:${h.devminor} out of range: invalid archive`);
        }
        // mknod(1) reports no errno: clear the way first (devices are rare).
        if (lstatSync(path, { throwIfNoEntry: false })) this.remove(path);
        mknod(path, kind, h.devmajor, h.devminor);
        this.counted?.inode(0);
    }
    this.metadata(h, path, kind);
    if (kind === 'dir') {
      const [atime, mtime] = timesOf(h);
      this.dirTimes.push({ path, atime, mtime });
    }
    this.unpacked?.add(path);
    return undefined;
  }

  /**
   * Makes an entry with `make`, which fails with EEXIST when something is in the way: that is
   * replaced, except that a directory merges into a directory. As GNU tar does, the common case
   * (nothing there) costs no lookup. False: a directory merged (nothing new was made).
   */
  private create(path: string, kind: Kind, make: () => void): boolean {
    try {
      make();
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (kind === 'dir' && lstatSync(path).isDirectory()) return false;
    this.remove(path);
    make();
    return true;
  }

  /** Removes `path` and all below it; what was resolved through it is forgotten. */
  private remove(path: string): void {
    rmSync(path, { recursive: true, force: true });
    this.dirs.removed();
    this.counted?.removed();
  }

  private file(h: TarHeader, path: string): EntrySink {
    // O_EXCL with O_NOFOLLOW: a new file, never one reached through a symlink; what is in the way is replaced.
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
    let fd = -1;
    this.create(path, 'file', () => (fd = openSync(path, flags, 0o600)));
    this.openFd = fd;
    return {
      write: (data) => {
        try {
          writeAll(fd, data);
        } catch (err) {
          throw entryError(h.name, err);
        }
      },
      end: () => {
        try {
          this.metadata(h, path, 'file', fd);
          this.counted?.inode(fstatSync(fd).blocks);
          this.unpacked?.add(path);
        } catch (err) {
          throw entryError(h.name, err);
        } finally {
          this.close();
        }
      },
    };
  }

  private hardlink(h: TarHeader, path: string): void {
    const target = hardlinkRootPath(this.root, h.linkname);
    const st = lstatSync(target, { throwIfNoEntry: false });
    if (st?.isDirectory()) {
      throw invalidArgument(`hardlink target ${JSON.stringify(h.linkname)} is a directory`);
    }
    try {
      this.create(path, 'hardlink', () => linkSync(target, path));
      // A hardlink to a symlink is one more symlink.
      if (st?.isSymbolicLink()) this.dirs.symlinkWritten();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw fsError('ENOENT', `hardlink target ${JSON.stringify(h.linkname)} does not exist`);
      }
      throw err;
    }
  }

  /** Owner, then xattrs, then mode (chown clears setuid and security.capability), then times. */
  private metadata(h: TarHeader, path: string, kind: Kind, fd?: number): void {
    if (fd !== undefined) fchownSync(fd, h.uid, h.gid);
    else lchownSync(path, h.uid, h.gid);

    for (const [key, value] of h.xattrs) {
      // containerd refuses admin attributes from an archive (they could forge overlay whiteouts).
      if (key.startsWith('trusted.')) continue;
      try {
        setAttributeSync(path, key, value);
      } catch (err) {
        const e = xattrErrno(err);
        // The kernel allows user.* only on regular files and directories.
        if (e === errnos.EPERM && key.startsWith('user.') && kind !== 'file' && kind !== 'dir') continue;
        if (e === errnos.ENOTSUP) continue;
        throw new Error(`setxattr ${key}: ${(err as Error).message}`, { cause: err });
      }
    }

    // chmod follows symlinks: never for a symlink, nor for a hardlink that is one.
    if (fd !== undefined) fchmodSync(fd, h.mode);
    else if (kind !== 'symlink' && !(kind === 'hardlink' && lstatSync(path).isSymbolicLink())) chmodSync(path, h.mode);

    const [atime, mtime] = timesOf(h);
    if (fd !== undefined) futimesSync(fd, atime, mtime);
    else lutimesSync(path, atime, mtime);
  }

  /** Handles a whiteout entry; true when it was one (nothing more to write). */
  private convertWhiteout(h: TarHeader, path: string): boolean {
    const base = posix.basename(path);
    if (!base.startsWith(WHITEOUT_PREFIX)) return false;
    const dir = posix.dirname(path);
    if (base === OPAQUE_MARKER) {
      if (this.overlay) setAttributeSync(dir, 'trusted.overlay.opaque', 'y');
      else {
        lstatSync(dir);
        this.removeAllBut(dir);
        this.dirs.removed();
        this.counted?.removed();
      }
      return true;
    }
    const original = `${dir}/${base.slice(WHITEOUT_PREFIX.length)}`;
    if (this.overlay) {
      mknod(original, 'char', 0, 0);
      lchownSync(original, h.uid, h.gid);
      this.counted?.inode(0);
    } else {
      this.remove(original);
    }
    return true;
  }

  /** Naive opaque directory: everything under `dir` this layer did not write goes. */
  private removeAllBut(dir: string): void {
    for (const child of readdirSync(dir)) {
      const p = `${dir}/${child}`;
      if (!this.unpacked!.has(p)) rmSync(p, { recursive: true, force: true });
      else if (lstatSync(p).isDirectory()) this.removeAllBut(p);
    }
  }

  /**
   * containerd's mkparent: missing ancestors of `path` (below root) become directories — with
   * the owner, mode, times and xattrs of the same directory in the nearest lower that has one,
   * else root-owned 0755 with epoch times. An existing non-directory is ENOTDIR.
   */
  private mkparent(path: string): void {
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (st) {
      if (st.isDirectory()) return;
      throw fsError('ENOTDIR', `not a directory, mkparent '${path}'`);
    }
    const parent = posix.dirname(path);
    if (parent.length > this.root.length) this.mkparent(parent);
    mkdirSync(path, 0o755);
    chmodSync(path, 0o755);
    this.counted?.folder(path);
    for (const lower of this.lowers) {
      const lowerPath = rootPath(lower, path.slice(this.root.length));
      const lst = lstatSync(lowerPath, { throwIfNoEntry: false });
      if (!lst) continue;
      if (!lst.isDirectory()) break; // replaced in that lower: nothing to copy
      copyDirInfo(lst, path);
      copyUpXattrs(lowerPath, path);
      return;
    }
    lutimesSync(path, 0, 0);
  }
}

/** containerd's validateWhiteout: `.wh.<x>` must name something inside its own directory. */
function validateWhiteout(path: string): void {
  const base = posix.basename(path);
  if (base === OPAQUE_MARKER || !base.startsWith(WHITEOUT_PREFIX)) return;
  const dir = posix.dirname(path);
  const original = posix.join(dir, base.slice(WHITEOUT_PREFIX.length));
  if (!original.startsWith(dir.endsWith('/') ? dir : `${dir}/`)) {
    throw invalidArgument(`invalid whiteout name: ${base}: invalid archive`);
  }
}

function copyDirInfo(st: Stats, path: string): void {
  lchownSync(path, st.uid, st.gid);
  chmodSync(path, st.mode & 0o7777);
  lutimesSync(path, st.atimeMs / 1000, st.mtimeMs / 1000);
}

/** Copies a lower directory's xattrs, except trusted.* (overlay's own, e.g. opaque). */
function copyUpXattrs(from: string, to: string): void {
  const ignorable = new Set([errnos.ENOTSUP, errnos.ENODATA, errnos.EEXIST]);
  let keys: string[];
  try {
    keys = listAttributesSync(from);
  } catch (err) {
    if (ignorable.has(xattrErrno(err) ?? -1)) return;
    throw err;
  }
  for (const key of keys) {
    if (key.startsWith('trusted.')) continue;
    try {
      const value = getAttributeSync(from, key);
      if (value) setAttributeSync(to, key, value);
    } catch (err) {
      if (!ignorable.has(xattrErrno(err) ?? -1)) throw err;
    }
  }
}
