// The metadata store: one LevelDB, keyed by namespace, holding what containerd's bolt tree holds
// (namespaces, images, content records, ingest records, leases). A versioned schema is checked
// and migrated at open. Every change is one atomic batch written through `update`, which
// serialises writers (LevelDB has no transactions) and tells listeners (the GC scheduler).
import { Level } from 'level';
import { failedPrecondition } from '../../store/errors.js';
import type { Labels } from '../oci/labels.js';
import type { Descriptor } from '../oci/descriptor.js';
import { Mutex } from '../level/mutex.js';
import { Tx, type Sub } from '../level/tx.js';

export const schemaVersion = 2;

export interface NamespaceRecord {
  labels: Labels;
  createdAt: string;
  /** The last sequence number handed to a backend ingest ref in this namespace. */
  seq?: number;
}

export interface ImageRecord {
  target: Descriptor;
  labels: Labels;
  createdAt: string;
  updatedAt: string;
}

export interface BlobRecord {
  size: number;
  labels: Labels;
  createdAt: string;
  updatedAt: string;
  /**
   * Content committed outside a lease is a GC root until then (RFC 3339), as an ingest is —
   * berth's addition: containerd collects it at the next GC.
   */
  expireAt?: string;
}

export interface IngestRecord {
  /** The backend (local store) ref: `<ns>/<seq>/<ref>`, stable across resumes. */
  bref: string;
  /** The digest the writer expects, when one was given. */
  expected?: string;
  /** The content exists in the backend already and was adopted: there is no backend ingest. */
  shared?: boolean;
  /** An ingest written outside a lease is a GC root only until then (RFC 3339). */
  expireAt?: string;
}

export interface SnapshotRecord {
  /** The backend snapshotter's key: `<ns>/<seq>/<key>`. */
  name: string;
  /** The parent's key in this namespace. */
  parent?: string;
  /** Keys of the snapshots on top of this one. */
  children: string[];
  labels: Labels;
  createdAt: string;
  updatedAt: string;
  /** A snapshot made outside a lease is a GC root until then (RFC 3339), as unleased content is. */
  expireAt?: string;
}

export interface ContainerRecord {
  /** The image name it was made from (may no longer exist). */
  image: string;
  runtime: { name: string };
  /** The OCI runtime spec (JSON). */
  spec: Record<string, unknown>;
  snapshotter?: string;
  snapshotKey?: string;
  labels: Labels;
  createdAt: string;
  updatedAt: string;
}

export interface LeaseResources {
  content: string[];
  ingests: string[];
  images: string[];
  /** snapshotter → keys */
  snapshots: Record<string, string[]>;
}

export interface LeaseRecord {
  createdAt: string;
  labels: Labels;
  resources: LeaseResources;
}

export type PullRecordState = 'running' | 'interrupted' | 'done' | 'failed' | 'cancelled';

/** One blob of a pull as the pull last recorded it (offsets at a bounded rate, not per chunk). */
export interface PullBlobRecord {
  digest: string;
  mediaType: string;
  size: number;
  offset: number;
  state: 'waiting' | 'downloading' | 'done' | 'exists' | 'failed';
  /** Bytes by where they came from (`upstream`, `peer <node>`). */
  sources: Record<string, number>;
}

/**
 * A pull (berth's own: containerd keeps no pulls), kept so that it answers after a restart and a
 * running one can be resumed under its id. Not a GC root: its lease does the keeping.
 */
export interface PullRecord {
  /** The request as the manager took it (`ref` as given). */
  request: { ref: string; platform?: string; allPlatforms?: boolean; unpack?: { snapshotter: string } };
  state: PullRecordState;
  error?: { code: string; message: string };
  lease: string;
  image?: string;
  bytesFetched: number;
  bytesFromPeers: number;
  blobs: PullBlobRecord[];
  unpacks: Array<{ snapshotter: string; chainId: string; unpacked: number; existing: number }>;
  startedAt: string;
  finishedAt?: string;
  /** When it was last resumed after a restart. */
  resumedAt?: string;
  /** When this record was written. */
  updatedAt: string;
}


/** `<ns>/<key>`: namespaces are identifiers, so `/` cannot occur in them. */
export const nsKey = (ns: string, key: string): string => `${ns}/${key}`;
/** The key range of one namespace in a sublevel (`0` sorts right after `/`). */
export const nsRange = (ns: string) => ({ gt: `${ns}/`, lt: `${ns}0` });
/** Splits `<ns>/<key>`. */
export function splitNsKey(k: string): [string, string] {
  const i = k.indexOf('/');
  return [k.slice(0, i), k.slice(i + 1)];
}

export type MutationListener = (event: { dirty: boolean; expiresAt?: Date }) => void;

export class MetadataDB {
  readonly namespaces: Sub<NamespaceRecord>;
  readonly images: Sub<ImageRecord>;
  readonly blobs: Sub<BlobRecord>;
  readonly ingests: Sub<IngestRecord>;
  readonly leases: Sub<LeaseRecord>;
  /** `<ns>/<snapshotter>/<key>` → record. */
  readonly snapshots: Sub<SnapshotRecord>;
  /** `<ns>/<id>` → container. */
  readonly containers: Sub<ContainerRecord>;
  /** Counters: `snapshots/<snapshotter>` → the last sequence number of a backend key. */
  readonly sequences: Sub<number>;
  /**
   * `<ns>/<id>` → pull. Written by the pull manager directly (metadata/pulls.ts), not through
   * `update`: pulls are no GC input, so their progress does not count as a mutation.
   */
  readonly pulls: Sub<PullRecord>;
  /** Held by every write transaction; the GC holds it for its sweep. */
  readonly writeLock = new Mutex();
  /** Write transactions so far: the GC compares it before and after its mark. */
  mutations = 0;
  private readonly listeners = new Set<MutationListener>();

  /**
   * Every record, in memory, as the last committed batch left it: the GC reads its snapshot
   * from here in milliseconds instead of iterating LevelDB (about 7 µs a record). Loaded at open,
   * kept current by `write`; only changes written through a transaction reach it.
   */
  readonly cache = new Map<Sub<unknown>, Map<string, unknown>>();

  private constructor(readonly level: Level<string, unknown>) {
    const sub = <V>(name: string) => level.sublevel<string, V>(name, { valueEncoding: 'json' }) as Sub<V>;
    this.namespaces = sub('namespaces');
    this.images = sub('images');
    this.blobs = sub('blobs');
    this.ingests = sub('ingests');
    this.leases = sub('leases');
    this.snapshots = sub('snapshots');
    this.sequences = sub('sequences');
    this.containers = sub('containers');
    this.pulls = sub('pulls');
  }

  /** The cached records of a sublevel (read only: change them through `update`). */
  cached<V>(sub: Sub<V>): ReadonlyMap<string, V> {
    return (this.cache.get(sub as Sub<unknown>) ?? new Map()) as ReadonlyMap<string, V>;
  }

  private async loadCache(): Promise<void> {
    for (const sub of [this.namespaces, this.images, this.blobs, this.ingests, this.leases, this.snapshots, this.containers] as Array<Sub<unknown>>) {
      const m = new Map<string, unknown>();
      for (const [k, v] of await sub.iterator().all()) m.set(k, v);
      this.cache.set(sub, m);
    }
  }

  /**
   * Opens (creating) the database and brings its schema to `schemaVersion`. `migrate` receives
   * each older version's data to move; a newer version than this berth knows is refused.
   */
  static async open(path: string, migrations: Migrations = {}): Promise<MetadataDB> {
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
    const db = new MetadataDB(level);
    try {
      await db.migrate(path, migrations);
      await db.loadCache();
    } catch (err) {
      await level.close();
      throw err;
    }
    return db;
  }

  private async migrate(path: string, migrations: Migrations): Promise<void> {
    let version = (await this.level.get('version')) as number | undefined;
    if (version === undefined) {
      // A new database, or one from before versions were written: nothing to move.
      const empty = (await this.level.keys({ limit: 1 }).all()).length === 0;
      if (empty) {
        await this.level.put('version', schemaVersion, { sync: true });
        return;
      }
      version = 1;
    }
    if (version > schemaVersion) {
      throw failedPrecondition(
        `metadata database ${path} has schema version ${version}; this berth knows versions up to ${schemaVersion}`,
      );
    }
    for (let v = version; v < schemaVersion; v++) {
      const step = migrations[v];
      if (!step) throw failedPrecondition(`metadata database ${path}: no migration from schema version ${v}`);
      const tx = new Tx();
      await step(this, tx);
      tx.put(this.level as unknown as Sub<number>, 'version', v + 1);
      await this.write(tx);
    }
  }

  /** Runs `fn` as one transaction: serialised with other writers, written as one batch. */
  async update<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    const release = await this.writeLock.acquire();
    let tx: Tx;
    let result: T;
    try {
      tx = new Tx();
      result = await fn(tx);
      await this.write(tx);
      if (tx.ops.length > 0) this.mutations++;
    } finally {
      release();
    }
    if (tx.ops.length > 0) for (const l of this.listeners) l({ dirty: tx.dirty, expiresAt: tx.expiresAt });
    return result;
  }

  /** Writes a transaction's batch (with the write lock already held). */
  async write(tx: Tx): Promise<void> {
    if (tx.ops.length === 0) return;
    // sync: an acknowledged change survives a power cut, not only a crash of this process.
    await this.level.batch(tx.ops as never, { sync: true });
    for (const op of tx.ops) {
      const m = this.cache.get(op.sublevel);
      if (!m) continue; // not a cached sublevel (the version key, migrations' old data)
      if (op.type === 'put') m.set(op.key, structuredClone(op.value));
      else m.delete(op.key);
    }
  }

  onMutation(listener: MutationListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** All `[key, value]` of a namespace in a sublevel, in key order. */
  async list<V>(sub: Sub<V>, ns: string): Promise<Array<[string, V]>> {
    const out: Array<[string, V]> = [];
    for await (const [k, v] of sub.iterator(nsRange(ns))) out.push([splitNsKey(k)[1], v]);
    return out;
  }

  async close(): Promise<void> {
    await this.level.close();
  }
}

/** `migrations[v]` moves data from schema version v to v + 1, writing into `tx`. */
export type Migrations = Record<number, (db: MetadataDB, tx: Tx) => Promise<void>>;
