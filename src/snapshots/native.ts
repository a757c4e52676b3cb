// containerd's native snapshotter (plugins/snapshots/native): "copy the parent". Every active
// snapshot is a full copy of its parent's folder, so it works on any filesystem (no overlayfs)
// at the cost of space and time per layer. Layout: `<root>/metadata` (the metastore),
// `<root>/snapshots/<id>/` (the whole file tree of that snapshot).
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { BerthError, isMissingFile } from '../errors.js';
import type { Labels } from '../../store/types.js';
import { MetaStore, orphanedDirectories, type SnapshotLocation } from './storage.js';
import type { Kind, Mount, SnapshotInfo, SnapshotOptions, Snapshotter, Usage } from './types.js';
import { diskUsage } from './usage.js';

const run = promisify(execFile);

export class NativeSnapshotter implements Snapshotter {
  private constructor(
    private readonly snapshotsDir: string,
    private readonly ms: MetaStore,
  ) {}

  /** Opens (creating) a native snapshotter rooted at `root`. */
  static async open(root: string): Promise<NativeSnapshotter> {
    const abs = resolve(root);
    const snapshotsDir = join(abs, 'snapshots');
    await mkdir(snapshotsDir, { recursive: true, mode: 0o700 });
    return new NativeSnapshotter(snapshotsDir, await MetaStore.open(abs));
  }

  stat(key: string): Promise<SnapshotInfo> {
    return this.ms.read(async (tx) => (await tx.getInfo(key)).info);
  }

  update(info: { name: string; labels: Labels }, fieldpaths?: string[]): Promise<SnapshotInfo> {
    return this.ms.update((tx) => tx.updateInfo(info, fieldpaths));
  }

  async usage(key: string): Promise<Usage> {
    const { id, info, usage } = await this.ms.read((tx) => tx.getInfo(key));
    return info.kind === 'active' ? diskUsage(this.dir(id)) : usage;
  }

  async mounts(key: string): Promise<Mount[]> {
    return this.mountsOf(await this.ms.read((tx) => tx.getSnapshot(key)));
  }

  prepare(key: string, parent: string, opts?: SnapshotOptions): Promise<Mount[]> {
    return this.create('active', key, parent, opts);
  }

  view(key: string, parent: string, opts?: SnapshotOptions): Promise<Mount[]> {
    return this.create('view', key, parent, opts);
  }

  async commit(name: string, key: string, opts?: SnapshotOptions): Promise<void> {
    await this.ms.update(async (tx) => {
      const { id, info } = await tx.getInfo(key);
      // A view has no folder of its own to measure; commitActive refuses it.
      const usage = info.kind === 'active' ? await diskUsage(this.dir(id)) : { inodes: 0, size: 0 };
      await tx.commitActive(key, name, usage, opts);
    });
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
        const from = this.dir(id);
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
    if (moved) await rm(moved.to, { recursive: true, force: true }).catch(() => undefined);
  }

  walk(fn: (info: SnapshotInfo) => void | Promise<void>, filters?: readonly string[]): Promise<void> {
    return this.ms.read((tx) => tx.walkInfo(fn, filters));
  }

  async cleanup(): Promise<void> {
    const dirs = await this.ms.update((tx) => orphanedDirectories(tx, this.snapshotsDir));
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  }

  close(): Promise<void> {
    return this.ms.close();
  }

  private async create(kind: Kind, key: string, parent: string, opts?: SnapshotOptions): Promise<Mount[]> {
    let temp: string | undefined;
    let placed: string | undefined;
    try {
      const s = await this.ms.update(async (tx) => {
        const s = await tx.createSnapshot(kind, key, parent, opts);
        // A view of a parent mounts the parent read-only: it needs no folder of its own.
        if (kind === 'view' && s.parentIds.length > 0) return s;
        temp = await mkdtemp(join(this.snapshotsDir, 'new-'));
        await chmod(temp, 0o755);
        if (s.parentIds.length > 0) await copyTree(this.dir(s.parentIds[0]), temp);
        placed = this.dir(s.id);
        // The sequence hands this id out for the first time, so a folder of that name can only
        // be left from a crash between this rename and the batch write: it is nobody's.
        await rm(placed, { recursive: true, force: true });
        await rename(temp, placed);
        temp = undefined;
        return s;
      });
      return this.mountsOf(s);
    } catch (err) {
      for (const dir of [temp, placed]) if (dir) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      throw err;
    }
  }

  private mountsOf(s: SnapshotLocation): Mount[] {
    const source = s.kind === 'view' && s.parentIds.length > 0 ? this.dir(s.parentIds[0]) : this.dir(s.id);
    return [{ type: 'bind', source, options: ['rbind', s.kind === 'view' ? 'ro' : 'rw'] }];
  }

  private dir(id: string): string {
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
