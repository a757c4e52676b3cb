// containerd's overlay snapshotter (plugins/snapshots/overlay): each snapshot keeps only its own
// changes in `<root>/snapshots/<id>/fs`; an active snapshot on parents is an overlay mount with
// the parents' `fs` folders as lower layers and its own `fs` (plus `work`) on top.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, lchown, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { FolderSnapshotter, openFolders, removeAll } from './folders.js';
import { mountAll, unmountAll } from './mount.js';
import { orphanedDirectories, type MetaStore, type SnapshotLocation } from './storage.js';
import type { Mount } from './types.js';

const run = promisify(execFile);

/**
 * Options every overlay mount gets after its lowerdir. Inode index lookups (on by default in
 * some kernels) tie an upper layer to the exact lower layers it was first mounted with, which
 * layer reuse breaks; containerd turns them off whenever the kernel has the knob.
 */
function extraOverlayOptions(): string[] {
  return existsSync('/sys/module/overlay/parameters/index') ? ['index=off'] : [];
}

export class OverlaySnapshotter extends FolderSnapshotter {
  /**
   * Layers are folders of their own whatever their parent, so an active snapshot made without a
   * parent can be given one at commit: the unpacker extracts layers side by side this way.
   */
  readonly capabilities = ['rebase'] as const;

  private constructor(
    snapshotsDir: string,
    ms: MetaStore,
    private readonly extraOptions: string[],
  ) {
    super(snapshotsDir, ms);
  }

  /** Opens (creating) an overlay snapshotter rooted at `root`; see overlaySupported first. */
  static async open(root: string): Promise<OverlaySnapshotter> {
    const { snapshotsDir, ms } = await openFolders(root);
    return new OverlaySnapshotter(snapshotsDir, ms, extraOverlayOptions());
  }

  /**
   * The metadata goes first; then every folder no snapshot owns (this one's and anything a crash
   * left) is deleted, as containerd does when removal is not asynchronous.
   */
  async remove(key: string): Promise<void> {
    const dirs = await this.ms.update(async (tx) => {
      await tx.remove(key);
      return orphanedDirectories(tx, this.snapshotsDir);
    });
    await removeAll(dirs);
  }

  /** An empty layer (`fs`, and `work` for an active snapshot). */
  protected async fill(temp: string, s: SnapshotLocation): Promise<boolean> {
    const fs = join(temp, 'fs');
    await mkdir(fs);
    await chmod(fs, 0o755);
    if (s.kind === 'active') {
      await mkdir(join(temp, 'work'));
      await chmod(join(temp, 'work'), 0o711);
    }
    // The new layer's root belongs to whoever owns the parent's root, so the merged root
    // keeps its owner (the upper root's attributes are what the overlay shows).
    if (s.parentIds.length > 0) {
      const owner = await stat(this.layerDir(s.parentIds[0]));
      await lchown(fs, owner.uid, owner.gid);
    }
    return true;
  }

  protected mountsOf(s: SnapshotLocation): Mount[] {
    if (s.parentIds.length === 0) {
      return [{ type: 'bind', source: this.layerDir(s.id), options: [s.kind === 'view' ? 'ro' : 'rw', 'rbind'] }];
    }
    const lowerdir = `lowerdir=${s.parentIds.map((id) => this.layerDir(id)).join(':')}`;
    if (s.kind === 'active') {
      const options = [`workdir=${this.work(s.id)}`, `upperdir=${this.layerDir(s.id)}`, lowerdir, ...this.extraOptions];
      return [{ type: 'overlay', source: 'overlay', options }];
    }
    // A view on one layer is that layer, read-only; on more, a read-only overlay (no upperdir).
    if (s.parentIds.length === 1) return [{ type: 'bind', source: this.layerDir(s.parentIds[0]), options: ['ro', 'rbind'] }];
    return [{ type: 'overlay', source: 'overlay', options: [lowerdir, ...this.extraOptions] }];
  }

  /** `<id>/fs`: the layer's own files (the overlay's upper folder while active). */
  protected layerDir(id: string): string {
    return join(this.snapshotsDir, id, 'fs');
  }

  private work(id: string): string {
    return join(this.snapshotsDir, id, 'work');
  }
}


/**
 * Why overlay snapshots cannot work under `root`, or undefined when they can: the kernel must
 * know overlayfs, the filesystem must report d_type, and a real overlay of two lower layers,
 * an upper and a work folder under `root` must mount (with the options the snapshotter uses).
 */
export async function overlaySupported(root: string): Promise<string | undefined> {
  const filesystems = await readFile('/proc/filesystems', 'utf8').catch(() => '');
  if (!/\toverlay$/m.test(filesystems)) return 'the kernel has no overlay filesystem (not in /proc/filesystems)';
  const abs = resolve(root);
  await mkdir(abs, { recursive: true, mode: 0o700 });
  const noDType = await lacksDType(abs);
  if (noDType) return noDType;

  const dir = await mkdtemp(join(abs, 'overlay-check-'));
  const merged = join(dir, 'merged');
  try {
    for (const d of ['lower1', 'lower2', 'upper', 'work', 'merged']) await mkdir(join(dir, d));
    const options = [
      `workdir=${join(dir, 'work')}`,
      `upperdir=${join(dir, 'upper')}`,
      `lowerdir=${join(dir, 'lower2')}:${join(dir, 'lower1')}`,
      ...extraOverlayOptions(),
    ];
    await mountAll([{ type: 'overlay', source: 'overlay', options }], merged);
    return undefined;
  } catch (err) {
    return `overlayfs does not mount on the filesystem of ${abs}: ${(err as Error).message}`;
  } finally {
    await unmountAll(merged).catch(() => undefined);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/**
 * Without d_type in directory entries overlayfs misreads whiteouts. Node cannot see d_type
 * (readdir falls back to lstat), so this knows the one filesystem still met without it: XFS
 * formatted with `ftype=0`.
 */
async function lacksDType(dir: string): Promise<string | undefined> {
  const fsType = (await run('stat', ['-f', '-c', '%T', dir])).stdout.trim();
  if (fsType !== 'xfs') return undefined;
  const info = await run('xfs_info', [dir]).catch(() => undefined);
  if (info && /ftype=0/.test(info.stdout)) {
    return `${dir} is on XFS formatted with ftype=0, which does not support d_type (overlayfs needs it)`;
  }
  return undefined;
}
