// Garbage collection (containerd pkg/gc + core/metadata/gc.go): index the metadata into the
// reference graph (graph.ts), mark from the roots (mark.ts), sweep the metadata records nothing
// reached in one batch, then the backend blobs, ingests and snapshots nothing references
// (sweep.ts). This file holds the order of those steps and the locking around them.
//
// Unlike containerd, the mark runs without the metadata write lock (requests keep writing); the
// lock is taken for the sweep, and if anything was written during the mark, the mark is redone
// under the lock so that nothing written meanwhile can be swept.
import type { LocalStore } from '../../store/index.js';
import { withSpan } from '../../store/telemetry.js';
import { splitNsKey, type MetadataDB } from '../metadata/db.js';
import { formatTimestamp } from '../oci/time.js';
import { GcGraph, loadSnapshot } from './graph.js';
import type { NodeType } from './labels.js';
import { markIds, pathTo } from './mark.js';
import { Sweeper, unreached, type BackendSnapshot, type BlobsRemoving, type SweepOptions, type SweepResult } from './sweep.js';

// The graph as the collector reads it, for tests that check its roots, edges and mark.

export interface GcResult extends SweepResult {
  markMs: number;
  sweepMs: number;
  durationMs: number;
}

export class GarbageCollector {
  private readonly sweeper: Sweeper;

  constructor(
    private readonly db: MetadataDB,
    backend: LocalStore,
    /** What the sweep reaches besides the records and blobs; `events` also hears `/gc/run`. */
    private readonly opts: SweepOptions = {},
  ) {
    this.sweeper = new Sweeper(db, backend, opts);
  }

  /**
   * One collection. With `dryRun` nothing is removed: the result says what would be (the mark
   * and the decision are the same, under the same lock). `now` is the moment expiries are
   * judged at: the scheduler's clock (real time unless a test moves it).
   */
  async collect({ dryRun = false, now = new Date() }: { dryRun?: boolean; now?: Date } = {}): Promise<GcResult> {
    return withSpan('gc.collect', { 'berth.gc.dry_run': dryRun }, async (span) => {
      const started = performance.now();
      const before = this.db.mutations;
      let snap = await loadSnapshot(this.db);
      let graph = await GcGraph.build(snap, now);
      let black = markIds(graph);
      let markMs = performance.now() - started;
      const release = await this.db.writeLock.acquire();
      const sweepStarted = performance.now();
      let swept: SweepResult;
      let orphans: BackendSnapshot[] = [];
      try {
        if (this.db.mutations !== before) {
          // Written to while we marked: mark again, now that no one can write.
          snap = await loadSnapshot(this.db);
          graph = new GcGraph(snap, now); // under the lock: at once
          black = markIds(graph);
          markMs += performance.now() - sweepStarted;
        }
        swept = await this.sweeper.sweep(snap, unreached(graph, black), dryRun, now);
        orphans = await this.sweeper.orphanSnapshots(snap);
      } finally {
        release();
      }
      // Removing file systems takes long; no record names these any more and none can again
      // (backend keys are never reused), so it happens after the lock is released.
      swept.backend.snapshots = dryRun ? orphans.length : await this.sweeper.removeSnapshots(orphans);
      const sweepMs = Math.round(performance.now() - sweepStarted);
      const result: GcResult = { ...swept, markMs: Math.round(markMs), sweepMs, durationMs: Math.round(performance.now() - started) };
      span.setAttributes({ 'berth.gc.bytes_freed': result.bytesFreed, 'berth.gc.duration_ms': result.durationMs });
      if (!dryRun) {
        const { nextExpiry, ...rest } = result;
        this.opts.events?.publish('', '/gc/run', { ...rest, ...(nextExpiry ? { nextExpiry: formatTimestamp(nextExpiry) } : {}) });
      }
      return result;
    });
  }

  /**
   * Calls `fn` with the blob records each collection is about to delete, before it deletes them
   * (under the metadata write lock: keep it short). The fleet withdraws its advertisements there,
   * so that no peer is sent for a blob that is going. Returns the function that stops it.
   */
  beforeBlobsRemoved(fn: BlobsRemoving): () => void {
    this.sweeper.blobsRemoving.add(fn);
    return () => this.sweeper.blobsRemoving.delete(fn);
  }

  /** Explains why `digest` is kept (a path from a root in each namespace that has it) or not. */
  async explain(digest: string): Promise<{
    digest: string;
    collectable: boolean;
    namespaces: Array<{ namespace: string; kept: boolean; path?: Array<{ type: NodeType; flat: boolean; key: string; via: string }> }>;
  }> {
    const snap = await loadSnapshot(this.db);
    const graph = new GcGraph(snap);
    const namespaces: Array<{ namespace: string; kept: boolean; path?: Array<{ type: NodeType; flat: boolean; key: string; via: string }> }> = [];
    for (const k of snap.blobs.keys()) {
      const [ns, d] = splitNsKey(k);
      if (d !== digest) continue;
      const path = pathTo(graph, (n) => n.type === 'content' && n.namespace === ns && n.key === digest);
      namespaces.push({
        namespace: ns,
        kept: path !== undefined,
        ...(path ? { path: path.map(({ node, via }) => ({ type: node.type, flat: node.flat, key: node.key, via })) } : {}),
      });
    }
    return { digest, collectable: namespaces.every((n) => !n.kept), namespaces };
  }
}
