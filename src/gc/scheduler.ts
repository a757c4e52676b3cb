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

/**
 * Time as the scheduler reads it: the moment, and timers on it. Production runs on real time;
 * a test moves a clock of its own by hand, so that an expiry can be reached without waiting for it.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` once `ms` have passed; never keeps the process alive. Returns what cancels it. */
  setTimer(fn: () => void, ms: number): () => void;
}

/** setTimeout's limit; a later expiry is re-armed when this one fires. */
const maxTimeout = 2 ** 31 - 1;

export const realClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const timer = setTimeout(fn, Math.min(maxTimeout, ms));
    // The scheduler never keeps a process alive: a server's sockets do.
    timer.unref();
    return () => clearTimeout(timer);
  },
};

interface Waiter {
  resolve: (r: GcResult) => void;
  reject: (err: Error) => void;
}

export class GcScheduler {
  private readonly config: SchedulerConfig;
  private cancelTimer: (() => void) | undefined;
  private timerAt: number | undefined;
  private cancelExpiryTimer: (() => void) | undefined;
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
    private readonly clock: Clock = realClock,
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
    this.cancelTimer?.();
    this.cancelExpiryTimer?.();
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
    const at = this.clock.now() + ms;
    if (this.timerAt !== undefined && this.timerAt <= at) return;
    this.cancelTimer?.();
    this.timerAt = at;
    this.cancelTimer = this.clock.setTimer(() => this.fire(), ms);
  }

  private armExpiry(at: number): void {
    if (this.stopped || (this.expiryAt !== undefined && this.expiryAt <= at && this.expiryAt > this.clock.now())) return;
    this.cancelExpiryTimer?.();
    this.expiryAt = at;
    // A second past the expiry: containerd's expiry is "now is after", at second precision.
    const ms = Math.max(0, at - this.clock.now() + 1000);
    this.cancelExpiryTimer = this.clock.setTimer(() => {
      this.expiryAt = undefined;
      // Woken early (a timer clamped to setTimeout's limit): wait on.
      if (this.clock.now() < at) return this.armExpiry(at);
      this.triggered = true;
      this.consider();
    }, ms);
  }

  private fire(): void {
    this.cancelTimer = undefined;
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
      // Expiries are judged at the scheduler's moment, the one its expiry timers run on.
      const result = await this.collector.collect({ now: new Date(this.clock.now()) });
      this.collections++;
      this.gcTimeSum += result.durationMs;
      if (this.config.pauseThreshold > 0) {
        const avg = Math.max(this.gcTimeSum / this.collections, 5);
        this.interval = avg / this.config.pauseThreshold - avg;
      }
      this.lastResult = { ...result, finishedAt: new Date(this.clock.now()) };
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
