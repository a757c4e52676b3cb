// The content service: what the HTTP routes and the CLI see of the content store. It adds to the
// local store what a network API needs: uploads that arrive in pieces (tus-style) without
// re-hashing the ingest for every piece, one-shot uploads that leave nothing behind on failure,
// expected digests remembered per ingest, and labels that go away with their blob.
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { alreadyExists, BerthError, errorCode, unavailable } from '../errors.js';
import { withSpan } from '../telemetry.js';
import { parseDigest } from '../../store/digest.js';
import { validateRef, type LocalStore } from '../../store/index.js';
import { pathExists, blobPath } from '../../store/paths.js';
import type { Info, Labels, ReaderAt, Status, Writer } from '../../store/types.js';
import { verifyContent, type VerifyReport } from '../../store/verify.js';
import type { MetadataDB } from '../metadata/db.js';
import type { LevelLabelStore } from '../metadata/labels.js';

export interface IngestAppend {
  /** Where the client believes the ingest ends; must equal the ingest's offset. */
  offset: number;
  /** Expected total size, when the client knows it. */
  total?: number;
  /** Expected digest, when the client knows it. */
  expected?: string;
}

export interface ContentServiceOptions {
  /** How long a writer stays open between two appends to the same ingest (ms). */
  idleWriterMs?: number;
}

/** Bytes gathered from a request before one write to the ingest file. */
const writeBatch = 1 << 20;

export class ContentService {
  /**
   * Writers kept open between appends, so the next piece continues the running hash instead of
   * re-reading the whole ingest. Their lock is held; a request takes the writer out of this map
   * while it streams, which is how a second concurrent request on the ref gets `unavailable`.
   */
  private readonly idle = new Map<string, { writer: Writer; timer: NodeJS.Timeout }>();
  private readonly idleWriterMs: number;

  constructor(
    private readonly store: LocalStore,
    private readonly labels: LevelLabelStore,
    private readonly db: MetadataDB,
    opts: ContentServiceOptions = {},
  ) {
    this.idleWriterMs = opts.idleWriterMs ?? 30_000;
  }

  // ---- committed content ----------------------------------------------------------------------

  async list(filters: string[]): Promise<Info[]> {
    const items: Info[] = [];
    await this.store.walk((info) => void items.push(info), filters);
    return items;
  }

  info(digest: string): Promise<Info> {
    return this.store.info(digest);
  }

  update(digest: string, labels: Labels, fieldpaths: string[]): Promise<Info> {
    return this.store.update({ digest, labels }, fieldpaths);
  }

  async delete(digest: string): Promise<void> {
    await this.store.info(digest); // not_found for a missing blob, as the metadata layer answers
    await this.store.delete(digest);
    await this.labels.remove(digest);
  }

  /** Re-hashes every blob; with `repair`, removes those that no longer match (and their labels). */
  async verify(repair: boolean): Promise<VerifyReport> {
    const report = await verifyContent(this.store, { repair });
    for (const digest of report.removed) await this.labels.remove(digest);
    return report;
  }

  open(digest: string): Promise<ReaderAt> {
    return this.store.readerAt(digest);
  }

  /** Writes and commits a whole blob from `body`; on any failure nothing is left behind. */
  async put(digest: string, body: Readable, opts: { size?: number; labels?: Labels }): Promise<Info> {
    parseDigest(digest);
    return withSpan('content.put', { 'berth.digest': digest }, async () => {
      const ref = `put-${digest}-${randomUUID()}`;
      const writer = await this.store.writer({ ref, digest, size: opts.size });
      try {
        await pump(body, writer);
        await writer.commit(opts.size ?? 0, digest, { labels: opts.labels });
      } catch (err) {
        await writer.close();
        await this.store.abort(ref);
        throw err;
      }
      return this.store.info(digest);
    });
  }

  // ---- ingests --------------------------------------------------------------------------------

  async listIngests(filters: string[]): Promise<Status[]> {
    const statuses = await this.store.listStatuses(filters);
    return Promise.all(statuses.map((s) => this.withExpected(s)));
  }

  async ingestStatus(ref: string): Promise<Status> {
    validateRef(ref);
    return this.withExpected(await this.store.status(ref));
  }

  /** Appends `body` to the ingest `ref` at `at.offset`, creating the ingest at offset 0. */
  async append(ref: string, at: IngestAppend, body: Readable): Promise<Status> {
    validateRef(ref);
    if (at.expected) {
      parseDigest(at.expected);
      if (await pathExists(blobPath(this.store.root, at.expected))) {
        throw alreadyExists(`content ${at.expected}: already exists`);
      }
    }
    const existing = await this.store.status(ref).catch((err) => {
      if (errorCode(err) === 'not_found') return undefined;
      throw err;
    });
    if (!existing && at.offset !== 0) throw offsetMismatch(ref, 0, at.offset);
    if (existing && at.total && existing.total && existing.total !== at.total) {
      throw new BerthError(
        'failed_precondition',
        `ingest ${JSON.stringify(ref)} has total ${existing.total}, request says ${at.total}`,
      );
    }
    return withSpan('content.append', { 'berth.ref': ref }, async () => {
      const writer = await this.takeWriter(ref, at);
      let keep = true;
      try {
        const offset = writer.status().offset;
        if (offset !== at.offset) throw offsetMismatch(ref, offset, at.offset);
        if (at.expected) await this.db.ingests.put(ref, { expected: at.expected });
        await pump(body, writer);
        // An acknowledged offset is on disk.
        await writer.sync();
        return this.withExpected(writer.status());
      } catch (err) {
        keep = false;
        throw err;
      } finally {
        // A failed request (a client gone mid-upload) still leaves a resumable ingest: closing
        // records what arrived.
        if (keep) this.park(ref, writer);
        else await writer.close();
      }
    });
  }

  /**
   * Commits the ingest `ref`, checking `digest` or else the digest the upload said to expect;
   * a size or digest mismatch keeps the ingest for another try.
   */
  async commit(ref: string, size: number, digest: string | undefined, labels?: Labels): Promise<Info> {
    validateRef(ref);
    if (digest) parseDigest(digest);
    await this.store.status(ref); // not_found rather than creating an empty ingest
    digest ??= (await this.db.ingests.get(ref))?.expected;
    const writer = await this.takeWriter(ref, {});
    await writer.commit(size, digest, { labels });
    await this.db.ingests.del(ref);
    return this.store.info(writer.digest());
  }

  async abort(ref: string): Promise<void> {
    validateRef(ref);
    await this.closeIdle(ref);
    await this.store.status(ref); // the API answers not_found for an unknown ref
    await this.store.abort(ref);
    await this.db.ingests.del(ref);
  }

  /** Closes the writers kept between appends (at shutdown). */
  async close(): Promise<void> {
    await Promise.all([...this.idle.keys()].map((ref) => this.closeIdle(ref)));
  }

  private async takeWriter(ref: string, at: { total?: number; expected?: string }): Promise<Writer> {
    const parked = this.idle.get(ref);
    if (parked) {
      clearTimeout(parked.timer);
      this.idle.delete(ref);
      return parked.writer;
    }
    try {
      return await this.store.writer({ ref, size: at.total, digest: at.expected });
    } catch (err) {
      if (errorCode(err) === 'unavailable') {
        throw unavailable(`ingest ${JSON.stringify(ref)} is being written by another request`, err);
      }
      throw err;
    }
  }

  private park(ref: string, writer: Writer): void {
    const timer = setTimeout(() => void this.closeIdle(ref), this.idleWriterMs);
    timer.unref();
    this.idle.set(ref, { writer, timer });
  }

  private async closeIdle(ref: string): Promise<void> {
    const parked = this.idle.get(ref);
    if (!parked) return;
    clearTimeout(parked.timer);
    this.idle.delete(ref);
    await parked.writer.close();
  }

  private async withExpected(status: Status): Promise<Status> {
    const record = await this.db.ingests.get(status.ref);
    return record?.expected ? { ...status, expected: record.expected } : status;
  }
}

function offsetMismatch(ref: string, offset: number, requested: number): BerthError {
  return new BerthError(
    'range_not_satisfiable',
    `ingest ${JSON.stringify(ref)} is at offset ${offset}, not ${requested}`,
    { details: { offset } },
  );
}

/**
 * Streams `body` into `writer` in 1 MiB batches through two reused buffers: one is written
 * while the other fills from the socket, so receiving, hashing and writing overlap and memory
 * stays at 2 MiB per upload whatever its size.
 */
async function pump(body: Readable, writer: Writer): Promise<void> {
  const buffers = [Buffer.allocUnsafe(writeBatch), Buffer.allocUnsafe(writeBatch)];
  let current = 0;
  let fill = 0;
  let writing: Promise<void> = Promise.resolve();
  const flush = async (): Promise<void> => {
    if (fill === 0) return;
    const chunk = buffers[current].subarray(0, fill);
    await writing; // the other buffer is free again once its write is done
    writing = writer.write(chunk);
    writing.catch(() => {}); // awaited below; not an unhandled rejection meanwhile
    current ^= 1;
    fill = 0;
  };
  try {
    for await (const data of body) {
      const bytes = data as Buffer;
      for (let at = 0; at < bytes.length; ) {
        const n = bytes.copy(buffers[current], fill, at);
        fill += n;
        at += n;
        if (fill === writeBatch) await flush();
      }
    }
  } finally {
    // What arrived before a disconnect is kept: the ingest stays resumable from there.
    await flush();
    await writing;
  }
}
