// Plugin io.berth.archive.v1 "images": images in and out without a registry — export and import
// of image archives (OCI layout, Docker save) and tags. After the services: an import unpacks
// through the pulls plugin's unpack service when there is one.
import type { Pulls } from './pull.js';
import { ImageArchiveService } from '../services/image-archives.js';
import type { ImageService } from '../services/images.js';
import { ImageTagService } from '../services/image-tags.js';
import { metadataType, type Metadata } from './metadata.js';
import type { Registration } from './registry.js';
import { serviceType } from './services.js';

export const archiveType = 'io.berth.archive.v1';

export interface ImageArchives {
  archives: ImageArchiveService;
  tags: ImageTagService;
}

export const archivePlugin: Registration<ImageArchives> = {
  type: archiveType,
  id: 'images',
  requires: [metadataType, serviceType],
  async init(ctx) {
    const { content, leases } = ctx.get<Metadata>(metadataType);
    const images = ctx.get<ImageService>(serviceType, 'images');
    const unpack = ctx.getAll<Pulls>(serviceType).get('pulls')?.unpack;
    return { archives: new ImageArchiveService(images, content, leases, unpack), tags: new ImageTagService(images) };
  },
};
