// The containers service (what `ctr run` does before the task): a container is made from an
// image — unpacked if it is not yet — with a writable snapshot on the image's top chainID (key =
// the container id) and an OCI runtime spec from containerd's defaults, the image config and the
// request's overrides. Deleting one removes its snapshot, unless asked to keep it.
import { mkdtemp, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alreadyExists, BerthError, failedPrecondition, isNotFound } from '../../store/errors.js';
import type { EventBus } from '../events/bus.js';
import { rootLabel } from '../gc/labels.js';
import type { Container, ContainerStore } from '../metadata/containers.js';
import type { OpContext } from '../metadata/context.js';
import type { LeaseManager } from '../metadata/leases.js';
import { validateIdentifier } from '../metadata/validate.js';
import { defaultSpec, withCwd, withEnv, withImageConfig, withTty, withUser, type ImageProcessConfig, type Spec } from '../runtime/spec.js';
import { mountAll, unmountAll } from '../snapshots/mount.js';
import type { Labels } from '../oci/labels.js';
import type { ImageService } from './images.js';
import type { SnapshotService } from './snapshots.js';
import type { UnpackService } from './unpack.js';

/** The runtime every container runs with (containerd's default runtime's name). */
export const runtimeName = 'io.containerd.runc.v2';

export interface ContainerCreate {
  id: string;
  image: string;
  snapshotter?: string;
  /** Replaces the image's Cmd (the Entrypoint stays). */
  args?: string[];
  /** `K=V` set, `K` removed, over the image's Env. */
  env?: string[];
  cwd?: string;
  /** Any USER form: `uid`, `name`, `uid:gid`, `name:group`. */
  user?: string;
  tty?: boolean;
  labels?: Labels;
}

export class ContainerService {
  constructor(
    private readonly containers: ContainerStore,
    private readonly images: ImageService,
    private readonly unpack: UnpackService,
    private readonly snapshots: SnapshotService,
    private readonly leases: LeaseManager,
    private readonly events: EventBus,
    /** Whether a container has a task (then it cannot be deleted). */
    private readonly hasTask: (ctx: OpContext, id: string) => boolean,
  ) {}

  list(ctx: OpContext, filters: string[]): Promise<Container[]> {
    return this.containers.list(ctx, filters);
  }

  get(ctx: OpContext, id: string): Promise<Container> {
    return this.containers.get(ctx, id);
  }

  async create(ctx: OpContext, req: ContainerCreate): Promise<Container> {
    const what = `container ${JSON.stringify(req.id)}`;
    validateIdentifier(req.id, what);
    // Refused before any work: an existing id, an unknown image.
    await this.containers.get(ctx, req.id).then(
      () => {
        throw alreadyExists(`container "${req.id}": already exists`);
      },
      (err) => {
        if (!isNotFound(err)) throw err;
      },
    );
    const image = await this.images.inspect(ctx, req.image);
    const unpacked = await this.unpack.unpackInspected(ctx, image, req.snapshotter);
    const sn = unpacked.snapshotter;
    // A lease holds the new snapshot until the container record does.
    const lease = await this.leases.create(ctx, { labels: { 'berth.io/container': req.id }, expiresIn: 10 * 60 * 1000 });
    const leased = { ...ctx, lease: lease.id };
    try {
      const snapshots = this.snapshots.bind(leased, sn);
      const mounts = await snapshots.prepare(req.id, unpacked.chainId);
      let created: Container;
      try {
        const spec = await this.spec(ctx, req, (image.config.config ?? {}) as ImageProcessConfig, mounts);
        created = await this.containers.create(ctx, {
          id: req.id,
          image: image.name,
          runtime: { name: runtimeName },
          spec: spec as unknown as Record<string, unknown>,
          snapshotter: sn,
          snapshotKey: req.id,
          labels: req.labels,
        });
      } catch (err) {
        await snapshots.remove(req.id).catch(() => {});
        throw err;
      }
      this.events.publish(ctx.namespace, '/containers/create', { id: created.id, image: created.image, runtime: runtimeName });
      return created;
    } finally {
      await this.leases.delete(ctx, lease.id).catch(() => {}); // it expires by itself otherwise
    }
  }

  /**
   * The default spec, the image config with the request's args (USER resolved in the root file
   * system), then the request's env, cwd, user, tty. ctr run applies the env before the image
   * config, which gives the same result for `K=V` but drops a bare `K` (nothing to remove yet):
   * applied after it, `K` removes the image's K, as the API says.
   */
  private async spec(ctx: OpContext, req: ContainerCreate, config: ImageProcessConfig, mounts: Parameters<typeof mountAll>[0]): Promise<Spec> {
    const rootfs = await mkdtemp(join(tmpdir(), 'berth-rootfs-'));
    try {
      await mountAll(mounts, rootfs);
      try {
        let spec = await withImageConfig(defaultSpec({ namespace: ctx.namespace, id: req.id }), config, rootfs, req.args);
        spec = withEnv(spec, req.env ?? []);
        if (req.cwd) spec = withCwd(spec, req.cwd);
        if (req.user) spec = await withUser(spec, req.user, rootfs);
        if (req.tty) spec = withTty(spec);
        return spec;
      } catch (err) {
        // The root file system was mounted on a temporary folder: name the image instead.
        if (!(err instanceof BerthError)) throw err;
        const message = err.message.replaceAll(rootfs, `image "${req.image}"`);
        throw new BerthError(err.code, `container "${req.id}": ${message}`, { cause: err });
      } finally {
        await unmountAll(rootfs);
      }
    } finally {
      // rmdir, never a recursive removal: if the unmount failed, that would go through the mount.
      await rmdir(rootfs);
    }
  }

  async updateLabels(ctx: OpContext, id: string, labels: Labels, fieldpaths: string[]): Promise<Container> {
    const paths = fieldpaths.length > 0 ? fieldpaths : ['labels'];
    const updated = await this.containers.update(ctx, { id, labels }, paths);
    this.events.publish(ctx.namespace, '/containers/update', { id, labels: updated.labels });
    return updated;
  }

  /**
   * Removes the container (not while it has a task) and its snapshot — or, with `keepSnapshot`,
   * keeps the snapshot, labelled `containerd.io/gc.root` since nothing else holds it any more.
   */
  async delete(ctx: OpContext, id: string, opts: { keepSnapshot?: boolean } = {}): Promise<void> {
    const found = await this.containers.get(ctx, id);
    if (this.hasTask(ctx, id)) throw failedPrecondition(`container "${id}": cannot delete a container with a task (delete the task first)`);
    if (opts.keepSnapshot && found.snapshotter && found.snapshotKey) {
      await this.snapshots.update(ctx, found.snapshotter, found.snapshotKey, { [rootLabel]: new Date().toISOString() }, [`labels.${rootLabel}`]);
    }
    const c = await this.containers.delete(ctx, id);
    if (!opts.keepSnapshot && c.snapshotter && c.snapshotKey) {
      await this.snapshots.remove(ctx, c.snapshotter, c.snapshotKey).catch((err) => {
        if (!isNotFound(err)) throw err;
      });
    }
    this.events.publish(ctx.namespace, '/containers/delete', { id });
  }
}
