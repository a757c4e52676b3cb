// Namespaced snapshots (containerd core/metadata/snapshot.go): every namespace has its own keys
// over shared backend snapshotters. A record maps `<ns>/<snapshotter>/<key>` to the backend key
// `<ns>/<seq>/<key>` and holds what the namespace sees (parent, labels, times); the backend keeps
// the file systems. Snapshots are GC nodes: leases, labels and children keep them.
//
// Unlike containerd, `remove` also removes the backend snapshot at once (the record was its only
// user: backend keys are per namespace); the GC's backend cleanup catches what a crash left.
import { alreadyExists, BerthError, errorCode, failedPrecondition, invalidArgument, isNotFound, notFound } from '../../store/errors.js';
import { objectAdaptor, parseFilters } from '../../store/filters/index.js';
import { applyLabelPaths, type Labels, withoutEmpty } from '../oci/labels.js';
import { formatTimestamp, parseTimestamp } from '../oci/time.js';
import { inheritedLabels, type Mount, type SnapshotInfo, type SnapshotOptions, type Snapshotter, type Usage } from '../snapshots/types.js';
import { checkNamespace, type OpContext } from './context.js';
import { nsKey, splitNsKey, type MetadataDB, type SnapshotRecord } from './db.js';
import { type Tx } from '../level/tx.js';
import { attachToLease, detachFromLease } from './leases.js';
import { ensureNamespace } from './namespaces.js';
import { validateLabels, validateNameLength } from './validate.js';

/** The label naming the chainID an unpack is preparing (containerd's remote-snapshot protocol). */
export const snapshotRefLabel = 'containerd.io/snapshot.ref';

/** `<snapshotter>/<key>`: a record's key within its namespace. */
export const snapshotKey = (sn: string, key: string): string => `${sn}/${key}`;

/** Splits a record key `<ns>/<snapshotter>/<key>`. */
export function splitSnapshotKey(k: string): { namespace: string; snapshotter: string; key: string } {
  const [namespace, rest] = splitNsKey(k);
  const i = rest.indexOf('/');
  return { namespace, snapshotter: rest.slice(0, i), key: rest.slice(i + 1) };
}

export interface SnapshotStoreOptions {
  /** How long a snapshot made without a lease stays a GC root (default 24 h; 0: no protection). */
  unleasedExpiryMs?: number;
}

export class SnapshotStore {
  private readonly unleasedExpiryMs: number;
  /** `<snapshotter>/<backend key>` of snapshots made but not yet recorded: the GC leaves them. */
  private readonly making = new Set<string>();

  constructor(
    private readonly db: MetadataDB,
    /** Backend snapshotters by name. */
    readonly backends: ReadonlyMap<string, Snapshotter>,
    opts: SnapshotStoreOptions = {},
  ) {
    this.unleasedExpiryMs = opts.unleasedExpiryMs ?? 24 * 60 * 60 * 1000;
  }

  /** The snapshotter `sn` as one namespace (and lease) sees it. */
  bind(ctx: OpContext, sn: string): Snapshotter {
    const backend = this.backend(sn);
    return {
      capabilities: backend.capabilities ?? [],
      stat: (key) => this.stat(ctx, sn, key),
      update: (info, paths) => this.update(ctx, sn, info, paths),
      usage: (key) => this.usage(ctx, sn, key),
      mounts: (key) => this.mounts(ctx, sn, key),
      prepare: (key, parent, opts) => this.prepare(ctx, sn, key, parent, opts),
      view: (key, parent, opts) => this.view(ctx, sn, key, parent, opts),
      commit: (name, key, opts) => this.commit(ctx, sn, name, key, opts),
      remove: (key) => this.remove(ctx, sn, key),
      walk: (fn, filters) => this.walk(ctx, sn, fn, filters),
      close: async () => {},
    };
  }

  /** True while a backend snapshot is being made and has no record yet. */
  inFlight(sn: string, bkey: string): boolean {
    return this.making.has(`${sn}/${bkey}`);
  }

  backend(sn: string): Snapshotter {
    const b = this.backends.get(sn);
    if (!b) throw notFound(`snapshotter ${JSON.stringify(sn)} is not loaded (see GET /v1/plugins)`);
    return b;
  }

  private record(ns: string, sn: string, key: string): SnapshotRecord | undefined {
    return this.db.cached(this.db.snapshots).get(nsKey(ns, snapshotKey(sn, key)));
  }

  private existing(ctx: OpContext, sn: string, key: string): SnapshotRecord {
    const r = this.record(checkNamespace(ctx), sn, key);
    if (!r) throw notFound(`snapshot ${JSON.stringify(key)} does not exist in snapshotter ${sn}`);
    return r;
  }

  async stat(ctx: OpContext, sn: string, key: string): Promise<SnapshotInfo> {
    const r = this.existing(ctx, sn, key);
    return this.info(sn, key, r, await userKeys(this.backend(sn).stat(r.name), [r.name, key]));
  }

  private info(sn: string, key: string, r: SnapshotRecord, b: SnapshotInfo): SnapshotInfo {
    return {
      kind: b.kind,
      name: key,
      ...(r.parent ? { parent: r.parent } : {}),
      labels: { ...r.labels },
      createdAt: parseTimestamp(r.createdAt) ?? b.createdAt,
      updatedAt: parseTimestamp(r.updatedAt) ?? b.updatedAt,
    };
  }

  async usage(ctx: OpContext, sn: string, key: string): Promise<Usage> {
    const { name } = this.existing(ctx, sn, key);
    return userKeys(this.backend(sn).usage(name), [name, key]);
  }

  async mounts(ctx: OpContext, sn: string, key: string): Promise<Mount[]> {
    const { name } = this.existing(ctx, sn, key);
    return userKeys(this.backend(sn).mounts(name), [name, key]);
  }

  prepare(ctx: OpContext, sn: string, key: string, parent: string, opts: SnapshotOptions = {}): Promise<Mount[]> {
    return this.create(ctx, sn, 'prepare', key, parent, opts);
  }

  view(ctx: OpContext, sn: string, key: string, parent: string, opts: SnapshotOptions = {}): Promise<Mount[]> {
    return this.create(ctx, sn, 'view', key, parent, opts);
  }

  private async create(ctx: OpContext, sn: string, how: 'prepare' | 'view', key: string, parent: string, opts: SnapshotOptions): Promise<Mount[]> {
    const ns = checkNamespace(ctx);
    const backend = this.backend(sn);
    checkKey(key);
    const labels = withoutEmpty({ ...opts.labels });
    validateLabels(labels, `snapshot ${JSON.stringify(key)}`);
    const resource = { type: `snapshots/${sn}`, id: key };
    // 1: the checks and a backend key, in one transaction. An existing snapshot joins the lease
    // (the transaction must be written for that: the error is thrown after it).
    const checked = await this.db.update(async (tx) => {
      const target = labels[snapshotRefLabel];
      if (target && (await tx.get(this.db.snapshots, nsKey(ns, snapshotKey(sn, target))))) {
        await attachToLease(this.db, tx, ctx, { ...resource, id: target });
        return alreadyExists(`target snapshot ${JSON.stringify(target)}: already exists`);
      }
      if (await tx.get(this.db.snapshots, nsKey(ns, snapshotKey(sn, key)))) {
        await attachToLease(this.db, tx, ctx, resource);
        return alreadyExists(`snapshot ${JSON.stringify(key)}: already exists`);
      }
      let bparent = '';
      if (parent) {
        const p = await tx.get(this.db.snapshots, nsKey(ns, snapshotKey(sn, parent)));
        if (!p) throw notFound(`parent snapshot ${JSON.stringify(parent)} does not exist`);
        bparent = p.name;
      }
      return { bkey: `${ns}/${await this.nextSequence(tx, sn)}/${key}`, bparent };
    });
    if (checked instanceof Error) throw checked;
    const { bkey, bparent } = checked;
    // 2: the backend makes the file system (outside the lock: copying a parent may take long).
    const backendOpts = { labels: inheritedLabels(labels) };
    const making = `${sn}/${bkey}`;
    this.making.add(making);
    let mounts: Mount[];
    try {
      mounts = await userKeys(
        how === 'prepare' ? backend.prepare(bkey, bparent, backendOpts) : backend.view(bkey, bparent, backendOpts),
        [bkey, key],
        [bparent, parent],
      );
    } catch (err) {
      this.making.delete(making);
      throw err;
    }
    // 3: the record, unless something changed meanwhile.
    try {
      await this.db.update(async (tx) => {
        const k = nsKey(ns, snapshotKey(sn, key));
        if (await tx.get(this.db.snapshots, k)) throw alreadyExists(`snapshot ${JSON.stringify(key)}: already exists`);
        if (parent) {
          const pk = nsKey(ns, snapshotKey(sn, parent));
          const p = await tx.get(this.db.snapshots, pk);
          if (!p) throw notFound(`parent snapshot ${JSON.stringify(parent)} does not exist`);
          if (p.name !== bparent) throw invalidArgument(`snapshot ${JSON.stringify(key)}: mismatched parent ${JSON.stringify(parent)}`);
          tx.put(this.db.snapshots, pk, { ...p, children: [...p.children, key] });
        }
        await ensureNamespace(this.db, tx, ns);
        await attachToLease(this.db, tx, ctx, resource);
        const now = formatTimestamp(new Date());
        const record: SnapshotRecord = { name: bkey, ...(parent ? { parent } : {}), children: [], labels, createdAt: now, updatedAt: now };
        this.protectUnleased(ctx, tx, record);
        tx.put(this.db.snapshots, k, record);
      });
    } catch (err) {
      await backend.remove(bkey).catch(() => {}); // the GC's cleanup retries what this leaves
      throw err;
    } finally {
      this.making.delete(making);
    }
    return mounts;
  }

  /** Outside a lease a new snapshot is kept a while on its own, as unleased content is. */
  private protectUnleased(ctx: OpContext, tx: Tx, record: SnapshotRecord): void {
    if (ctx.lease || this.unleasedExpiryMs === 0) return;
    const at = new Date(Date.now() + this.unleasedExpiryMs);
    record.expireAt = formatTimestamp(at);
    tx.noteExpiry(at);
  }

  private async nextSequence(tx: Tx, sn: string): Promise<number> {
    const k = `snapshots/${sn}`;
    const seq = ((await tx.get(this.db.sequences, k)) ?? 0) + 1;
    tx.put(this.db.sequences, k, seq);
    return seq;
  }

  async commit(ctx: OpContext, sn: string, name: string, key: string, opts: SnapshotOptions = {}): Promise<void> {
    const ns = checkNamespace(ctx);
    const backend = this.backend(sn);
    checkKey(name);
    const labels = withoutEmpty({ ...opts.labels });
    validateLabels(labels, `snapshot ${JSON.stringify(name)}`);
    const resource = { type: `snapshots/${sn}`, id: name };
    let rebaseParent: string | undefined;
    const refused = await this.db.update(async (tx) => {
      const nk = nsKey(ns, snapshotKey(sn, name));
      if (await tx.get(this.db.snapshots, nk)) {
        // The existing snapshot joins the lease: returned, so that the transaction is written.
        await attachToLease(this.db, tx, ctx, resource);
        return alreadyExists(`snapshot ${JSON.stringify(name)}: already exists`);
      }
      const kk = nsKey(ns, snapshotKey(sn, key));
      const active = await tx.get(this.db.snapshots, kk);
      if (!active) throw notFound(`snapshot ${JSON.stringify(key)} does not exist`);
      let parent = active.parent;
      if (opts.parent) {
        if (parent && parent !== opts.parent) {
          throw invalidArgument(`cannot change parent of active snapshot ${JSON.stringify(key)} on commit`);
        }
        if (!parent) {
          const p = await tx.get(this.db.snapshots, nsKey(ns, snapshotKey(sn, opts.parent)));
          if (!p) throw notFound(`parent snapshot ${JSON.stringify(opts.parent)} does not exist`);
          parent = opts.parent;
          rebaseParent = p.name;
        }
      }
      if (parent) {
        const pk = nsKey(ns, snapshotKey(sn, parent));
        const p = (await tx.get(this.db.snapshots, pk))!;
        tx.put(this.db.snapshots, pk, { ...p, children: [...p.children.filter((c) => c !== key), name] });
      }
      const bname = `${ns}/${await this.nextSequence(tx, sn)}/${name}`;
      const now = formatTimestamp(new Date());
      const record: SnapshotRecord = { name: bname, ...(parent ? { parent } : {}), children: [], labels, createdAt: now, updatedAt: now };
      this.protectUnleased(ctx, tx, record);
      tx.put(this.db.snapshots, nk, record);
      tx.del(this.db.snapshots, kk);
      await detachFromLease(this.db, tx, ctx, { type: `snapshots/${sn}`, id: key });
      await attachToLease(this.db, tx, ctx, resource);
      // The backend commits inside the transaction (as containerd's does inside its bolt
      // transaction): if it refuses (a view, say), the records stay as they were.
      await userKeys(
        backend.commit(bname, active.name, {
          labels: inheritedLabels(labels),
          ...(rebaseParent ? { parent: rebaseParent } : {}),
          ...(opts.usage ? { usage: opts.usage } : {}),
        }),
        [bname, name],
        [active.name, key],
        [rebaseParent ?? '', opts.parent ?? ''],
      );
      return undefined;
    });
    if (refused) throw refused;
  }

  async remove(ctx: OpContext, sn: string, key: string): Promise<void> {
    const ns = checkNamespace(ctx);
    const backend = this.backend(sn);
    const bkey = await this.db.update(async (tx) => {
      const k = nsKey(ns, snapshotKey(sn, key));
      const r = await tx.get(this.db.snapshots, k);
      if (!r) throw notFound(`snapshot ${JSON.stringify(key)} does not exist`);
      if (r.children.length > 0) throw failedPrecondition(`cannot remove snapshot ${JSON.stringify(key)} with child`);
      if (r.parent) {
        const pk = nsKey(ns, snapshotKey(sn, r.parent));
        const p = await tx.get(this.db.snapshots, pk);
        if (p) tx.put(this.db.snapshots, pk, { ...p, children: p.children.filter((c) => c !== key) });
      }
      tx.del(this.db.snapshots, k);
      await detachFromLease(this.db, tx, ctx, { type: `snapshots/${sn}`, id: key });
      tx.dirty = true;
      return r.name;
    });
    await userKeys(backend.remove(bkey), [bkey, key]).catch((err) => {
      if (!isNotFound(err)) throw new BerthError('internal', `snapshot ${JSON.stringify(key)}: removed from the namespace, but its file system was not: ${(err as Error).message}`, { cause: err });
    });
  }

  async update(ctx: OpContext, sn: string, info: { name: string; labels: Labels }, fieldpaths: string[] = []): Promise<SnapshotInfo> {
    const ns = checkNamespace(ctx);
    const backend = this.backend(sn);
    if (!info.name) throw invalidArgument('snapshot name must not be empty');
    validateLabels(info.labels, `snapshot ${JSON.stringify(info.name)}`);
    const k = nsKey(ns, snapshotKey(sn, info.name));
    const r = await this.db.update(async (tx) => {
      const r = await tx.get(this.db.snapshots, k);
      if (!r) throw notFound(`snapshot ${JSON.stringify(info.name)} does not exist`);
      const labels = applyLabelPaths(r.labels, info.labels ?? {}, fieldpaths, `snapshot ${JSON.stringify(info.name)}`);
      const next = { ...r, labels, updatedAt: formatTimestamp(new Date()) };
      tx.put(this.db.snapshots, k, next);
      return next;
    });
    const b = await userKeys(backend.update({ name: r.name, labels: inheritedLabels(r.labels) ?? {} }, ['labels']), [r.name, info.name]);
    return this.info(sn, info.name, r, b);
  }

  async walk(ctx: OpContext, sn: string, fn: (info: SnapshotInfo) => void | Promise<void>, filters: readonly string[] = []): Promise<void> {
    const ns = checkNamespace(ctx);
    const backend = this.backend(sn);
    const filter = parseFilters(filters);
    const prefix = `${sn}/`;
    const records: Array<[string, SnapshotRecord]> = [];
    for (const [k, r] of this.db.cached(this.db.snapshots)) {
      const [rns, rest] = splitNsKey(k);
      if (rns === ns && rest.startsWith(prefix)) records.push([rest.slice(prefix.length), r]);
    }
    records.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (const [key, r] of records) {
      let b: SnapshotInfo;
      try {
        b = await userKeys(backend.stat(r.name), [r.name, key]);
      } catch (err) {
        if (isNotFound(err)) continue; // removed meanwhile
        throw err;
      }
      const info = this.info(sn, key, r, b);
      const adaptor = objectAdaptor({ kind: info.kind, name: info.name, parent: info.parent ?? '' }, { labels: info.labels });
      if (filter(adaptor)) await fn(info);
    }
  }
}

/**
 * Keys are free text, but an empty key or one with NUL cannot be stored or named in a URL, and
 * they share the one length limit of names.
 */
function checkKey(key: string): void {
  if (!key) throw invalidArgument('snapshot key must not be empty');
  // eslint-disable-next-line no-control-regex
  if (/\u0000/.test(key)) throw invalidArgument(`snapshot key ${JSON.stringify(key)} must not contain NUL`);
  validateNameLength(key, 'snapshot key');
}

/**
 * What a backend call answers, its errors worded with the caller's keys: a backend knows
 * snapshots by backend keys (`<ns>/<seq>/<key>`), which mean nothing to the caller. Each pair is
 * [backend key, the caller's key]; empty backend keys are skipped.
 */
async function userKeys<T>(call: Promise<T>, ...names: Array<[string, string]>): Promise<T> {
  try {
    return await call;
  } catch (err) {
    if (!(err instanceof Error)) throw err;
    let message = err.message;
    for (const [bkey, key] of names) {
      if (!bkey) continue;
      // As written and as JSON quotes it (a key with `"` or `\\` in it is escaped there).
      message = message.split(bkey).join(key).split(JSON.stringify(bkey).slice(1, -1)).join(JSON.stringify(key).slice(1, -1));
    }
    if (message === err.message) throw err;
    throw new BerthError(errorCode(err), message, { cause: err });
  }
}
