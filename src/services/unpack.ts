// Unpacking an image already in the content store (containerd's client Image.Unpack): the
// manifest for the platform, its config's diffIDs, each layer read from the store. Runs in a
// lease of its own so nothing it makes is collected half way; afterwards the image's config
// holds the snapshots (`containerd.io/gc.ref.snapshot.<snapshotter>`).
import { invalidArgument } from '../../store/errors.js';
import type { OpContext } from '../metadata/context.js';
import type { MetadataContentStore } from '../metadata/content.js';
import type { LeaseManager } from '../metadata/leases.js';
import type { Descriptor } from '../oci/descriptor.js';
import { isLayerType } from '../oci/mediatypes.js';
import type { Unpacker, UnpackResult } from '../unpack/unpacker.js';
import type { ImageService } from './images.js';
import type { ImageInspection } from './inspect.js';

export interface ImageUnpackOptions {
  snapshotter?: string;
  platform?: string;
}

export class UnpackService {
  constructor(
    private readonly images: ImageService,
    private readonly content: MetadataContentStore,
    private readonly leases: LeaseManager,
    private readonly unpacker: Unpacker,
    readonly defaultSnapshotter: string,
  ) {}

  async unpack(ctx: OpContext, name: string, opts: ImageUnpackOptions = {}): Promise<UnpackResult> {
    return this.unpackInspected(ctx, await this.images.inspect(ctx, name, { platform: opts.platform }), opts.snapshotter);
  }

  /** The same, for a caller that has inspected the image already (the manifest and config read once). */
  async unpackInspected(ctx: OpContext, image: ImageInspection, snapshotter = this.defaultSnapshotter): Promise<UnpackResult> {
    const name = image.name;
    const config = image.manifest.config as Descriptor | undefined;
    if (!config) throw invalidArgument(`image ${JSON.stringify(name)}: its manifest has no config`);
    const inspected = image.layers.filter((l) => isLayerType(l.mediaType));
    const diffIds = inspected.map((l) => l.diffId ?? '');
    const layers: Descriptor[] = inspected.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size }));
    if (diffIds.some((d) => !d)) throw invalidArgument(`image ${JSON.stringify(name)}: its config has no diff_id for every layer`);
    const done = await this.unpacker.unpacked(ctx, config, diffIds, snapshotter);
    if (done) return { snapshotter, chainId: done, unpacked: 0, existing: layers.length };
    const lease = await this.leases.create(ctx, { labels: { 'berth.io/unpack': name }, expiresIn: 60 * 60 * 1000 });
    const leased = { ...ctx, lease: lease.id };
    try {
      return await this.unpacker.unpack(leased, {
        config,
        layers,
        diffIds,
        snapshotter,
        source: (desc) =>
          (async function* (content: MetadataContentStore) {
            yield* (await content.readerAt(leased, desc.digest)).stream();
          })(this.content),
      });
    } finally {
      await this.leases.delete(ctx, lease.id).catch(() => {}); // it expires by itself otherwise
    }
  }
}
