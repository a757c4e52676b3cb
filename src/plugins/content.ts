// Plugin io.berth.content.v1 "content": the local content store (blobs and ingests on disk).
import { LocalStore } from '../../store/index.js';
import type { Registration } from './registry.js';

export const contentType = 'io.berth.content.v1';

export const contentPlugin: Registration<LocalStore> = {
  type: contentType,
  id: 'content',
  async init(ctx) {
    const store = await LocalStore.open(ctx.root, { logger: ctx.logger });
    ctx.exports.root = ctx.root;
    return store;
  },
};
