// A writer into one ingest (containerd's writer.go): appends to `ingest/<h>/data`, hashing as
// it goes, and on Commit verifies, fsyncs and renames the data into `blobs/` in one step. It
// reports each step to the ingest's followers (follow.ts).
import type { Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, mkdir, open, rename, rm, stat, utimes, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { alreadyExists, failedPrecondition, invalidArgument, isAlreadyExists, isMissingFile } from './errors.js';
import { withSpan } from './telemetry.js';
import { createDigester, parseDigest } from './digest.js';
import type { IngestEvent } from './follow.js';
import { ingestFiles } from './ingest.js';
import { blobPath, pathExists } from './paths.js';
import { writeTimestampFile } from './timestamp.js';
import type { CommitOptions, LabelStore, Status, Writer } from './types.js';

/** What a writer needs from its store. */
export interface WriterContext {
  root: string;
  labels?: LabelStore;
  /** Called once when the writer is closed or committed. */
  release: () => void;
  /** Tells the ingest's followers what happened to it. */
  report: (event: IngestEvent) => void;
}

export interface WriterState {
  ref: string;
  dir: string;
  fh: FileHandle;
  digester: Hash;
  algorithm: string;
  offset: number;
  total: number;
  startedAt: Date;
  updatedAt: Date;
}

export class LocalWriter implements Writer {
  readonly ref: string;
  private fh: FileHandle | undefined;
  private digester: Hash;
  private algorithm: string;
  private offset: number;
  private readonly total: number;
  private readonly startedAt: Date;
  private updatedAt: Date;
  private readonly dir: string;
  private committed: string | undefined;
  private released = false;
  private broken = false;
  /** The last write or truncation queued: the next one starts after it. */
  private turn: Promise<void> = Promise.resolve();

  constructor(
    private readonly ctx: WriterContext,
    state: WriterState,
  ) {
    this.ref = state.ref;
    this.dir = state.dir;
    this.fh = state.fh;
    this.digester = state.digester;
    this.algorithm = state.algorithm;
    this.offset = state.offset;
    this.total = state.total;
    this.startedAt = state.startedAt;
    this.updatedAt = state.updatedAt;
  }

  /**
   * Appends `chunk` at the offset. Writes (and truncations) run one after another even when
   * called without waiting, each at the end of the last: the data file is always a prefix of
   * what was written, never a file with a hole, so its size — what a resume after a crash
   * trusts (readIngestStatus, openWriter) — never claims bytes it does not hold. A write cut
   * short by a crash leaves a shorter prefix.
   */
  write(chunk: Uint8Array): Promise<void> {
    return this.inTurn(() => this.append(chunk));
  }

  private inTurn(op: () => Promise<void>): Promise<void> {
    const run = this.turn.then(op);
    this.turn = run.catch(() => {});
    return run;
  }

  private async append(chunk: Uint8Array): Promise<void> {
    const fh = this.open('write to');
    if (this.broken) throw failedPrecondition(`ingest ${JSON.stringify(this.ref)}: a write failed; reopen to resume`);
    // Hash while the thread pool writes: the two take about as long as each other.
    const writing = writeFully(fh, chunk, this.offset);
    this.digester.update(chunk);
    try {
      await writing;
    } catch (err) {
      // The hash now covers bytes the file may not hold: this writer is done. Reopening the
      // ref re-hashes what the file really has.
      this.broken = true;
      throw err;
    }
    this.offset += chunk.length;
    this.updatedAt = new Date();
    this.ctx.report({ type: 'written', offset: this.offset });
  }

  digest(): string {
    if (this.committed) return this.committed;
    return `${this.algorithm}:${this.digester.copy().digest('hex')}`;
  }

  status(): Status {
    return {
      ref: this.ref,
      offset: this.offset,
      total: this.total,
      startedAt: this.startedAt,
      updatedAt: this.updatedAt,
    };
  }

  truncate(size: number): Promise<void> {
    return this.inTurn(() => this.truncateNow(size));
  }

  private async truncateNow(size: number): Promise<void> {
    if (size !== 0) throw invalidArgument(`truncate of ingest ${JSON.stringify(this.ref)}: unsupported size ${size}`);
    const fh = this.open('truncate');
    await fh.truncate(0);
    this.broken = false;
    this.offset = 0;
    this.digester = createDigester(this.algorithm);
    this.updatedAt = new Date();
    this.ctx.report({ type: 'truncated', size: 0 });
  }

  async sync(): Promise<void> {
    await this.fh?.sync();
  }

  async close(): Promise<void> {
    const fh = this.fh;
    if (!fh) return;
    this.fh = undefined;
    try {
      await fh.sync();
      await fh.close();
      // Aborted underneath us: nothing left to record progress in.
      await writeTimestampFile(join(this.dir, ingestFiles.updatedAt), this.updatedAt).catch((err) => {
        if (!isMissingFile(err)) throw err;
      });
    } finally {
      this.ctx.report({ type: 'closed' });
      this.release();
    }
  }

  async commit(size: number, expected?: string, opts: CommitOptions = {}): Promise<void> {
    return withSpan('content.commit', { 'berth.ref': this.ref }, async () => {
      const live = this.fh !== undefined; // a writer closed before has nothing left to report
      try {
        await this.commitLocked(size, expected, opts);
      } catch (err) {
        // An existing blob, or a failure after the rename, was reported as committed already.
        if (live && !this.committed && !isAlreadyExists(err)) this.ctx.report({ type: 'commit_failed', error: err as Error });
        throw err;
      } finally {
        this.release();
      }
    });
  }

  private async commitLocked(size: number, expected: string | undefined, opts: CommitOptions): Promise<void> {
    const fh = this.fh;
    if (!fh) throw failedPrecondition(`cannot commit on closed writer for ref ${JSON.stringify(this.ref)}`);
    if (this.broken) {
      await this.close();
      throw failedPrecondition(`cannot commit ingest ${JSON.stringify(this.ref)}: a write failed; reopen to resume`);
    }
    this.fh = undefined;
    const dataPath = join(this.dir, ingestFiles.data);
    let actual: number;
    try {
      await fh.sync();
      actual = (await fh.stat()).size;
    } finally {
      await fh.close();
    }
    if (size > 0 && size !== actual) {
      throw failedPrecondition(`unexpected commit size ${actual}, expected ${size}`);
    }
    let digest = this.digest();
    if (expected) {
      const { algorithm } = parseDigest(expected);
      if (algorithm !== this.algorithm) {
        const digester = createDigester(algorithm);
        await hashFileInto(dataPath, digester);
        digest = `${algorithm}:${digester.digest('hex')}`;
      }
      if (digest !== expected) throw failedPrecondition(`unexpected commit digest ${digest}, expected ${expected}`);
    }

    const target = blobPath(this.ctx.root, digest);
    await mkdir(dirname(target), { recursive: true, mode: 0o755 });
    if (await pathExists(target)) {
      await rm(this.dir, { recursive: true, force: true });
      // That blob holds these very bytes: followers read on to its end.
      this.ctx.report({ type: 'committed', digest, size: actual });
      throw alreadyExists(`content ${digest}: already exists`);
    }
    // Read-only before it is visible: a committed blob is never written again.
    const mode = (await stat(dataPath)).mode & 0o777 & ~0o333;
    await chmod(dataPath, mode);
    await rename(dataPath, target);
    await syncDir(dirname(target));
    this.committed = digest;
    this.ctx.report({ type: 'committed', digest, size: actual });

    const now = new Date();
    await utimes(target, now, now);
    await rm(this.dir, { recursive: true, force: true });
    if (this.ctx.labels && opts.labels) await this.ctx.labels.set(digest, opts.labels);
  }

  private open(verb: string): FileHandle {
    if (!this.fh) {
      throw failedPrecondition(`cannot ${verb} ingest ${JSON.stringify(this.ref)}: writer is closed`);
    }
    return this.fh;
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    this.ctx.release();
  }
}

async function writeFully(fh: FileHandle, chunk: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < chunk.length; ) {
    const { bytesWritten } = await fh.write(chunk, done, chunk.length - done, position + done);
    done += bytesWritten;
  }
}

/** fsync a directory so that a rename into it survives a crash. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Feeds a whole file into a digester, streamed. */
export async function hashFileInto(path: string, digester: Hash): Promise<void> {
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) digester.update(chunk as Buffer);
}
