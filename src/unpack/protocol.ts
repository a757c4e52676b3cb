// Messages between applyLayer (main thread) and the unpack worker.
import type { ErrorCode } from '../../store/errors.js';
import type { Usage } from '../snapshots/types.js';

/** What one layer apply needs to know; a worker runs one job at a time. */
export interface WorkerJob {
  /** Absolute, normalised, existing directory. */
  root: string;
  /** Sniff and decompress (gzip/zstd); false passes the bytes to the tar reader as they are. */
  decompress: boolean;
  overlay?: { lowers: string[] };
  sync: boolean;
  /** The root is empty: count the usage of what is written. */
  countUsage: boolean;
}

export type ToWorker =
  /** `ring`: the job's shared buffer, which the blob's bytes pass through in order. */
  | { kind: 'start'; job: WorkerJob; ring: SharedArrayBuffer }
  /** The next `length` bytes of the layer blob are in the ring at `offset` (never wrapping). */
  | { kind: 'data'; offset: number; length: number }
  /** The blob is complete; the worker answers done or error. */
  | { kind: 'end' }
  /** Out of turn: the job is being given up; the worker stops what it started (a zstd process) and answers `cancelled`. */
  | { kind: 'cancel' };

export type FromWorker =
  /** The worker is done with the oldest `bytes` in the ring: the sender may write there again. */
  | { kind: 'ack'; bytes: number }
  | { kind: 'done'; diffId: string; size: number; usage?: Usage }
  | { kind: 'error'; code: ErrorCode; message: string }
  /** After a `cancel`: nothing the job started runs any more; the worker may be terminated. */
  | { kind: 'cancelled' };
