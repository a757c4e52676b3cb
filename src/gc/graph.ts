// The reference graph the GC walks (containerd core/metadata/gc.go: scanRoots, references):
// every metadata record is a node; its edges come from its target, parent, lease resources and
// containerd.io/gc.ref.* / gc.bref.* labels; roots are what is kept for its own sake (images,
// containers, leases, gc.root, not yet expired writes). This is the one place the rules of
// reference §4.3–4.4 live.
//
// A node is a number; a vertex is a node in one of its two variants, `id * 2 + flat`: the flat
// variant (reached through a gc.flat lease) keeps only what it names directly.
import { flatLabel, isExpired } from '../metadata/leases.js';
import {
  splitNsKey,
  type BlobRecord,
  type ContainerRecord,
  type ImageRecord,
  type IngestRecord,
  type LeaseRecord,
  type MetadataDB,
  type SnapshotRecord,
} from '../metadata/db.js';
import { splitSnapshotKey } from '../metadata/snapshots.js';
import { parseTimestamp } from '../oci/time.js';
import { labelBackRefs, labelRefs, rootLabel, type NodeType } from './labels.js';
import { markedObjects } from './mark.js';

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
export type RecordKind = 'leases' | 'images' | 'blobs' | 'ingests' | 'snapshots';

/**
 * The reference graph of one snapshot at one instant, indexed: every object gets a number and
 * its edges are lists of vertices, so that marking walks typed arrays. `roots()`, `refs()` and
 * `mark()` read the same index for tests.
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
  private readonly rootList: Array<{ vertex: number; reason: string }> = [];

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
      (list[from] ??= []).push(vertex(to, flat));
      (vias[from] ??= []).push(via);
    };
    const labelled = (from: number, ns: string, labels: Record<string, string>, backRefs = true) => {
      for (const ref of labelRefs(labels)) own(from, this.intern(ref.type, `${ns}/${ref.key}`), false, ref.label, 'normal');
      if (!backRefs) return;
      for (const ref of labelBackRefs(labels)) back.push([this.intern(ref.type, `${ns}/${ref.key}`), from, ref.label]);
    };
    const root = (id: number, reason: string, flat = false) => this.rootList.push({ vertex: vertex(id, flat), reason });

    for (const [k, lease] of snap.leases) {
      if (++done % slice === 0) yield;
      const node = this.intern('lease', k, 'leases');
      if (isExpired(lease.labels, now)) continue;
      const ns = splitNsKey(k)[0];
      const flat = lease.labels[flatLabel] !== undefined;
      const reason = `lease ${splitNsKey(k)[1]}`;
      root(node, 'lease');
      const add = (type: NodeType, key: string, f: boolean) => root(this.intern(type, `${ns}/${key}`), reason, f);
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
      if (!expired) root(node, 'image');
    }
    for (const [k, ingest] of snap.ingests) {
      if (++done % slice === 0) yield;
      const node = this.intern('ingest', k, 'ingests');
      if (ingest.shared && ingest.expected) {
        own(node, this.intern('content', `${splitNsKey(k)[0]}/${ingest.expected}`), false, 'expected', 'normal');
      }
      if (isFuture(ingest.expireAt, now)) root(node, `ingest written without a lease, kept until ${ingest.expireAt}`);
    }
    for (const [k, container] of snap.containers) {
      if (++done % slice === 0) yield;
      const node = this.intern('container', k);
      const ns = splitNsKey(k)[0];
      root(node, 'container');
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
      if (snapshot.labels[rootLabel] !== undefined) root(node, `label ${rootLabel}`);
      else if (isFuture(snapshot.expireAt, now)) root(node, `made without a lease, kept until ${snapshot.expireAt}`);
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
      if (labels[rootLabel] !== undefined) root(node, `label ${rootLabel}`);
      else if (blob.expireAt !== undefined && isFuture(blob.expireAt, now)) {
        root(node, `written without a lease, kept until ${blob.expireAt}`);
      }
    }
    // Back-references come first among a parent's edges, as containerd emits them.
    const backTo: number[][] = [];
    const backVia: string[][] = [];
    for (const [parent, child, via] of back) {
      (backTo[parent] ??= []).push(vertex(child, false));
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

  /** How many nodes there are (numbered from 0). */
  get size(): number {
    return this.types.length;
  }

  /** The node a vertex stands for. */
  node(v: number): GcNode {
    const id = v >> 1;
    const [namespace, key] = splitNsKey(this.keys[id]);
    return { type: this.types[id], flat: (v & 1) === 1, namespace, key };
  }

  /** The sublevel and key of node `id`'s record; undefined for a node only named, not stored. */
  record(id: number): { kind: RecordKind; key: string } | undefined {
    const kind = this.records[id];
    return kind && { kind, key: this.keys[id] };
  }

  /** A vertex's edges: the vertices it reaches and why, index for index. */
  edgesOf(v: number): { to: readonly number[]; via: readonly string[] } {
    const id = v >> 1;
    return v & 1
      ? { to: this.flatEdges[id] ?? [], via: this.flatVia[id] ?? [] }
      : { to: this.edges[id] ?? [], via: this.edgeVia[id] ?? [] };
  }

  /** The roots as vertices, each with the reason it is one. */
  rootVertices(): ReadonlyArray<{ vertex: number; reason: string }> {
    return this.rootList;
  }

  /** containerd's scanRoots: each root with the reason it is one. */
  roots(): Array<{ node: GcNode; reason: string }> {
    return this.rootList.map((r) => ({ node: this.node(r.vertex), reason: r.reason }));
  }

  /** containerd's references: back-references first, then the node's own edges. */
  refs(node: GcNode): GcEdge[] {
    const id = this.ids.get(node.type)?.get(`${node.namespace}/${node.key}`);
    if (id === undefined) return [];
    const { to, via } = this.edgesOf(vertex(id, node.flat));
    return to.map((t, i) => ({ node: this.node(t), via: via[i] }));
  }

  /** The reached objects as `type\0namespace\0key` (flatness stripped), as tests compare them. */
  mark(): Set<string> {
    return markedObjects(this);
  }
}

/** Node `id` in its normal or flat variant. */
function vertex(id: number, flat: boolean): number {
  return id * 2 + (flat ? 1 : 0);
}

/** An `expireAt` that has not passed (containerd: expired iff now is after it). */
function isFuture(expireAt: string | undefined, now: Date): boolean {
  const at = expireAt ? parseTimestamp(expireAt) : undefined;
  return at !== undefined && !(now > at);
}
