// Garbage collection (containerd pkg/gc + core/metadata/gc.go): tri-colour mark from the roots
// along label and lease edges, sweep the metadata records nothing reached in one batch, then
// remove the backend blobs and ingests no namespace references.
//
// Unlike containerd, the mark runs without the metadata write lock (requests keep writing); the
// lock is taken for the sweep, and if anything was written during the mark, the mark is redone
// under the lock so that nothing written meanwhile can be swept.
import { errorCode } from '../../store/errors.js';
import { withSpan } from '../../store/telemetry.js';
import type { EventBus } from '../events/bus.js';
import { expireLabel, flatLabel, isExpired } from '../metadata/leases.js';
import {
  splitNsKey,
  Tx,
  type BlobRecord,
  type ContainerRecord,
  type ImageRecord,
  type IngestRecord,
  type LeaseRecord,
  type MetadataDB,
  type SnapshotRecord,
  type Sub,
} from '../metadata/db.js';
import { splitSnapshotKey, type SnapshotStore } from '../metadata/snapshots.js';
import { formatTimestamp, parseTimestamp } from '../oci/time.js';
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
  backend: { blobs: number; ingests: number; snapshots: number };
  bytesFreed: number;
  /** The next moment something still kept expires (a lease, an image, an ingest). */
  nextExpiry?: Date;
  markMs: number;
  sweepMs: number;
  durationMs: number;
}

/** Flat and normal twins are one object when it comes to sweeping. */
const objectId = (type: NodeType, namespace: string, key: string): string => `${type}\u0000${namespace}\u0000${key}`;

/** Everything the GC reads, loaded at one moment. Keys are `<ns>/<key>`. */
export interface MetadataSnapshot {
  leases: Map<string, LeaseRecord>;
  images: Map<string, ImageRecord>;
  blobs: Map<string, BlobRecord>;
  ingests: Map<string, IngestRecord>;
  /** `<ns>/<snapshotter>/<key>` → record. */
  snapshots: Map<string, SnapshotRecord>;
  /** Always roots; never collected. */
  containers: Map<string, ContainerRecord>;
}

/** The records as they are now (copies of the maps; the records themselves are not to be changed). */
export async function loadSnapshot(db: MetadataDB): Promise<MetadataSnapshot> {
  return {
    leases: new Map(db.cached(db.leases)),
    images: new Map(db.cached(db.images)),
    blobs: new Map(db.cached(db.blobs)),
    ingests: new Map(db.cached(db.ingests)),
    snapshots: new Map(db.cached(db.snapshots)),
    containers: new Map(db.cached(db.containers)),
  };
}

/** Which sublevel a node's record lives in, for the sweep. */
type RecordKind = 'leases' | 'images' | 'blobs' | 'ingests' | 'snapshots';

/**
 * The reference graph of one snapshot at one instant, indexed: every object gets a number, its
 * edges are lists of numbers (`id * 2 + flat`), and marking walks typed arrays. This is the one
 * place the rules of reference §4.3–4.4 live; `roots()`, `refs()` and `pathTo()` read the same
 * index for tests and `gc explain`.
 */
export class GcGraph {
  /** Per node: its type and `<ns>/<key>` (the record's key in its sublevel). */
  private readonly types: NodeType[] = [];
  private readonly keys: string[] = [];
  /** Per type: `<ns>/<key>` → node number. */
  private readonly ids = new Map<NodeType, Map<string, number>>();
  /** Edges of the normal variant, back-references first (containerd's order). */
  private readonly edges: number[][] = [];
  private readonly edgeVia: string[][] = [];
  /** Edges of the flat variant (gc.flat leases): only what is named directly. */
  private readonly flatEdges: number[][] = [];
  private readonly flatVia: string[][] = [];
  /** The sublevel of the record behind a node, if any: what the sweep deletes. */
  private readonly records: Array<RecordKind | undefined> = [];
  private readonly rootList: Array<{ id: number; flat: boolean; reason: string }> = [];

  /** Indexes `snap` at once (tests, `gc explain`); the collector uses `build`, which yields. */
  constructor(snap?: MetadataSnapshot, now = new Date()) {
    if (!snap) return;
    for (const _ of this.index(snap, now)) {
      // all at once
    }
  }

  /** Indexes `snap` a slice at a time, letting requests run in between. */
  static async build(snap: MetadataSnapshot, now = new Date()): Promise<GcGraph> {
    const graph = new GcGraph();
    for (const _ of graph.index(snap, now)) await new Promise((resolve) => setImmediate(resolve));
    return graph;
  }

  /** Adds every record of `snap`; yields every few thousand records. */
  private *index(snap: MetadataSnapshot, now: Date): Generator<void> {
    const slice = 4096;
    let done = 0;
    const back: Array<[number, number, string]> = [];
    const own = (from: number, to: number, flat: boolean, via: string, variant: 'normal' | 'flat') => {
      const list = variant === 'flat' ? this.flatEdges : this.edges;
      const vias = variant === 'flat' ? this.flatVia : this.edgeVia;
      (list[from] ??= []).push(to * 2 + (flat ? 1 : 0));
      (vias[from] ??= []).push(via);
    };
    const labelled = (from: number, ns: string, labels: Record<string, string>, backRefs = true) => {
      for (const ref of labelRefs(labels)) own(from, this.intern(ref.type, `${ns}/${ref.key}`), false, ref.label, 'normal');
      if (!backRefs) return;
      for (const ref of labelBackRefs(labels)) back.push([this.intern(ref.type, `${ns}/${ref.key}`), from, ref.label]);
    };

    for (const [k, lease] of snap.leases) {
      if (++done % slice === 0) yield;
      const node = this.intern('lease', k, 'leases');
      if (isExpired(lease.labels, now)) continue;
      const ns = splitNsKey(k)[0];
      const flat = lease.labels[flatLabel] !== undefined;
      const reason = `lease ${splitNsKey(k)[1]}`;
      this.rootList.push({ id: node, flat: false, reason: 'lease' });
      const add = (type: NodeType, key: string, f: boolean) => this.rootList.push({ id: this.intern(type, `${ns}/${key}`), flat: f, reason });
      for (const d of lease.resources.content) add('content', d, flat);
      for (const r of lease.resources.ingests) add('ingest', r, false);
      for (const n of lease.resources.images) add('image', n, flat);
      for (const [sn, keys] of Object.entries(lease.resources.snapshots)) for (const key of keys) add('snapshot', `${sn}/${key}`, flat);
    }
    for (const [k, image] of snap.images) {
      if (++done % slice === 0) yield;
      const ns = splitNsKey(k)[0];
      const node = this.intern('image', k, 'images');
      const target = this.intern('content', `${ns}/${image.target.digest}`);
      own(node, target, false, 'target', 'normal');
      own(node, target, true, 'target', 'flat');
      // containerd registers an image's back-references only once it has expired: until then
      // it is a root and they change nothing.
      const expired = isExpired(image.labels, now);
      labelled(node, ns, image.labels, expired);
      if (!expired) this.rootList.push({ id: node, flat: false, reason: 'image' });
    }
    for (const [k, ingest] of snap.ingests) {
      if (++done % slice === 0) yield;
      const node = this.intern('ingest', k, 'ingests');
      if (ingest.shared && ingest.expected) {
        own(node, this.intern('content', `${splitNsKey(k)[0]}/${ingest.expected}`), false, 'expected', 'normal');
      }
      if (isFuture(ingest.expireAt, now)) {
        this.rootList.push({ id: node, flat: false, reason: `ingest written without a lease, kept until ${ingest.expireAt}` });
      }
    }
    for (const [k, container] of snap.containers) {
      if (++done % slice === 0) yield;
      const node = this.intern('container', k);
      const ns = splitNsKey(k)[0];
      this.rootList.push({ id: node, flat: false, reason: 'container' });
      if (container.snapshotter && container.snapshotKey) {
        own(node, this.intern('snapshot', `${ns}/${container.snapshotter}/${container.snapshotKey}`), false, 'root file system', 'normal');
      }
      labelled(node, ns, container.labels);
    }
    for (const [k, snapshot] of snap.snapshots) {
      if (++done % slice === 0) yield;
      const node = this.intern('snapshot', k, 'snapshots');
      const { namespace: ns, snapshotter } = splitSnapshotKey(k);
      // A snapshot needs its parent (containerd: snapshot → parent edge).
      if (snapshot.parent) own(node, this.intern('snapshot', `${ns}/${snapshotter}/${snapshot.parent}`), false, 'parent', 'normal');
      labelled(node, ns, snapshot.labels);
      if (snapshot.labels[rootLabel] !== undefined) this.rootList.push({ id: node, flat: false, reason: `label ${rootLabel}` });
      else if (isFuture(snapshot.expireAt, now)) {
        this.rootList.push({ id: node, flat: false, reason: `made without a lease, kept until ${snapshot.expireAt}` });
      }
    }
    for (const [k, blob] of snap.blobs) {
      if (++done % slice === 0) yield;
      const node = this.intern('content', k, 'blobs');
      const labels = blob.labels;
      // Most blobs (layers) carry no labels: skip the parse.
      for (const _ in labels) {
        labelled(node, splitNsKey(k)[0], labels);
        break;
      }
      if (labels[rootLabel] !== undefined) this.rootList.push({ id: node, flat: false, reason: `label ${rootLabel}` });
      else if (blob.expireAt !== undefined && isFuture(blob.expireAt, now)) {
        this.rootList.push({ id: node, flat: false, reason: `written without a lease, kept until ${blob.expireAt}` });
      }
    }
    // Back-references come first among a parent's edges, as containerd emits them.
    const backTo: number[][] = [];
    const backVia: string[][] = [];
    for (const [parent, child, via] of back) {
      (backTo[parent] ??= []).push(child * 2);
      (backVia[parent] ??= []).push(via);
    }
    for (let id = 0; id < backTo.length; id++) {
      if (!backTo[id]) continue;
      this.edges[id] = [...backTo[id], ...(this.edges[id] ?? [])];
      this.edgeVia[id] = [...backVia[id], ...(this.edgeVia[id] ?? [])];
    }
  }

  /** The number of the node `type` at `<ns>/<key>`, creating it; `kind` when it has a record. */
  private intern(type: NodeType, nsKey: string, kind?: RecordKind): number {
    let byKey = this.ids.get(type);
    if (!byKey) this.ids.set(type, (byKey = new Map()));
    let id = byKey.get(nsKey);
    if (id === undefined) {
      id = this.types.length;
      byKey.set(nsKey, id);
      this.types.push(type);
      this.keys.push(nsKey);
      this.records.push(kind);
    } else if (kind) {
      this.records[id] = kind;
    }
    return id;
  }

  private node(encoded: number): GcNode {
    const id = encoded >> 1;
    const [namespace, key] = splitNsKey(this.keys[id]);
    return { type: this.types[id], flat: (encoded & 1) === 1, namespace, key };
  }

  private out(encoded: number): { to: number[]; via: string[] } {
    const id = encoded >> 1;
    return encoded & 1
      ? { to: this.flatEdges[id] ?? [], via: this.flatVia[id] ?? [] }
      : { to: this.edges[id] ?? [], via: this.edgeVia[id] ?? [] };
  }

  /** containerd's scanRoots: each root with the reason it is one. */
  roots(): Array<{ node: GcNode; reason: string }> {
    return this.rootList.map((r) => ({ node: this.node(r.id * 2 + (r.flat ? 1 : 0)), reason: r.reason }));
  }

  /** containerd's references: back-references first, then the node's own edges. */
  refs(node: GcNode): GcEdge[] {
    const id = this.ids.get(node.type)?.get(`${node.namespace}/${node.key}`);
    if (id === undefined) return [];
    const { to, via } = this.out(id * 2 + (node.flat ? 1 : 0));
    return to.map((t, i) => ({ node: this.node(t), via: via[i] }));
  }

  /** Tri-colour mark (depth first) over the index; `black[id]` is 1 for every reached object. */
  markIds(): Uint8Array {
    const seen = new Uint8Array(this.types.length * 2);
    const black = new Uint8Array(this.types.length);
    const gray: number[] = [];
    for (const r of this.rootList) {
      const e = r.id * 2 + (r.flat ? 1 : 0);
      if (!seen[e]) {
        seen[e] = 1;
        gray.push(e);
      }
    }
    while (gray.length > 0) {
      const e = gray.pop()!;
      for (const next of this.out(e).to) {
        if (!seen[next]) {
          seen[next] = 1;
          gray.push(next);
        }
      }
      black[e >> 1] = 1;
    }
    return black;
  }

  /** The reached objects as `type\0namespace\0key` (flatness stripped). */
  mark(): Set<string> {
    const black = this.markIds();
    const out = new Set<string>();
    black.forEach((b, id) => {
      if (!b) return;
      const [ns, key] = splitNsKey(this.keys[id]);
      out.add(objectId(this.types[id], ns, key));
    });
    return out;
  }

  /** Records nothing reached, by sublevel: what the sweep deletes. */
  unreached(black: Uint8Array): Array<{ kind: RecordKind; key: string; node: GcNode }> {
    const out: Array<{ kind: RecordKind; key: string; node: GcNode }> = [];
    this.records.forEach((kind, id) => {
      if (kind && !black[id]) out.push({ kind, key: this.keys[id], node: this.node(id * 2) });
    });
    return out;
  }

  /**
   * The shortest chain of references from a root to `target` (breadth first), or undefined when
   * nothing reaches it: what `gc explain` shows.
   */
  pathTo(target: (n: GcNode) => boolean): Array<{ node: GcNode; via: string }> | undefined {
    const parent = new Map<number, { from?: number; via: string }>();
    const queue: number[] = [];
    for (const r of this.rootList) {
      const e = r.id * 2 + (r.flat ? 1 : 0);
      if (!parent.has(e)) {
        parent.set(e, { via: `root: ${r.reason}` });
        queue.push(e);
      }
    }
    for (let i = 0; i < queue.length; i++) {
      const e = queue[i];
      if (target(this.node(e))) {
        const path: Array<{ node: GcNode; via: string }> = [];
        for (let at: number | undefined = e; at !== undefined; at = parent.get(at)!.from) {
          path.unshift({ node: this.node(at), via: parent.get(at)!.via });
        }
        return path;
      }
      const { to, via } = this.out(e);
      to.forEach((next, j) => {
        if (!parent.has(next)) {
          parent.set(next, { from: e, via: via[j] });
          queue.push(next);
        }
      });
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
  for (const snapshot of snap.snapshots.values()) consider(snapshot.expireAt);
  return next;
}

export interface CollectorOptions {
  events?: EventBus;
  /** The namespaced snapshots, whose backend snapshots the GC removes when no record names them. */
  snapshots?: SnapshotStore;
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
      let graph = await GcGraph.build(snap);
      let black = graph.markIds();
      let markMs = performance.now() - started;
      const release = await this.db.writeLock.acquire();
      const sweepStarted = performance.now();
      let result: GcResult;
      let orphans: Array<{ snapshotter: string; key: string }> = [];
      try {
        if (this.db.mutations !== before) {
          // Written to while we marked: mark again, now that no one can write.
          snap = await loadSnapshot(this.db);
          graph = new GcGraph(snap); // under the lock: at once
          black = graph.markIds();
          markMs += performance.now() - sweepStarted;
        }
        result = await this.sweep(snap, graph.unreached(black), dryRun);
        orphans = await this.orphanSnapshots(snap);
      } finally {
        release();
      }
      // Removing file systems takes long; no record names these any more and none can again
      // (backend keys are never reused), so it happens after the lock is released.
      result.backend.snapshots = dryRun ? orphans.length : await this.removeSnapshots(orphans);
      result.markMs = Math.round(markMs);
      result.sweepMs = Math.round(performance.now() - sweepStarted);
      result.durationMs = Math.round(performance.now() - started);
      span.setAttributes({ 'berth.gc.bytes_freed': result.bytesFreed, 'berth.gc.duration_ms': result.durationMs });
      if (!dryRun) {
        const { nextExpiry, ...rest } = result;
        this.opts.events?.publish('', '/gc/run', { ...rest, ...(nextExpiry ? { nextExpiry: formatTimestamp(nextExpiry) } : {}) });
      }
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

  /**
   * Backend snapshots no record names (what the sweep removed, or a crash left), children
   * before parents; snapshots being made right now are not orphans.
   */
  private async orphanSnapshots(snap: MetadataSnapshot): Promise<Array<{ snapshotter: string; key: string }>> {
    const store = this.opts.snapshots;
    if (!store) return [];
    const named = new Set<string>();
    for (const [k, r] of snap.snapshots) named.add(`${splitSnapshotKey(k).snapshotter}/${r.name}`);
    const out: Array<{ snapshotter: string; key: string; depth: number }> = [];
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
  private async removeSnapshots(orphans: Array<{ snapshotter: string; key: string }>): Promise<number> {
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

  private async sweep(
    snap: MetadataSnapshot,
    doomed: Array<{ kind: RecordKind; key: string; node: GcNode }>,
    dryRun: boolean,
  ): Promise<GcResult> {
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
      await this.db.write(tx);
      for (const { kind, node } of doomed) {
        if (kind === 'images') this.opts.events?.publish(node.namespace, '/images/delete', { name: node.key });
        if (kind === 'snapshots') {
          const { snapshotter, key } = splitSnapshotKey(`${node.namespace}/${node.key}`);
          this.opts.events?.publish(node.namespace, '/snapshot/remove', { key, snapshotter });
        }
      }
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
    return { removed, backend, bytesFreed, nextExpiry: nextExpiry(snap), markMs: 0, sweepMs: 0, durationMs: 0 };
  }
}
