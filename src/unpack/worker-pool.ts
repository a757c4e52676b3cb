// Idle unpack workers kept for the next layer: starting a worker and loading the applier costs
// 100–250 ms here, more than applying a small layer. Only a worker that finished its job
// cleanly comes back; one that failed or was cancelled is terminated, so no half-read job can
// leak into the next. Idle workers are unref'd and retire after IDLE_MS, so they never keep
// the process alive.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

const IDLE_MS = 30_000;

/**
 * A worker's heap is small by nature (one entry at a time; the blob's bytes pass through a shared
 * ring, not the heap). Its garbage is mostly the decompressor's output buffers, memory outside
 * the heap that only a collection of the young generation frees; V8's defaults would let each of
 * several workers grow a young generation of up to 48 MiB, and its dead buffers with it, before
 * collecting. A 2 MiB young generation collects every few hundred KiB of objects: on the bench
 * image's unpack the server's peak RSS fell from 325 to 264 MB with three workers (8 MiB before).
 * An old generation past its cap ends that worker's job with an error rather than the process.
 */
const RESOURCE_LIMITS = { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 256 };

interface Idle {
  worker: Worker;
  timer: NodeJS.Timeout;
  onExit: () => void;
  onError: () => void;
}

export class WorkerPool {
  private readonly idle: Idle[] = [];

  constructor(
    private readonly entry: URL,
    private readonly maxIdle = availableParallelism(),
  ) {}

  /** An idle worker, or a new one. */
  acquire(): Worker {
    const idle = this.idle.pop();
    if (!idle) return new Worker(this.entry, { resourceLimits: RESOURCE_LIMITS });
    this.forget(idle);
    idle.worker.ref();
    return idle.worker;
  }

  /** A worker whose job is complete (every message of it consumed): keep it for the next one. */
  release(worker: Worker): void {
    if (this.idle.length >= this.maxIdle) {
      void worker.terminate();
      return;
    }
    // An idle worker should never stop or fail; if it does, it is dropped.
    const idle: Idle = {
      worker,
      timer: setTimeout(() => this.retire(idle), IDLE_MS).unref(),
      onExit: () => this.forget(idle),
      onError: () => this.retire(idle),
    };
    worker.on('exit', idle.onExit);
    worker.on('error', idle.onError);
    worker.unref();
    this.idle.push(idle);
  }

  private retire(idle: Idle): void {
    this.forget(idle);
    void idle.worker.terminate();
  }

  private forget(idle: Idle): void {
    clearTimeout(idle.timer);
    idle.worker.off('exit', idle.onExit);
    idle.worker.off('error', idle.onError);
    const i = this.idle.indexOf(idle);
    if (i >= 0) this.idle.splice(i, 1);
  }
}
