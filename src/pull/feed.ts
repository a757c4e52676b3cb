// A blob's bytes from its first byte while it is still downloading, for the unpacker: the
// download writes them to the ingest's data file and says how far it got; the feed reads the
// file behind it (from the page cache, not the network), waiting when it catches up. A download
// that resumed a partial ingest is read from 0 all the same. Committing renames that file into
// `blobs/`, which an open descriptor does not notice, so the feed reads on to the end.
import { EventEmitter, once } from 'node:events';
import { open, type FileHandle } from 'node:fs/promises';
import { BerthError, isMissingFile } from '../../store/errors.js';

const chunkSize = 1 << 20;

type FeedState = 'waiting' | 'downloading' | 'present' | 'failed';

export class BlobFeed {
  private dataPath: string | undefined;
  /** Bytes of the blob on disk so far. */
  private written = 0;
  private state: FeedState = 'waiting';
  private error: unknown;
  private readonly changed = new EventEmitter();

  constructor(
    readonly digest: string,
    readonly size: number,
  ) {
    this.changed.setMaxListeners(0);
  }

  /** The download (re)started at `offset`, writing `dataPath`. */
  started(offset: number, dataPath: string): void {
    this.dataPath = dataPath;
    this.written = offset;
    this.state = 'downloading';
    this.changed.emit('change');
  }

  wrote(bytes: number): void {
    this.written += bytes;
    this.changed.emit('change');
  }

  /** The blob is committed (downloaded now, or already there). */
  present(): void {
    this.written = this.size;
    this.state = 'present';
    this.changed.emit('change');
  }

  failed(err: unknown): void {
    this.error = err;
    this.state = 'failed';
    this.changed.emit('change');
  }

  /**
   * The blob's bytes in order. `committed` reads the blob from the content store: used when it
   * was there before any download started (or its ingest file is gone already).
   */
  async *bytes(committed: () => AsyncIterable<Uint8Array>, signal: AbortSignal): AsyncGenerator<Uint8Array> {
    while (this.now() === 'waiting') await this.next(signal);
    if (this.now() === 'failed') throw this.failure();
    let fh: FileHandle | undefined;
    if (this.now() === 'downloading') {
      try {
        fh = await open(this.dataPath!, 'r');
      } catch (err) {
        if (!isMissingFile(err)) throw err;
        // Committed (renamed) between the news and now.
        while (this.now() === 'downloading') await this.next(signal);
      }
    }
    if (!fh) {
      if (this.now() === 'failed') throw this.failure();
      yield* committed();
      return;
    }
    try {
      let pos = 0;
      while (pos < this.size) {
        signal.throwIfAborted();
        if (pos >= this.written) {
          if (this.now() === 'failed') throw this.failure();
          await this.next(signal);
          continue;
        }
        const buf = Buffer.allocUnsafe(Math.min(chunkSize, this.written - pos));
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        if (bytesRead === 0) {
          // The writer said so but the file ends: a restarted download truncated it. Wait.
          await this.next(signal);
          continue;
        }
        pos += bytesRead;
        yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
      }
      // All bytes read, but the blob is only good once the download has verified and committed
      // it: until then the layer must not be committed on top of it.
      while (this.now() === 'downloading') await this.next(signal);
      if (this.now() === 'failed') throw this.failure();
    } finally {
      await fh.close();
    }
  }

  /** The state as it is now (it changes while `bytes` awaits). */
  private now(): FeedState {
    return this.state;
  }

  private failure(): Error {
    return new BerthError('unavailable', `layer ${this.digest}: the download failed: ${(this.error as Error)?.message ?? 'unknown error'}`, {
      cause: this.error,
    });
  }

  private async next(signal: AbortSignal): Promise<void> {
    await once(this.changed, 'change', { signal });
  }
}
