// containerd's content helpers (core/content/helpers.go): these define what clients see when
// they write through the store — retrying a locked ref, resuming from the writer's offset,
// treating "already exists" as success.
import { errorCode, invalidArgument } from './errors.js';
import type { CommitOptions, ContentStore, Writer, WriterOptions } from './types.js';

/** A plain stream: copying into a resumed writer discards the first `offset` bytes. */
export type PlainSource = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
/** A source that can start anywhere (containerd's io.Seeker). */
export interface SeekableSource {
  openAt(offset: number): AsyncIterable<Uint8Array>;
}
/** Random access (containerd's io.ReaderAt): copying reads the section [offset, size). */
export interface ReaderAtSource {
  size: number;
  readAt(buf: Uint8Array, offset: number): Promise<number>;
}
export type CopySource = PlainSource | SeekableSource | ReaderAtSource;

const copyChunk = 1 << 20;

/**
 * Opens a writer, waiting while another writer holds the ref: random sleeps that start at 16 ms
 * and double up to 2 s, as containerd's OpenWriter, until `timeoutMs` (default 60 s) passes.
 */
export async function openWriter(
  store: Pick<ContentStore, 'writer'>,
  opts: WriterOptions,
  { timeoutMs = 60_000 }: { timeoutMs?: number } = {},
): Promise<Writer> {
  const deadline = Date.now() + timeoutMs;
  let retry = 16;
  for (;;) {
    try {
      return await store.writer(opts);
    } catch (err) {
      if (errorCode(err) !== 'unavailable' || Date.now() >= deadline) throw err;
      const wait = Math.min(Math.random() * retry, Math.max(0, deadline - Date.now()));
      await new Promise((resolve) => setTimeout(resolve, wait));
      if (retry < 2048) retry *= 2;
    }
  }
}

/** Writes a whole blob under `ref`; content that already exists is success, unread. */
export async function writeBlob(
  store: Pick<ContentStore, 'writer'>,
  ref: string,
  source: CopySource,
  desc: { size?: number; digest?: string },
  opts?: CommitOptions,
): Promise<void> {
  let writer: Writer;
  try {
    writer = await openWriter(store, { ref, size: desc.size, digest: desc.digest });
  } catch (err) {
    if (errorCode(err) === 'already_exists') return;
    throw err;
  }
  try {
    await copy(writer, source, desc.size ?? 0, desc.digest, opts);
  } finally {
    await writer.close();
  }
}

/**
 * Copies `source` into `writer` from the writer's current offset, checks that `size` bytes (when
 * > 0) arrived, and commits. already_exists from the commit is success.
 */
export async function copy(
  writer: Writer,
  source: CopySource,
  size: number,
  expected?: string,
  opts?: CommitOptions,
): Promise<void> {
  const start = writer.status().offset;
  const copied = await copyFrom(writer, source, start, size);
  if (size > 0 && copied < size - start) {
    throw invalidArgument(`short read: expected ${size - start} bytes but got ${copied} for ref ${writer.ref}`);
  }
  try {
    await writer.commit(size, expected, opts);
  } catch (err) {
    if (errorCode(err) === 'already_exists') return;
    throw err;
  }
}

/** Reads a whole committed blob into memory: for small things (manifests, configs) only. */
export async function readBlob(store: Pick<ContentStore, 'readerAt'>, digest: string): Promise<Buffer> {
  const reader = await store.readerAt(digest);
  try {
    const buf = Buffer.alloc(reader.size);
    const n = await reader.readAt(buf, 0);
    if (n !== reader.size) throw new Error(`unexpected end of blob ${digest}: read ${n} of ${reader.size} bytes`);
    return buf;
  } finally {
    await reader.close();
  }
}

async function copyFrom(writer: Writer, source: CopySource, offset: number, size: number): Promise<number> {
  let copied = 0;
  if ('readAt' in source) {
    const end = size > 0 ? size : source.size;
    const buf = Buffer.alloc(copyChunk);
    for (let at = offset; at < end; ) {
      const n = await source.readAt(buf.subarray(0, Math.min(copyChunk, end - at)), at);
      if (n === 0) break;
      await writer.write(buf.subarray(0, n));
      at += n;
      copied += n;
    }
    return copied;
  }
  const stream = 'openAt' in source ? source.openAt(offset) : source;
  let skip = 'openAt' in source ? 0 : offset;
  for await (const chunk of stream) {
    let bytes = chunk;
    if (skip > 0) {
      const dropped = Math.min(skip, bytes.length);
      skip -= dropped;
      bytes = bytes.subarray(dropped);
    }
    if (bytes.length === 0) continue;
    await writer.write(bytes);
    copied += bytes.length;
  }
  if (skip > 0) throw invalidArgument(`unable to discard to offset ${offset} for ref ${writer.ref}: source ended`);
  return copied;
}

/**
 * What a crash may lose of a stream being written (issue 13): at any instant at most
 * `unwrittenMax` bytes received and not yet written (write(2)) to the ingest file, and none of
 * them older than about `unwrittenMaxMs`. After `kill -9` the ingest holds everything else that
 * was received, and a resume fetches at most that much again.
 */
export const unwrittenMax = 256 << 10;
export const unwrittenMaxMs = 250;
/** A partly filled buffer is written this long after its first byte came: the rest of the 250 ms is for the write and a busy event loop. */
export const flushAfterMs = 200;
/** Two buffers of half the bound: one is written while the other fills. */
const writeBatch = unwrittenMax / 2;

/**
 * Streams `body` into `writer` (at the writer's offset) through two reused 128 KiB buffers: one
 * is written while the other fills from the socket, so receiving, hashing and writing overlap and
 * memory stays at 256 KiB whatever the size. A buffer is written when it is full, or
 * `flushAfterMs` after its first byte arrived (a slow stream still reaches the file), so at any
 * instant at most `unwrittenMax` received bytes are not in the file yet. Writes go one after
 * another, each appending where the last ended: the file is always a prefix of the stream.
 * `onProgress` hears each batch once it is written.
 */
export async function writeStream(
  writer: Writer,
  body: AsyncIterable<Uint8Array>,
  onProgress?: (bytes: number) => void,
): Promise<void> {
  const buffers = [Buffer.allocUnsafe(writeBatch), Buffer.allocUnsafe(writeBatch)];
  let current = 0;
  let fill = 0;
  // The write in flight (of buffers[current ^ 1]); the buffer being filled is never written.
  let writing: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const flush = async (): Promise<void> => {
    // Wait until no write is in flight: the other buffer is free again once its write is done.
    // (The timer and the loop may both be here; whoever wakes first writes, the other waits on.)
    for (let w = writing; ; w = writing) {
      await w;
      if (w === writing) break;
    }
    if (timer) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (fill === 0) return;
    const chunk = buffers[current].subarray(0, fill);
    writing = writer.write(chunk).then(() => onProgress?.(chunk.length));
    writing.catch(() => {}); // awaited by the next flush or below; not an unhandled rejection meanwhile
    current ^= 1;
    fill = 0;
  };
  try {
    for await (const data of body) {
      const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length);
      for (let at = 0; at < bytes.length; ) {
        const n = bytes.copy(buffers[current], fill, at);
        fill += n;
        at += n;
        if (fill === writeBatch) await flush();
      }
      if (fill > 0 && !timer) {
        timer = setTimeout(() => {
          timer = undefined;
          flush().catch(() => {}); // a failed write surfaces through `writing`
        }, flushAfterMs);
      }
    }
  } finally {
    if (timer) clearTimeout(timer);
    timer = undefined;
    // What arrived before a disconnect is kept: the ingest stays resumable from there.
    await flush();
    await writing;
  }
}
