// Random-access reads of committed blobs (containerd's readerat.go).
import { constants, createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { ReaderAt } from './types.js';

const streamChunk = 1 << 20;

/**
 * Opens a blob without updating its atime: the local store reports a blob's UpdatedAt from
 * atime (as containerd does), so reading must not move it. O_NOATIME needs the file's owner or
 * CAP_FOWNER; without either we read plainly.
 */
export async function openBlob(path: string): Promise<FileHandle> {
  try {
    return await open(path, constants.O_RDONLY | constants.O_NOATIME);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EPERM') return open(path, constants.O_RDONLY);
    throw err;
  }
}

export class BlobReaderAt implements ReaderAt {
  private closed = false;

  private constructor(
    private readonly fh: FileHandle,
    readonly size: number,
  ) {}

  static async open(path: string): Promise<BlobReaderAt> {
    const fh = await openBlob(path);
    try {
      const { size } = await fh.stat();
      return new BlobReaderAt(fh, size);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  async readAt(buf: Uint8Array, offset: number): Promise<number> {
    if (offset >= this.size || buf.length === 0) return 0;
    const length = Math.min(buf.length, this.size - offset);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done;
  }

  stream(start = 0, end = this.size): Readable {
    this.closed = true; // the stream owns the file now and closes it when it ends
    if (Math.min(end, this.size) <= start) {
      void this.fh.close();
      return Readable.from([]);
    }
    return createReadStream('', {
      fd: this.fh,
      start,
      end: Math.min(end, this.size) - 1,
      highWaterMark: streamChunk,
      autoClose: true,
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close();
  }
}
