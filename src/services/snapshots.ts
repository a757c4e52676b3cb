// The snapshots service: the namespaced snapshot store plus events (containerd's
// /snapshot/prepare, /snapshot/commit, /snapshot/remove) and the default snapshotter.
import type { EventBus } from '../events/bus.js';
import type { OpContext } from '../metadata/context.js';
import type { SnapshotStore } from '../metadata/snapshots.js';
import type { Labels } from '../oci/labels.js';
import type { Mount, SnapshotInfo, SnapshotOptions, Snapshotter, Usage } from '../snapshots/types.js';

export class SnapshotService {
  constructor(
    private readonly store: SnapshotStore,
    private readonly events: EventBus,
    /** The snapshotter used when a request names none. */
    readonly defaultSnapshotter: string,
  ) {}

  /** Names of the loaded snapshotters. */
  names(): string[] {
    return [...this.store.backends.keys()];
  }

  /** What the snapshotter can do beyond the interface (e.g. `rebase`). */
  capabilities(sn: string): readonly string[] {
    return this.store.backend(sn).capabilities ?? [];
  }

  /** `sn` as one namespace (and lease) sees it, publishing events as the routes do. */
  bind(ctx: OpContext, sn: string = this.defaultSnapshotter): Snapshotter {
    const inner = this.store.bind(ctx, sn);
    const publish = (topic: string, data: object) => this.events.publish(ctx.namespace, topic, { ...data, snapshotter: sn });
    return {
      ...inner,
      prepare: async (key, parent, opts) => {
        const mounts = await inner.prepare(key, parent, opts);
        publish('/snapshot/prepare', { key, parent });
        return mounts;
      },
      view: async (key, parent, opts) => {
        const mounts = await inner.view(key, parent, opts);
        publish('/snapshot/view', { key, parent });
        return mounts;
      },
      commit: async (name, key, opts) => {
        await inner.commit(name, key, opts);
        publish('/snapshot/commit', { key, name });
      },
      remove: async (key) => {
        await inner.remove(key);
        publish('/snapshot/remove', { key });
      },
    };
  }

  async list(ctx: OpContext, sn: string, filters: string[]): Promise<SnapshotInfo[]> {
    const out: SnapshotInfo[] = [];
    await this.store.walk(ctx, sn, (info) => void out.push(info), filters);
    return out;
  }

  stat(ctx: OpContext, sn: string, key: string): Promise<SnapshotInfo> {
    return this.store.stat(ctx, sn, key);
  }

  update(ctx: OpContext, sn: string, key: string, labels: Labels, fieldpaths: string[]): Promise<SnapshotInfo> {
    return this.store.update(ctx, sn, { name: key, labels }, fieldpaths);
  }

  usage(ctx: OpContext, sn: string, key: string): Promise<Usage> {
    return this.store.usage(ctx, sn, key);
  }

  mounts(ctx: OpContext, sn: string, key: string): Promise<Mount[]> {
    return this.store.mounts(ctx, sn, key);
  }

  prepare(ctx: OpContext, sn: string, key: string, parent: string, opts: SnapshotOptions): Promise<Mount[]> {
    return this.bind(ctx, sn).prepare(key, parent, opts);
  }

  view(ctx: OpContext, sn: string, key: string, parent: string, opts: SnapshotOptions): Promise<Mount[]> {
    return this.bind(ctx, sn).view(key, parent, opts);
  }

  async commit(ctx: OpContext, sn: string, name: string, key: string, opts: SnapshotOptions): Promise<SnapshotInfo> {
    await this.bind(ctx, sn).commit(name, key, opts);
    return this.store.stat(ctx, sn, name);
  }

  remove(ctx: OpContext, sn: string, key: string): Promise<void> {
    return this.bind(ctx, sn).remove(key);
  }
}
