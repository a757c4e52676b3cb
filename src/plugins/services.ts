// Plugins io.berth.service.v1: what the HTTP routes and the CLI call, one per resource.
import type { EventBus } from '../events/bus.js';
import { ContentService } from '../services/content.js';
import { ImageService } from '../services/images.js';
import { LeaseService } from '../services/leases.js';
import { NamespaceService } from '../services/namespaces.js';
import { SnapshotService } from '../services/snapshots.js';
import { eventsType } from './events.js';
import { gcType, type Gc } from './gc.js';
import { metadataType, type Metadata } from './metadata.js';
import { defaultsOf } from '../settings.js';
import { numberOption } from './options.js';
import type { Registration } from './registry.js';

export const serviceType = 'io.berth.service.v1';

export const contentServicePlugin: Registration<ContentService> = {
  type: serviceType,
  id: 'content',
  requires: [metadataType, eventsType],
  async init(ctx) {
    return new ContentService(ctx.get<Metadata>(metadataType).content, ctx.get<EventBus>(eventsType), {
      idleWriterMs: numberOption(ctx.config, 'idle_writer_ms') ?? (defaultsOf(`${serviceType}.content`).idle_writer_ms as number),
    });
  },
  close: (service) => service.close(),
};

export const imageServicePlugin: Registration<ImageService> = {
  type: serviceType,
  id: 'images',
  requires: [metadataType, eventsType, gcType],
  init: async (ctx) => {
    const { images, content } = ctx.get<Metadata>(metadataType);
    return new ImageService(images, ctx.get<EventBus>(eventsType), ctx.get<Gc>(gcType).scheduler, content);
  },
};

export const leaseServicePlugin: Registration<LeaseService> = {
  type: serviceType,
  id: 'leases',
  requires: [metadataType, eventsType, gcType],
  init: async (ctx) =>
    new LeaseService(ctx.get<Metadata>(metadataType).leases, ctx.get<EventBus>(eventsType), ctx.get<Gc>(gcType).scheduler),
};

export const namespaceServicePlugin: Registration<NamespaceService> = {
  type: serviceType,
  id: 'namespaces',
  requires: [metadataType, eventsType],
  init: async (ctx) => new NamespaceService(ctx.get<Metadata>(metadataType).namespaces, ctx.get<EventBus>(eventsType)),
};

export const snapshotServicePlugin: Registration<SnapshotService> = {
  type: serviceType,
  id: 'snapshots',
  requires: [metadataType, eventsType],
  async init(ctx) {
    const { snapshots } = ctx.get<Metadata>(metadataType);
    const loaded = [...snapshots.backends.keys()];
    const configured = ctx.config.default_snapshotter;
    if (configured !== undefined && typeof configured !== 'string') throw new Error('default_snapshotter must be a string');
    // overlayfs where it works (it shares lower layers), else native, as ctr defaults.
    const chosen = configured ?? (loaded.includes('overlayfs') ? 'overlayfs' : loaded.includes('native') ? 'native' : loaded[0]);
    if (!chosen || !loaded.includes(chosen)) {
      throw new Error(`default snapshotter ${JSON.stringify(chosen ?? '')} is not loaded (loaded: ${loaded.join(', ') || 'none'})`);
    }
    ctx.exports.default = chosen;
    return new SnapshotService(snapshots, ctx.get<EventBus>(eventsType), chosen);
  },
};
