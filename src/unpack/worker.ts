// The unpack worker: for each job, layer blob chunks come in from applyLayer and go through
// decompression, the diffID digest and the tar reader into the applier. All file work is
// synchronous here, off the main thread's event loop. Jobs run one after another (the worker
// is pooled); a job's answer is sent only once its `end` has been taken off the queue.
import { execFileSync } from 'node:child_process';
import { parentPort } from 'node:worker_threads';

import { canonicalAlgorithm, createDigester } from '../../store/digest.js';
import { errorCode } from '../../store/errors.js';
import type { Usage } from '../snapshots/types.js';
import { Applier } from './apply.js';
import { decompress } from './decompress.js';
import type { FromWorker, ToWorker, WorkerJob } from './protocol.js';
import { TarReader } from './tar-reader.js';

const port = parentPort!;
const post = (m: FromWorker): void => port.postMessage(m);

/** Messages from the main thread, in order. */
class Inbox {
  private readonly queue: ToWorker[] = [];
  private wake: (() => void) | undefined;

  constructor() {
    port.on('message', (m: ToWorker) => {
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

/** One job's blob: its chunks, each acknowledged as it is taken, up to its `end`. */
class Blob {
  ended = false;

  constructor(private readonly inbox: Inbox) {}

  async *chunks(): AsyncGenerator<Buffer> {
    while (!this.ended) {
      const m = await this.inbox.next();
      if (m.kind === 'end') this.ended = true;
      else if (m.kind === 'data') {
        post({ kind: 'ack', bytes: m.length });
        yield Buffer.from(m.chunk, 0, m.length);
      }
    }
  }

  /** Takes what a consumer that stopped early left (e.g. after a gzip stream's end), up to `end`. */
  async drain(): Promise<void> {
    for await (const _ of this.chunks());
  }
}

/** syncfs(2) of the root's file system, as containerd's WithSyncFs: one flush instead of an fsync per file. */
function syncFs(path: string): void {
  execFileSync('sync', ['--file-system', path], { stdio: ['ignore', 'ignore', 'pipe'] });
}

async function run(job: WorkerJob, blob: Blob): Promise<{ diffId: string; size: number; usage?: Usage }> {
  const applier = new Applier({ root: job.root, overlay: job.overlay, countUsage: job.countUsage });
  const reader = new TarReader(applier);
  const digester = createDigester(canonicalAlgorithm);
  let size = 0;
  try {
    const input = blob.chunks();
    for await (const chunk of job.decompress ? decompress(input) : input) {
      // Bytes after the end-of-archive marker still count for the diffID.
      digester.update(chunk);
      size += chunk.length;
      if (!reader.ended) reader.push(chunk);
    }
    reader.finish();
    applier.finish();
    if (job.sync) syncFs(job.root);
  } finally {
    applier.close();
  }
  await blob.drain();
  const usage = applier.usage();
  return { diffId: `${canonicalAlgorithm}:${digester.digest('hex')}`, size, ...(usage ? { usage } : {}) };
}

const inbox = new Inbox();
for (;;) {
  const m = await inbox.next();
  // Only a start can come first: a worker whose job was cut short is terminated, not reused.
  if (m.kind !== 'start') continue;
  try {
    post({ kind: 'done', ...(await run(m.job, new Blob(inbox))) });
  } catch (err) {
    post({ kind: 'error', code: errorCode(err), message: (err as Error)?.message ?? String(err) });
  }
}
