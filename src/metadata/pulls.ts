// Pull records: what the pull manager keeps of each pull so that it answers after a restart and a
// pull that was running can be resumed under its id. Written outside the metadata transactions
// (`db.update`): a pull record references nothing the GC reads (the pull's lease does the keeping),
// so writing progress must not count as a mutation that makes the GC mark again. Each record is
// checked when it is read back: one that is not a pull record (a newer berth's, a damaged one) is
// reported and left alone, never taken for a pull.
import { nsKey, splitNsKey, type MetadataDB, type PullRecord } from './db.js';
import { parseTimestamp } from '../oci/time.js';

export type { PullRecord, PullBlobRecord, PullRecordState } from './db.js';

export interface StoredPull {
  namespace: string;
  id: string;
  record: PullRecord;
}

/** A stored value that is not a pull record, and why. */
export interface InvalidPullRecord {
  key: string;
  reason: string;
}

const states: ReadonlySet<string> = new Set(['running', 'interrupted', 'done', 'failed', 'cancelled']);
const blobStates: ReadonlySet<string> = new Set(['waiting', 'downloading', 'done', 'exists', 'failed']);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isTime = (v: unknown): boolean => typeof v === 'string' && parseTimestamp(v) !== undefined;

function checkBlob(b: unknown, i: number): string | undefined {
  if (!isObject(b)) return `blobs[${i}] is not an object`;
  if (typeof b.digest !== 'string' || typeof b.mediaType !== 'string') return `blobs[${i}] needs a digest and a media type`;
  if (!isCount(b.size) || !isCount(b.offset)) return `blobs[${i}] needs a size and an offset`;
  if (typeof b.state !== 'string' || !blobStates.has(b.state)) return `blobs[${i}].state ${JSON.stringify(b.state)} is unknown`;
  if (!isObject(b.sources) || !Object.values(b.sources).every(isCount)) return `blobs[${i}].sources must count bytes`;
  return undefined;
}

/** Why `v` is not a pull record; undefined when it is one. */
export function checkPullRecord(v: unknown): string | undefined {
  if (!isObject(v)) return 'not an object';
  const r = v.request;
  if (!isObject(r) || typeof r.ref !== 'string' || r.ref === '') return 'request.ref must be a reference';
  if (r.platform !== undefined && typeof r.platform !== 'string') return 'request.platform must be a string';
  if (r.allPlatforms !== undefined && typeof r.allPlatforms !== 'boolean') return 'request.allPlatforms must be true or false';
  if (r.unpack !== undefined && !(isObject(r.unpack) && typeof r.unpack.snapshotter === 'string')) return 'request.unpack needs a snapshotter';
  if (typeof v.state !== 'string' || !states.has(v.state)) return `state ${JSON.stringify(v.state)} is unknown`;
  if (v.error !== undefined && !(isObject(v.error) && typeof v.error.code === 'string' && typeof v.error.message === 'string')) {
    return 'error needs a code and a message';
  }
  if (typeof v.lease !== 'string' || v.lease === '') return 'lease must be an id';
  if (v.image !== undefined && typeof v.image !== 'string') return 'image must be a name';
  if (!isCount(v.bytesFetched) || !isCount(v.bytesFromPeers)) return 'bytesFetched and bytesFromPeers must count bytes';
  if (!Array.isArray(v.blobs)) return 'blobs must be a list';
  for (const [i, b] of v.blobs.entries()) {
    const why = checkBlob(b, i);
    if (why) return why;
  }
  if (!Array.isArray(v.unpacks) || !v.unpacks.every((u) => isObject(u) && typeof u.snapshotter === 'string' && typeof u.chainId === 'string')) {
    return 'unpacks must be a list of unpack results';
  }
  for (const k of ['startedAt', 'updatedAt'] as const) if (!isTime(v[k])) return `${k} must be an RFC 3339 time`;
  for (const k of ['finishedAt', 'resumedAt'] as const) if (v[k] !== undefined && !isTime(v[k])) return `${k} must be an RFC 3339 time`;
  return undefined;
}

export class PullStore {
  constructor(private readonly db: MetadataDB) {}

  /**
   * Writes a pull's record. `sync`: on disk before this resolves, surviving a power cut (state
   * changes); progress is written without it (a crash of the process loses nothing written).
   */
  async put(namespace: string, id: string, record: PullRecord, opts: { sync?: boolean } = {}): Promise<void> {
    await this.write({ type: 'put', key: nsKey(namespace, id), value: record }, opts.sync === true);
  }

  async delete(namespace: string, id: string): Promise<void> {
    await this.write({ type: 'del', key: nsKey(namespace, id) }, true);
  }

  /** One operation, as a batch of the root database: its options (`sync`) reach LevelDB. */
  private async write(op: { type: 'put'; key: string; value: PullRecord } | { type: 'del'; key: string }, sync: boolean): Promise<void> {
    await this.db.level.batch([{ ...op, sublevel: this.db.pulls }] as never, { sync });
  }

  /** Every stored pull, of every namespace, and the values that are not pull records. */
  async load(): Promise<{ pulls: StoredPull[]; invalid: InvalidPullRecord[] }> {
    const pulls: StoredPull[] = [];
    const invalid: InvalidPullRecord[] = [];
    for (const [key, value] of await this.db.pulls.iterator().all()) {
      const [namespace, id] = splitNsKey(key);
      const why = !namespace || !id ? 'the key is not <namespace>/<id>' : checkPullRecord(value);
      if (why) invalid.push({ key, reason: why });
      else pulls.push({ namespace, id, record: value as PullRecord });
    }
    return { pulls, invalid };
  }
}
