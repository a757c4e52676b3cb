// The content store's interfaces, as containerd's core/content: a Provider (readers), an
// Ingester (writers), an IngestManager (status, list, abort) and a Manager (info, update, walk,
// delete). Sizes are byte counts; times are Dates (millisecond precision, written as RFC 3339).
import type { Readable } from 'node:stream';

export type Labels = Record<string, string>;

/** A committed blob. */
export interface Info {
  digest: string;
  size: number;
  createdAt: Date;
  updatedAt: Date;
  labels: Labels;
}

/** An ingest in progress. `total` is 0 when unknown. */
export interface Status {
  ref: string;
  offset: number;
  total: number;
  /** The digest the writer was opened for, when one was given (the local store leaves it unset). */
  expected?: string;
  startedAt: Date;
  updatedAt: Date;
}

export interface WriterOptions {
  /** Required: names the ingest, so that a later writer with the same ref resumes it. */
  ref: string;
  /** Expected total size; 0 or absent means unknown. */
  size?: number;
  /** Expected digest; when the blob already exists the writer is refused with already_exists. */
  digest?: string;
}

export interface CommitOptions {
  labels?: Labels;
}

export interface Writer {
  readonly ref: string;
  /** Appends bytes at the current offset. */
  write(chunk: Uint8Array): Promise<void>;
  /** Digest of everything written so far (the empty digest before any write). */
  digest(): string;
  status(): Status;
  /** Only 0 is supported: starts the ingest over. */
  truncate(size: number): Promise<void>;
  /**
   * Verifies size (when > 0) and digest (when given), then publishes the blob atomically.
   * Always releases the writer; on a size or digest mismatch the ingest is kept for resumption.
   */
  commit(size: number, expected?: string, opts?: CommitOptions): Promise<void>;
  /** Flushes, records progress and releases the ref; the ingest stays resumable. Idempotent. */
  close(): Promise<void>;
  sync(): Promise<void>;
}

/** Random access to a committed blob; `size` is fixed when it is opened. */
export interface ReaderAt {
  readonly size: number;
  /** Reads up to buf.length bytes at offset; returns the count (0 at or past the end). */
  readAt(buf: Uint8Array, offset: number): Promise<number>;
  /** Streams bytes [start, end) (end defaults to size); the stream closes the reader when done. */
  stream(start?: number, end?: number): Readable;
  close(): Promise<void>;
}

/** Where the local store keeps labels (containerd's LabelStore). */
export interface LabelStore {
  get(digest: string): Promise<Labels | undefined>;
  /** Replaces all labels. */
  set(digest: string, labels: Labels): Promise<void>;
  /** Merges; an empty value removes the key. Returns the resulting labels. */
  update(digest: string, labels: Labels): Promise<Labels>;
}

export interface ContentStore {
  writer(opts: WriterOptions): Promise<Writer>;
  status(ref: string): Promise<Status>;
  listStatuses(filters?: string[]): Promise<Status[]>;
  abort(ref: string): Promise<void>;

  info(digest: string): Promise<Info>;
  update(info: { digest: string; labels?: Labels }, fieldpaths?: string[]): Promise<Info>;
  walk(fn: (info: Info) => void | Promise<void>, filters?: string[]): Promise<void>;
  delete(digest: string): Promise<void>;
  readerAt(digest: string): Promise<ReaderAt>;
}
