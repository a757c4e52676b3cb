// Following an ingest while it is being written (berth's own; containerd has no such thing):
// readers that stream a blob as it arrives — the unpacker behind a pull, the registry listener
// serving many clients from one download — read the ingest's data file behind its writer and
// wait when they catch up. The writer and the store tell them what happens to the ingest, in this
// process: a root is owned by one process (src/rootlock.ts), so that is the whole story, and
// nobody polls or watches files. Only the store opens the files; followers get a stream.
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { BerthError, errorCode, failedPrecondition, invalidArgument, isMissingFile, notFound } from './errors.js';
import { ingestFiles } from './ingest.js';
import { blobPath, ingestPath } from './paths.js';
import { openBlob } from './reader.js';

/** What happened to an ingest, as its writer and the store report it. */
export type IngestEvent =
  /** Bytes [0, offset) of the data file are written. */
  | { type: 'written'; offset: number }
  /** The data file was cut to `size` bytes: the ingest is being written over. */
  | { type: 'truncated'; size: number }
  /** The data file is now blob `digest` (or that blob existed already: the same bytes). */
  | { type: 'committed'; digest: string; size: number }
  /** A commit was refused (size or digest mismatch, a broken writer); `error` says why. */
  | { type: 'commit_failed'; error: Error }
  /** The writer let go without committing: a later writer may resume the ingest. */
  | { type: 'closed' }
  /** The ingest was removed. */
  | { type: 'aborted' };

type IngestListener = (event: IngestEvent) => void;

/** Who listens to which ingest, by ref. Costs a map lookup per event when nobody does. */
export class IngestEvents {
  private readonly listeners = new Map<string, Set<IngestListener>>();

  /** Returns the function that stops listening (idempotent). */
  listen(ref: string, listener: IngestListener): () => void {
    let set = this.listeners.get(ref);
    if (!set) this.listeners.set(ref, (set = new Set()));
    set.add(listener);
    const listening = set;
    return () => {
      listening.delete(listener);
      if (listening.size === 0 && this.listeners.get(ref) === listening) this.listeners.delete(ref);
    };
  }

  emit(ref: string, event: IngestEvent): void {
    const set = this.listeners.get(ref);
    if (!set) return;
    for (const listener of [...set]) listener(event);
  }
}

export interface FollowOptions {
  /** The ingest to follow (a ref of this store). */
  ref?: string;
  /**
   * The blob to read when there is no ingest `ref` (committed already), or when no ref is given.
   * A commit seen while following names its blob itself.
   */
  digest?: string;
  /** The first byte to read; default 0. */
  offset?: number;
  /**
   * Aborting fails the stream and closes its file: with the reason when that is a BerthError,
   * else with failed_precondition naming what was followed.
   */
  signal?: AbortSignal;
}

/** What a follow names, for messages: `ingest ref "r" (content d)`. */
export function followedName({ ref, digest }: FollowOptions): string {
  if (ref === undefined) return `content ${digest}`;
  return `ingest ref ${JSON.stringify(ref)}${digest === undefined ? '' : ` (content ${digest})`}`;
}

const chunkSize = 1 << 20;

/**
 * The bytes of an ingest from `offset` as its writers write them, read in chunks of at most
 * 1 MiB from a descriptor on its data file. It waits when it has caught up; it reads on from the
 * same descriptor after a commit (the rename into `blobs/` does not move an open file) and ends
 * at the blob's size — only then, so a consumer may hold back the last bytes until it ends. A
 * writer closing without commit is waited out (a later writer resumes the ingest). It fails with:
 * not_found when the ingest is aborted (gone, as when it never existed); the commit's own kind
 * when a commit is refused; failed_precondition when the ingest is cut below what was read;
 * range_not_satisfiable when `offset` is past the blob's end.
 */
export class IngestFollower extends Readable {
  private readonly what: string;
  /** Where the next byte pushed comes from. */
  private position: number;
  /** Bytes [0, written) of the file are there; undefined until the file or a writer says. */
  private written: number | undefined;
  /** The blob the bytes are, once committed (or when a blob is read): the stream ends at its size. */
  private blob: { digest: string; size: number } | undefined;
  /** Counts truncations: a read in flight across one is dropped and done again. */
  private cuts = 0;
  private reading = false;
  /** Asked for bytes and had none: the next event resumes reading. */
  private caughtUp = false;
  private fh: FileHandle | undefined;
  private stopListening: () => void = () => {};
  private forgetSignal: () => void = () => {};
  /** Until `open` hands the stream out, a failure is kept for `open` to throw. */
  private handedOut = false;
  private earlyFailure: Error | undefined;

  private constructor(private readonly opts: FollowOptions) {
    super({ highWaterMark: chunkSize });
    this.position = opts.offset ?? 0;
    this.what = followedName(opts);
  }

  /** Opens what `opts` names: the ingest, else the blob; not_found when neither is there. */
  static async open(root: string, events: IngestEvents, opts: FollowOptions): Promise<IngestFollower> {
    const { ref, digest, offset = 0 } = opts;
    if (ref === undefined && digest === undefined) throw invalidArgument('follow needs an ingest ref or a digest');
    if (!Number.isSafeInteger(offset) || offset < 0) throw invalidArgument(`follow offset ${offset} is not a byte offset`);
    if (digest !== undefined) blobPath(root, digest); // invalid_argument for a malformed digest, before any file is opened
    const follower = new IngestFollower(opts);
    try {
      follower.watchSignal();
      if (!follower.earlyFailure) await follower.openFile(root, events);
      if (follower.earlyFailure) throw follower.earlyFailure;
      follower.handedOut = true;
      return follower;
    } catch (err) {
      follower.destroy();
      throw err;
    }
  }

  private watchSignal(): void {
    const { signal } = this.opts;
    if (!signal) return;
    const onAbort = () => {
      const reason: unknown = signal.reason;
      this.fail(
        reason instanceof BerthError
          ? reason
          : failedPrecondition(`following ${this.what}: cancelled: ${(reason as Error)?.message ?? String(reason)}`, reason),
      );
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    this.forgetSignal = () => signal.removeEventListener('abort', onAbort);
  }

  private async openFile(root: string, events: IngestEvents): Promise<void> {
    const { ref, digest } = this.opts;
    if (ref !== undefined) {
      // Listening first: nothing that happens while the file is opened goes unheard.
      this.stopListening = events.listen(ref, (event) => this.onEvent(event));
      try {
        this.fh = await open(join(ingestPath(root, ref), ingestFiles.data), 'r');
      } catch (err) {
        if (!isMissingFile(err)) throw err;
      }
      if (this.fh && !this.blob) {
        this.written ??= (await this.fh.stat()).size;
        return;
      }
      // Committed while we opened: the blob is the sure way to those bytes (the ref may already
      // name a new ingest).
      await this.fh?.close();
      this.fh = undefined;
      if (this.earlyFailure) return;
    }
    const from = this.blob?.digest ?? digest;
    const missing = (cause?: unknown) => notFound(`${this.what}: not found`, cause);
    if (from === undefined) throw missing();
    this.stopListening(); // a blob does not change
    try {
      this.fh = await openBlob(blobPath(root, from));
    } catch (err) {
      if (isMissingFile(err)) throw missing(err);
      throw err;
    }
    const { size } = await this.fh.stat();
    this.blob = { digest: from, size };
    this.written = size;
    if (this.position > size) throw this.pastTheEnd();
  }

  private onEvent(event: IngestEvent): void {
    switch (event.type) {
      case 'written':
        this.written = event.offset;
        break;
      case 'truncated':
        this.cuts++;
        if (event.size < this.position) {
          return this.fail(failedPrecondition(`${this.what}: cut to ${event.size} bytes below the ${this.position} already read`));
        }
        this.written = event.size;
        break;
      case 'committed':
        this.blob = { digest: event.digest, size: event.size };
        this.written = event.size;
        this.stopListening();
        break;
      case 'commit_failed':
        return this.fail(
          new BerthError(errorCode(event.error), `${this.what}: commit failed: ${event.error.message}`, { cause: event.error }),
        );
      case 'closed':
        return; // a later writer may resume the ingest: wait for it
      case 'aborted':
        return this.fail(notFound(`${this.what}: aborted while being followed`));
    }
    if (this.caughtUp) {
      this.caughtUp = false;
      this.pump();
    }
  }

  override _read(): void {
    this.pump();
  }

  private pump(): void {
    if (this.reading || this.destroyed) return;
    const available = (this.written ?? 0) - this.position;
    if (available > 0) {
      this.reading = true;
      this.readChunk(Math.min(chunkSize, available)).catch((err: unknown) => this.fail(err as Error));
    } else if (!this.blob) {
      this.caughtUp = true;
    } else if (this.position > this.blob.size) {
      this.fail(this.pastTheEnd());
    } else {
      this.push(null);
    }
  }

  private async readChunk(length: number): Promise<void> {
    const cuts = this.cuts;
    const buf = Buffer.allocUnsafe(length);
    let bytesRead: number;
    try {
      ({ bytesRead } = await this.fh!.read(buf, 0, length, this.position));
    } finally {
      this.reading = false;
    }
    if (this.destroyed) return;
    if (cuts !== this.cuts) return this.pump(); // cut while we read: those bytes may be stale
    if (bytesRead === 0) {
      if (this.blob) throw new BerthError('internal', `${this.what}: the file ends at ${this.position}, before its size ${this.blob.size}`);
      // The file is shorter than its writer said: a writer is starting it over; its news wakes us.
      this.caughtUp = true;
      return;
    }
    this.position += bytesRead;
    this.push(bytesRead === length ? buf : buf.subarray(0, bytesRead));
  }

  private pastTheEnd(): BerthError {
    return new BerthError('range_not_satisfiable', `${this.what}: offset ${this.position} is past its size ${this.blob?.size}`, {
      details: { size: this.blob?.size ?? 0 },
    });
  }

  private fail(err: Error): void {
    if (this.handedOut) this.destroy(err);
    else this.earlyFailure ??= err;
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.stopListening();
    this.forgetSignal();
    const fh = this.fh;
    this.fh = undefined;
    if (!fh) return callback(err);
    // FileHandle.close waits for a read in flight.
    fh.close().then(
      () => callback(err),
      (closeErr: unknown) => callback(err ?? (closeErr as Error)),
    );
  }
}
