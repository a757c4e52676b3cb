// Plugin io.berth.metadata.v1 "level": the metadata database.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MetadataDB } from '../metadata/db.js';
import type { Registration } from './registry.js';

export const metadataType = 'io.berth.metadata.v1';

export const metadataPlugin: Registration<MetadataDB> = {
  type: metadataType,
  id: 'level',
  async init(ctx) {
    await mkdir(ctx.root, { recursive: true, mode: 0o700 });
    const path = join(ctx.root, 'db');
    ctx.exports.root = ctx.root;
    ctx.exports.db = path;
    return MetadataDB.open(path);
  },
  close: (db) => db.close(),
};
