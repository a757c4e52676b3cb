// The content service: what the HTTP routes and the CLI see of content. Over the namespaced
// content store it adds what a network API needs: uploads that arrive in pieces (tus-style)
// without re-hashing the ingest for every piece, one-shot uploads that leave nothing behind on
// failure, and events.
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { alreadyExists, BerthError, errorCode, unavailable } from '../../store/errors.js';
import type { EventBus } from '../events/bus.js';
import type { MetadataContentStore } from '../metadata/content.js';
import type { OpContext } from '../metadata/context.js';
import { withSpan } from '../../store/telemetry.js';
import { parseDigest } from '../../store/digest.js';
import { writeStream } from '../../store/copy.js';
import { validateRef } from '../../store/index.js';
import type { Info, ReaderAt, Status, Writer } from '../../store/types.js';
import type { Labels } from '../oci/labels.js';
import { verifyContent, type VerifyReport } from '../../store/verify.js';

export interface IngestAppend {
  /** Where the client believes the ingest ends; must equal the ingest's offset. */
  offset: number;
  /** Expected total size, when the client knows it. */
  total?: number;
  /** Expected digest, when the client knows it. */
  expected?: string;
  /** Bytes in this request's body, when the request says (Content-Length). */
  length?: number;
}

export interface ContentServiceOptions {
  /** How long a writer stays open between two appends to the same ingest (ms). */
  idleWriterMs?: number;
}

interface Parked {
  writer: Writer;
  lease: string | undefined;
  timer: NodeJS.Timeout;
}

export class ContentService {
  /**
   * Writers kept open between appends, so the next piece continues the running hash instead of
   * re-reading the whole ingest. Their lock is held; a request takes the writer out of this map
   * while it streams, which is how a second concurrent request on the ref gets `unavailable`.
   */
  private readonly idle = new Map<string, Parked>();
  private readonly idleWriterMs: number;

  constructor(
    private readonly store: MetadataContentStore,
    private readonly events: EventBus,
    opts: ContentServiceOptions = {},
  ) {
    this.idleWriterMs = opts.idleWriterMs ?? 30_000;
  }

  // ---- committed content ----------------------------------------------------------------------

  list(ctx: OpContext, filters: string[]): Promise<Info[]> {
    return this.store.list(ctx, filters);
  }

  info(ctx: OpContext, digest: string): Promise<Info> {
    parseDigest(digest);
    return this.store.info(ctx, digest);
  }

  update(ctx: OpContext, digest: string, labels: Labels, fieldpaths: string[]): Promise<Info> {
    parseDigest(digest);
    return this.store.update(ctx, digest, labels, fieldpaths);
  }

  /** Removes the namespace's record; the GC frees the bytes once no namespace has the blob. */
  async delete(ctx: OpContext, digest: string): Promise<void> {
    parseDigest(digest);
    await withSpan('content.delete', { 'berth.digest': digest, 'berth.namespace': ctx.namespace }, () =>
      this.store.delete(ctx, digest),
    );
    this.events.publish(ctx.namespace, '/content/delete', { digest });
  }

  open(ctx: OpContext, digest: string): Promise<ReaderAt> {
    parseDigest(digest);
    return this.store.readerAt(ctx, digest);
  }

  /** Re-hashes every blob; with `repair`, removes those that no longer match, in every namespace. */
  async verify(repair: boolean): Promise<VerifyReport> {
    const report = await verifyContent(this.store.backend, { repair });
    for (const digest of report.removed) await this.store.forget(digest);
    return report;
  }

  /** Writes and commits a whole blob from `body`; on any failure nothing is left behind. */
  async put(ctx: OpContext, digest: string, body: Readable, opts: { size?: number; labels?: Labels }): Promise<Info> {
    parseDigest(digest);
    return withSpan('content.put', { 'berth.digest': digest }, async () => {
      const ref = `put-${digest}-${randomUUID()}`;
      const writer = await this.store.writer(ctx, { ref, digest, size: opts.size });
      try {
        // Content another namespace has (and may share) is adopted: no bytes needed.
        const adopted = writer.status().offset > 0;
        if (!adopted) await writeStream(writer, body);
        await writer.commit(opts.size ?? 0, digest, { labels: opts.labels });
      } catch (err) {
        await writer.close();
        await this.store.abort(ctx, ref).catch(() => {}); // gone already when the commit got that far
        throw err;
      }
      const info = await this.store.info(ctx, digest);
      this.events.publish(ctx.namespace, '/content/create', { digest, size: info.size });
      return info;
    });
  }

  // ---- ingests --------------------------------------------------------------------------------

  listIngests(ctx: OpContext, filters: string[]): Promise<Status[]> {
    return this.store.listStatuses(ctx, filters);
  }

  ingestStatus(ctx: OpContext, ref: string): Promise<Status> {
    return this.store.status(ctx, ref);
  }

  /** Appends `body` to the ingest `ref` at `at.offset`, creating the ingest at offset 0. */
  async append(ctx: OpContext, ref: string, at: IngestAppend, body: Readable): Promise<Status> {
    validateRef(ref);
    if (at.expected) parseDigest(at.expected);
    const existing = await this.store.status(ctx, ref).catch((err) => {
      if (errorCode(err) === 'not_found') return undefined;
      throw err;
    });
    if (!existing && at.offset !== 0) throw offsetMismatch(ref, 0, at.offset);
    if (existing && at.total && existing.total && existing.total !== at.total) {
      throw new BerthError('failed_precondition', `ingest ${JSON.stringify(ref)} has total ${existing.total}, request says ${at.total}`);
    }
    // The declared length (this request's, or the ingest's) is a limit: no byte goes past it.
    // (A request at the wrong offset is told the right one first: 416, below.)
    const total = at.total || existing?.total || 0;
    if (total > 0 && at.length !== undefined && at.offset === (existing?.offset ?? 0) && at.offset + at.length > total) {
      throw tooLong(ref, total, at.offset, at.length, existing?.offset ?? 0);
    }
    return withSpan('content.append', { 'berth.ref': ref }, async () => {
      const writer = await this.takeWriter(ctx, ref, at);
      let keep = true;
      const offset = writer.status().offset;
      try {
        if (offset !== at.offset) throw offsetMismatch(ref, offset, at.offset);
        await writeStream(writer, total > 0 ? upTo(body, total - offset) : body);
        // An acknowledged offset is on disk.
        await writer.sync();
        return writer.status();
      } catch (err) {
        keep = false;
        const overrun = overrunIn(err);
        if (!overrun) throw err;
        await writer.close();
        throw tooLong(ref, total, offset, overrun.bytes, writer.status().offset, 'at least ');
      } finally {
        // A failed request (a client gone mid-upload) still leaves a resumable ingest: closing
        // records what arrived.
        if (keep) this.park(ctx, ref, writer);
        else await writer.close(); // closing twice is a no-op
      }
    });
  }

  /**
   * Commits the ingest `ref`, checking `digest` or else the digest the upload said to expect;
   * a size or digest mismatch keeps the ingest for another try.
   */
  async commit(ctx: OpContext, ref: string, size: number, digest: string | undefined, labels?: Labels): Promise<Info> {
    validateRef(ref);
    if (digest) parseDigest(digest);
    const status = await this.store.status(ctx, ref); // not_found rather than creating an ingest
    if (status.total > 0 && status.offset > status.total) {
      throw new BerthError(
        'failed_precondition',
        `ingest ${JSON.stringify(ref)} holds ${status.offset} bytes, more than its declared length ${status.total}: abort it and upload again`,
      );
    }
    // Reopened with its expected digest, an ingest of content the store has is adopted.
    const writer = await this.takeWriter(ctx, ref, { expected: status.expected });
    await writer.commit(size, digest ?? status.expected, { labels });
    const info = await this.store.info(ctx, writer.digest());
    this.events.publish(ctx.namespace, '/content/create', { digest: info.digest, size: info.size });
    return info;
  }

  async abort(ctx: OpContext, ref: string): Promise<void> {
    validateRef(ref);
    await this.closeIdle(ctx, ref);
    try {
      await this.store.abort(ctx, ref);
    } catch (err) {
      if (errorCode(err) === 'unavailable') throw beingWritten(ref, err);
      throw err;
    }
  }

  /** Closes the writers kept between appends (at shutdown). */
  async close(): Promise<void> {
    const parked = [...this.idle.values()];
    this.idle.clear();
    await Promise.all(parked.map((p) => (clearTimeout(p.timer), p.writer.close())));
  }

  private async takeWriter(ctx: OpContext, ref: string, at: { total?: number; expected?: string }): Promise<Writer> {
    const key = parkKey(ctx, ref);
    const parked = this.idle.get(key);
    if (parked) {
      clearTimeout(parked.timer);
      this.idle.delete(key);
      if (parked.lease === ctx.lease) return parked.writer;
      await parked.writer.close(); // opened for another lease: reopen under this one
    }
    try {
      return await this.store.writer(ctx, { ref, size: at.total, digest: at.expected });
    } catch (err) {
      if (errorCode(err) === 'unavailable') throw beingWritten(ref, err);
      if (errorCode(err) === 'already_exists') throw alreadyExists((err as Error).message, err);
      throw err;
    }
  }

  private park(ctx: OpContext, ref: string, writer: Writer): void {
    const key = parkKey(ctx, ref);
    const timer = setTimeout(() => void this.closeIdle(ctx, ref), this.idleWriterMs);
    timer.unref();
    this.idle.set(key, { writer, lease: ctx.lease, timer });
  }

  private async closeIdle(ctx: OpContext, ref: string): Promise<void> {
    const key = parkKey(ctx, ref);
    const parked = this.idle.get(key);
    if (!parked) return;
    clearTimeout(parked.timer);
    this.idle.delete(key);
    await parked.writer.close();
  }
}

const beingWritten = (ref: string, cause: unknown): BerthError =>
  unavailable(`ingest ${JSON.stringify(ref)} is being written by another request`, cause);

const parkKey = (ctx: OpContext, ref: string): string => `${ctx.namespace}\u0000${ref}`;

/** A body of at least `bytes` bytes overran the room the ingest's declared length leaves. */
class Overrun extends Error {
  constructor(readonly bytes: number) {
    super(`body overran by ${bytes} bytes`);
  }
}

/** The Overrun behind `err` (whoever copied the body may have wrapped it). */
function overrunIn(err: unknown): Overrun | undefined {
  for (let e: unknown = err; e instanceof Error; e = e.cause) if (e instanceof Overrun) return e;
  return undefined;
}

/**
 * The body, refused (Overrun) from the chunk that would take the ingest past `room` more bytes:
 * what came before that chunk is written, as when a client disconnects; nothing of it or after.
 */
async function* upTo(body: AsyncIterable<Uint8Array>, room: number): AsyncGenerator<Uint8Array> {
  let seen = 0;
  for await (const chunk of body) {
    seen += chunk.length;
    if (seen > room) throw new Overrun(seen);
    yield chunk;
  }
}

/** A body of `bytes` bytes at `from` ends past the declared length; the ingest holds `offset`. */
function tooLong(ref: string, total: number, from: number, bytes: number, offset: number, atLeast = ''): BerthError {
  return new BerthError(
    'invalid_argument',
    `ingest ${JSON.stringify(ref)}: a body of ${atLeast}${bytes} bytes at offset ${from} goes past the upload's declared length ` +
      `(Upload-Length) of ${total} bytes; refused: the ingest keeps its ${offset} bytes`,
    { details: { offset } },
  );
}

function offsetMismatch(ref: string, offset: number, requested: number): BerthError {
  return new BerthError('range_not_satisfiable', `ingest ${JSON.stringify(ref)} is at offset ${offset}, not ${requested}`, {
    details: { offset },
  });
}
