// Sweeping (containerd core/metadata/gc.go: the sweep, then cleanupContent and
// cleanupSnapshots): the metadata records the mark did not reach go in one batch, then the
// backend objects no namespace references any more (blob files, ingest folders), and the
// backend snapshots no record names.
import { errorCode } from '../../store/errors.js';
import type { LocalStore } from '../../store/index.js';
import type { EventBus } from '../events/bus.js';
import { Tx, type Sub } from '../level/tx.js';
import { splitNsKey, type MetadataDB } from '../metadata/db.js';
import { expireLabel } from '../metadata/leases.js';
import { splitSnapshotKey, type SnapshotStore } from '../metadata/snapshots.js';
import { parseTimestamp } from '../oci/time.js';
import type { GcGraph, GcNode, MetadataSnapshot, RecordKind } from './graph.js';

export interface SweepResult {
  /** Metadata records removed, by kind. */
  removed: { leases: number; images: number; content: number; ingests: number; snapshots: number };
  /** Backend objects removed: blob files and ingest folders that no namespace references. */
  backend: { blobs: number; ingests: number; snapshots: number };
  bytesFreed: number;
  /** The next moment something still kept expires (a lease, an image, an ingest). */
  nextExpiry?: Date;
}

export interface SweepOptions {
  events?: EventBus;
  /** The namespaced snapshots, whose backend snapshots the GC removes when no record names them. */
  snapshots?: SnapshotStore;
  logger?: { warn(obj: object, msg: string): void };
}

/** A record the mark did not reach. */
export interface Unreached {
  kind: RecordKind;
  key: string;
  node: GcNode;
}

/** Records nothing reached (`black` from the mark), by sublevel: what the sweep deletes. */
export function unreached(graph: GcGraph, black: Uint8Array): Unreached[] {
  const out: Unreached[] = [];
  for (let id = 0; id < graph.size; id++) {
    if (black[id]) continue;
    const record = graph.record(id);
    if (record) out.push({ ...record, node: graph.node(id * 2) });
  }
  return out;
}

/** A backend snapshot: its snapshotter and its key there. */
export interface BackendSnapshot {
  snapshotter: string;
  key: string;
}

/** Told which blob records a sweep is about to delete, before it does (see GarbageCollector.beforeBlobsRemoved). */
export type BlobsRemoving = (blobs: Array<{ namespace: string; digest: string }>) => Promise<void>;

export class Sweeper {
  readonly blobsRemoving = new Set<BlobsRemoving>();

  constructor(
    private readonly db: MetadataDB,
    private readonly backend: LocalStore,
    private readonly opts: SweepOptions = {},
  ) {}

  /**
   * Deletes `doomed` from the metadata and from `snap`, then the blobs and ingests no record
   * left in `snap` references. With `dryRun` only counts. Runs under the metadata write lock.
   * The next expiry it reports is the first at or after `now` (the collection's moment).
   */
  async sweep(snap: MetadataSnapshot, doomed: Unreached[], dryRun: boolean, now = new Date()): Promise<SweepResult> {
    const { removed, sizes } = await this.removeRecords(snap, doomed, dryRun);
    const { backend, bytesFreed } = await this.removeUnreferenced(snap, sizes, dryRun);
    return { removed, backend, bytesFreed, nextExpiry: nextExpiry(snap, now) };
  }

  /** Deletes the records in one batch; returns their counts and the sizes of the blobs among them. */
  private async removeRecords(
    snap: MetadataSnapshot,
    doomed: Unreached[],
    dryRun: boolean,
  ): Promise<{ removed: SweepResult['removed']; sizes: Map<string, number> }> {
    const tx = new Tx();
    const removed = { leases: 0, images: 0, content: 0, ingests: 0, snapshots: 0 };
    const count: Record<RecordKind, keyof typeof removed> = {
      leases: 'leases',
      images: 'images',
      blobs: 'content',
      ingests: 'ingests',
      snapshots: 'snapshots',
    };
    // Sizes of what goes, from the records (no stat per blob): for bytesFreed.
    const sizes = new Map<string, number>();
    for (const { kind, key, node } of doomed) {
      if (kind === 'blobs') sizes.set(node.key, snap.blobs.get(key)!.size);
      tx.del(this.db[kind] as Sub<unknown>, key);
      (snap[kind] as Map<string, unknown>).delete(key);
      removed[count[kind]]++;
    }
    // A kept parent of a swept snapshot forgets that child (or it could never be removed).
    for (const { kind, key } of doomed) {
      if (kind !== 'snapshots') continue;
      const { namespace, snapshotter, key: child } = splitSnapshotKey(key);
      const parent = this.db.cached(this.db.snapshots).get(key)?.parent;
      const pk = parent && `${namespace}/${snapshotter}/${parent}`;
      const p = pk ? snap.snapshots.get(pk) : undefined;
      if (!pk || !p) continue;
      const next = { ...p, children: p.children.filter((c) => c !== child) };
      snap.snapshots.set(pk, next);
      tx.put(this.db.snapshots, pk, next);
    }
    if (!dryRun) {
      const blobs = doomed.filter((d) => d.kind === 'blobs').map((d) => ({ namespace: d.node.namespace, digest: d.node.key }));
      if (blobs.length > 0) for (const fn of this.blobsRemoving) await fn(blobs);
      await this.db.write(tx);
      for (const { kind, node } of doomed) {
        if (kind === 'images') this.opts.events?.publish(node.namespace, '/images/delete', { name: node.key });
        if (kind === 'snapshots') {
          const { snapshotter, key } = splitSnapshotKey(`${node.namespace}/${node.key}`);
          this.opts.events?.publish(node.namespace, '/snapshot/remove', { key, snapshotter });
        }
      }
    }
    return { removed, sizes };
  }

  /**
   * Removes the blob files and ingest folders that no namespace references any more, decided
   * under the write lock so that no commit or new ingest can slip in between the decision and
   * the removal. `sizes` (of swept blobs) is completed with what it lacks.
   */
  private async removeUnreferenced(
    snap: MetadataSnapshot,
    sizes: Map<string, number>,
    dryRun: boolean,
  ): Promise<{ backend: SweepResult['backend']; bytesFreed: number }> {
    const seenDigests = new Set<string>();
    for (const k of snap.blobs.keys()) seenDigests.add(splitNsKey(k)[1]);
    const seenRefs = new Set<string>();
    for (const ingest of snap.ingests.values()) {
      seenRefs.add(ingest.bref);
      // A live ingest keeps the blob it expects: adopted (shared), or its own bytes renamed into
      // blobs/ by a commit that a crash stopped before its record was written — the next writer
      // of the ref adopts them instead of fetching the whole blob again.
      if (ingest.expected) seenDigests.add(ingest.expected);
    }
    const backend = { blobs: 0, ingests: 0, snapshots: 0 };
    let bytesFreed = 0;
    const unreferenced = (await this.backend.digests()).filter((d) => !seenDigests.has(d));
    for (const digest of unreferenced) {
      // A blob no record described (left by a crash, or by another tool): ask the disk.
      if (!sizes.has(digest)) sizes.set(digest, await this.backend.info(digest).then((i) => i.size, () => 0));
    }
    const gone = dryRun ? unreferenced : await this.backend.deleteMany(unreferenced);
    backend.blobs = gone.length;
    for (const digest of gone) bytesFreed += sizes.get(digest) ?? 0;
    for (const status of await this.backend.listStatuses()) {
      if (seenRefs.has(status.ref)) continue;
      try {
        if (!dryRun) await this.backend.abort(status.ref);
        backend.ingests++;
        bytesFreed += status.offset;
      } catch (err) {
        // A writer still holds it (its record expired under it): leave it to that writer.
        if (errorCode(err) !== 'unavailable') throw err;
        this.opts.logger?.warn({ ref: status.ref }, 'gc: ingest in use, not removed');
      }
    }
    return { backend, bytesFreed };
  }

  /**
   * Backend snapshots no record names (what the sweep removed, or a crash left), children
   * before parents; snapshots being made right now are not orphans.
   */
  async orphanSnapshots(snap: MetadataSnapshot): Promise<BackendSnapshot[]> {
    const store = this.opts.snapshots;
    if (!store) return [];
    const named = new Set<string>();
    for (const [k, r] of snap.snapshots) named.add(`${splitSnapshotKey(k).snapshotter}/${r.name}`);
    const out: Array<BackendSnapshot & { depth: number }> = [];
    for (const [sn, backend] of store.backends) {
      const parents = new Map<string, string | undefined>();
      try {
        await backend.walk((info) => {
          parents.set(info.name, info.parent);
        });
      } catch (err) {
        // One snapshotter out of reach (a proxy) must not stop the others' clean-up.
        this.opts.logger?.warn({ snapshotter: sn, err: (err as Error).message }, 'gc: snapshots not listed');
        continue;
      }
      const depth = (key: string): number => {
        let d = 0;
        for (let p = parents.get(key); p !== undefined && d < parents.size; p = parents.get(p)) d++;
        return d;
      };
      for (const key of parents.keys()) {
        if (!named.has(`${sn}/${key}`) && !store.inFlight(sn, key)) out.push({ snapshotter: sn, key, depth: depth(key) });
      }
    }
    return out.sort((a, b) => b.depth - a.depth).map(({ snapshotter, key }) => ({ snapshotter, key }));
  }

  /** Removes backend snapshots (deepest first); returns how many went. */
  async removeSnapshots(orphans: BackendSnapshot[]): Promise<number> {
    let n = 0;
    for (const { snapshotter, key } of orphans) {
      try {
        await this.opts.snapshots!.backend(snapshotter).remove(key);
        n++;
      } catch (err) {
        // Removed meanwhile by the namespace that deleted its record: nothing to do.
        if (errorCode(err) === 'not_found') continue;
        // What fails here (a busy mount) is retried by the next collection.
        this.opts.logger?.warn({ snapshotter, key, err: (err as Error).message }, 'gc: snapshot not removed');
      }
    }
    return n;
  }
}

/** The earliest future expiry among what is left. */
function nextExpiry(snap: MetadataSnapshot, now = new Date()): Date | undefined {
  let next: Date | undefined;
  const consider = (value: string | undefined) => {
    const at = value ? parseTimestamp(value) : undefined;
    if (at && at >= now && (!next || at < next)) next = at;
  };
  for (const lease of snap.leases.values()) consider(lease.labels[expireLabel]);
  for (const image of snap.images.values()) consider(image.labels[expireLabel]);
  for (const ingest of snap.ingests.values()) consider(ingest.expireAt);
  for (const blob of snap.blobs.values()) consider(blob.expireAt);
  for (const snapshot of snap.snapshots.values()) consider(snapshot.expireAt);
  return next;
}
