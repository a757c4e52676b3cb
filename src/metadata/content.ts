// Namespaced content over the local store (containerd core/metadata/content.go). Blobs are
// shared on disk; each namespace sees those it has a record of. Writers use backend refs of
// the form `<ns>/<seq>/<ref>` so namespaces never share an ingest, and a digest another
// namespace holds can be adopted without sending its bytes again (the sharing policy).
import type { Readable } from 'node:stream';
import { alreadyExists, errorCode, failedPrecondition, invalidArgument, isNotFound, notFound } from '../../store/errors.js';
import { objectAdaptor, parseFilters } from '../../store/filters/index.js';
import { followedName, validateRef, type FollowOptions, type LocalStore } from '../../store/index.js';
import { applyLabelPaths, type Labels, withoutEmpty } from '../oci/labels.js';
import { formatTimestamp, parseTimestamp } from '../oci/time.js';
import type { CommitOptions, Info, ReaderAt, Status, Writer, WriterOptions } from '../../store/types.js';
import { checkNamespace, type OpContext } from './context.js';
import { nsKey, type BlobRecord, type IngestRecord, type MetadataDB } from './db.js';
import { type Tx } from '../level/tx.js';
import { attachToLease, detachFromLease } from './leases.js';
import { ensureNamespace } from './namespaces.js';
import { validateLabels, validateNameLength } from './validate.js';

export type SharingPolicy = 'shared' | 'isolated';
export const shareableLabel = 'containerd.io/namespace.shareable';

export interface ContentStoreOptions {
  policy?: SharingPolicy;
  /**
   * How long an ingest, or content, written without a lease stays a GC root (containerd: 24 h
   * for ingests; it keeps no unleased content). 0: unleased content is collectable at once.
   */
  unleasedExpiryMs?: number;
}

const day = 24 * 60 * 60 * 1000;

function infoOf(digest: string, r: BlobRecord): Info {
  return {
    digest,
    size: r.size,
    createdAt: parseTimestamp(r.createdAt) ?? new Date(0),
    updatedAt: parseTimestamp(r.updatedAt) ?? new Date(0),
    labels: r.labels,
  };
}

export class MetadataContentStore {
  readonly policy: SharingPolicy;
  private readonly unleasedExpiryMs: number;

  constructor(
    private readonly db: MetadataDB,
    readonly backend: LocalStore,
    opts: ContentStoreOptions = {},
  ) {
    this.policy = opts.policy ?? 'shared';
    this.unleasedExpiryMs = opts.unleasedExpiryMs ?? day;
  }

  // ---- committed content ----------------------------------------------------------------------

  async info(ctx: OpContext, digest: string): Promise<Info> {
    const record = await this.db.blobs.get(nsKey(checkNamespace(ctx), digest));
    if (!record) throw notFound(`content digest ${digest}: not found`);
    return infoOf(digest, record);
  }

  async readerAt(ctx: OpContext, digest: string): Promise<ReaderAt> {
    await this.info(ctx, digest);
    return this.backend.readerAt(digest);
  }

  async update(ctx: OpContext, digest: string, labels: Labels, fieldpaths: string[] = []): Promise<Info> {
    const ns = checkNamespace(ctx);
    validateLabels(labels, `content ${digest}`);
    return this.db.update(async (tx) => {
      const key = nsKey(ns, digest);
      const record = await tx.get(this.db.blobs, key);
      if (!record) throw notFound(`content digest ${digest}: not found`);
      const updated: BlobRecord = {
        ...record,
        labels: applyLabelPaths(record.labels, labels, fieldpaths, `content info ${JSON.stringify(digest)}`),
        updatedAt: formatTimestamp(new Date()),
      };
      tx.put(this.db.blobs, key, updated);
      return infoOf(digest, updated);
    });
  }

  /** Blobs of this namespace; filter fields `digest`, `labels.<key>`. */
  async list(ctx: OpContext, filters: string[] = []): Promise<Info[]> {
    const filter = parseFilters(filters);
    const out: Info[] = [];
    for (const [digest, record] of await this.db.list(this.db.blobs, checkNamespace(ctx))) {
      const info = infoOf(digest, record);
      if (filter(objectAdaptor({ digest }, { labels: info.labels }))) out.push(info);
    }
    return out;
  }

  /** Removes the namespace's record; the bytes go when no namespace has the blob (GC). */
  async delete(ctx: OpContext, digest: string): Promise<void> {
    const ns = checkNamespace(ctx);
    await this.db.update(async (tx) => {
      const key = nsKey(ns, digest);
      if (!(await tx.get(this.db.blobs, key))) throw notFound(`content digest ${digest}: not found`);
      tx.del(this.db.blobs, key);
      await detachFromLease(this.db, tx, ctx, { type: 'content', id: digest });
      tx.dirty = true;
    });
  }

  /** Forgets a blob in every namespace (its bytes are gone: `content verify --repair`). */
  async forget(digest: string): Promise<void> {
    await this.db.update(async (tx) => {
      for await (const ns of this.db.namespaces.keys()) {
        const key = nsKey(ns, digest);
        if (await tx.get(this.db.blobs, key)) tx.del(this.db.blobs, key);
      }
      tx.dirty = true;
    });
  }

  // ---- ingests --------------------------------------------------------------------------------

  async status(ctx: OpContext, ref: string): Promise<Status> {
    const ns = checkNamespace(ctx);
    validateRef(ref);
    const record = await this.db.ingests.get(nsKey(ns, ref));
    if (!record) throw notFound(`ingest ref ${JSON.stringify(ref)}: not found`);
    return this.statusOf(ref, record);
  }

  async listStatuses(ctx: OpContext, filters: string[] = []): Promise<Status[]> {
    const filter = parseFilters(filters);
    const out: Status[] = [];
    for (const [ref, record] of await this.db.list(this.db.ingests, checkNamespace(ctx))) {
      if (record.shared) continue; // no bytes being written: containerd does not list them
      let status: Status;
      try {
        status = await this.statusOf(ref, record);
      } catch (err) {
        if (errorCode(err) === 'not_found') continue;
        throw err;
      }
      if (filter(objectAdaptor({ ref }))) {
        out.push(status);
      }
    }
    return out;
  }

  async abort(ctx: OpContext, ref: string): Promise<void> {
    const ns = checkNamespace(ctx);
    validateRef(ref);
    const record = await this.db.ingests.get(nsKey(ns, ref));
    if (!record) throw notFound(`ingest ref ${JSON.stringify(ref)}: not found`);
    // Backend first: refused (unavailable) while a writer holds it, and then nothing changes.
    if (!record.shared) await this.backend.abort(record.bref);
    await this.db.update(async (tx) => {
      tx.del(this.db.ingests, nsKey(ns, ref));
      await detachFromLease(this.db, tx, ctx, { type: 'ingests', id: ref });
      tx.dirty = true;
    });
  }

  /**
   * LocalStore.follow in this namespace: blob `opts.digest` when the namespace holds it (complete
   * already, so read rather than any ingest), else ingest `opts.ref` as it is written, ending once
   * committed. An adopted ingest has no bytes of its own to follow: it is not_found until its
   * commit gives the namespace the blob.
   */
  async follow(ctx: OpContext, opts: FollowOptions): Promise<Readable> {
    const ns = checkNamespace(ctx);
    const { ref, digest, ...from } = opts;
    if (ref === undefined && digest === undefined) throw invalidArgument('follow needs an ingest ref or a digest');
    const held = async () => digest !== undefined && (await this.db.blobs.get(nsKey(ns, digest))) !== undefined;
    if (ref !== undefined && !(await held())) {
      validateRef(ref);
      const record = await this.db.ingests.get(nsKey(ns, ref));
      if (record && !record.shared) {
        try {
          return await this.backend.follow({ ...from, ref: record.bref });
        } catch (err) {
          if (!isNotFound(err)) throw err; // gone: committed since we looked, perhaps
        }
      }
    }
    if (await held()) return this.backend.follow({ ...from, digest });
    throw notFound(`${followedName(opts)}: not found`);
  }

  /** The backend ref of an ingest (for tests and diagnostics). */
  async backendRef(ctx: OpContext, ref: string): Promise<string> {
    const record = await this.db.ingests.get(nsKey(checkNamespace(ctx), ref));
    if (!record) throw notFound(`ingest ref ${JSON.stringify(ref)}: not found`);
    return record.bref;
  }

  /**
   * The status of an ingest under its user ref. An adopted ingest has no backend files: it is
   * complete at the adopted blob's size (containerd answers not_found; berth lets the client see
   * it and commit it).
   */
  private async statusOf(ref: string, record: IngestRecord): Promise<Status> {
    const missing = (err: unknown) => notFound(`ingest ref ${JSON.stringify(ref)}: not found`, err);
    if (record.shared && record.expected) {
      let size: number;
      let at: Date;
      try {
        const info = await this.backend.info(record.expected);
        size = info.size;
        at = info.createdAt;
      } catch (err) {
        if (errorCode(err) === 'not_found') throw missing(err);
        throw err;
      }
      return { ref, offset: size, total: size, expected: record.expected, startedAt: at, updatedAt: at };
    }
    try {
      const status = await this.backend.status(record.bref);
      return { ...status, ref, ...(record.expected ? { expected: record.expected } : {}) };
    } catch (err) {
      if (errorCode(err) === 'not_found') throw missing(err);
      throw err;
    }
  }

  // ---- writers --------------------------------------------------------------------------------

  /**
   * Opens a writer for `opts.ref` in the context's namespace. A digest this namespace has is
   * already_exists (and joins the context's lease); a digest the backend has and the sharing
   * policy lets this namespace see is adopted: the writer needs no bytes.
   */
  async writer(ctx: OpContext, opts: WriterOptions): Promise<Writer> {
    const ns = checkNamespace(ctx);
    validateRef(opts.ref);
    validateNameLength(opts.ref, 'ref'); // the API's one limit, on the caller's ref, not the backend's longer one
    const { record, exists, adopt } = await this.db.update(async (tx) => {
      if (opts.digest && (await tx.get(this.db.blobs, nsKey(ns, opts.digest)))) {
        await attachToLease(this.db, tx, ctx, { type: 'content', id: opts.digest });
        return { record: undefined, exists: true, adopt: undefined };
      }
      // Decided under the write lock, where no GC can remove the blob between this look and
      // the shared ingest record (which keeps it) being written.
      const adopt = opts.digest ? await this.adoptable(opts.digest, opts.size ?? 0) : undefined;
      await ensureNamespace(this.db, tx, ns);
      const key = nsKey(ns, opts.ref);
      const stored = await tx.get(this.db.ingests, key);
      const record: IngestRecord = {
        bref: stored?.bref ?? (await this.nextBackendRef(tx, ns, opts.ref)),
        ...(opts.digest ? { expected: opts.digest } : stored?.expected ? { expected: stored.expected } : {}),
        ...(adopt ? { shared: true } : {}),
        // Outside a lease an ingest lives a while on its own; inside one, as long as the lease.
        ...(ctx.lease ? {} : { expireAt: this.unleasedExpiry() }),
      };
      tx.put(this.db.ingests, key, record);
      tx.noteExpiry(record.expireAt ? parseTimestamp(record.expireAt) : undefined);
      await attachToLease(this.db, tx, ctx, { type: 'ingests', id: opts.ref });
      return { record, exists: false, adopt };
    });
    if (exists) throw alreadyExists(`content ${opts.digest}: already exists`);
    if (adopt) return new NamespacedWriter(this, this.db, ctx, opts.ref, record!, undefined, adopt);
    // The digest is not passed down: the backend must not answer already_exists for content
    // another namespace has but this one may not see.
    const backend = await this.backend.writer({ ref: record!.bref, size: opts.size });
    return new NamespacedWriter(this, this.db, ctx, opts.ref, record!, backend, undefined);
  }

  /** The size of `digest` in the backend when this namespace may adopt it, else undefined. */
  private async adoptable(digest: string, size: number): Promise<{ digest: string; size: number } | undefined> {
    if (this.policy === 'isolated' && !(await this.inShareableNamespace(digest))) return undefined;
    let info: Info;
    try {
      info = await this.backend.info(digest);
    } catch (err) {
      if (errorCode(err) === 'not_found') return undefined;
      throw err;
    }
    if (size !== 0 && size !== info.size) return undefined;
    return { digest, size: info.size };
  }

  private async inShareableNamespace(digest: string): Promise<boolean> {
    for await (const [name, record] of this.db.namespaces.iterator()) {
      if (record.labels[shareableLabel] === 'true' && (await this.db.blobs.get(nsKey(name, digest)))) return true;
    }
    return false;
  }

  private unleasedExpiry(): string {
    return formatTimestamp(new Date(Date.now() + this.unleasedExpiryMs));
  }

  private async nextBackendRef(tx: Tx, ns: string, ref: string): Promise<string> {
    const record = (await tx.get(this.db.namespaces, ns))!;
    const seq = (record.seq ?? 0) + 1;
    tx.put(this.db.namespaces, ns, { ...record, seq });
    return `${ns}/${seq}/${ref}`;
  }

  /** Records a commit: the blob joins the namespace (and lease); the ingest record goes. */
  async recordCommit(
    tx: Tx,
    ctx: OpContext,
    ref: string,
    digest: string,
    size: number,
    labels: Labels | undefined,
  ): Promise<boolean> {
    const ns = ctx.namespace;
    const key = nsKey(ns, digest);
    const existed = (await tx.get(this.db.blobs, key)) !== undefined;
    if (!existed) {
      const now = formatTimestamp(new Date());
      const expireAt = ctx.lease || this.unleasedExpiryMs === 0 ? undefined : this.unleasedExpiry();
      tx.put(this.db.blobs, key, {
        size,
        labels: withoutEmpty(labels ?? {}),
        createdAt: now,
        updatedAt: now,
        ...(expireAt ? { expireAt } : {}),
      });
      tx.noteExpiry(expireAt ? parseTimestamp(expireAt) : undefined);
    }
    tx.del(this.db.ingests, nsKey(ns, ref));
    await detachFromLease(this.db, tx, ctx, { type: 'ingests', id: ref });
    await attachToLease(this.db, tx, ctx, { type: 'content', id: digest });
    return existed;
  }
}

/**
 * A writer in one namespace: over a backend writer, or over adopted content (no backend writer
 * until a write or truncate makes the content its own).
 */
class NamespacedWriter implements Writer {
  private readonly startedAt = new Date();

  constructor(
    private readonly store: MetadataContentStore,
    private readonly db: MetadataDB,
    private readonly ctx: OpContext,
    readonly ref: string,
    private record: IngestRecord,
    private backend: Writer | undefined,
    private adopted: { digest: string; size: number } | undefined,
  ) {}

  async write(chunk: Uint8Array): Promise<void> {
    if (chunk.length === 0 && !this.backend) return;
    await this.own(this.adopted?.size ?? 0);
    await this.backend!.write(chunk);
  }

  digest(): string {
    return this.backend ? this.backend.digest() : this.adopted!.digest;
  }

  status(): Status {
    if (!this.backend) {
      const { size, digest } = this.adopted!;
      return { ref: this.ref, offset: size, total: size, expected: digest, startedAt: this.startedAt, updatedAt: this.startedAt };
    }
    return {
      ...this.backend.status(),
      ref: this.ref,
      ...(this.record.expected ? { expected: this.record.expected } : {}),
    };
  }

  async truncate(size: number): Promise<void> {
    if (this.backend) return this.backend.truncate(size);
    await this.own(size);
  }

  async sync(): Promise<void> {
    await this.backend?.sync();
  }

  async close(): Promise<void> {
    await this.backend?.close();
  }

  async commit(size: number, expected?: string, opts: CommitOptions = {}): Promise<void> {
    validateLabels(opts.labels, `content of ingest ${JSON.stringify(this.ref)}`);
    const backend = this.backend;
    if (backend) await backend.sync(); // the slow part, outside the metadata lock
    let existed = false;
    let digest!: string;
    try {
      existed = await this.db.update(async (tx) => {
        if (!backend) {
          const { size: have, digest: adopted } = this.adopted!;
          if (size !== 0 && size !== have) {
            throw failedPrecondition(`${JSON.stringify(this.ref)} failed size validation: ${have} != ${size}`);
          }
          if (expected && expected !== adopted) throw failedPrecondition(`${JSON.stringify(this.ref)} unexpected digest`);
          digest = adopted;
          return this.store.recordCommit(tx, this.ctx, this.ref, digest, have, opts.labels);
        }
        const offset = backend.status().offset;
        if (size !== 0 && size !== offset) {
          // containerd keeps the writer open here; berth's backend commit would release it.
          await backend.close();
          throw failedPrecondition(`${JSON.stringify(this.ref)} failed size validation: ${offset} != ${size}`);
        }
        // Committed while no GC can run: the blob never exists on disk without its record.
        try {
          await backend.commit(offset, expected);
        } catch (err) {
          if (errorCode(err) !== 'already_exists') throw err; // another namespace has it: fine
        }
        digest = backend.digest();
        return this.store.recordCommit(tx, this.ctx, this.ref, digest, offset, opts.labels);
      });
    } catch (err) {
      await backend?.close();
      throw err;
    }
    if (existed) throw alreadyExists(`content ${digest}: already exists`);
  }

  /** Turns adopted content into a backend ingest holding its first `size` bytes. */
  private async own(size: number): Promise<void> {
    if (this.backend) return;
    const { digest } = this.adopted!;
    const backend = await this.store.backend.writer({ ref: this.record.bref });
    try {
      await backend.truncate(0);
      const reader = await this.store.backend.readerAt(digest);
      try {
        const buf = Buffer.alloc(1 << 20);
        for (let at = 0; at < size; ) {
          const n = await reader.readAt(buf.subarray(0, Math.min(buf.length, size - at)), at);
          if (n === 0) throw failedPrecondition(`content ${digest} is shorter than ${size} bytes`);
          await backend.write(buf.subarray(0, n));
          at += n;
        }
      } finally {
        await reader.close();
      }
    } catch (err) {
      await backend.close();
      throw err;
    }
    this.backend = backend;
    this.adopted = undefined;
    // The content is now whatever gets written: neither adopted nor expected to be `digest`.
    this.record = { bref: this.record.bref, ...(this.record.expireAt ? { expireAt: this.record.expireAt } : {}) };
    await this.db.update(async (tx) => tx.put(this.db.ingests, nsKey(this.ctx.namespace, this.ref), this.record));
  }
}
