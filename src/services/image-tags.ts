// `ctr images tag`: a second image record for the same target (and labels) under a new name.
import { alreadyExists, errorCode, invalidArgument } from '../../store/errors.js';
import type { OpContext } from '../metadata/context.js';
import type { Image } from '../metadata/images.js';
import type { ImageService } from './images.js';

export class ImageTagService {
  constructor(private readonly images: ImageService) {}

  /** Names `source`'s target `target`; an existing `target` is replaced only with `force`. */
  async tag(ctx: OpContext, source: string, target: string, opts: { force?: boolean } = {}): Promise<Image> {
    if (source === target) throw invalidArgument(`tag: image ${JSON.stringify(source)} cannot be tagged as itself`);
    const image = await this.images.get(ctx, source);
    try {
      return await this.images.create(ctx, { name: target, target: image.target, labels: image.labels });
    } catch (err) {
      if (errorCode(err) !== 'already_exists') throw err;
      if (!opts.force) throw alreadyExists(`tag: image ${JSON.stringify(target)} already exists: give force to point it at ${image.target.digest}`, err);
      // Updated in place (containerd deletes and creates): the name never stops existing.
      return this.images.update(ctx, { name: target, target: image.target, labels: image.labels }, ['target', 'labels']);
    }
  }
}
