// The namespaced content store (src/metadata/content.ts) against containerd's tests:
//   * core/content/testsuite/testsuite.go cases 1–12 (ContentSuite) and the cross-namespace cases
//     13–16 (reference §2.2), run the way core/metadata/content_test.go runs them: a metadata
//     store over a local store, with a context wrapper that makes namespaces `<name>-n<N>` (and
//     labels them `containerd.io/namespace.shareable=true` when asked);
//   * TestContentLeased and TestIngestLeased (reference §2.3);
//   * the namespace rules of reference §3.2.
// The store's methods take an OpContext first; a small adapter binds one, so the case bodies
// read as containerd's (and as test/content-store.test.ts's port of them).
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { LocalStore } from '../store/index.js';
import { copy, openWriter, readBlob, writeBlob } from '../store/copy.js';
import type { ContentStore, Info, Labels, ReaderAt, Writer } from '../store/types.js';
import { errorCode, type ErrorCode } from '../src/errors.js';
import { MetadataDB } from '../src/metadata/db.js';
import { MetadataContentStore, shareableLabel, type SharingPolicy } from '../src/metadata/content.js';
import type { OpContext } from '../src/metadata/context.js';
import { ImageStore } from '../src/metadata/images.js';
import { LeaseManager } from '../src/metadata/leases.js';
import { NamespaceStore } from '../src/metadata/namespaces.js';

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const EMPTY_DIGEST = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const T = { timeout: 60_000 };
/** openWriter retries while a ref is locked; nothing here holds a lock for long. */
const OW = { timeoutMs: 5_000 };

const sha256 = (data: Uint8Array | string): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** mulberry32: deterministic content between runs. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let r = a;
    r = Math.imul(r ^ (r >>> 15), r | 1);
    r ^= r + Math.imul(r ^ (r >>> 7), r | 61);
    return (r ^ (r >>> 14)) >>> 0;
  };
}

function seededBytes(seed: number, size: number): Buffer {
  const next = prng(seed);
  const words = new Uint32Array(Math.ceil(size / 4));
  for (let i = 0; i < words.length; i++) words[i] = next();
  return Buffer.from(words.buffer, 0, size);
}

// containerd's createContent: the seed is a global counter, so content depends on call order.
// (Offset from content-store.test.ts's counter so the two files never share a digest.)
let contentSeed = 1_000_000;
function createContent(size: number): { bytes: Buffer; digest: string } {
  contentSeed += 1;
  const bytes = seededBytes(contentSeed, size);
  return { bytes, digest: sha256(bytes) };
}

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-mdcontent-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The metadata content store bound to one context: containerd's ctx-carrying content.Store. */
function bind(cs: MetadataContentStore, ctx: OpContext): ContentStore {
  return {
    writer: (opts) => cs.writer(ctx, opts),
    status: (ref) => cs.status(ctx, ref),
    listStatuses: (filters) => cs.listStatuses(ctx, filters),
    abort: (ref) => cs.abort(ctx, ref),
    info: (digest) => cs.info(ctx, digest),
    update: (info, fieldpaths) => cs.update(ctx, info.digest, info.labels ?? {}, fieldpaths),
    walk: async (fn, filters) => {
      for (const info of await cs.list(ctx, filters)) await fn(info);
    },
    delete: (digest) => cs.delete(ctx, digest),
    readerAt: (digest) => cs.readerAt(ctx, digest),
  };
}

interface Env {
  dir: string;
  backend: LocalStore;
  db: MetadataDB;
  raw: MetadataContentStore;
  namespaces: NamespaceStore;
  leases: LeaseManager;
  images: ImageStore;
}

async function env(t: TestContext, policy: SharingPolicy = 'shared'): Promise<Env> {
  const dir = await tempDir(t);
  const backend = await LocalStore.open(join(dir, 'content'));
  const db = await MetadataDB.open(join(dir, 'meta'));
  t.after(() => db.close());
  const raw = new MetadataContentStore(db, backend, { policy, unleasedExpiryMs: 0 });
  return {
    dir,
    backend,
    db,
    raw,
    namespaces: new NamespaceStore(db),
    leases: new LeaseManager(db),
    images: new ImageStore(db),
  };
}

/** containerd's ContextWrapper for the metadata store: namespaces `<name>-n<N>`. */
type Wrap = (sharedNS: boolean) => Promise<{ ctx: OpContext; cs: ContentStore }>;

/** makeTest: a fresh store, the main context wrapped once with sharedNS=false, and the wrapper. */
async function suiteStore(
  t: TestContext,
  policy: SharingPolicy = 'shared',
  name = 'metadata',
): Promise<{ cs: ContentStore; ctx: OpContext; wrap: Wrap; e: Env }> {
  const e = await env(t, policy);
  let count = 0;
  const wrap: Wrap = async (sharedNS) => {
    count += 1;
    const ctx: OpContext = { namespace: `${name}-n${count}` };
    if (sharedNS) await e.namespaces.create(ctx.namespace, { [shareableLabel]: 'true' });
    return { ctx, cs: bind(e.raw, ctx) };
  };
  const main = await wrap(false);
  return { cs: main.cs, ctx: main.ctx, wrap, e };
}

async function expectCode(p: Promise<unknown>, code: ErrorCode, what: string, message?: RegExp): Promise<void> {
  await assert.rejects(
    p,
    (err: unknown) => {
      assert.equal(errorCode(err), code, `${what}: expected ${code}, got ${errorCode(err)} (${String(err)})`);
      if (message) assert.match((err as Error).message, message, what);
      return true;
    },
    `${what}: expected a rejection with ${code}`,
  );
}

async function closeQuietly(w: Writer | undefined): Promise<void> {
  if (w) await w.close().catch(() => undefined);
}

function assertWithin(actual: Date, lo: Date, hi: Date, what: string): void {
  assert.ok(actual instanceof Date, `${what} must be a Date, got ${String(actual)}`);
  const v = actual.getTime();
  assert.ok(
    lo.getTime() <= v && v <= hi.getTime(),
    `${what} ${actual.toISOString()} not within [${lo.toISOString()}, ${hi.toISOString()}]`,
  );
}

const plainLabels = (labels: Labels | undefined | null): Labels => ({ ...(labels ?? {}) });

/** containerd's checkStatus. */
function checkStatus(
  w: Writer,
  expected: { ref: string; offset: number; total: number },
  dgst: string,
  preStart: Date,
  postStart: Date,
  preUpdate: Date,
  postUpdate: Date,
): void {
  assert.equal(w.digest(), dgst, 'writer digest');
  const st = w.status();
  assert.equal(st.ref, expected.ref, 'status ref');
  assert.equal(st.offset, expected.offset, 'status offset');
  assert.equal(st.total, expected.total, 'status total');
  assertWithin(st.startedAt, preStart, postStart, 'status startedAt');
  assertWithin(st.updatedAt, preUpdate, postUpdate, 'status updatedAt');
}

/** containerd's checkNewlyCreated. */
function checkNewlyCreated(w: Writer, _preStart: Date, postStart: Date, _preUpdate: Date, postUpdate: Date): void {
  assert.equal(w.digest(), EMPTY_DIGEST, 'a fresh ingest has the empty digest');
  const st = w.status();
  assert.equal(st.offset, 0, 'a fresh ingest is at offset 0');
  assertWithin(st.startedAt, postStart, postUpdate, 'fresh ingest startedAt');
}

/** containerd's checkInfo. */
async function checkInfo(
  cs: ContentStore,
  d: string,
  expected: { size: number; labels?: Labels },
  c1: Date,
  c2: Date,
  u1: Date,
  u2: Date,
): Promise<Info> {
  const info = await cs.info(d);
  assert.equal(info.digest, d, 'info digest');
  assert.equal(info.size, expected.size, 'info size');
  assertWithin(info.createdAt, c1, c2, 'info createdAt');
  assertWithin(info.updatedAt, u1, u2, 'info updatedAt');
  assert.deepEqual(plainLabels(info.labels), plainLabels(expected.labels), 'info labels');
  return info;
}

/** containerd's checkContent. */
async function checkContent(
  cs: ContentStore,
  d: string,
  expected: { size: number; labels?: Labels },
  c1: Date,
  c2: Date,
  u1: Date,
  u2: Date,
): Promise<void> {
  await checkInfo(cs, d, expected, c1, c2, u1, u2);
  const b = await readBlob(cs, d);
  assert.equal(b.length, expected.size, 'read blob size');
  assert.equal(sha256(b), d, 'read blob digest');
}

/** containerd's checkRefNotAvailable. */
async function checkRefNotAvailable(cs: ContentStore, ref: string): Promise<void> {
  let w: Writer | undefined;
  try {
    w = await cs.writer({ ref });
  } catch (err) {
    assert.equal(errorCode(err), 'unavailable', `writer(${ref}) while in use: got ${String(err)}`);
    return;
  }
  await closeQuietly(w);
  assert.fail(`writer created with ref ${JSON.stringify(ref)}, expected it to be in use`);
}

async function writeChunks(w: Writer, data: Uint8Array, chunk: number): Promise<void> {
  for (let i = 0; i < data.length; i += chunk) await w.write(data.subarray(i, i + chunk));
}

async function* chunksOf(data: Uint8Array, chunk = 1 << 16): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < data.length; i += chunk) yield data.subarray(i, i + chunk);
}

async function readSection(ra: ReaderAt, off: number, n: number): Promise<Buffer> {
  const buf = Buffer.alloc(n);
  let pos = 0;
  while (pos < n) {
    const got = await ra.readAt(buf.subarray(pos), off + pos);
    if (got === 0) break;
    pos += got;
  }
  return buf.subarray(0, pos);
}

const rfc3339Seconds = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');
const gcRootLabels = (): Labels => ({ 'containerd.io/gc.root': rfc3339Seconds(new Date()) });

// ---------------------------------------------------------------------------------------------
// §2.2 ContentSuite (cases 1–12) against the metadata store
// ---------------------------------------------------------------------------------------------

describe('ContentSuite on the metadata content store (containerd TestContent)', () => {
  test('1. Writer: five concurrent writers, committed with labels', { timeout: 120_000 }, async (t) => {
    const { cs } = await suiteStore(t);
    const labels = gcRootLabels();
    const c1 = createContent(256);
    const c2 = createContent(256);
    const c3 = createContent(256);
    const c4 = createContent(256);
    const c5 = createContent(16 << 21); // 32 MiB

    const writers = await Promise.all([
      openWriter(cs, { ref: 'c1' }, OW),
      openWriter(cs, { ref: 'c2', size: c2.bytes.length }, OW),
      openWriter(cs, { ref: 'c3', digest: c3.digest }, OW),
      openWriter(cs, { ref: 'c4', size: c4.bytes.length, digest: c4.digest }, OW),
      openWriter(cs, { ref: 'c5', size: c5.bytes.length, digest: c5.digest }, OW),
    ]);
    try {
      // 32-byte writes as io.CopyBuffer with a 32-byte buffer; the 32 MiB blob in 32 KiB writes.
      const cases = [
        { content: c1, writer: writers[0], chunk: 32 },
        { content: c2, writer: writers[1], chunk: 32 },
        { content: c3, writer: writers[2], chunk: 32 },
        { content: c4, writer: writers[3], chunk: 32 },
        { content: c5, writer: writers[4], chunk: 32 << 10 },
      ];
      await Promise.all(
        cases.map(async ({ content, writer, chunk }) => {
          await writeChunks(writer, content.bytes, chunk);
          assert.equal(writer.status().offset, content.bytes.length, `${writer.ref} offset after copy`);
          const preCommit = new Date();
          await writer.commit(0, undefined, { labels: { ...labels } });
          const postCommit = new Date();
          assert.equal(writer.digest(), content.digest, `${writer.ref} digest after commit`);
          await checkInfo(cs, content.digest, { size: content.bytes.length, labels }, preCommit, postCommit, preCommit, postCommit);
        }),
      );
      assert.ok((await readBlob(cs, c5.digest)).equals(c5.bytes), 'c5 content');
    } finally {
      await Promise.all(writers.map(closeQuietly));
    }
  });

  test('2. UpdateStatus: status follows each write', T, async (t) => {
    const { cs } = await suiteStore(t);
    const labels = gcRootLabels();
    const c1 = createContent(256);

    const preStart = new Date();
    const w1 = await openWriter(cs, { ref: 'c1', size: 256, digest: c1.digest }, OW);
    const postStart = new Date();
    try {
      const expected = { ref: 'c1', offset: 0, total: 256 };
      checkStatus(w1, expected, EMPTY_DIGEST, preStart, postStart, preStart, postStart);

      let preUpdate = new Date();
      await w1.write(c1.bytes.subarray(0, 64));
      let postUpdate = new Date();
      expected.offset = 64;
      checkStatus(w1, expected, sha256(c1.bytes.subarray(0, 64)), preStart, postStart, preUpdate, postUpdate);

      preUpdate = new Date();
      await w1.write(c1.bytes.subarray(64, 192));
      postUpdate = new Date();
      expected.offset = 192;
      checkStatus(w1, expected, sha256(c1.bytes.subarray(0, 192)), preStart, postStart, preUpdate, postUpdate);

      preUpdate = new Date();
      await w1.write(c1.bytes.subarray(192));
      postUpdate = new Date();
      expected.offset = 256;
      checkStatus(w1, expected, c1.digest, preStart, postStart, preUpdate, postUpdate);

      const preCommit = new Date();
      await w1.commit(0, undefined, { labels: { ...labels } });
      const postCommit = new Date();
      await checkInfo(cs, c1.digest, { size: 256, labels }, preCommit, postCommit, preCommit, postCommit);
    } finally {
      await closeQuietly(w1);
    }
  });

  test('3. CommitExists: committing content the namespace has fails with already_exists', T, async (t) => {
    const { cs } = await suiteStore(t);
    const c1 = createContent(256);
    await writeBlob(cs, 'c1', chunksOf(c1.bytes), { digest: c1.digest });
    assert.equal((await cs.info(c1.digest)).size, 256);

    for (const [i, expected] of ([c1.digest, undefined] as const).entries()) {
      const ref = `c1-commitexists-${i}`;
      const w = await openWriter(cs, { ref }, OW);
      try {
        await w.write(c1.bytes);
        await expectCode(w.commit(c1.bytes.length, expected), 'already_exists', `(${i}) commit of existing content`);
      } finally {
        await closeQuietly(w);
      }
      // The metadata store removes the ingest record even when the commit is already_exists.
      await expectCode(cs.status(ref), 'not_found', `(${i}) ingest after already_exists`);
    }
  });

  test('4. Resume: a reopened writer continues where the first stopped', T, async (t) => {
    const { cs } = await suiteStore(t);
    const ref = 'cb';
    const cb = createContent(256);
    const first = cb.bytes.subarray(0, 128);
    const second = cb.bytes.subarray(128);

    const preStart = new Date();
    const w1 = await openWriter(cs, { ref, size: 256, digest: cb.digest }, OW);
    const postStart = new Date();
    let preUpdate = postStart;
    await w1.write(first);
    let postUpdate = new Date();

    const dgstFirst = sha256(first);
    const expected = { ref, offset: 128, total: 256 };
    checkStatus(w1, expected, dgstFirst, preStart, postStart, preUpdate, postUpdate);
    await w1.close();

    const w2 = await openWriter(cs, { ref, size: 256, digest: cb.digest }, OW);
    try {
      checkStatus(w2, expected, dgstFirst, preStart, postStart, preUpdate, postUpdate);
      preUpdate = new Date();
      await w2.write(second);
      postUpdate = new Date();
      expected.offset = expected.total;
      checkStatus(w2, expected, cb.digest, preStart, postStart, preUpdate, postUpdate);

      const preCommit = new Date();
      await w2.commit(0, undefined);
      const postCommit = new Date();
      await w2.close();
      await checkInfo(cs, cb.digest, { size: 256 }, preCommit, postCommit, preCommit, postCommit);
    } finally {
      await closeQuietly(w2);
    }
  });

  type ResumeFn = (w: Writer, b: Buffer, written: number, size: number, d: string) => Promise<void>;

  function checkResume(rf: ResumeFn) {
    return async (t: TestContext): Promise<void> => {
      const { cs } = await suiteStore(t);
      for (const [i, size] of [500, 5000, 50000].entries()) {
        for (const [j, tp] of [0.0, 0.1, 0.5, 0.9, 1.0].entries()) {
          const { bytes: b, digest: d } = createContent(size);
          const limit = Math.floor(size * tp);
          const ref = `ref-${i}-${j}`;
          const what = `${ref} (size ${size}, written ${limit})`;

          let w = await openWriter(cs, { ref, size, digest: d }, OW);
          try {
            await w.write(b.subarray(0, limit));
          } finally {
            await w.close();
          }

          w = await openWriter(cs, { ref, size, digest: d }, OW);
          try {
            assert.equal(w.status().offset, limit, `${what}: resumed offset`);
            const preCommit = new Date();
            await rf(w, b, limit, size, d);
            const postCommit = new Date();
            await w.close();
            await checkContent(cs, d, { size }, preCommit, postCommit, preCommit, postCommit);
          } finally {
            await closeQuietly(w);
          }
        }
      }
    };
  }

  test(
    '5. ResumeTruncate',
    T,
    checkResume(async (w, b, _written, size, d) => {
      await w.truncate(0);
      await writeChunks(w, b, 1024);
      await w.commit(size, d);
    }),
  );

  test(
    '6. ResumeDiscard',
    T,
    checkResume(async (w, b, written, size, d) => {
      await writeChunks(w, b.subarray(written), 1024);
      await w.commit(size, d);
    }),
  );

  test(
    '7. ResumeCopy (plain reader)',
    T,
    checkResume(async (w, b, _written, size, d) => {
      await copy(w, chunksOf(b, 777), size, d);
    }),
  );

  test(
    '8. ResumeCopySeeker',
    T,
    checkResume(async (w, b, _written, size, d) => {
      await copy(w, { openAt: (offset: number) => chunksOf(b.subarray(offset), 1000) }, size, d);
    }),
  );

  test(
    '9. ResumeCopyReaderAt',
    T,
    checkResume(async (w, b, _written, size, d) => {
      const source = {
        size: b.length,
        async readAt(buf: Uint8Array, offset: number): Promise<number> {
          if (offset >= b.length) return 0;
          const n = Math.min(buf.length, b.length - offset);
          buf.set(b.subarray(offset, offset + n));
          return n;
        },
      };
      await copy(w, source, size, d);
    }),
  );

  test('10. SmallBlob: a blob smaller than the read size', T, async (t) => {
    const { cs } = await suiteStore(t);
    const blob = Buffer.from('foobar');
    const d = sha256(blob);
    const w = await cs.writer({ ref: 'TestContent/SmallBlob', size: blob.length, digest: d });
    await w.write(blob);
    await w.commit(blob.length, d);
    await w.close();

    const ra = await cs.readerAt(d);
    try {
      const b = await readSection(ra, 0, blob.length + 1);
      assert.equal(b.toString(), 'foobar');
      assert.equal(sha256(b), d);
    } finally {
      await ra.close();
    }
  });

  test('11. Labels: commit with labels, replace them, update some', T, async (t) => {
    const { cs } = await suiteStore(t);
    const c1 = createContent(256);
    const w1 = await openWriter(cs, { ref: 'c1-checklabels', size: 256, digest: c1.digest }, OW);
    try {
      await w1.write(c1.bytes);
      const rootTime = rfc3339Seconds(new Date());
      const labels = { k1: 'v1', k2: 'v2', 'containerd.io/gc.root': rootTime };

      const preCommit = new Date();
      await w1.commit(0, undefined, { labels: { ...labels } });
      const postCommit = new Date();
      const committed = await checkInfo(cs, c1.digest, { size: 256, labels }, preCommit, postCommit, preCommit, postCommit);

      const replaced = { k1: 'newvalue', k3: 'v3', 'containerd.io/gc.root': rootTime };
      let preUpdate = new Date();
      await cs.update({ digest: c1.digest, labels: { ...replaced } });
      let postUpdate = new Date();
      const i1 = await checkInfo(cs, c1.digest, { size: 256, labels: replaced }, preCommit, postCommit, preUpdate, postUpdate);
      assert.equal(i1.createdAt.getTime(), committed.createdAt.getTime(), 'createdAt unchanged by update');

      const partial = { k1: 'v1', 'containerd.io/gc.root': rootTime };
      preUpdate = new Date();
      await cs.update({ digest: c1.digest, labels: { ...partial } }, ['labels.k3', 'labels.k1']);
      postUpdate = new Date();
      await checkInfo(cs, c1.digest, { size: 256, labels: partial }, preCommit, postCommit, preUpdate, postUpdate);
    } finally {
      await closeQuietly(w1);
    }
  });

  test('12. CommitErrorState: failed commits leave the ref usable', T, async (t) => {
    const { cs } = await suiteStore(t);
    const c1 = createContent(256);
    const d2 = createContent(256).digest;
    await writeBlob(cs, 'c1', chunksOf(c1.bytes), { digest: c1.digest });
    const ref = 'c1-commiterror-state';
    const len = c1.bytes.length;
    let w: Writer | undefined;
    try {
      w = await openWriter(cs, { ref }, OW);
      await w.write(c1.bytes);
      await checkRefNotAvailable(cs, ref);
      await expectCode(w.commit(len, c1.digest), 'already_exists', 'a: commit existing with digest');

      w = await openWriter(cs, { ref }, OW);
      await checkRefNotAvailable(cs, ref);
      await w.write(c1.bytes);
      await expectCode(w.commit(len, undefined), 'already_exists', 'b: commit existing without digest');
      await w.close();

      w = await openWriter(cs, { ref }, OW);
      await checkRefNotAvailable(cs, ref);
      const more = Buffer.concat([c1.bytes, Buffer.from('more')]);
      await w.write(more);
      await expectCode(w.commit(len + 4, d2), 'failed_precondition', 'c: commit with wrong digest');
      await w.close();

      w = await openWriter(cs, { ref }, OW);
      await checkRefNotAvailable(cs, ref);
      assert.equal(w.status().offset, len + 4, 'd: the 260 bytes are resumed');
      await expectCode(w.commit(len, undefined), 'failed_precondition', 'd: commit with wrong size');
      await w.close();

      w = await openWriter(cs, { ref }, OW);
      await checkRefNotAvailable(cs, ref);
      await w.commit(len + 4, undefined);
      await w.close();
      assert.ok((await readBlob(cs, sha256(more))).equals(more), 'e: committed content');

      w = await openWriter(cs, { ref }, OW);
      assert.equal(w.status().offset, 0, 'f: fresh ingest');
      await w.write(c1.bytes);
      await checkRefNotAvailable(cs, ref);
      await expectCode(w.commit(len, c1.digest), 'already_exists', 'f: commit existing');
      await w.close();

      w = await openWriter(cs, { ref }, OW);
      await checkRefNotAvailable(cs, ref);
      await w.truncate(0);
      await w.close();
      w = await openWriter(cs, { ref }, OW);
      await w.close();
    } finally {
      await closeQuietly(w);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// §2.2 cases 13–16: across namespaces
// ---------------------------------------------------------------------------------------------

describe('cross-namespace content (containerd ContentCrossNS*Suite)', () => {
  test('13. CrossNamespaceShare (shared policy): a second namespace adopts the blob', T, async (t) => {
    const { cs, wrap, e } = await suiteStore(t, 'shared');
    const size = 1000;
    const { bytes: b, digest: d } = createContent(size);
    const ref = `ref-${size}`;
    const t1 = new Date();
    await writeBlob(cs, ref, chunksOf(b), { size, digest: d });

    const { ctx: ctx2, cs: cs2 } = await wrap(false);
    const w = await openWriter(cs2, { ref, size, digest: d }, OW);
    try {
      const t2 = new Date();
      checkStatus(w, { ref, offset: size, total: size }, d, t1, t2, t1, t2);
      // Adopted: no bytes to send, so no backend ingest for the second namespace.
      assert.deepEqual(await e.raw.listStatuses(ctx2), [], 'an adopted ingest is not listed');
      await w.commit(size, d);
    } finally {
      await closeQuietly(w);
    }
    const t3 = new Date();
    await checkContent(cs, d, { size }, t1, t3, t1, t3);
    await checkContent(cs2, d, { size }, t1, t3, t1, t3);
    await expectCode(cs2.status(ref), 'not_found', 'the ingest record is gone after commit');
  });

  test('14. CrossNamespaceAppend (shared policy): writing to an adopted blob appends', T, async (t) => {
    const { cs, wrap } = await suiteStore(t, 'shared');
    const size = 1000;
    const { bytes: b, digest: d } = createContent(size);
    const ref = `ref-${size}`;
    const t1 = new Date();
    await writeBlob(cs, ref, chunksOf(b), { size, digest: d });

    const { cs: cs2 } = await wrap(false);
    const extra = Buffer.from('appended bytes');
    const b2 = Buffer.concat([b, extra]);
    const d2 = sha256(b2);

    const w = await openWriter(cs2, { ref, size, digest: d }, OW);
    try {
      const t2 = new Date();
      checkStatus(w, { ref, offset: size, total: size }, d, t1, t2, t1, t2);
      await w.write(extra);
      await w.commit(b2.length, d2);
    } finally {
      await closeQuietly(w);
    }
    const t3 = new Date();
    await checkContent(cs, d, { size }, t1, t3, t1, t3);
    await checkContent(cs2, d2, { size: b2.length }, t1, t3, t1, t3);
    await expectCode(cs.info(d2), 'not_found', 'the appended blob is only in the second namespace');
    await expectCode(cs2.info(d), 'not_found', 'the second namespace never committed the original');
  });

  test('15. CrossNamespaceIsolate (isolated policy): a second namespace starts a fresh ingest', T, async (t) => {
    const { cs, wrap } = await suiteStore(t, 'isolated');
    const size = 1000;
    const { bytes: b, digest: d } = createContent(size);
    const ref = `ref-${size}`;
    const t1 = new Date();
    await writeBlob(cs, ref, chunksOf(b), { size, digest: d });
    const t2 = new Date();

    const { cs: cs2 } = await wrap(false);
    const t3 = new Date();
    const w = await openWriter(cs2, { ref, size, digest: d }, OW);
    try {
      const t4 = new Date();
      checkNewlyCreated(w, t1, t2, t3, t4);
      // The bytes must be sent again; the blob then joins the second namespace.
      await w.write(b);
      await w.commit(size, d);
    } finally {
      await closeQuietly(w);
    }
    assert.equal((await cs2.info(d)).size, size);
  });

  test('16. SharedNamespaceIsolate (isolated policy, shareable ns1): adoption as in 13', T, async (t) => {
    const { wrap } = await suiteStore(t, 'isolated');
    const { cs: cs1 } = await wrap(true);
    const size = 1000;
    const { bytes: b, digest: d } = createContent(size);
    const ref = `ref-${size}`;
    const t1 = new Date();
    await writeBlob(cs1, ref, chunksOf(b), { size, digest: d });

    const { cs: cs2 } = await wrap(false);
    const w = await openWriter(cs2, { ref, size, digest: d }, OW);
    try {
      const t2 = new Date();
      checkStatus(w, { ref, offset: size, total: size }, d, t1, t2, t1, t2);
      await w.commit(size, d);
    } finally {
      await closeQuietly(w);
    }
    const t3 = new Date();
    await checkContent(cs1, d, { size }, t1, t3, t1, t3);
    await checkContent(cs2, d, { size }, t1, t3, t1, t3);
  });

  test('isolated policy: a blob is invisible to other namespaces until they commit it', T, async (t) => {
    const { cs, wrap } = await suiteStore(t, 'isolated');
    const { bytes: b, digest: d } = createContent(300);
    await writeBlob(cs, 'x', chunksOf(b), { size: b.length, digest: d });
    const { cs: cs2 } = await wrap(false);
    await expectCode(cs2.info(d), 'not_found', 'info in another namespace');
    await expectCode(cs2.readerAt(d), 'not_found', 'readerAt in another namespace');
    assert.deepEqual(
      (await (async () => {
        const seen: string[] = [];
        await cs2.walk((i) => void seen.push(i.digest));
        return seen;
      })()),
      [],
      'walk in another namespace',
    );
  });
});

// ---------------------------------------------------------------------------------------------
// §2.3 TestContentLeased / TestIngestLeased
// ---------------------------------------------------------------------------------------------

describe('content and leases (containerd core/metadata/content_test.go)', () => {
  const has = (resources: Array<{ id: string; type: string }>, type: string, id: string): boolean =>
    resources.some((r) => r.type === type && r.id === id);

  test('TestContentLeased', T, async (t) => {
    const e = await env(t);
    const ns = 'testing';
    const blob = Buffer.from('any content');
    const expected = sha256(blob);

    await e.leases.create({ namespace: ns }, { id: 'lease-1' });
    const lctx: OpContext = { namespace: ns, lease: 'lease-1' };
    await writeBlob(bind(e.raw, lctx), 'test-1', chunksOf(blob), { size: blob.length, digest: expected });
    let resources = await e.leases.listResources(lctx, 'lease-1');
    assert.ok(has(resources, 'content', expected), `content leased by lease-1: ${JSON.stringify(resources)}`);
    assert.ok(!has(resources, 'ingests', 'test-1'), 'test-1 should not be leased after write');

    await e.leases.create({ namespace: ns }, { id: 'lease-2' });
    const lctx2: OpContext = { namespace: ns, lease: 'lease-2' };
    await expectCode(
      e.raw.writer(lctx2, { ref: 'test-2', size: blob.length, digest: expected }),
      'already_exists',
      'writer for content the namespace has',
    );
    resources = await e.leases.listResources(lctx2, 'lease-2');
    assert.ok(has(resources, 'content', expected), `already_exists leases the content: ${JSON.stringify(resources)}`);
    assert.ok(!has(resources, 'ingests', 'test-2'), 'test-2 should not be leased');
    await expectCode(e.raw.status(lctx2, 'test-2'), 'not_found', 'no ingest test-2');
  });

  test('TestIngestLeased', T, async (t) => {
    const e = await env(t);
    const ns = 'testing';
    const blob = Buffer.from('any content');
    const expected = sha256(blob);
    await e.leases.create({ namespace: ns }, { id: 'lease-1' });
    const lctx: OpContext = { namespace: ns, lease: 'lease-1' };

    const w = await e.raw.writer(lctx, { ref: 'test-1', size: blob.length, digest: expected });
    let resources = await e.leases.listResources(lctx, 'lease-1');
    await w.close();
    assert.ok(has(resources, 'ingests', 'test-1'), `ingest leased: ${JSON.stringify(resources)}`);

    await e.raw.abort(lctx, 'test-1');
    resources = await e.leases.listResources(lctx, 'lease-1');
    assert.ok(!has(resources, 'ingests', 'test-1'), 'test-1 should not be leased after abort');
    await expectCode(e.raw.status(lctx, 'test-1'), 'not_found', 'aborted ingest');
  });

  test('a writer under a lease that does not exist is not_found and leaves nothing', T, async (t) => {
    const e = await env(t);
    const ctx: OpContext = { namespace: 'testing', lease: 'no-such-lease' };
    await expectCode(e.raw.writer(ctx, { ref: 'r1' }), 'not_found', 'writer under unknown lease', /lease/);
    await expectCode(e.raw.status({ namespace: 'testing' }, 'r1'), 'not_found', 'no ingest record');
    assert.deepEqual(await e.backend.listStatuses(), [], 'no backend ingest');
  });
});

// ---------------------------------------------------------------------------------------------
// §3.2 namespaces
// ---------------------------------------------------------------------------------------------

describe('namespaces (reference §3.2)', () => {
  test('delete only when empty: failed_precondition naming what is left', T, async (t) => {
    const e = await env(t);
    const ns = 'ns-del';
    const ctx: OpContext = { namespace: ns };
    await e.namespaces.create(ns, { team: 'a' });
    const { bytes, digest } = createContent(100);
    await writeBlob(bind(e.raw, ctx), 'blob', chunksOf(bytes), { size: bytes.length, digest });

    await expectCode(e.namespaces.delete(ns), 'failed_precondition', 'with content', /must be empty, but it still has blobs/);
    await e.images.create(ctx, { name: 'img', target: { mediaType: 'application/vnd.oci.image.index.v1+json', digest, size: bytes.length } });
    await expectCode(
      e.namespaces.delete(ns),
      'failed_precondition',
      'with an image and content',
      new RegExp(`namespace "${ns}" must be empty, but it still has images, blobs$`),
    );
    assert.equal((await e.namespaces.get(ns)).name, ns, 'a refused delete changes nothing');
    assert.equal((await e.raw.info(ctx, digest)).size, bytes.length);

    await e.images.delete(ctx, 'img');
    await expectCode(e.namespaces.delete(ns), 'failed_precondition', 'with content only', /still has blobs$/);
    await e.raw.delete(ctx, digest);
    await e.namespaces.delete(ns);
    await expectCode(e.namespaces.get(ns), 'not_found', 'deleted namespace');
    assert.ok(!(await e.namespaces.list()).some((n) => n.name === ns), 'not listed after delete');
  });

  test('leases, ingests and labels do not block deletion', T, async (t) => {
    const e = await env(t);
    const ns = 'ns-leases';
    const ctx: OpContext = { namespace: ns };
    await e.namespaces.create(ns, { some: 'label' });
    await e.leases.create(ctx, { id: 'l1' });
    const w = await e.raw.writer({ namespace: ns, lease: 'l1' }, { ref: 'in-progress' });
    await w.write(Buffer.from('partial'));
    await w.close();
    const w2 = await e.raw.writer(ctx, { ref: 'unleased' });
    await w2.close();
    await e.namespaces.delete(ns);
    await expectCode(e.namespaces.get(ns), 'not_found', 'deleted namespace');
  });

  test('unknown namespaces are not_found; invalid names invalid_argument', T, async (t) => {
    const e = await env(t);
    await expectCode(e.namespaces.delete('nope'), 'not_found', 'delete unknown', /namespace "nope": not found/);
    await expectCode(e.namespaces.get('nope'), 'not_found', 'get unknown');
    await expectCode(e.namespaces.create('-bad-'), 'invalid_argument', 'create invalid');
    await expectCode(e.namespaces.delete('a..b'), 'invalid_argument', 'delete invalid');
    await e.namespaces.create('dup');
    await expectCode(e.namespaces.create('dup'), 'already_exists', 'create twice', /namespace "dup": already exists/);
  });

  test('objects create their namespace implicitly', T, async (t) => {
    const e = await env(t);
    const { bytes, digest } = createContent(64);
    await writeBlob(bind(e.raw, { namespace: 'implicit' }), 'r', chunksOf(bytes), { size: bytes.length, digest });
    assert.ok((await e.namespaces.list()).some((n) => n.name === 'implicit'), 'namespace created by a write');
  });
});
