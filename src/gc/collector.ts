// Garbage collection (containerd pkg/gc + core/metadata/gc.go): tri-colour mark from the roots
// along label and lease edges, sweep the metadata records nothing reached in one batch, then
// remove the backend blobs and ingests no namespace references.
//
// Unlike containerd, the mark runs without the metadata write lock (requests keep writing); the
// lock is taken for the sweep, and if anything was written during the mark, the mark is redone
// under the lock so that nothing written meanwhile can be swept.
import { errorCode } from '../errors.js';
import { withSpan } from '../telemetry.js';
import type { EventBus } from '../events/bus.js';
import { expireLabel, flatLabel, isExpired } from '../metadata/leases.js';
import {
  splitNsKey,
  Tx,
  type BlobRecord,
  type ImageRecord,
  type IngestRecord,
  type LeaseRecord,
  type MetadataDB,
  type Sub,
} from '../metadata/db.js';
import { parseTimestamp } from '../../store/timestamp.js';
import type { LocalStore } from '../../store/index.js';
import { labelBackRefs, labelRefs, rootLabel, type NodeType } from './labels.js';

export interface GcNode {
  type: NodeType;
  /** Flat nodes keep only what they name directly (containerd's gc.flat). */
  flat: boolean;
  namespace: string;
  key: string;
}

export interface GcEdge {
  node: GcNode;
  /** Why the edge exists: a label name, `target`, `lease resource`, `expected`. */
  via: string;
}

export interface GcResult {
  /** Metadata records removed, by kind. */
  removed: { leases: number; images: number; content: number; ingests: number; snapshots: number };
  /** Backend objects removed: blob files and ingest folders that no namespace references. */
  backend: { blobs: number; ingests: number };
  bytesFreed: number;
  /** The next moment something still kept expires (a lease, an image, an ingest). */
  nextExpiry?: Date;
  markMs: number;
  sweepMs: number;
  durationMs: number;
}

const nodeId = (n: GcNode): string => `${n.type}${n.flat ? '~' : ''}\u0000${n.namespace}\u0000${n.key}`;
/** Flat and normal twins are one object when it comes to sweeping. */
const objectId = (type: NodeType, namespace: string, key: string): string => `${type}\u0000${namespace}\u0000${key}`;

/** Everything the GC reads, loaded at one moment. Keys are `<ns>/<key>`. */
export interface MetadataSnapshot {
  leases: Map<string, LeaseRecord>;
  images: Map<string, ImageRecord>;
  blobs: Map<string, BlobRecord>;
  ingests: Map<string, IngestRecord>;
}

export async function loadSnapshot(db: MetadataDB): Promise<MetadataSnapshot> {
  const load = async <V>(sub: Sub<V>) => {
    const m = new Map<string, V>();
    for await (const [k, v] of sub.iterator()) m.set(k, v);
    return m;
  };
  const [leases, images, blobs, ingests] = await Promise.all([
    load<LeaseRecord>(db.leases),
    load<ImageRecord>(db.images),
    load<BlobRecord>(db.blobs),
    load<IngestRecord>(db.ingests),
  ]);
  return { leases, images, blobs, ingests };
}

/** The reference graph of one snapshot at one instant. */
export class GcGraph {
  private readonly backRefs = new Map<string, GcEdge[]>();

  constructor(
    private readonly snap: MetadataSnapshot,
    private readonly now = new Date(),
  ) {
    const back = (type: NodeType, k: string, labels: Record<string, string>) => {
      const [ns, key] = splitNsKey(k);
      for (const ref of labelBackRefs(labels)) {
        const parent = objectId(ref.type, ns, ref.key);
        const list = this.backRefs.get(parent) ?? [];
        list.push({ node: { type, flat: false, namespace: ns, key }, via: ref.label });
        this.backRefs.set(parent, list);
      }
    };
    for (const [k, r] of snap.images) back('image', k, r.labels);
    for (const [k, r] of snap.blobs) back('content', k, r.labels);
  }

  /** containerd's scanRoots: each root with the reason it is one. */
  roots(): Array<{ node: GcNode; reason: string }> {
    const out: Array<{ node: GcNode; reason: string }> = [];
    for (const [k, lease] of this.snap.leases) {
      if (isExpired(lease.labels, this.now)) continue;
      const [ns, id] = splitNsKey(k);
      const flat = lease.labels[flatLabel] !== undefined;
      const reason = `lease ${id}`;
      out.push({ node: { type: 'lease', flat: false, namespace: ns, key: id }, reason: 'lease' });
      for (const d of lease.resources.content) out.push({ node: { type: 'content', flat, namespace: ns, key: d }, reason });
      for (const r of lease.resources.ingests) out.push({ node: { type: 'ingest', flat: false, namespace: ns, key: r }, reason });
      for (const n of lease.resources.images) out.push({ node: { type: 'image', flat, namespace: ns, key: n }, reason });
      for (const [sn, keys] of Object.entries(lease.resources.snapshots)) {
        for (const key of keys) out.push({ node: { type: 'snapshot', flat, namespace: ns, key: `${sn}/${key}` }, reason });
      }
    }
    for (const [k, image] of this.snap.images) {
      if (isExpired(image.labels, this.now)) continue;
      const [ns, name] = splitNsKey(k);
      out.push({ node: { type: 'image', flat: false, namespace: ns, key: name }, reason: 'image' });
    }
    for (const [k, ingest] of this.snap.ingests) {
      if (!isFuture(ingest.expireAt, this.now)) continue;
      const [ns, ref] = splitNsKey(k);
      out.push({ node: { type: 'ingest', flat: false, namespace: ns, key: ref }, reason: `ingest written without a lease, kept until ${ingest.expireAt}` });
    }
    for (const [k, blob] of this.snap.blobs) {
      const [ns, digest] = splitNsKey(k);
      const node: GcNode = { type: 'content', flat: false, namespace: ns, key: digest };
      if (blob.labels[rootLabel] !== undefined) out.push({ node, reason: `label ${rootLabel}` });
      else if (isFuture(blob.expireAt, this.now)) out.push({ node, reason: `written without a lease, kept until ${blob.expireAt}` });
    }
    return out;
  }

  /** containerd's references: back-references first, then the node's own edges. */
  refs(node: GcNode): GcEdge[] {
    const out: GcEdge[] = [...(this.backRefs.get(objectId(node.type, node.namespace, node.key)) ?? [])];
    const k = `${node.namespace}/${node.key}`;
    const labelled = (labels: Record<string, string>) => {
      for (const ref of labelRefs(labels)) {
        out.push({ node: { type: ref.type, flat: false, namespace: node.namespace, key: ref.key }, via: ref.label });
      }
    };
    switch (node.type) {
      case 'content': {
        const blob = this.snap.blobs.get(k);
        if (blob && !node.flat) labelled(blob.labels);
        break;
      }
      case 'image': {
        const image = this.snap.images.get(k);
        if (!image) break;
        out.push({ node: { type: 'content', flat: node.flat, namespace: node.namespace, key: image.target.digest }, via: 'target' });
        if (!node.flat) labelled(image.labels);
        break;
      }
      case 'ingest': {
        const ingest = this.snap.ingests.get(k);
        if (ingest?.shared && ingest.expected) {
          out.push({ node: { type: 'content', flat: false, namespace: node.namespace, key: ingest.expected }, via: 'expected' });
        }
        break;
      }
      default:
        break;
    }
    return out;
  }

  /** Tri-colour mark (depth first); returns the reached objects (flatness stripped). */
  mark(): Set<string> {
    const seen = new Set<string>();
    const black = new Set<string>();
    const gray: GcNode[] = [];
    for (const { node } of this.roots()) {
      const id = nodeId(node);
      if (!seen.has(id)) {
        seen.add(id);
        gray.push(node);
      }
    }
    while (gray.length > 0) {
      const node = gray.pop()!;
      for (const { node: next } of this.refs(node)) {
        const id = nodeId(next);
        if (!seen.has(id)) {
          seen.add(id);
          gray.push(next);
        }
      }
      black.add(objectId(node.type, node.namespace, node.key));
    }
    return black;
  }

  /**
   * The shortest chain of references from a root to `target` (breadth first), or undefined when
   * nothing reaches it: what `gc explain` shows.
   */
  pathTo(target: (n: GcNode) => boolean): Array<{ node: GcNode; via: string }> | undefined {
    const parent = new Map<string, { from?: GcNode; via: string; node: GcNode }>();
    const queue: GcNode[] = [];
    for (const { node, reason } of this.roots()) {
      const id = nodeId(node);
      if (!parent.has(id)) {
        parent.set(id, { via: `root: ${reason}`, node });
        queue.push(node);
      }
    }
    for (let i = 0; i < queue.length; i++) {
      const node = queue[i];
      if (target(node)) {
        const path: Array<{ node: GcNode; via: string }> = [];
        for (let step = parent.get(nodeId(node)); step; step = step.from ? parent.get(nodeId(step.from)) : undefined) {
          path.unshift({ node: step.node, via: step.via });
        }
        return path;
      }
      for (const { node: next, via } of this.refs(node)) {
        const id = nodeId(next);
        if (!parent.has(id)) {
          parent.set(id, { from: node, via, node: next });
          queue.push(next);
        }
      }
    }
    return undefined;
  }
}

/** An `expireAt` that has not passed (containerd: expired iff now is after it). */
function isFuture(expireAt: string | undefined, now: Date): boolean {
  const at = expireAt ? parseTimestamp(expireAt) : undefined;
  return at !== undefined && !(now > at);
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
  return next;
}

export interface CollectorOptions {
  events?: EventBus;
  logger?: { warn(obj: object, msg: string): void };
}

export class GarbageCollector {
  constructor(
    private readonly db: MetadataDB,
    private readonly backend: LocalStore,
    private readonly opts: CollectorOptions = {},
  ) {}

  /**
   * One collection. With `dryRun` nothing is removed: the result says what would be (the mark
   * and the decision are the same, under the same lock).
   */
  async collect({ dryRun = false }: { dryRun?: boolean } = {}): Promise<GcResult> {
    return withSpan('gc.collect', { 'berth.gc.dry_run': dryRun }, async (span) => {
      const started = performance.now();
      const before = this.db.mutations;
      let snap = await loadSnapshot(this.db);
      let black = new GcGraph(snap).mark();
      let markMs = performance.now() - started;
      const release = await this.db.writeLock.acquire();
      const sweepStarted = performance.now();
      let result: GcResult;
      try {
        if (this.db.mutations !== before) {
          // Written to while we marked: mark again, now that no one can write.
          snap = await loadSnapshot(this.db);
          black = new GcGraph(snap).mark();
          markMs += performance.now() - sweepStarted;
        }
        result = await this.sweep(snap, black, dryRun);
      } finally {
        release();
      }
      result.markMs = Math.round(markMs);
      result.sweepMs = Math.round(performance.now() - sweepStarted);
      result.durationMs = Math.round(performance.now() - started);
      span.setAttributes({ 'berth.gc.bytes_freed': result.bytesFreed, 'berth.gc.duration_ms': result.durationMs });
      if (!dryRun) this.opts.events?.publish('', '/gc/run', { ...result });
      return result;
    });
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
      const path = graph.pathTo((n) => n.type === 'content' && n.namespace === ns && n.key === digest);
      namespaces.push({
        namespace: ns,
        kept: path !== undefined,
        ...(path ? { path: path.map(({ node, via }) => ({ type: node.type, flat: node.flat, key: node.key, via })) } : {}),
      });
    }
    return { digest, collectable: namespaces.every((n) => !n.kept), namespaces };
  }

  private async sweep(snap: MetadataSnapshot, black: Set<string>, dryRun: boolean): Promise<GcResult> {
    const tx = new Tx();
    const removed = { leases: 0, images: 0, content: 0, ingests: 0, snapshots: 0 };
    const deletedImages: Array<[string, string]> = [];
    const sweepKind = <V>(type: NodeType, records: Map<string, V>, sub: Sub<V>, count: keyof typeof removed) => {
      for (const k of [...records.keys()]) {
        const [ns, key] = splitNsKey(k);
        if (black.has(objectId(type, ns, key))) continue;
        tx.del(sub, k);
        records.delete(k);
        removed[count]++;
        if (type === 'image') deletedImages.push([ns, key]);
      }
    };
    sweepKind('lease', snap.leases, this.db.leases, 'leases');
    sweepKind('image', snap.images, this.db.images, 'images');
    sweepKind('ingest', snap.ingests, this.db.ingests, 'ingests');
    sweepKind('content', snap.blobs, this.db.blobs, 'content');
    if (!dryRun) {
      await this.db.write(tx);
      for (const [ns, name] of deletedImages) this.opts.events?.publish(ns, '/images/delete', { name });
    }

    // Backend: what no namespace references any more, decided under the write lock so that
    // no commit or new ingest can slip in between the decision and the removal.
    const seenDigests = new Set<string>();
    for (const k of snap.blobs.keys()) seenDigests.add(splitNsKey(k)[1]);
    const seenRefs = new Set<string>();
    for (const ingest of snap.ingests.values()) {
      seenRefs.add(ingest.bref);
      if (ingest.shared && ingest.expected) seenDigests.add(ingest.expected);
    }
    const backend = { blobs: 0, ingests: 0 };
    let bytesFreed = 0;
    const doomed: Array<{ digest: string; size: number }> = [];
    await this.backend.walk((info) => {
      if (!seenDigests.has(info.digest)) doomed.push({ digest: info.digest, size: info.size });
    });
    for (const { digest, size } of doomed) {
      if (!dryRun) await this.backend.delete(digest);
      backend.blobs++;
      bytesFreed += size;
    }
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
    return { removed, backend, bytesFreed, nextExpiry: nextExpiry(snap), markMs: 0, sweepMs: 0, durationMs: 0 };
  }
}
