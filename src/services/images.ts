// The images service: the image store plus events and synchronous deletes (which wait for the
// GC that frees what the image held).
import type { EventBus } from '../events/bus.js';
import type { GcScheduler } from '../gc/scheduler.js';
import type { GcResult } from '../gc/collector.js';
import type { OpContext } from '../metadata/context.js';
import type { MetadataContentStore } from '../metadata/content.js';
import type { Image, ImageInput, ImageStore } from '../metadata/images.js';
import { ImageInspector, type ImageInspection, type InspectOptions } from './inspect.js';

export class ImageService {
  private readonly inspector: ImageInspector;

  constructor(
    private readonly images: ImageStore,
    private readonly events: EventBus,
    private readonly gc: GcScheduler,
    content: MetadataContentStore,
  ) {
    this.inspector = new ImageInspector(images, content);
  }

  list(ctx: OpContext, filters: string[]): Promise<Image[]> {
    return this.images.list(ctx, filters);
  }

  get(ctx: OpContext, name: string): Promise<Image> {
    return this.images.get(ctx, name);
  }

  /** The image's index, manifest, config, layers, platforms and history, from the content store. */
  inspect(ctx: OpContext, name: string, opts: InspectOptions = {}): Promise<ImageInspection> {
    return this.inspector.inspect(ctx, name, opts);
  }

  async create(ctx: OpContext, image: ImageInput): Promise<Image> {
    const created = await this.images.create(ctx, image);
    this.events.publish(ctx.namespace, '/images/create', { name: created.name, labels: created.labels });
    return created;
  }

  async update(ctx: OpContext, image: Partial<ImageInput> & { name: string }, fieldpaths: string[]): Promise<Image> {
    const updated = await this.images.update(ctx, image, fieldpaths);
    this.events.publish(ctx.namespace, '/images/update', { name: updated.name, labels: updated.labels });
    return updated;
  }

  /** With `sync`, returns only after a GC has removed what became unreferenced. */
  async delete(ctx: OpContext, name: string, opts: { sync?: boolean; target?: string } = {}): Promise<GcResult | undefined> {
    await this.images.delete(ctx, name, { target: opts.target });
    this.events.publish(ctx.namespace, '/images/delete', { name });
    return opts.sync ? this.gc.scheduleAndWait() : undefined;
  }
}
