// containerd's native snapshotter (plugins/snapshots/native): "copy the parent". Every active
// snapshot is a full copy of its parent's folder, so it works on any filesystem (no overlayfs)
// at the cost of space and time per layer. Layout: `<root>/metadata` (the metastore),
// `<root>/snapshots/<id>/` (the whole file tree of that snapshot).
import { execFile } from 'node:child_process';
import { chmod, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BerthError, isMissingFile } from '../../store/errors.js';
import { FolderSnapshotter, openFolders, removeAll } from './folders.js';
import type { SnapshotLocation } from './storage.js';
import type { Mount } from './types.js';

const run = promisify(execFile);

export class NativeSnapshotter extends FolderSnapshotter {
  /** Opens (creating) a native snapshotter rooted at `root`. */
  static async open(root: string): Promise<NativeSnapshotter> {
    const { snapshotsDir, ms } = await openFolders(root);
    return new NativeSnapshotter(snapshotsDir, ms);
  }

  /**
   * The folder is renamed to `rm-<id>` inside the transaction (back again if the transaction
   * fails) and deleted after it: the metadata never names a half-deleted folder.
   */
  async remove(key: string): Promise<void> {
    let moved: { from: string; to: string } | undefined;
    try {
      await this.ms.update(async (tx) => {
        const { id } = await tx.remove(key);
        const from = this.layerDir(id);
        const to = join(this.snapshotsDir, `rm-${id}`);
        try {
          await rename(from, to);
          moved = { from, to };
        } catch (err) {
          if (!isMissingFile(err)) throw err; // a view with a parent has no folder
        }
      });
    } catch (err) {
      if (moved) await rename(moved.to, moved.from).catch(() => undefined);
      throw err;
    }
    // The snapshot is gone either way; a folder that resists is cleanup()'s to take.
    if (moved) await removeAll([moved.to]);
  }

  /** A full copy of the parent; a view of a parent mounts the parent read-only and needs none. */
  protected async fill(temp: string, s: SnapshotLocation): Promise<boolean> {
    if (s.kind === 'view' && s.parentIds.length > 0) return false;
    await chmod(temp, 0o755);
    if (s.parentIds.length > 0) await copyTree(this.layerDir(s.parentIds[0]), temp);
    return true;
  }

  protected mountsOf(s: SnapshotLocation): Mount[] {
    const source = s.kind === 'view' && s.parentIds.length > 0 ? this.layerDir(s.parentIds[0]) : this.layerDir(s.id);
    return [{ type: 'bind', source, options: ['rbind', s.kind === 'view' ? 'ro' : 'rw'] }];
  }

  protected layerDir(id: string): string {
    return join(this.snapshotsDir, id);
  }
}

/**
 * `cp -a` keeps owners, modes, times, xattrs, hardlinks, devices, FIFOs and symlinks as they are
 * (fs.cp loses owners, splits hardlinks and refuses FIFOs); `--reflink=auto` shares extents
 * where the filesystem can. `src/.` copies the folder's contents and its own attributes.
 */
async function copyTree(src: string, dst: string): Promise<void> {
  try {
    await run('cp', ['-a', '--reflink=auto', `${src}/.`, dst]);
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    throw new BerthError('internal', `copy ${src} to ${dst}: ${stderr || (err as Error).message}`, { cause: err });
  }
}
