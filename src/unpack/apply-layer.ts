// applyLayer: apply one layer blob to a directory (containerd's diff Apply, §6.4) in a worker
// thread (one per call, from a pool of idle ones), so the event loop stays free and independent
// layers unpack side by side.
// The blob streams through a ring: a buffer shared with the worker, into which the bytes are
// copied in order and which the worker reads in place, saying when it is done with each part.
// No buffer is allocated or handed over per chunk (a transferred or cloned one would be freed
// only at some later garbage collection of the thread that received it); a chunk costs a copy
// into the ring and a small message each way.
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Worker } from 'node:worker_threads';

import { BerthError, invalidArgument, isMissingFile, notFound } from '../../store/errors.js';
import { diffCompression } from '../oci/mediatypes.js';
import type { Usage } from '../snapshots/types.js';
import type { FromWorker, ToWorker, WorkerJob } from './protocol.js';
import { WorkerPool } from './worker-pool.js';

export interface ApplyOptions {
  /** The layer's media type (declared); decompression is sniffed. */
  mediaType: string;
  /** Directory to apply into (must exist). */
  root: string;
  /** Set: write overlay whiteouts/opaque xattrs; lowers = parents' dirs, immediate parent first. */
  overlay?: { lowers: string[] };
  /** Flush the file system (syncfs) before resolving, as containerd's WithSyncFs; default false. */
  sync?: boolean;
  /** The root is empty: count the usage of what is written (`usage` in the result). */
  countUsage?: boolean;
  signal?: AbortSignal;
  onProgress?: (compressedBytesRead: number) => void;
}

export interface Applied {
  /** sha256:… of the uncompressed tar. */
  diffId: string;
  /** Uncompressed bytes. */
  size: number;
  /** With countUsage: the root's disk usage, unless something was removed on the way. */
  usage?: Usage;
}

/** The ring's size: at most this many bytes are sent and not yet consumed by the worker. */
const RING = 4 << 20;
/** How long a failed or cancelled job's worker may take to end what it started before it is terminated. */
const CANCEL_WAIT_MS = 2000;
/** The sender waits for at least this much room (or the rest of its chunk) rather than send slivers. */
const MIN_SEND = 256 << 10;

// From TypeScript sources (tsx) the worker needs a bootstrap that registers tsx; the compiled
// build (dist/, which holds no .mjs files) starts worker.js directly.
const pool = new WorkerPool(
  import.meta.url.endsWith('.ts') ? new URL('./worker-bootstrap.mjs', import.meta.url) : new URL('./worker.js', import.meta.url),
);

export async function applyLayer(source: AsyncIterable<Uint8Array> | NodeJS.ReadableStream, opts: ApplyOptions): Promise<Applied> {
  const compression = diffCompression(opts.mediaType);
  opts.signal?.throwIfAborted();
  const root = resolve(opts.root);
  if (root === '/') throw invalidArgument('cannot apply a layer to /');
  const st = await stat(root).catch((err: unknown) => {
    throw isMissingFile(err) ? notFound(`apply root ${root} does not exist`, err) : err;
  });
  if (!st.isDirectory()) throw invalidArgument(`apply root ${root} is not a directory`);

  const job: WorkerJob = { root, decompress: compression !== 'none', overlay: opts.overlay, sync: opts.sync ?? false, countUsage: opts.countUsage ?? false };
  const worker = new LayerWorker(job, opts.onProgress);
  const onAbort = (): void => worker.fail(opts.signal!.reason);
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  if (opts.signal?.aborted) onAbort();
  try {
    worker.send(source as AsyncIterable<Uint8Array | string>).catch((err: unknown) => worker.fail(err));
    return await worker.result;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    await worker.close();
  }
}

/** One job on a pooled worker: its flow control and its outcome. */
class LayerWorker {
  readonly result: Promise<Applied>;
  private readonly worker: Worker;
  private settled = false;
  private succeeded = false;
  private readonly ring = new SharedArrayBuffer(RING);
  /** Bytes written into the ring so far (the write position is `written % RING`). */
  private written = 0;
  private inFlight = 0;
  private taken = 0;
  private wake: (() => void) | undefined;
  private reject!: (err: unknown) => void;
  private resolve!: (applied: Applied) => void;
  private readonly onProgress: ((bytes: number) => void) | undefined;

  constructor(job: WorkerJob, onProgress?: (bytes: number) => void) {
    this.worker = pool.acquire();
    this.result = new Promise<Applied>((resolveResult, reject) => {
      this.reject = reject;
      this.resolve = resolveResult;
    });
    this.onProgress = onProgress;
    this.worker.on('message', this.onMessage);
    this.worker.on('error', this.onError);
    this.worker.on('exit', this.onExit);
    this.worker.postMessage({ kind: 'start', job, ring: this.ring } satisfies ToWorker);
  }

  private readonly onMessage = (m: FromWorker): void => {
    if (m.kind === 'ack') {
      this.inFlight -= m.bytes;
      this.taken += m.bytes;
      this.onProgress?.(this.taken);
      this.wakeSender();
    } else if (m.kind === 'done') {
      if (this.settled) return;
      this.settle();
      this.succeeded = true;
      this.resolve({ diffId: m.diffId, size: m.size, ...(m.usage ? { usage: m.usage } : {}) });
    } else if (m.kind === 'error') {
      this.fail(new BerthError(m.code, m.message));
    }
  };

  private readonly onError = (err: Error): void => this.fail(new BerthError('internal', `unpack worker: ${err.message}`, { cause: err }));

  private readonly onExit = (code: number): void => this.fail(new BerthError('internal', `unpack worker exited with code ${code}`));

  /** Ends the apply with `err` (first outcome wins); the sender stops at its next step. */
  fail(err: unknown): void {
    if (this.settled) return;
    this.settle();
    this.reject(err);
  }

  /**
   * A worker that finished its job goes back to the pool; any other is terminated, once it has
   * ended what the job started (a zstd process: a child of a terminated thread is never reaped),
   * or after CANCEL_WAIT_MS if it does not answer (stuck in a system call).
   */
  async close(): Promise<void> {
    this.worker.off('message', this.onMessage);
    this.worker.off('error', this.onError);
    this.worker.off('exit', this.onExit);
    if (this.succeeded) return pool.release(this.worker);
    this.fail(new BerthError('internal', 'unpack worker terminated'));
    const worker = this.worker;
    // A worker that has exited (threadId -1) has nothing left to end.
    if (worker.threadId !== -1) await new Promise<void>((resolve) => {
      const onMessage = (m: FromWorker): void => {
        if (m.kind === 'cancelled') done();
      };
      const done = (): void => {
        clearTimeout(timer);
        worker.off('message', onMessage);
        worker.off('exit', done);
        resolve();
      };
      const timer = setTimeout(done, CANCEL_WAIT_MS);
      worker.on('message', onMessage);
      worker.once('exit', done);
      worker.postMessage({ kind: 'cancel' } satisfies ToWorker);
    });
    await this.worker.terminate();
  }

  /** Streams the blob into the ring, then `end`. */
  async send(source: AsyncIterable<Uint8Array | string>): Promise<void> {
    const ring = Buffer.from(this.ring);
    for await (const chunk of source) {
      if (this.settled) return;
      if (typeof chunk === 'string') throw invalidArgument('layer source yields strings, not bytes (a stream with an encoding set?)');
      for (let off = 0; off < chunk.length; ) {
        const want = Math.min(chunk.length - off, MIN_SEND);
        while (RING - this.inFlight < want && !this.settled) await new Promise<void>((r) => (this.wake = r));
        if (this.settled) return;
        const at = this.written % RING;
        // Up to the ring's end at most: a message names one contiguous part.
        const n = Math.min(chunk.length - off, RING - this.inFlight, RING - at);
        ring.set(chunk.subarray(off, off + n), at);
        off += n;
        this.written += n;
        this.inFlight += n;
        this.worker.postMessage({ kind: 'data', offset: at, length: n } satisfies ToWorker);
      }
    }
    if (!this.settled) this.worker.postMessage({ kind: 'end' } satisfies ToWorker);
  }

  private settle(): void {
    this.settled = true;
    this.wakeSender();
  }

  private wakeSender(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
