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
  | { kind: 'start'; job: WorkerJob }
  /** `length` bytes of the layer blob at the start of `chunk` (transferred, not copied). */
  | { kind: 'data'; chunk: ArrayBuffer; length: number }
  /** The blob is complete; the worker answers done or error. */
  | { kind: 'end' };

export type FromWorker =
  /** The worker took `bytes` more off its queue: the sender may send that much more. */
  | { kind: 'ack'; bytes: number }
  | { kind: 'done'; diffId: string; size: number; usage?: Usage }
  | { kind: 'error'; code: ErrorCode; message: string };
