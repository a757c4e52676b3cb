// applyLayer: apply one layer blob to a directory (containerd's diff Apply, §6.4) in a worker
// thread (one per call, from a pool of idle ones), so the event loop stays free and independent
// layers unpack side by side.
// The blob streams: it is copied into batches whose buffers are transferred to the worker, and
// at most MAX_IN_FLIGHT bytes are sent and not yet taken by the worker.
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

const BATCH = 512 << 10;
const MAX_IN_FLIGHT = 4 << 20;

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
    this.worker.postMessage({ kind: 'start', job } satisfies ToWorker);
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
    } else {
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

  /** A worker that finished its job goes back to the pool; any other is terminated. */
  async close(): Promise<void> {
    this.worker.off('message', this.onMessage);
    this.worker.off('error', this.onError);
    this.worker.off('exit', this.onExit);
    if (this.succeeded) return pool.release(this.worker);
    this.fail(new BerthError('internal', 'unpack worker terminated'));
    await this.worker.terminate();
  }

  /** Streams the blob to the worker in BATCH-sized transferred buffers, then `end`. */
  async send(source: AsyncIterable<Uint8Array | string>): Promise<void> {
    let batch = Buffer.allocUnsafeSlow(BATCH);
    let fill = 0;
    for await (const chunk of source) {
      if (this.settled) return;
      if (typeof chunk === 'string') throw invalidArgument('layer source yields strings, not bytes (a stream with an encoding set?)');
      for (let off = 0; off < chunk.length; ) {
        const n = Math.min(BATCH - fill, chunk.length - off);
        batch.set(chunk.subarray(off, off + n), fill);
        fill += n;
        off += n;
        if (fill === BATCH) {
          if (!(await this.post(batch, fill))) return;
          batch = Buffer.allocUnsafeSlow(BATCH);
          fill = 0;
        }
      }
    }
    if (fill > 0 && !(await this.post(batch, fill))) return;
    if (!this.settled) this.worker.postMessage({ kind: 'end' } satisfies ToWorker);
  }

  /** Waits for room in the window, then transfers `batch`; false once the apply is over. */
  private async post(batch: Buffer, length: number): Promise<boolean> {
    while (this.inFlight >= MAX_IN_FLIGHT && !this.settled) await new Promise<void>((r) => (this.wake = r));
    if (this.settled) return false;
    this.inFlight += length;
    const chunk = batch.buffer as ArrayBuffer;
    this.worker.postMessage({ kind: 'data', chunk, length } satisfies ToWorker, [chunk]);
    return true;
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
