// The GC scheduler (src/gc/scheduler.ts): containerd's scheduler (reference §4.8) plus what
// berth adds — a collection when a lease expires, with no other activity.
//   * a short-lived lease holding content: the content is collected a few seconds after expiry
//     (lease created after the scheduler started, and before it started);
//   * scheduleAndWait resolves with a collection that started after the call (even while one is
//     already running), so a synchronous delete sees its garbage gone;
//   * a deletion triggers a collection without any call.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import { errorCode } from '../store/errors.js';
import type { OpContext } from '../src/metadata/context.js';
import { GarbageCollector, type GcResult } from '../src/gc/collector.js';
import { GcScheduler } from '../src/gc/scheduler.js';
import { GC_EXPIRE, hasRecord, metadataEnv, onDisk, putBlob, type MetadataEnv } from './fixtures/metadata.js';

/** A collector that records when each collection started (and can linger after it). */
class RecordingCollector extends GarbageCollector {
  readonly runs: Array<{ startedAt: number; finishedAt?: number; result?: GcResult }> = [];
  lingerMs = 0;

  override async collect(opts?: { dryRun?: boolean }): Promise<GcResult> {
    const run: { startedAt: number; finishedAt?: number; result?: GcResult } = { startedAt: Date.now() };
    this.runs.push(run);
    const result = await super.collect(opts);
    if (this.lingerMs > 0) await sleep(this.lingerMs);
    run.finishedAt = Date.now();
    run.result = result;
    return result;
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

/** Starts a scheduler with the default thresholds; stopped after the test. */
function startScheduler(t: TestContext, e: Env): GcScheduler {
  keepAlive(t);
  const scheduler = new GcScheduler(e.gc, e.db);
  scheduler.start();
  // Registered after env()'s hooks, so it runs before the database closes.
  t.after(() => scheduler.stop());
  return scheduler;
}

/** A blob of `size` random bytes, written unleased (or under ctx's lease). */
async function put(e: Env, ctx: OpContext, size: number): Promise<string> {
  return (await putBlob(e, ctx, randomBytes(size))).digest;
}

/** Polls `check` every 50 ms until it is true or `deadline` (epoch ms) passes. */
async function until(check: () => Promise<boolean>, deadline: number): Promise<boolean> {
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
}

const gone = (e: Env, ctx: OpContext, digest: string) => async () => !(await hasRecord(e, ctx, digest)) && !(await onDisk(e, digest));

// ---------------------------------------------------------------------------------------------

describe('collections when a lease expires', { concurrency: true }, () => {
  for (const order of ['scheduler started first', 'lease created before the scheduler started'] as const) {
    test(`a short-lived lease's content is collected a few seconds after expiry (${order})`, { timeout: 15_000 }, async (t) => {
      const e = await env(t);
      const ctx: OpContext = { namespace: 'ns' };
      if (order === 'scheduler started first') {
        startScheduler(t, e);
        await sleep(50);
      }
      const lease = await e.leases.create(ctx, { id: 'short', expiresIn: 1500 });
      const digest = await put(e, { ...ctx, lease: 'short' }, 10_000);
      if (order !== 'scheduler started first') startScheduler(t, e);
      const expiry = Date.parse(lease.labels[GC_EXPIRE]);
      assert.ok(expiry - Date.now() > 500, 'the lease has not expired yet');

      // The start-up collection (100 ms) has run and kept the leased content.
      assert.ok(await until(async () => e.gc.runs.some((r) => r.finishedAt !== undefined), Date.now() + 2000), 'start-up collection ran');
      assert.ok(Date.now() < expiry, 'still before the expiry');
      assert.ok(await hasRecord(e, ctx, digest), 'kept while the lease lives (record)');
      assert.ok(await onDisk(e, digest), 'kept while the lease lives (file)');
      const runsBefore = e.gc.runs.length;

      // Nothing else happens; the expiry alone must bring a collection.
      const collected = await until(gone(e, ctx, digest), expiry + 4000);
      const at = Date.now();
      assert.ok(collected, `content still there ${Date.now() - expiry} ms after the lease expired (runs: ${e.gc.runs.length})`);
      assert.ok(at >= expiry, 'not collected before the expiry');
      assert.ok(e.gc.runs.length > runsBefore, 'a new collection ran');
      await assert.rejects(e.leases.get(ctx, 'short'), (err: unknown) => errorCode(err) === 'not_found', 'the expired lease is gone');
      t.diagnostic(`collected ${at - expiry} ms after the expiry`);
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
  e.gc.lingerMs = 400; // each collection stays "running" for a while after its sweep

  // A first request starts a collection A, which is still running when the image goes.
  const first = scheduler.scheduleAndWait();
  assert.ok(await until(async () => e.gc.runs.length >= 1, Date.now() + 2000), 'a collection started');
  await sleep(50);
  const a = e.gc.runs[0];
  assert.equal(a.finishedAt, undefined, 'collection A is still running');

  await e.images.delete(ctx, 'app');
  const called = Date.now();
  const result = await scheduler.scheduleAndWait();
  const resolved = Date.now();

  const run = e.gc.runs.find((r) => r.result === result);
  assert.ok(run, 'scheduleAndWait resolves with the result of one of the collections');
  assert.ok(run.startedAt >= called, `the collection it waited for started ${called - run.startedAt} ms before the call`);
  assert.ok(run.finishedAt !== undefined && run.finishedAt <= resolved, 'and had finished');
  assert.ok(!(await hasRecord(e, ctx, digest)), 'the deleted image\'s content record is gone when it resolves');
  assert.ok(!(await onDisk(e, digest)), 'and so is its file');
  assert.equal(result.removed.content, 1);

  const firstResult = await first;
  assert.equal(firstResult, a.result, 'the first request got collection A');
  assert.equal(firstResult.removed.content, 0, 'A ran while the image still existed');
});

test('scheduleAndWait with nothing running collects at once', { timeout: 10_000 }, async (t) => {
  const e = await env(t);
  const ctx: OpContext = { namespace: 'ns' };
  const scheduler = startScheduler(t, e);
  assert.ok(await until(async () => e.gc.runs.some((r) => r.finishedAt !== undefined), Date.now() + 2000), 'start-up collection');
  const digest = await put(e, ctx, 3000); // unleased, unreferenced: collectable at once
  const called = Date.now();
  const result = await scheduler.scheduleAndWait();
  assert.ok(Date.now() - called < 1000, 'resolved promptly');
  const run = e.gc.runs.find((r) => r.result === result)!;
  assert.ok(run.startedAt >= called);
  assert.ok(await gone(e, ctx, digest)(), 'the unreferenced blob was collected');
});

test('a deletion triggers a collection without any call', { timeout: 15_000 }, async (t) => {
  const e = await env(t);
  const ctx: OpContext = { namespace: 'ns' };
  startScheduler(t, e);
  assert.ok(await until(async () => e.gc.runs.some((r) => r.finishedAt !== undefined), Date.now() + 2000), 'start-up collection');

  await e.leases.create(ctx, { id: 'pull' });
  const digest = await put(e, { ...ctx, lease: 'pull' }, 8000);
  await e.images.create(ctx, { name: 'app', target: { mediaType: 'application/octet-stream', digest, size: 8000 } });
  await sleep(300);
  const quiet = e.gc.runs.length;
  assert.equal(quiet, 1, 'creations alone (fewer than 100 mutations) bring no collection');

  // Deleting the lease is a deletion: a collection follows; the image keeps the content.
  await e.leases.delete(ctx, 'pull');
  assert.ok(await until(async () => e.gc.runs.length > quiet && e.gc.runs.at(-1)!.finishedAt !== undefined, Date.now() + 3000), 'a collection after the lease deletion');
  assert.ok(await hasRecord(e, ctx, digest), 'the image keeps its content');
  assert.ok(await onDisk(e, digest));

  // Deleting the image: the content is collected, with no call.
  const deleted = Date.now();
  await e.images.delete(ctx, 'app');
  assert.ok(await until(gone(e, ctx, digest), deleted + 3000), 'the content is collected after the image deletion');
  t.diagnostic(`collected ${Date.now() - deleted} ms after the deletion`);
});

test('stop(): no collections afterwards; waiters are rejected, not left hanging', { timeout: 10_000 }, async (t) => {
  const e = await env(t);
  keepAlive(t);
  const scheduler = new GcScheduler(e.gc, e.db);
  scheduler.start();
  assert.ok(await until(async () => e.gc.runs.some((r) => r.finishedAt !== undefined), Date.now() + 2000), 'start-up collection');
  await scheduler.stop();
  const runs = e.gc.runs.length;
  const ctx: OpContext = { namespace: 'ns' };
  const digest = await put(e, ctx, 100);
  await e.cs.delete(ctx, digest);
  await sleep(300);
  assert.equal(e.gc.runs.length, runs, 'no collection after stop');

  // A synchronous delete arriving during shutdown must get an answer (stop() rejects the
  // waiters it finds; one that comes after must not wait forever).
  const settled = await Promise.race([
    scheduler.scheduleAndWait().then(
      () => 'resolved',
      (err: unknown) => `rejected: ${(err as Error).message}`,
    ),
    sleep(1500, 'still pending', { ref: false }),
  ]);
  assert.notEqual(settled, 'still pending', 'scheduleAndWait after stop() never settles');
  assert.equal(e.gc.runs.length, runs, 'and it runs no collection');
});
