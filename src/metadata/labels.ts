// Content labels kept in the metadata store, so that they outlive the process.
import { withoutEmpty } from '../../store/labels.js';
import type { LabelStore, Labels } from '../../store/types.js';
import type { MetadataDB } from './db.js';

export class LevelLabelStore implements LabelStore {
  constructor(private readonly db: MetadataDB) {}

  async get(digest: string): Promise<Labels | undefined> {
    return (await this.db.content.get(digest))?.labels;
  }

  async set(digest: string, labels: Labels): Promise<void> {
    await this.db.content.put(digest, { labels: withoutEmpty(labels) });
  }

  async update(digest: string, labels: Labels): Promise<Labels> {
    const merged = withoutEmpty({ ...(await this.get(digest)), ...labels });
    await this.db.content.put(digest, { labels: merged });
    return merged;
  }

  async remove(digest: string): Promise<void> {
    await this.db.content.del(digest);
  }
}
