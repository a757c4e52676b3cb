// The GC scheduler (src/gc/scheduler.ts): containerd's scheduler (reference §4.8) plus what
// berth adds — a collection when a lease expires, with no other activity.
//   * a short-lived lease holding content: kept while it lives, collected once it has expired,
//     with nothing else happening (lease created after the scheduler started, and before);
//   * scheduleAndWait resolves with a collection that started after the call (even while one is
//     already running), so a synchronous delete sees its garbage gone;
//   * a deletion triggers a collection without any call; creations alone do not.
// Where time is the subject (expiries, "no collection until…") the scheduler, the lease manager
// and the collector run on a clock the test moves by hand: nothing waits for real time, so a
// busy machine changes nothing. Elsewhere the tests wait for the collections themselves.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

import { errorCode } from '../store/errors.js';
import type { OpContext } from '../src/metadata/context.js';
import { LeaseManager } from '../src/metadata/leases.js';
import { GarbageCollector, type GcResult } from '../src/gc/collector.js';
import { GcScheduler, type Clock } from '../src/gc/scheduler.js';
import { GC_EXPIRE, hasRecord, metadataEnv, onDisk, putBlob, type MetadataEnv } from './fixtures/metadata.js';

interface Run {
  /** Its sweep is done (it may still be held open). */
  swept: boolean;
  result?: GcResult;
  /** The collection has returned (its waiters may be answered). */
  finished: boolean;
}

/**
 * A collector that records each collection in the order they start, lets a test hold them open
 * (`hold()`), and tells when the runs reach a state (`when`).
 */
class RecordingCollector extends GarbageCollector {
  readonly runs: Run[] = [];
  private gate: Promise<void> | undefined;
  private readonly watchers = new Set<() => void>();

  override async collect(opts?: { dryRun?: boolean; now?: Date }): Promise<GcResult> {
    const run: Run = { swept: false, finished: false };
    // Synchronously, when the scheduler calls: a run is "started" from here.
    this.runs.push(run);
    this.changed();
    const result = await super.collect(opts);
    run.swept = true;
    this.changed();
    if (this.gate) await this.gate;
    run.result = result;
    run.finished = true;
    this.changed();
    return result;
  }

  /** Resolves once `holds(runs)` is true: looked at each time a collection starts or finishes. */
  when(holds: (runs: readonly Run[]) => boolean): Promise<void> {
    if (holds(this.runs)) return Promise.resolve();
    return new Promise((resolve) => {
      const watcher = () => {
        if (!holds(this.runs)) return;
        this.watchers.delete(watcher);
        resolve();
      };
      this.watchers.add(watcher);
    });
  }

  /** Resolves once `count` collections (in all) have finished. */
  finishedRuns(count: number): Promise<void> {
    return this.when((runs) => runs.filter((r) => r.finished).length >= count);
  }

  private changed(): void {
    for (const watcher of [...this.watchers]) watcher();
  }

  /** Collections from now on stay running after their sweep until the returned function is called. */
  hold(): () => void {
    let release!: () => void;
    this.gate = new Promise((resolve) => (release = resolve));
    return () => {
      this.gate = undefined;
      release();
    };
  }
}

/** A clock that stands still until the test moves it; its timers fire as it passes them. */
class ManualClock implements Clock {
  private timers: Array<{ at: number; seq: number; fn: () => void }> = [];
  private seq = 0;

  constructor(private time: number) {}

  now(): number {
    return this.time;
  }

  setTimer(fn: () => void, ms: number): () => void {
    const timer = { at: this.time + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  /** Moves the time on by `ms`, firing every timer due by then (also those they set), in order. */
  advance(ms: number): void {
    this.advanceTo(this.time + ms);
  }

  advanceTo(to: number): void {
    // A timer that keeps setting another at the same moment would loop here for ever, where
    // the test's timeout cannot stop it: fail instead.
    for (let fired = 0; ; fired++) {
      if (fired > 10_000) throw new Error('timers keep firing without time passing');
      const due = this.timers.filter((t) => t.at <= to).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.time = Math.max(this.time, due.at);
      due.fn();
    }
    this.time = Math.max(this.time, to);
  }
}

type Env = MetadataEnv<RecordingCollector>;

const env = (t: TestContext): Promise<Env> =>
  metadataEnv(t, { prefix: 'berth-gc-sched-', collector: (db, backend) => new RecordingCollector(db, backend) });

/**
 * The scheduler's timers are unref'd (they never keep a process alive); a server's sockets keep
 * it alive. In a test nothing else does, so this stands in for them.
 */
function keepAlive(t: TestContext): void {
  const timer = setInterval(() => undefined, 1000);
  t.after(() => clearInterval(timer));
}

/** Starts a scheduler with the default thresholds (on `clock`, or real time); stopped after the test. */
function startScheduler(t: TestContext, e: Env, clock?: Clock): GcScheduler {
  keepAlive(t);
  const scheduler = new GcScheduler(e.gc, e.db, {}, undefined, clock);
  scheduler.start();
  // Registered after env()'s hooks, so it runs before the database closes.
  t.after(() => scheduler.stop());
  return scheduler;
}

/** A blob of `size` random bytes, written unleased (or under ctx's lease). */
async function put(e: Env, ctx: OpContext, size: number): Promise<string> {
  return (await putBlob(e, ctx, randomBytes(size))).digest;
}

const gone = async (e: Env, ctx: OpContext, digest: string) => !(await hasRecord(e, ctx, digest)) && !(await onDisk(e, digest));
const kept = async (e: Env, ctx: OpContext, digest: string) => (await hasRecord(e, ctx, digest)) && (await onDisk(e, digest));

/** An instant a little past a whole second (expiries are written to the second). */
const T0 = Date.UTC(2030, 0, 1, 0, 0, 0, 250);

// ---------------------------------------------------------------------------------------------

describe('collections when a lease expires', { concurrency: true }, () => {
  for (const order of ['scheduler started first', 'lease created before the scheduler started'] as const) {
    test(`a short-lived lease's content is kept while it lives and collected once it has expired (${order})`, { timeout: 15_000 }, async (t) => {
      const e = await env(t);
      const clock = new ManualClock(T0);
      const leases = new LeaseManager(e.db, () => clock.now());
      const ctx: OpContext = { namespace: 'ns' };
      if (order === 'scheduler started first') startScheduler(t, e, clock);
      const lease = await leases.create(ctx, { id: 'short', expiresIn: 1500 });
      const expiry = Date.parse(lease.labels[GC_EXPIRE]);
      assert.equal(expiry, T0 - 250 + 2000, 'the expiry is rounded up to the second');
      const digest = await put(e, { ...ctx, lease: 'short' }, 10_000);
      if (order !== 'scheduler started first') startScheduler(t, e, clock);

      // The start-up collection (100 ms after start) keeps the leased content.
      clock.advance(100);
      assert.equal(e.gc.runs.length, 1, 'the start-up collection started');
      await e.gc.finishedRuns(1);
      assert.ok(await kept(e, ctx, digest), 'kept while the lease lives (record and file)');

      // Up to the expiry nothing else happens: no collection.
      clock.advanceTo(expiry);
      assert.equal(e.gc.runs.length, 1, 'no collection before the expiry');
      assert.ok(await kept(e, ctx, digest), 'still kept at the expiry itself (expired means "now is after it")');

      // Nothing else happens; the expiry alone brings a collection, a second after it (expiries
      // have second precision).
      clock.advanceTo(expiry + 1000);
      assert.equal(e.gc.runs.length, 2, 'a collection started once the lease had expired');
      await e.gc.finishedRuns(2);
      assert.equal(e.gc.runs[1].result?.removed.content, 1, 'it removed the content record');
      assert.ok(await gone(e, ctx, digest), 'the content record and file are gone');
      await assert.rejects(leases.get(ctx, 'short'), (err: unknown) => errorCode(err) === 'not_found', 'the expired lease is gone');
    });
  }
});

test('scheduleAndWait resolves after a collection that started after the call', { timeout: 15_000 }, async (t) => {
  const e = await env(t);
  const ctx: OpContext = { namespace: 'ns' };
  await e.leases.create(ctx, { id: 'hold' });
  const digest = await put(e, { ...ctx, lease: 'hold' }, 20_000);
  await e.images.create(ctx, { name: 'app', target: { mediaType: 'application/octet-stream', digest, size: 20_000 } });
  await e.leases.delete(ctx, 'hold');

  const scheduler = startScheduler(t, e);
  await e.gc.finishedRuns(1); // the start-up collection (which a deletion before start does not skip)
  const release = e.gc.hold(); // collections now stay "running" after their sweep until released

  // A first request starts a collection A, which has swept and is still running when the image goes.
  const first = scheduler.scheduleAndWait();
  await e.gc.when((runs) => runs[1]?.swept === true);
  const a = e.gc.runs[1];

  await e.images.delete(ctx, 'app');
  const runsAtCall = e.gc.runs.length;
  const second = scheduler.scheduleAndWait();
  assert.equal(a.finished, false, 'collection A is still running when the second request comes');
  release();

  const result = await second;
  const i = e.gc.runs.findIndex((r) => r.result === result);
  assert.ok(i >= 0, 'scheduleAndWait resolves with the result of one of the collections');
  assert.ok(i >= runsAtCall, `the collection it waited for (#${i}) started after the call (${runsAtCall} had started before)`);
  assert.ok(e.gc.runs[i].finished, 'and had finished');
  assert.ok(!(await hasRecord(e, ctx, digest)), 'the deleted image\'s content record is gone when it resolves');
  assert.ok(!(await onDisk(e, digest)), 'and so is its file');
  assert.equal(result.removed.content, 1);

  const firstResult = await first;
  assert.equal(firstResult, a.result, 'the first request got collection A');
  assert.equal(firstResult.removed.content, 0, 'A ran while the image still existed');
});

test('scheduleAndWait with nothing running runs a collection and resolves with it', { timeout: 10_000 }, async (t) => {
  const e = await env(t);
  const ctx: OpContext = { namespace: 'ns' };
  const scheduler = startScheduler(t, e);
  await e.gc.finishedRuns(1); // the start-up collection
  const digest = await put(e, ctx, 3000); // unleased, unreferenced: collectable at once
  const runsAtCall = e.gc.runs.length;
  const result = await scheduler.scheduleAndWait();
  const i = e.gc.runs.findIndex((r) => r.result === result);
  assert.ok(i >= runsAtCall, 'the collection started after the call');
  assert.ok(await gone(e, ctx, digest), 'the unreferenced blob was collected');
});

test('a deletion triggers a collection without any call; creations alone do not', { timeout: 15_000 }, async (t) => {
  const e = await env(t);
  const clock = new ManualClock(T0);
  const ctx: OpContext = { namespace: 'ns' };
  startScheduler(t, e, clock);
  clock.advance(100);
  await e.gc.finishedRuns(1); // the start-up collection

  await e.leases.create(ctx, { id: 'pull' });
  const digest = await put(e, { ...ctx, lease: 'pull' }, 8000);
  await e.images.create(ctx, { name: 'app', target: { mediaType: 'application/octet-stream', digest, size: 8000 } });
  clock.advance(3_600_000); // an hour: any timer those writes armed has fired
  assert.equal(e.gc.runs.length, 1, 'creations alone (fewer than 100 mutations) bring no collection');

  // Deleting the lease is a deletion: a collection follows; the image keeps the content.
  await e.leases.delete(ctx, 'pull');
  clock.advance(0); // the collection is scheduled with no delay
  assert.equal(e.gc.runs.length, 2, 'a collection after the lease deletion');
  await e.gc.finishedRuns(2);
  assert.ok(await kept(e, ctx, digest), 'the image keeps its content');

  // Deleting the image: the content is collected, with no call.
  await e.images.delete(ctx, 'app');
  clock.advance(0);
  assert.equal(e.gc.runs.length, 3, 'a collection after the image deletion');
  await e.gc.finishedRuns(3);
  assert.ok(await gone(e, ctx, digest), 'the content is collected after the image deletion');
});

test('stop(): no collections afterwards; waiters are rejected, not left hanging', { timeout: 10_000 }, async (t) => {
  const e = await env(t);
  const clock = new ManualClock(T0);
  keepAlive(t);
  const scheduler = new GcScheduler(e.gc, e.db, {}, undefined, clock);
  scheduler.start();
  clock.advance(100);
  await e.gc.finishedRuns(1); // the start-up collection
  await scheduler.stop();
  const runs = e.gc.runs.length;
  const ctx: OpContext = { namespace: 'ns' };
  const digest = await put(e, ctx, 100);
  await e.cs.delete(ctx, digest);
  clock.advance(3_600_000);
  assert.equal(e.gc.runs.length, runs, 'no collection after stop');

  // A synchronous delete arriving during shutdown must get an answer (stop() rejects the
  // waiters it finds; one that comes after is rejected at once, not left to wait forever —
  // which the test's timeout would catch).
  await assert.rejects(scheduler.scheduleAndWait(), /gc scheduler stopped/, 'scheduleAndWait after stop() is rejected');
  assert.equal(e.gc.runs.length, runs, 'and it runs no collection');
});
