// What the native and overlay snapshotters share (containerd's two plugins are built the same
// way): a metastore of ids, kinds and parents (`storage.ts`) and one folder per snapshot under
// `<root>/snapshots/<id>`, made in a `new-*` temporary folder and renamed into place inside the
// metastore's transaction. They differ in what a snapshot's folder holds, how it is mounted and
// how it is removed.
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Labels } from '../oci/labels.js';
import { MetaStore, orphanedDirectories, type SnapshotLocation } from './storage.js';
import type { Kind, Mount, SnapshotInfo, SnapshotOptions, Snapshotter, Usage } from './types.js';
import { diskUsage } from './usage.js';

/** The metastore and the snapshots folder of a snapshotter rooted at `root` (created). */
export async function openFolders(root: string): Promise<{ snapshotsDir: string; ms: MetaStore }> {
  const abs = resolve(root);
  const snapshotsDir = join(abs, 'snapshots');
  await mkdir(snapshotsDir, { recursive: true, mode: 0o700 });
  return { snapshotsDir, ms: await MetaStore.open(abs) };
}

export abstract class FolderSnapshotter implements Snapshotter {
  constructor(
    protected readonly snapshotsDir: string,
    protected readonly ms: MetaStore,
  ) {}

  /** The folder holding a snapshot's own files: what usage measures. */
  protected abstract layerDir(id: string): string;
  protected abstract mountsOf(s: SnapshotLocation): Mount[];
  /**
   * Fills the new snapshot's temporary folder (the parent's copy, or empty layer folders);
   * false: this snapshot needs no folder of its own.
   */
  protected abstract fill(temp: string, s: SnapshotLocation): Promise<boolean>;
  abstract remove(key: string): Promise<void>;

  stat(key: string): Promise<SnapshotInfo> {
    return this.ms.read(async (tx) => (await tx.getInfo(key)).info);
  }

  update(info: { name: string; labels: Labels }, fieldpaths?: string[]): Promise<SnapshotInfo> {
    return this.ms.update((tx) => tx.updateInfo(info, fieldpaths));
  }

  async usage(key: string): Promise<Usage> {
    const { id, info, usage } = await this.ms.read((tx) => tx.getInfo(key));
    return info.kind === 'active' ? diskUsage(this.layerDir(id)) : usage;
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
      // A view has nothing of its own to measure; commitActive refuses it. A writer that
      // counted what it wrote (an unpack) spares the walk.
      const usage = info.kind === 'active' ? (opts?.usage ?? (await diskUsage(this.layerDir(id)))) : { inodes: 0, size: 0 };
      await tx.commitActive(key, name, usage, opts);
    });
  }

  walk(fn: (info: SnapshotInfo) => void | Promise<void>, filters?: readonly string[]): Promise<void> {
    return this.ms.read((tx) => tx.walkInfo(fn, filters));
  }

  async cleanup(): Promise<void> {
    await removeAll(await this.ms.update((tx) => orphanedDirectories(tx, this.snapshotsDir)));
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
        temp = await mkdtemp(join(this.snapshotsDir, 'new-'));
        if (!(await this.fill(temp, s))) {
          await rm(temp, { recursive: true, force: true });
          temp = undefined;
          return s;
        }
        placed = join(this.snapshotsDir, s.id);
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
}

/** A folder that resists stays an orphan: the next remove or cleanup() tries again. */
export async function removeAll(dirs: string[]): Promise<void> {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
}
