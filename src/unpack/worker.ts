// The unpack worker: for each job, the layer blob's bytes come in through the job's ring (a
// buffer shared with applyLayer) and go through decompression, the diffID digest and the tar
// reader into the applier; each part of the ring is handed back once consumed. All file work
// is synchronous here, off the main thread's event loop. Jobs run one after another (the worker
// is pooled); a job's answer is sent only once its `end` has been taken off the queue.
import { parentPort } from 'node:worker_threads';

import { canonicalAlgorithm, createDigester } from '../../store/digest.js';
import { errorCode } from '../../store/errors.js';
import type { Usage } from '../snapshots/types.js';
import { Applier } from './apply.js';
import { createDecompressor } from './decompress.js';
import type { FromWorker, ToWorker, WorkerJob } from './protocol.js';
import { syncFileSystemSync } from './syncfs.js';
import { TarReader } from './tar-reader.js';

const port = parentPort!;
const post = (m: FromWorker): void => port.postMessage(m);

/** Messages from the main thread, in order; a `cancel` is acted on at once. */
class Inbox {
  private readonly queue: ToWorker[] = [];
  private wake: (() => void) | undefined;
  /** Stops what the running job started; set by the job. */
  onCancel: () => Promise<void> = async () => {};

  constructor() {
    port.on('message', (m: ToWorker) => {
      if (m.kind === 'cancel') {
        void this.onCancel().finally(() => post({ kind: 'cancelled' }));
        return;
      }
      this.queue.push(m);
      const wake = this.wake;
      this.wake = undefined;
      wake?.();
    });
  }

  async next(): Promise<ToWorker> {
    while (this.queue.length === 0) await new Promise<void>((resolve) => (this.wake = resolve));
    return this.queue.shift()!;
  }
}

async function run(job: WorkerJob, ring: SharedArrayBuffer, inbox: Inbox): Promise<{ diffId: string; size: number; usage?: Usage }> {
  const applier = new Applier({ root: job.root, overlay: job.overlay, countUsage: job.countUsage });
  const reader = new TarReader(applier);
  const digester = createDigester(canonicalAlgorithm);
  let size = 0;
  const consume = (chunk: Buffer): void => {
    // Bytes after the end-of-archive marker still count for the diffID.
    digester.update(chunk);
    size += chunk.length;
    if (!reader.ended) reader.push(chunk);
  };
  const decompressor = job.decompress ? createDecompressor(consume) : undefined;
  // A zstd process must be ended here, before the main thread terminates this worker: a child
  // left behind by a terminated thread would never be reaped.
  inbox.onCancel = async () => decompressor?.destroy();
  const bytes = Buffer.from(ring);
  try {
    for (let m = await inbox.next(); m.kind !== 'end'; m = await inbox.next()) {
      if (m.kind !== 'data') continue;
      const chunk = bytes.subarray(m.offset, m.offset + m.length);
      if (decompressor) await decompressor.write(chunk);
      else consume(chunk);
      post({ kind: 'ack', bytes: m.length });
    }
    await decompressor?.end();
    reader.finish();
    applier.finish();
    // One flush instead of an fsync per file.
    if (job.sync) syncFileSystemSync(job.root);
  } catch (err) {
    await decompressor?.destroy();
    throw err;
  } finally {
    inbox.onCancel = async () => {};
    applier.close();
  }
  const usage = applier.usage();
  return { diffId: `${canonicalAlgorithm}:${digester.digest('hex')}`, size, ...(usage ? { usage } : {}) };
}

const inbox = new Inbox();
for (;;) {
  const m = await inbox.next();
  // Only a start can come first: a worker whose job was cut short is terminated, not reused.
  if (m.kind !== 'start') continue;
  try {
    post({ kind: 'done', ...(await run(m.job, m.ring, inbox)) });
  } catch (err) {
    post({ kind: 'error', code: errorCode(err), message: (err as Error)?.message ?? String(err) });
  }
}
