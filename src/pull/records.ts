// How the pull manager writes its pull records (metadata/pulls.ts): per pull, in order (LevelDB
// may reorder puts that overlap), coalesced (a write queued behind another one carries the
// latest state, however many changes asked for it), state changes as soon as the write before
// them is done, download progress at most once per interval — never per chunk.
import type { PullRecord, PullStore } from '../metadata/pulls.js';

export interface PullJournalOptions {
  /** A running pull's progress is written at most this often (ms). */
  progressIntervalMs?: number;
  /** Told when a record cannot be written; the pull goes on (its record is behind until the next write). */
  onError?: (err: unknown, namespace: string, id: string) => void;
}

/** The record writes of one pull. */
export class RecordWriter {
  private chain: Promise<void> = Promise.resolve();
  /** The write queued behind the one in flight, not started yet. */
  private queued?: { sync: boolean };
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly journal: PullJournal,
    readonly namespace: string,
    readonly id: string,
    private readonly snapshot: () => PullRecord,
  ) {}

  /**
   * A change of state: written once the writes before it are (`sync`: on disk, surviving a power
   * cut, before the promise resolves). Never rejects: a failed write is reported to the journal.
   */
  now(sync = false): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.stopped) return this.chain;
    if (this.queued) {
      this.queued.sync ||= sync;
      return this.chain;
    }
    const queued = (this.queued = { sync });
    this.chain = this.chain.then(async () => {
      // Taken when the write starts, so it holds every change made while it waited.
      this.queued = undefined;
      try {
        await this.journal.store.put(this.namespace, this.id, this.snapshot(), { sync: queued.sync });
      } catch (err) {
        this.journal.failed(err, this.namespace, this.id);
      }
    });
    return this.chain;
  }

  /** Progress: written within the journal's interval (once, however often it is called meanwhile). */
  soon(): void {
    if (this.stopped || this.timer || this.queued) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.now();
    }, this.journal.progressIntervalMs);
    this.timer.unref();
  }

  /** Writes what progress is pending, then takes no more writes. */
  async stop(): Promise<void> {
    if (this.timer) await this.now();
    this.stopped = true;
    await this.chain;
  }

  /** Takes no more writes and deletes the record (after the writes before). */
  async remove(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.stopped = true;
    await this.chain;
    try {
      await this.journal.store.delete(this.namespace, this.id);
    } catch (err) {
      this.journal.failed(err, this.namespace, this.id);
    }
  }
}

/** The writers of every pull the manager holds. */
export class PullJournal {
  readonly progressIntervalMs: number;
  private readonly writers = new Set<RecordWriter>();

  constructor(
    readonly store: PullStore,
    private readonly opts: PullJournalOptions = {},
  ) {
    this.progressIntervalMs = opts.progressIntervalMs ?? 1000;
  }

  /** The writer of one pull's record; `snapshot` gives the record as the pull is now. */
  writer(namespace: string, id: string, snapshot: () => PullRecord): RecordWriter {
    const w = new RecordWriter(this, namespace, id, snapshot);
    this.writers.add(w);
    return w;
  }

  /** Deletes a pull's record; its writer takes no more writes. */
  async remove(w: RecordWriter): Promise<void> {
    this.writers.delete(w);
    await w.remove();
  }

  /** At shutdown: pending progress is written, then nothing more. */
  async close(): Promise<void> {
    await Promise.all([...this.writers].map((w) => w.stop()));
  }

  failed(err: unknown, namespace: string, id: string): void {
    this.opts.onError?.(err, namespace, id);
  }
}
