// GC under concurrent writes (issue 3: "safe under concurrent writes: content being written under
// a lease, or committed after the mark started, is never swept").
//   * collect() back to back while 50 writers ingest under their own leases and commit blobs of
//     random size, then attach them to images or leave them leased: nothing leased or referenced
//     is lost, and once every lease and image is gone a final collect() empties the store;
//   * content committed while a mark is in progress survives (the mark is held open on purpose);
//   * adopting a blob (shared policy) while the GC frees it never leaves a record without bytes.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { readBlob, writeBlob } from '../store/copy.js';
import type { Info } from '../store/types.js';
import { errorCode } from '../store/errors.js';
import type { OpContext } from '../src/metadata/context.js';
import type { GcResult } from '../src/gc/collector.js';
import { loadSnapshot } from '../src/gc/graph.js';
import { chunksOf, sha256 } from './fixtures/helpers.js';
import { bind, hasRecord, metadataEnv, walkedBlobs, type MetadataEnv } from './fixtures/metadata.js';

type Env = MetadataEnv;
const env = (t: TestContext): Promise<Env> => metadataEnv(t, { prefix: 'berth-gc-conc-' });

/** The blobs the local store walks. */
const blobFiles = (e: Env): Promise<string[]> => walkedBlobs(e.backend);

const swallowExists = async (p: Promise<unknown>): Promise<void> => {
  try {
    await p;
  } catch (err) {
    if (errorCode(err) !== 'already_exists') throw err;
  }
};

// ---------------------------------------------------------------------------------------------

test('GC in a loop while 50 writers ingest under leases: nothing leased or referenced is lost', { timeout: 60_000 }, async (t) => {
  const e = await env(t);
  const WRITERS = 50;
  const namespaces = ['ns-a', 'ns-b'];

  // Blob contents: random sizes up to 256 KiB; a few repeat another writer's bytes in the same
  // namespace (already_exists paths) or the other namespace (shared digests).
  const payloads: Buffer[] = [];
  for (let i = 0; i < WRITERS; i++) {
    if (i >= 40 && i < 44) payloads.push(payloads[i - 10]); // same namespace as i-10
    else if (i >= 44 && i < 47) payloads.push(payloads[i - 43]); // other namespace than i-43
    else payloads.push(randomBytes(1 + Math.floor(Math.random() * 256 * 1024)));
  }

  type Mode = 'image-only' | 'leased' | 'image-and-lease';
  const plan = payloads.map((bytes, i) => ({
    i,
    ns: namespaces[i % 2],
    lease: `writer-${i}`,
    ref: `upload-${i}`,
    bytes,
    digest: sha256(bytes),
    mode: (['image-only', 'leased', 'image-and-lease'] as const)[i % 3] as Mode,
    image: `registry.test/app-${i}:latest`,
  }));

  // The collector, back to back, until the writers are done.
  let stop = false;
  const results: GcResult[] = [];
  const loop = (async () => {
    while (!stop) {
      results.push(await e.gc.collect());
      await new Promise((resolve) => setImmediate(resolve));
    }
  })();

  const writeOne = async (p: (typeof plan)[number]): Promise<void> => {
    const ctx: OpContext = { namespace: p.ns };
    const lctx: OpContext = { ...ctx, lease: p.lease };
    await sleep(Math.random() * 50);
    await e.leases.create(ctx, { id: p.lease });
    if (p.i % 4 === 0) {
      // containerd's WriteBlob: the digest is known up front.
      await writeBlob(bind(e.cs, lctx), p.ref, chunksOf(p.bytes, 16 << 10), { size: p.bytes.length, digest: p.digest });
    } else {
      // Many small writes with pauses; every fifth writer stops half way and resumes.
      let w = await e.cs.writer(lctx, { ref: p.ref });
      const half = p.i % 5 === 1 ? Math.floor(p.bytes.length / 2) : -1;
      for (let at = 0; at < p.bytes.length; ) {
        const n = Math.min(16 << 10, p.bytes.length - at, half > at ? half - at : Infinity);
        await w.write(p.bytes.subarray(at, at + n));
        at += n;
        if (at === half) {
          await w.close();
          await sleep(Math.random() * 20);
          w = await e.cs.writer(lctx, { ref: p.ref });
          assert.equal(w.status().offset, half, `writer ${p.i} resumes at ${half}`);
        }
        if (Math.random() < 0.3) await sleep(Math.random() * 5);
      }
      try {
        await swallowExists(w.commit(p.bytes.length, p.digest));
      } finally {
        await w.close();
      }
    }
    await sleep(Math.random() * 20);
    if (p.mode !== 'leased') {
      await e.images.create(ctx, {
        name: p.image,
        target: { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: p.digest, size: p.bytes.length },
      });
    }
    if (p.mode === 'image-only') await e.leases.delete(ctx, p.lease);
  };

  const outcomes = await Promise.allSettled(plan.map(writeOne));
  stop = true;
  await loop;
  const failed = outcomes.flatMap((o, i) => (o.status === 'rejected' ? [`writer ${i}: ${String(o.reason)}`] : []));
  assert.deepEqual(failed, [], 'every writer succeeds');
  t.diagnostic(`${results.length} collections ran during the writes`);
  assert.ok(results.length >= 3, `the GC ran during the writes (${results.length} collections)`);

  // Nothing was ever collectable: every blob was leased from its first byte to its image.
  const removedDuring = results.reduce(
    (sum, r) => sum + r.removed.content + r.removed.ingests + r.removed.leases + r.removed.images + r.backend.blobs + r.backend.ingests,
    0,
  );
  assert.equal(removedDuring, 0, 'the collections during the writes removed nothing');

  for (const p of plan) {
    const ctx: OpContext = { namespace: p.ns };
    const what = `writer ${p.i} (${p.mode})`;
    const info = await e.cs.info(ctx, p.digest);
    assert.equal(info.size, p.bytes.length, `${what}: record`);
    const bytes = await readBlob(bind(e.cs, ctx), p.digest);
    assert.equal(sha256(bytes), p.digest, `${what}: bytes verify`);
    if (p.mode !== 'image-only') {
      const resources = await e.leases.listResources(ctx, p.lease);
      assert.ok(resources.some((r) => r.type === 'content' && r.id === p.digest), `${what}: still leased`);
      assert.ok(!resources.some((r) => r.type === 'ingests'), `${what}: its ingest left the lease at commit`);
    } else {
      await assert.rejects(e.leases.get(ctx, p.lease), (err: unknown) => errorCode(err) === 'not_found');
    }
    if (p.mode !== 'leased') assert.equal((await e.images.get(ctx, p.image)).target.digest, p.digest, `${what}: image`);
  }
  for (const ns of namespaces) {
    assert.deepEqual(await e.cs.listStatuses({ namespace: ns }), [], `${ns}: no ingest left behind`);
  }

  // Let go of everything: a final collection leaves the store empty.
  for (const p of plan) {
    const ctx: OpContext = { namespace: p.ns };
    if (p.mode !== 'leased') await e.images.delete(ctx, p.image);
    if (p.mode !== 'image-only') await e.leases.delete(ctx, p.lease);
  }
  const last = await e.gc.collect();
  assert.equal(last.backend.blobs, new Set(plan.map((p) => p.digest)).size, 'every blob file freed');
  for (const ns of namespaces) assert.deepEqual(await e.cs.list({ namespace: ns }), [], `${ns}: no records`);
  assert.deepEqual(await blobFiles(e), [], 'no blob on disk');
  assert.deepEqual(await e.backend.listStatuses(), [], 'no backend ingest');
  assert.deepEqual(await readdir(join(e.dir, 'content', 'ingest')), [], 'no ingest folder');
  const snap = await loadSnapshot(e.db);
  assert.deepEqual(
    [snap.blobs.size, snap.images.size, snap.ingests.size, snap.leases.size],
    [0, 0, 0, 0],
    'no records of any kind',
  );
});

test('content committed while a mark is in progress survives (under a lease)', { timeout: 30_000 }, async (t) => {
  const e = await env(t);
  const ctx: OpContext = { namespace: 'ns' };
  await e.leases.create(ctx, { id: 'during-mark' });
  const lctx: OpContext = { ...ctx, lease: 'during-mark' };
  // Something already there, so the snapshot the mark starts from is not empty.
  const old = randomBytes(4096);
  await writeBlob(bind(e.cs, lctx), 'old', [old], { size: old.length, digest: sha256(old) });

  // Hold the collector between its mark and its sweep: the first time it asks for the metadata
  // write lock (which it takes for the sweep, after marking), it waits until we have written.
  // Everything written meanwhile is newer than the snapshot the mark started from.
  const lock = e.db.writeLock as unknown as { acquire: () => Promise<() => void> };
  const originalAcquire = lock.acquire.bind(lock);
  let entered!: () => void;
  const inMark = new Promise<void>((resolve) => (entered = resolve));
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let armed = true;
  lock.acquire = async () => {
    if (armed) {
      armed = false;
      entered();
      await gate;
    }
    return originalAcquire();
  };
  t.after(() => {
    lock.acquire = originalAcquire;
  });

  const collecting = e.gc.collect();
  await inMark;
  const snapBefore = { leases: (await e.leases.listResources(ctx, 'during-mark')).length };
  assert.equal(snapBefore.leases, 1, 'the mark started with one leased blob');

  // Written and committed while the mark is held open.
  const leased = randomBytes(100_000);
  const leasedDigest = sha256(leased);
  const w = await e.cs.writer(lctx, { ref: 'new-leased' });
  await w.write(leased);
  await w.commit(leased.length, leasedDigest);
  await w.close();
  // And one without a lease: collectable at once (unleasedExpiryMs 0), so it must go whole.
  const unleased = randomBytes(5000);
  const unleasedDigest = sha256(unleased);
  await writeBlob(bind(e.cs, ctx), 'new-unleased', [unleased], { size: unleased.length, digest: unleasedDigest });
  // An ingest opened under the lease and left half written.
  const half = await e.cs.writer(lctx, { ref: 'half' });
  await half.write(randomBytes(777));
  await half.close();

  release();
  const result = await collecting;
  t.diagnostic(`removed ${JSON.stringify(result.removed)}, backend ${JSON.stringify(result.backend)}`);

  assert.equal((await e.cs.info(ctx, leasedDigest)).size, leased.length, 'the leased commit has its record');
  assert.ok((await readBlob(bind(e.cs, ctx), leasedDigest)).equals(leased), 'and its bytes');
  assert.ok((await readBlob(bind(e.cs, ctx), sha256(old))).equals(old), 'the old leased blob too');
  assert.equal((await e.cs.status(ctx, 'half')).offset, 777, 'the leased ingest survives with its bytes');

  // The unleased blob: gone entirely, or (had the collector not seen it) whole — never half.
  const files = await blobFiles(e);
  const recorded = await hasRecord(e, ctx, unleasedDigest);
  assert.equal(files.includes(unleasedDigest), recorded, 'an unleased blob has its record iff it has its file');
  assert.equal(recorded, false, 'unleased content with unleasedExpiryMs 0 is collected');
  assert.deepEqual(files, [sha256(old), leasedDigest].sort());
});

test('adopting a blob (shared policy) while the GC frees it never leaves a record without bytes', { timeout: 30_000 }, async (t) => {
  const e = await env(t);
  const a: OpContext = { namespace: 'ns-a' };
  const b: OpContext = { namespace: 'ns-b' };
  const bytes = randomBytes(64 * 1024);
  const digest = sha256(bytes);

  // ns-a has the blob only through an image, and lets go of it.
  await writeBlob(bind(e.cs, a), 'a-upload', [bytes], { size: bytes.length, digest });
  await e.images.create(a, { name: 'a', target: { mediaType: 'application/octet-stream', digest, size: bytes.length } });
  await e.images.delete(a, 'a');

  // ns-b starts an upload of the same digest under a lease. We hold it right after the store has
  // looked the digest up in the backend, and run a collection there.
  await e.leases.create(b, { id: 'pull' });
  const lctx: OpContext = { ...b, lease: 'pull' };
  const backend = e.backend as unknown as { info: (d: string) => Promise<Info> };
  const originalInfo = backend.info.bind(e.backend);
  let armed = true;
  let looked!: () => void;
  const lookedUp = new Promise<void>((resolve) => (looked = resolve));
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  backend.info = async (d: string) => {
    const info = await originalInfo(d);
    if (armed && d === digest) {
      armed = false;
      looked();
      await gate;
    }
    return info;
  };
  t.after(() => {
    backend.info = originalInfo;
  });

  const opening = e.cs.writer(lctx, { ref: 'b-upload', size: bytes.length, digest });
  // If the writer never consults the backend, there is no window to test: go on at once.
  await Promise.race([lookedUp, sleep(2000, undefined, { ref: false })]);
  // The collection starts while the adoption is being decided. Where the store decides it under
  // the metadata write lock, the sweep has to wait for it: let it run, then let the writer go.
  const collecting = e.gc.collect();
  await sleep(100);
  release();
  const gcResult = await collecting;
  t.diagnostic(`collection during the adoption: ${JSON.stringify({ ...gcResult.removed, ...gcResult.backend })}`);

  const w = await opening;
  try {
    // A client sends what the writer says is missing, then commits.
    const offset = w.status().offset;
    if (offset < bytes.length) await w.write(bytes.subarray(offset));
    await swallowExists(w.commit(bytes.length, digest));
  } finally {
    await w.close();
  }

  assert.equal((await e.cs.info(b, digest)).size, bytes.length, 'ns-b has the record');
  let got: Buffer | undefined;
  try {
    got = await readBlob(bind(e.cs, b), digest);
  } catch (err) {
    assert.fail(`ns-b has a record of ${digest} but its bytes are gone (${errorCode(err)}: ${(err as Error).message})`);
  }
  assert.ok(got.equals(bytes), 'and its bytes');
  // And the next collection keeps it: it is leased.
  await e.gc.collect();
  assert.ok((await readBlob(bind(e.cs, b), digest)).equals(bytes), 'kept by the lease');
});
