// Plugin io.berth.content.v1 "content": the local content store, with its labels kept in the
// metadata database; and io.berth.service.v1 "content", the service the API calls.
import { LocalStore } from '../../store/index.js';
import type { MetadataDB } from '../metadata/db.js';
import { LevelLabelStore } from '../metadata/labels.js';
import { ContentService } from '../services/content.js';
import { metadataType } from './metadata.js';
import type { Registration } from './registry.js';

export const contentType = 'io.berth.content.v1';
export const serviceType = 'io.berth.service.v1';

export interface ContentPlugin {
  store: LocalStore;
  labels: LevelLabelStore;
}

export const contentPlugin: Registration<ContentPlugin> = {
  type: contentType,
  id: 'content',
  requires: [metadataType],
  async init(ctx) {
    const db = ctx.get<MetadataDB>(metadataType);
    const labels = new LevelLabelStore(db);
    const store = await LocalStore.open(ctx.root, { labels, logger: ctx.logger });
    ctx.exports.root = ctx.root;
    return { store, labels };
  },
};

export const contentServicePlugin: Registration<ContentService> = {
  type: serviceType,
  id: 'content',
  requires: [contentType, metadataType],
  async init(ctx) {
    const { store, labels } = ctx.get<ContentPlugin>(contentType);
    const idleWriterMs = ctx.config.idle_writer_ms;
    if (idleWriterMs !== undefined && typeof idleWriterMs !== 'number') {
      throw new Error('idle_writer_ms must be a number of milliseconds');
    }
    return new ContentService(store, labels, ctx.get<MetadataDB>(metadataType), { idleWriterMs });
  },
  close: (service) => service.close(),
};
