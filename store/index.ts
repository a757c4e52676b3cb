// The local content store (containerd's plugins/content/local): committed blobs under
// `blobs/<alg>/<hex>`, resumable ingests under `ingest/<sha256(ref)>/`. A library: no HTTP, no
// metadata; labels go to the LabelStore it is given, if any.
import { mkdirSync, renameSync } from 'node:fs';
import { lstat, mkdir, open, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { alreadyExists, failedPrecondition, invalidArgument, isMissingFile, isNotFound, notFound } from './errors.js';
import { objectAdaptor, parseFilters, type Adaptor } from './filters/index.js';
import { withSpan } from './telemetry.js';
import { canonicalAlgorithm, createDigester, isAvailableAlgorithm, parseDigest } from './digest.js';
import { IngestEvents, IngestFollower, type FollowOptions, type IngestEvent } from './follow.js';
import { ingestFiles, readIngestStatus } from './ingest.js';
import { applyLabelPaths } from './labels.js';
import { RefLocks } from './locks.js';
import { BlobReaderAt } from './reader.js';
import { blobPath, blobsRoot, ingestPath, ingestRoot, pathExists, trashRoot } from './paths.js';
import { writeTimestampFile } from './timestamp.js';
import type { ContentStore, Info, LabelStore, Labels, ReaderAt, Status, Writer, WriterOptions } from './types.js';
import { hashFileInto, LocalWriter } from './writer.js';

export type { ContentStore, Info, LabelStore, Labels, ReaderAt, Status, Writer, WriterOptions } from './types.js';
export { followedName, type FollowOptions } from './follow.js';

/** Where the store reports what it recovers from on its own (a pino logger fits). */
export interface StoreLogger {
  warn(obj: object, msg: string): void;
}

export interface LocalStoreOptions {
  labels?: LabelStore;
  logger?: StoreLogger;
}

const silent: StoreLogger = { warn() {} };

export class LocalStore implements ContentStore {
  private readonly locks = new RefLocks();
  private readonly events = new IngestEvents();
  private trashed = 0;
  private emptying: Promise<void> | undefined;
  private readonly labels: LabelStore | undefined;
  private readonly logger: StoreLogger;

  private constructor(
    readonly root: string,
    opts: LocalStoreOptions,
  ) {
    this.labels = opts.labels;
    this.logger = opts.logger ?? silent;
  }

  static async open(root: string, opts: LocalStoreOptions = {}): Promise<LocalStore> {
    await mkdir(root, { recursive: true, mode: 0o755 });
    await mkdir(ingestRoot(root), { recursive: true, mode: 0o777 });
    const store = new LocalStore(root, opts);
    void store.emptyTrash(); // left by a crash between a sweep and its cleanup
    return store;
  }

  // ---- Ingester -------------------------------------------------------------------------------

  async writer(opts: WriterOptions): Promise<Writer> {
    const { ref } = opts;
    validateRef(ref);
    const release = this.locks.tryLock(ref);
    try {
      return await withSpan('content.writer', { 'berth.ref': ref }, () => this.openWriter(opts, release));
    } catch (err) {
      release();
      throw err;
    }
  }

  private async openWriter(opts: WriterOptions, release: () => void): Promise<Writer> {
    const { ref } = opts;
    const total = opts.size && opts.size > 0 ? opts.size : 0;
    let algorithm = canonicalAlgorithm;
    if (opts.digest) {
      // Checked before touching the ingest: a writer for content we have is pointless.
      if (await pathExists(blobPath(this.root, opts.digest))) {
        throw alreadyExists(`content ${opts.digest}: already exists`);
      }
      algorithm = parseDigest(opts.digest).algorithm;
    }
    const dir = ingestPath(this.root, ref);
    const dataPath = join(dir, ingestFiles.data);
    const ctx = { root: this.root, labels: this.labels, release, report: (event: IngestEvent) => this.events.emit(ref, event) };

    let created = true;
    try {
      await mkdir(dir, { mode: 0o755 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      created = false;
    }
    if (!created) {
      try {
        const status = await readIngestStatus(dir, ref);
        if (status.ref !== ref) throw new Error(`ref key does not match: ${status.ref} != ${ref}`);
        if (total > 0 && status.total > 0 && total !== status.total) {
          throw new Error(`provided total differs from status: ${total} != ${status.total}`);
        }
        const digester = createDigester(algorithm);
        await hashFileInto(dataPath, digester);
        const fh = await open(dataPath, 'r+');
        const { size } = await fh.stat();
        return new LocalWriter(ctx, {
          ref,
          dir,
          fh,
          digester,
          algorithm,
          offset: size,
          total: status.total,
          startedAt: status.startedAt,
          updatedAt: status.updatedAt,
        });
      } catch (err) {
        // As containerd: an ingest that cannot be resumed is started over, not an error.
        this.logger.warn({ ref, err: (err as Error).message }, 'cannot resume ingest, starting it over');
      }
    }
    const now = new Date();
    await writeFile(join(dir, ingestFiles.ref), ref, { mode: 0o666 });
    await writeTimestampFile(join(dir, ingestFiles.startedAt), now);
    await writeTimestampFile(join(dir, ingestFiles.updatedAt), now);
    if (total > 0) await writeFile(join(dir, ingestFiles.total), String(total));
    else await rm(join(dir, ingestFiles.total), { force: true });
    // Truncate: an ingest that failed to resume must not leave stale bytes past what we write.
    const fh = await open(dataPath, 'w');
    if (!created) this.events.emit(ref, { type: 'truncated', size: 0 });
    return new LocalWriter(ctx, {
      ref,
      dir,
      fh,
      digester: createDigester(algorithm),
      algorithm,
      offset: 0,
      total,
      startedAt: now,
      updatedAt: now,
    });
  }

  // ---- IngestManager --------------------------------------------------------------------------

  async status(ref: string): Promise<Status> {
    return readIngestStatus(ingestPath(this.root, ref), ref);
  }

  /**
   * Streams ingest `opts.ref` from `opts.offset` while it is being written, to the end of the
   * blob it is committed as (see IngestFollower for when it waits, ends and fails); or blob
   * `opts.digest` when there is no such ingest (committed already) or no ref is given. Rejects
   * with not_found when neither is there.
   */
  follow(opts: FollowOptions): Promise<Readable> {
    if (opts.ref !== undefined) validateRef(opts.ref);
    return IngestFollower.open(this.root, this.events, opts);
  }

  async listStatuses(filters: string[] = []): Promise<Status[]> {
    const filter = parseFilters(filters);
    let names: string[];
    try {
      names = await readdir(ingestRoot(this.root));
    } catch (err) {
      if (isMissingFile(err)) return [];
      throw err;
    }
    const statuses: Status[] = [];
    for (const name of names) {
      let status: Status;
      try {
        status = await readIngestStatus(join(ingestRoot(this.root), name), name);
      } catch (err) {
        if (isNotFound(err)) continue; // committed or aborted while we listed
        throw err;
      }
      if (filter(statusAdaptor(status))) statuses.push(status);
    }
    return statuses;
  }

  /**
   * Removes an ingest. Unknown refs are fine (as containerd's local store). Unlike containerd,
   * an ingest with an open writer is refused: removing files under a live writer loses its data.
   */
  async abort(ref: string): Promise<void> {
    if (this.locks.isLocked(ref)) this.locks.tryLock(ref); // throws unavailable naming the holder
    await rm(ingestPath(this.root, ref), { recursive: true, force: true });
    this.events.emit(ref, { type: 'aborted' });
  }

  /** True while a writer holds `ref`. */
  isWriting(ref: string): boolean {
    return this.locks.isLocked(ref);
  }

  // ---- Manager --------------------------------------------------------------------------------

  async info(digest: string): Promise<Info> {
    const path = blobPath(this.root, digest);
    try {
      const st = await stat(path);
      return infoFromStat(digest, st, (await this.labels?.get(digest)) ?? {});
    } catch (err) {
      if (isMissingFile(err)) throw notFound(`content ${digest}: not found`, err);
      throw err;
    }
  }

  async update(info: { digest: string; labels?: Labels }, fieldpaths: string[] = []): Promise<Info> {
    const { digest } = info;
    if (!this.labels) throw failedPrecondition(`update not supported on immutable content store (content ${digest})`);
    const path = blobPath(this.root, digest);
    let st;
    try {
      st = await stat(path);
    } catch (err) {
      if (isMissingFile(err)) throw notFound(`content ${digest}: not found`, err);
      throw err;
    }
    const current = (await this.labels.get(digest)) ?? {};
    const labels = applyLabelPaths(current, info.labels ?? {}, fieldpaths, `content info ${JSON.stringify(digest)}`);
    await this.labels.set(digest, labels);
    const updatedAt = new Date();
    // UpdatedAt is the atime; CreatedAt (mtime) stays.
    await utimes(path, updatedAt, st.mtime).catch((err) => this.logger.warn({ digest, err }, 'cannot set times'));
    return { digest, size: st.size, createdAt: st.mtime, updatedAt, labels };
  }

  async walk(fn: (info: Info) => void | Promise<void>, filters: string[] = []): Promise<void> {
    const filter = parseFilters(filters);
    const root = blobsRoot(this.root);
    let algorithms: string[];
    try {
      algorithms = (await readdir(root)).sort();
    } catch (err) {
      if (isMissingFile(err)) return;
      throw err;
    }
    for (const algorithm of algorithms) {
      if (!isAvailableAlgorithm(algorithm)) continue;
      let names: string[];
      try {
        names = (await readdir(join(root, algorithm))).sort();
      } catch (err) {
        if (isMissingFile(err) || (err as NodeJS.ErrnoException).code === 'ENOTDIR') continue;
        throw err;
      }
      for (const name of names) {
        const digest = `${algorithm}:${name}`;
        let st;
        try {
          st = await lstat(join(root, algorithm, name));
        } catch (err) {
          if (isMissingFile(err)) continue; // deleted while we walked
          throw err;
        }
        if (!st.isFile()) continue;
        const info = infoFromStat(digest, st, (await this.labels?.get(digest)) ?? {});
        if (filter(contentAdaptor(info))) await fn(info);
      }
    }
  }

  /**
   * The digests of all committed blobs, from directory listings alone (no stat per blob): what
   * the GC compares with the metadata when it looks for blobs no namespace references.
   */
  async digests(): Promise<string[]> {
    const out: string[] = [];
    let algorithms: string[];
    try {
      algorithms = await readdir(blobsRoot(this.root));
    } catch (err) {
      if (isMissingFile(err)) return out;
      throw err;
    }
    for (const algorithm of algorithms) {
      if (!isAvailableAlgorithm(algorithm)) continue;
      try {
        for (const name of await readdir(join(blobsRoot(this.root), algorithm))) out.push(`${algorithm}:${name}`);
      } catch (err) {
        if (!isMissingFile(err) && (err as NodeJS.ErrnoException).code !== 'ENOTDIR') throw err;
      }
    }
    return out;
  }

  /**
   * Removes many blobs at once (the GC's sweep). Each is renamed into `.trash/` — on this kind
   * of disk a rename costs a fifth of an unlink, which frees blocks — so the blobs are gone from
   * `blobs/` when this returns, and the files are unlinked afterwards in the background, outside
   * any lock the caller holds. A crash leaves only trash, emptied at the next open. Returns the
   * digests removed (those that were there).
   */
  async deleteMany(digests: readonly string[]): Promise<string[]> {
    return withSpan('content.delete_many', { 'berth.count': digests.length }, () => this.trash(digests));
  }

  private async trash(digests: readonly string[]): Promise<string[]> {
    const removed: string[] = [];
    const trash = trashRoot(this.root);
    mkdirSync(trash, { recursive: true, mode: 0o700 });
    for (let i = 0; i < digests.length; i++) {
      try {
        renameSync(blobPath(this.root, digests[i]), join(trash, `${digests[i].replace(':', '-')}-${this.trashed++}`));
        removed.push(digests[i]);
      } catch (err) {
        if (!isMissingFile(err)) throw err;
      }
      if (i % 512 === 511) await new Promise((resolve) => setImmediate(resolve));
    }
    void this.emptyTrash();
    return removed;
  }

  /** Unlinks what `deleteMany` moved aside; one pass at a time, in the background. */
  emptyTrash(): Promise<void> {
    this.emptying ??= (async () => {
      try {
        const trash = trashRoot(this.root);
        let names: string[];
        try {
          names = await readdir(trash);
        } catch (err) {
          if (isMissingFile(err)) return;
          throw err;
        }
        for (const name of names) await rm(join(trash, name), { force: true });
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, 'cannot empty the content trash');
      } finally {
        this.emptying = undefined;
      }
    })();
    return this.emptying;
  }

  /** Removes a blob. A missing blob is fine (as containerd's local store); labels stay. */
  async delete(digest: string): Promise<void> {
    await withSpan('content.delete', { 'berth.digest': digest }, () =>
      rm(blobPath(this.root, digest), { force: true }),
    );
  }

  // ---- Provider -------------------------------------------------------------------------------

  async readerAt(digest: string): Promise<ReaderAt> {
    const path = blobPath(this.root, digest);
    try {
      return await BlobReaderAt.open(path);
    } catch (err) {
      if (isMissingFile(err)) throw notFound(`content ${digest}: not found`, err);
      throw err;
    }
  }
}

/**
 * The longest ref, in characters: above the names berth's API takes (openapi.yaml's `Name`,
 * 4096) with the `<namespace>/<seq>/` its metadata store puts in front of them, so that only the
 * API's one limit is ever met (test/bad-input.test.ts checks the room).
 */
export const refMaxLength = 8192;

/** Refs are text: containerd allows anything non-empty; control characters are refused. */
export function validateRef(ref: string): void {
  if (typeof ref !== 'string' || ref === '') throw invalidArgument('ref must not be empty');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(ref)) {
    throw invalidArgument(`ref ${JSON.stringify(ref)} must not contain control characters`);
  }
  // Counted as JSON Schema counts lengths: in code points.
  let n = 0;
  for (const _ of ref) if (++n > refMaxLength) break;
  if (n > refMaxLength) throw invalidArgument(`ref ${JSON.stringify(ref.slice(0, 64))}… is longer than ${refMaxLength} characters`);
}

function infoFromStat(digest: string, st: { size: number; mtime: Date; atime: Date }, labels: Labels): Info {
  return { digest, size: st.size, createdAt: st.mtime, updatedAt: st.atime, labels };
}

/** Filter fields of committed content: `digest` and `labels.<key>`. */
export const contentAdaptor = (info: Info): Adaptor => objectAdaptor({ digest: info.digest }, { labels: info.labels });

/** Filter fields of an ingest: only `ref`. */
export const statusAdaptor = (status: Status): Adaptor => objectAdaptor({ ref: status.ref });
