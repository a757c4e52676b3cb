// The metastore both backend snapshotters share (containerd core/snapshots/storage): which
// snapshots exist, their kinds, parents, labels, times, the usage recorded at commit, and the
// numeric id that names each one's folder. One LevelDB per snapshotter root; a transaction
// holds the write lock, reads its own writes, and is written as one synced batch only when its
// function returns — so a backend does its folder work inside and a throw leaves no trace.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Level } from 'level';
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from '../../store/errors.js';
import { objectAdaptor, parseFilters } from '../../store/filters/index.js';
import { Tx, type Sub } from '../level/tx.js';
import { Mutex } from '../level/mutex.js';
import { applyLabelPaths, type Labels, withoutEmpty } from '../oci/labels.js';
import type { Kind, SnapshotInfo, SnapshotOptions, Usage } from './types.js';

interface SnapshotRecord {
  /** Decimal, from the persisted sequence: the name of the snapshot's folder. */
  id: string;
  kind: Kind;
  parent?: string;
  labels: Labels;
  createdAt: string;
  updatedAt: string;
  /** Committed snapshots only: measured at commit. */
  usage?: Usage;
}

/** What a backend needs to find a snapshot's folders. */
export interface SnapshotLocation {
  id: string;
  kind: Kind;
  /** Ids of the parent chain, immediate parent first, base last. */
  parentIds: string[];
}

const zeroUsage: Usage = { inodes: 0, size: 0 };

export class MetaStore {
  private readonly writeLock = new Mutex();
  private closed = false;

  private constructor(
    private readonly level: Level<string, unknown>,
    private readonly snapshots: Sub<SnapshotRecord>,
    /** `<parent id>/<child id>` → child key: the back-links that make "has children" one range read. */
    private readonly parents: Sub<string>,
    /** `seq` → the last id handed out. */
    private readonly meta: Sub<number>,
  ) {}

  /** Opens (creating) `<root>/metadata`; LevelDB allows one process at a time. */
  static async open(root: string): Promise<MetaStore> {
    const path = join(root, 'metadata');
    const level = new Level<string, unknown>(path, { valueEncoding: 'json' });
    try {
      await level.open();
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause;
      if (cause?.code === 'LEVEL_LOCKED') throw failedPrecondition(`snapshot metadata ${path} is locked by another process`, err);
      throw err;
    }
    const sub = <V>(name: string) => level.sublevel<string, V>(name, { valueEncoding: 'json' }) as Sub<V>;
    return new MetaStore(level, sub('snapshots'), sub('parents'), sub('meta'));
  }

  /** Reads the committed state; nothing `fn` writes is kept. */
  read<T>(fn: (tx: SnapshotTx) => Promise<T>): Promise<T> {
    return fn(this.tx());
  }

  /** Runs `fn` with the write lock held and writes its changes as one batch when it returns. */
  async update<T>(fn: (tx: SnapshotTx) => Promise<T>): Promise<T> {
    const release = await this.writeLock.acquire();
    try {
      const tx = this.tx();
      const result = await fn(tx);
      // sync: an acknowledged snapshot survives a power cut, not only a crash of this process.
      if (tx.raw.ops.length > 0) await this.level.batch(tx.raw.ops as never, { sync: true });
      return result;
    } finally {
      release();
    }
  }

  /** Idempotent; waits for a running transaction. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const release = await this.writeLock.acquire();
    try {
      await this.level.close();
    } finally {
      release();
    }
  }

  private tx(): SnapshotTx {
    return new SnapshotTx(new Tx(), this.snapshots, this.parents, this.meta);
  }
}

export class SnapshotTx {
  constructor(
    /** The pending writes (exposed for MetaStore.update). */
    readonly raw: Tx,
    private readonly snapshots: Sub<SnapshotRecord>,
    private readonly parents: Sub<string>,
    private readonly meta: Sub<number>,
  ) {}

  /** containerd's CreateSnapshot: a new active snapshot or view on a committed parent (or none). */
  async createSnapshot(kind: Kind, key: string, parent: string, opts: SnapshotOptions = {}): Promise<SnapshotLocation> {
    if (kind !== 'active' && kind !== 'view') {
      throw invalidArgument(`snapshot type ${kindName(kind)} invalid; only snapshots of type Active or View can be created`);
    }
    let parentIds: string[] = [];
    if (parent) {
      const p = await this.raw.get(this.snapshots, parent);
      if (!p) throw notFound(`missing parent ${JSON.stringify(parent)} bucket`);
      if (p.kind !== 'committed') throw invalidArgument(`parent ${JSON.stringify(parent)} is not committed snapshot`);
      parentIds = await this.parentIds(parent);
    }
    if (await this.raw.get(this.snapshots, key)) throw alreadyExists(`snapshot ${key}: already exists`);

    const id = String(((await this.raw.get(this.meta, 'seq')) ?? 0) + 1);
    this.raw.put(this.meta, 'seq', Number(id));
    const now = new Date().toISOString();
    const record: SnapshotRecord = { id, kind, labels: withoutEmpty(opts.labels ?? {}), createdAt: now, updatedAt: now };
    if (parent) {
      record.parent = parent;
      this.raw.put(this.parents, backLink(parentIds[0], id), key);
    }
    this.raw.put(this.snapshots, key, record);
    return { id, kind, parentIds };
  }

  /** containerd's GetInfo: any kind; usage is the recorded one (zero unless committed). */
  async getInfo(key: string): Promise<{ id: string; info: SnapshotInfo; usage: Usage }> {
    const record = await this.record(key);
    return { id: record.id, info: toInfo(key, record), usage: record.usage ?? zeroUsage };
  }

  /** containerd's GetSnapshot: an active snapshot or view (a committed one is failed_precondition). */
  async getSnapshot(key: string): Promise<SnapshotLocation> {
    const record = await this.record(key);
    if (record.kind === 'committed') throw failedPrecondition(`requested snapshot ${key} not active or view`);
    return { id: record.id, kind: record.kind, parentIds: record.parent ? await this.parentIds(record.parent) : [] };
  }

  /** containerd's UpdateInfo: only labels change (see Snapshotter.update). */
  async updateInfo(info: { name: string; labels: Labels }, fieldpaths: string[] = []): Promise<SnapshotInfo> {
    const record = await this.record(info.name);
    const labels = applyLabelPaths(record.labels, info.labels ?? {}, fieldpaths, `snapshot ${JSON.stringify(info.name)}`);
    const updated: SnapshotRecord = { ...record, labels, updatedAt: new Date().toISOString() };
    this.raw.put(this.snapshots, info.name, updated);
    return toInfo(info.name, updated);
  }

  /**
   * containerd's CommitActive: active `key` becomes committed `name` with the same id (so the
   * same folder), fresh times, the labels of `opts` only, and `usage`. A parent-less active
   * snapshot may get `opts.parent` here (rebase). Returns the id.
   */
  async commitActive(key: string, name: string, usage: Usage, opts: SnapshotOptions = {}): Promise<string> {
    if (await this.raw.get(this.snapshots, name)) throw alreadyExists(`committed snapshot ${name}: already exists`);
    const active = await this.raw.get(this.snapshots, key);
    if (!active) throw notFound(`failed to get active snapshot ${JSON.stringify(key)}`);
    if (active.kind !== 'active') throw failedPrecondition(`snapshot ${JSON.stringify(key)} is not active`);

    let parent = active.parent;
    if (opts.parent) {
      if (parent && parent !== opts.parent) {
        throw invalidArgument(`cannot change parent of active snapshot ${JSON.stringify(key)} on commit`);
      }
      if (!parent) {
        const p = await this.raw.get(this.snapshots, opts.parent);
        if (!p) throw notFound(`missing parent ${JSON.stringify(opts.parent)} bucket`);
        if (p.kind !== 'committed') throw failedPrecondition(`parent ${JSON.stringify(opts.parent)} is not committed snapshot`);
        parent = opts.parent;
      }
    }

    const now = new Date().toISOString();
    const committed: SnapshotRecord = {
      id: active.id,
      kind: 'committed',
      labels: withoutEmpty(opts.labels ?? {}),
      createdAt: now,
      updatedAt: now,
      usage: { inodes: usage.inodes, size: usage.size },
    };
    if (parent) {
      committed.parent = parent;
      const parentRecord = await this.record(parent);
      this.raw.put(this.parents, backLink(parentRecord.id, active.id), name);
    }
    this.raw.del(this.snapshots, key);
    this.raw.put(this.snapshots, name, committed);
    return active.id;
  }

  /** containerd's Remove: any kind without children. Returns the id and kind it had. */
  async remove(key: string): Promise<{ id: string; kind: Kind }> {
    const record = await this.record(key);
    const children = await this.withPending(this.parents, { gt: `${record.id}/`, lt: `${record.id}0` });
    if (children.size > 0) throw failedPrecondition(`snapshot ${JSON.stringify(key)}: cannot remove snapshot with child`);
    if (record.parent) {
      const parent = await this.record(record.parent);
      this.raw.del(this.parents, backLink(parent.id, record.id));
    }
    this.raw.del(this.snapshots, key);
    return { id: record.id, kind: record.kind };
  }

  /** containerd's WalkInfo: every snapshot matching the filters, in key order. */
  async walkInfo(fn: (info: SnapshotInfo) => void | Promise<void>, filters: readonly string[] = []): Promise<void> {
    const matches = parseFilters(filters);
    // Collected first, so `fn` may call back into the store (Stat in a walk) on a settled list.
    const entries = await this.snapshots.iterator().all();
    for (const [key, record] of entries) {
      const info = toInfo(key, record);
      const adaptor = objectAdaptor(
        { kind: info.kind, name: info.name, parent: info.parent ?? '' },
        { labels: info.labels },
      );
      if (matches(adaptor)) await fn(info);
    }
  }

  /** containerd's IDMap: id → key of every snapshot, including this transaction's changes. */
  async idMap(): Promise<Map<string, string>> {
    const byKey = await this.withPending(this.snapshots);
    return new Map([...byKey].map(([key, record]) => [record.id, key]));
  }

  private async record(key: string): Promise<SnapshotRecord> {
    const record = await this.raw.get(this.snapshots, key);
    if (!record) throw notFound(`snapshot ${JSON.stringify(key)} does not exist`);
    return record;
  }

  /** Ids from `parent` (the immediate parent) down to the base. */
  private async parentIds(parent: string): Promise<string[]> {
    const ids: string[] = [];
    for (let name: string | undefined = parent; name; ) {
      const record = await this.record(name);
      ids.push(record.id);
      name = record.parent;
    }
    return ids;
  }

  /** The records of `sub` in `range` as this transaction sees them: stored, then its own writes. */
  private async withPending<V>(sub: Sub<V>, range: { gt?: string; lt?: string } = {}): Promise<Map<string, V>> {
    const out = new Map(await sub.iterator(range).all());
    const inRange = (k: string) => (range.gt === undefined || k > range.gt) && (range.lt === undefined || k < range.lt);
    for (const op of this.raw.ops) {
      if (op.sublevel !== (sub as Sub<unknown>) || !inRange(op.key)) continue;
      if (op.type === 'put') out.set(op.key, op.value as V);
      else out.delete(op.key);
    }
    return out;
  }
}

const backLink = (parentId: string, childId: string): string => `${parentId}/${childId}`;

function kindName(kind: string): string {
  return kind.charAt(0).toUpperCase() + kind.slice(1);
}

function toInfo(name: string, record: SnapshotRecord): SnapshotInfo {
  const info: SnapshotInfo = {
    kind: record.kind,
    name,
    labels: { ...record.labels },
    createdAt: new Date(record.createdAt),
    updatedAt: new Date(record.updatedAt),
  };
  if (record.parent) info.parent = record.parent;
  return info;
}

/**
 * Entries of `snapshotsDir` that no snapshot owns: removed snapshots' folders, `new-*` folders
 * a crash left behind. Call inside a write transaction, so no creation is half done meanwhile.
 */
export async function orphanedDirectories(tx: SnapshotTx, snapshotsDir: string): Promise<string[]> {
  const ids = await tx.idMap();
  return (await readdir(snapshotsDir)).filter((name) => !ids.has(name)).map((name) => join(snapshotsDir, name));
}
