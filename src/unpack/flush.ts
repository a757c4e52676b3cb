// Durability for an unpack whose layers are extracted side by side: one syncfs(2) of the
// snapshots' file system once every layer is written, before the bottom-up commits, instead of
// one per layer (each of which also flushed whatever the other layers had written so far).
// The call runs on a thread off the event loop (syncfs.ts).
import { syncFileSystem } from './syncfs.js';

/** One layer's part in the barrier: the first call counts, later ones do nothing. */
export interface LayerFlush {
  /** The layer wrote into `path` (undefined: it flushed itself): resolves once everything the unpack wrote is durable. */
  written(path: string | undefined, signal: AbortSignal): Promise<void>;
  /** The layer writes nothing (its snapshot exists, or it failed). */
  skipped(): void;
}

/**
 * A barrier for the `layers` layers of one unpack: each says once that it is done writing
 * (`written`, with a folder it wrote into, or `skipped`); when all have, the file systems written
 * to are flushed once, and every `written` caller resumes. A waiter whose signal aborts stops
 * waiting (a failed layer aborts the others, so the barrier is never waited on in vain).
 */
export class UnpackFlush {
  private left: number;
  private readonly paths = new Set<string>();
  private readonly flushed: Promise<void>;
  private allWritten!: () => void;

  constructor(layers: number) {
    this.left = layers;
    this.flushed = new Promise<void>((resolve) => (this.allWritten = resolve)).then(() => this.flush());
    this.flushed.catch(() => {}); // awaited by the writers; never unhandled when none waits
  }

  /** A layer's handle; the caller makes sure each handle is told once at least (skipped() when in doubt). */
  layer(): LayerFlush {
    let told = false;
    const arrive = (): boolean => {
      if (told) return false;
      told = true;
      this.arrive();
      return true;
    };
    return {
      written: (path, signal) => {
        if (path !== undefined) this.paths.add(path);
        arrive();
        return untilAborted(this.flushed, signal);
      },
      skipped: () => void arrive(),
    };
  }

  private arrive(): void {
    if (--this.left === 0) this.allWritten();
  }

  /** One flush per file system: folders of one snapshotter share one. */
  private async flush(): Promise<void> {
    const [first] = this.paths;
    if (first !== undefined) await syncFileSystem(first);
  }
}

function untilAborted(p: Promise<void>, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
