// Plugin io.berth.metadata.v1 "level": the metadata database and the namespaced stores over it
// (content, images, leases, namespaces, snapshots over the loaded snapshotters).
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { LocalStore } from '../../store/index.js';
import { MetadataContentStore, type SharingPolicy } from '../metadata/content.js';
import { MetadataDB } from '../metadata/db.js';
import { ImageStore } from '../metadata/images.js';
import { LeaseManager } from '../metadata/leases.js';
import { migrations } from '../metadata/migrations.js';
import { NamespaceStore } from '../metadata/namespaces.js';
import { SnapshotStore } from '../metadata/snapshots.js';
import type { Snapshotter } from '../snapshots/types.js';
import { contentType } from './content.js';
import { defaultsOf } from '../settings.js';
import { numberOption } from './options.js';
import type { Registration } from './registry.js';
import { snapshotterType } from './snapshots.js';

export const metadataType = 'io.berth.metadata.v1';

export interface Metadata {
  db: MetadataDB;
  content: MetadataContentStore;
  images: ImageStore;
  leases: LeaseManager;
  namespaces: NamespaceStore;
  snapshots: SnapshotStore;
}

export const metadataPlugin: Registration<Metadata> = {
  type: metadataType,
  id: 'level',
  requires: [contentType, snapshotterType],
  async init(ctx) {
    const backend = ctx.get<LocalStore>(contentType);
    const defaults = defaultsOf(`${metadataType}.level`);
    const policy = ctx.config.content_sharing_policy ?? defaults.content_sharing_policy;
    const unleasedExpiryMs = numberOption(ctx.config, 'unleased_expiry_ms') ?? (defaults.unleased_expiry_ms as number);
    if (policy !== 'shared' && policy !== 'isolated') {
      throw new Error(`content_sharing_policy: unknown policy ${JSON.stringify(policy)} (shared or isolated)`);
    }
    await mkdir(ctx.root, { recursive: true, mode: 0o700 });
    const path = join(ctx.root, 'db');
    const db = await MetadataDB.open(path, migrations(backend));
    ctx.exports.root = ctx.root;
    ctx.exports.db = path;
    ctx.exports.policy = policy;
    return {
      db,
      content: new MetadataContentStore(db, backend, {
        policy: policy as SharingPolicy,
        unleasedExpiryMs,
      }),
      images: new ImageStore(db),
      leases: new LeaseManager(db),
      namespaces: new NamespaceStore(db),
      snapshots: new SnapshotStore(db, ctx.getAll<Snapshotter>(snapshotterType), {
        unleasedExpiryMs,
      }),
    };
  },
  close: (m) => m.db.close(),
};
