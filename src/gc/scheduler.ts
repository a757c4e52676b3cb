// When to collect (containerd plugins/gc/scheduler.go): after deletions and after enough
// mutations, at most a pause-threshold share of the time, at start-up, and on request
// (`scheduleAndWait`, for synchronous deletes). Beyond containerd: also at the moment a lease,
// image or ingest written with an expiry expires, so expired leases free their disk with no
// other activity.
import type { MetadataDB } from '../metadata/db.js';
import type { GarbageCollector, GcResult } from './collector.js';

export interface SchedulerConfig {
  /** Largest share of time spent collecting, [0, 0.5]. */
  pauseThreshold: number;
  /** Deletions that force a collection at once; 0 = any deletion collects at the next check. */
  deletionThreshold: number;
  /** Mutations after which the next check collects; 0 = never by count. */
  mutationThreshold: number;
  scheduleDelayMs: number;
  /** The first collection after start; 0 = none. */
  startupDelayMs: number;
}

export const defaultSchedulerConfig: SchedulerConfig = {
  pauseThreshold: 0.02,
  deletionThreshold: 0,
  mutationThreshold: 100,
  scheduleDelayMs: 0,
  startupDelayMs: 100,
};

interface Waiter {
  resolve: (r: GcResult) => void;
  reject: (err: Error) => void;
}

/** setTimeout's limit; a later expiry is re-armed when this one fires. */
const maxTimeout = 2 ** 31 - 1;

export class GcScheduler {
  private readonly config: SchedulerConfig;
  private timer: NodeJS.Timeout | undefined;
  private timerAt: number | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private expiryAt: number | undefined;
  private running: Promise<void> | undefined;
  private triggered = false;
  private deletions = 0;
  private mutations = 0;
  private collections = 0;
  private gcTimeSum = 0;
  private interval = 1000;
  private waiting: Waiter[] = [];
  private stopped = false;
  private unsubscribe: (() => void) | undefined;
  lastResult: (GcResult & { finishedAt: Date }) | undefined;

  constructor(
    private readonly collector: GarbageCollector,
    private readonly db: MetadataDB,
    config: Partial<SchedulerConfig> = {},
    private readonly logger: { warn(obj: object, msg: string): void } = { warn() {} },
  ) {
    const given = Object.fromEntries(Object.entries(config).filter(([, v]) => v !== undefined));
    const c = { ...defaultSchedulerConfig, ...given };
    c.pauseThreshold = Math.min(0.5, Math.max(0, c.pauseThreshold));
    c.mutationThreshold = Math.max(0, c.mutationThreshold);
    this.config = c;
  }

  start(): void {
    this.unsubscribe = this.db.onMutation(({ dirty, expiresAt }) => {
      if (dirty) this.deletions++;
      this.mutations++;
      if (expiresAt) this.armExpiry(expiresAt.getTime());
      this.consider();
    });
    if (this.config.startupDelayMs > 0) this.scheduleIn(this.config.startupDelayMs);
  }

  /** Collects as soon as possible and resolves with the result of a collection begun after now. */
  scheduleAndWait(): Promise<GcResult> {
    return new Promise((resolve, reject) => {
      if (this.stopped) return reject(new Error('gc scheduler stopped'));
      this.waiting.push({ resolve, reject });
      this.triggered = true;
      this.consider();
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    clearTimeout(this.timer);
    clearTimeout(this.expiryTimer);
    await this.running;
    for (const w of this.waiting.splice(0)) w.reject(new Error('gc scheduler stopped'));
  }

  private consider(): void {
    const c = this.config;
    const now =
      this.triggered ||
      (c.deletionThreshold > 0 && this.deletions >= c.deletionThreshold) ||
      (this.timerAt === undefined &&
        ((c.deletionThreshold === 0 && this.deletions > 0) || (c.mutationThreshold > 0 && this.mutations >= c.mutationThreshold)));
    if (now) this.scheduleIn(c.scheduleDelayMs);
  }

  /** Arms the collection timer unless one is already due sooner. */
  private scheduleIn(ms: number): void {
    if (this.stopped) return;
    const at = Date.now() + ms;
    if (this.timerAt !== undefined && this.timerAt <= at) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.fire(), ms);
    this.timer.unref();
  }

  private armExpiry(at: number): void {
    if (this.stopped || (this.expiryAt !== undefined && this.expiryAt <= at && this.expiryAt > Date.now())) return;
    clearTimeout(this.expiryTimer);
    this.expiryAt = at;
    // A second past the expiry: containerd's expiry is "now is after", at second precision.
    const ms = Math.min(maxTimeout, Math.max(0, at - Date.now() + 1000));
    this.expiryTimer = setTimeout(() => {
      this.expiryAt = undefined;
      if (Date.now() < at) return this.armExpiry(at);
      this.triggered = true;
      this.consider();
    }, ms);
    this.expiryTimer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAt = undefined;
    if (this.running) {
      // One collection at a time; look again when this one ends.
      void this.running.then(() => this.consider());
      return;
    }
    const c = this.config;
    const idle =
      !this.triggered &&
      this.collections > 0 &&
      this.deletions === 0 &&
      (c.mutationThreshold === 0 || this.mutations < c.mutationThreshold);
    if (idle) return; // nothing to do: the next mutation or expiry schedules us again
    this.running = this.run().finally(() => {
      this.running = undefined;
    });
  }

  private async run(): Promise<void> {
    const waiters = this.waiting.splice(0);
    this.triggered = false;
    this.deletions = 0;
    this.mutations = 0;
    try {
      const result = await this.collector.collect();
      this.collections++;
      this.gcTimeSum += result.durationMs;
      if (this.config.pauseThreshold > 0) {
        const avg = Math.max(this.gcTimeSum / this.collections, 5);
        this.interval = avg / this.config.pauseThreshold - avg;
      }
      this.lastResult = { ...result, finishedAt: new Date() };
      for (const w of waiters) w.resolve(result);
      if (result.nextExpiry) this.armExpiry(result.nextExpiry.getTime());
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'garbage collection failed');
      for (const w of waiters) w.reject(new Error(`gc failed: ${(err as Error).message}`, { cause: err }));
    }
    // What arrived while we collected is looked at after the pause the threshold allows.
    const c = this.config;
    if (this.triggered || this.deletions > 0 || (c.mutationThreshold > 0 && this.mutations >= c.mutationThreshold)) {
      this.scheduleIn(this.triggered ? this.config.scheduleDelayMs : this.interval);
    }
  }
}
