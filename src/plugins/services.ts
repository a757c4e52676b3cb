// Plugins io.berth.service.v1: what the HTTP routes and the CLI call, one per resource.
import type { EventBus } from '../events/bus.js';
import { ContentService } from '../services/content.js';
import { ImageService } from '../services/images.js';
import { LeaseService } from '../services/leases.js';
import { NamespaceService } from '../services/namespaces.js';
import { eventsType } from './events.js';
import { gcType, type Gc } from './gc.js';
import { metadataType, type Metadata } from './metadata.js';
import { numberOption } from './options.js';
import type { Registration } from './registry.js';

export const serviceType = 'io.berth.service.v1';

export const contentServicePlugin: Registration<ContentService> = {
  type: serviceType,
  id: 'content',
  requires: [metadataType, eventsType],
  async init(ctx) {
    return new ContentService(ctx.get<Metadata>(metadataType).content, ctx.get<EventBus>(eventsType), {
      idleWriterMs: numberOption(ctx.config, 'idle_writer_ms'),
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
