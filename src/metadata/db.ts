// The metadata store: one LevelDB under the metadata plugin's folder, with a schema version
// checked (and, when later versions add them, migrated) at open.
import { Level } from 'level';
import { failedPrecondition } from '../errors.js';
import type { Labels } from '../../store/types.js';

export const schemaVersion = 1;

/** What is kept about a committed blob. */
export interface ContentRecord {
  labels: Labels;
}

/** What the local store cannot keep about an ingest (its layout has no room for it). */
export interface IngestRecord {
  expected?: string;
}

export class MetadataDB {
  readonly content;
  readonly ingests;

  private constructor(readonly level: Level<string, unknown>) {
    this.content = level.sublevel<string, ContentRecord>('content', { valueEncoding: 'json' });
    this.ingests = level.sublevel<string, IngestRecord>('ingests', { valueEncoding: 'json' });
  }

  static async open(path: string): Promise<MetadataDB> {
    const level = new Level<string, unknown>(path, { valueEncoding: 'json' });
    try {
      await level.open();
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause;
      if (cause?.code === 'LEVEL_LOCKED') {
        throw failedPrecondition(`metadata database ${path} is locked by another process`, err);
      }
      throw err;
    }
    const version = await level.get('version');
    if (version === undefined) {
      await level.put('version', schemaVersion);
    } else if (version !== schemaVersion) {
      await level.close();
      throw failedPrecondition(
        `metadata database ${path} has schema version ${String(version)}; this berth knows only ${schemaVersion}`,
      );
    }
    return new MetadataDB(level);
  }

  async close(): Promise<void> {
    await this.level.close();
  }
}
