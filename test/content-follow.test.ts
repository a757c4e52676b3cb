// Following an ingest while it is being written (store/follow.ts): a reader streams the bytes
// its writer writes, waits when it has caught up, ends only after a commit, fails when the
// ingest is aborted, its commit refused, cut below the reader or the reader's signal aborts, and
// waits out a writer that closes without commit. The real LocalStore on a temporary folder; the
// namespaced store's follow over it at the end. No test sleeps: each waits for the event it needs.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';

import { LocalStore } from '../store/index.js';
import { BerthError } from '../store/errors.js';
import { ingestPath } from '../store/paths.js';
import { writeBlob } from '../store/copy.js';
import { contentSeries, expectCode, tempDir } from './fixtures/helpers.js';
import { metadataEnv } from './fixtures/metadata.js';

const content = contentSeries(7000);

async function openStore(t: TestContext): Promise<LocalStore> {
  return LocalStore.open(await tempDir(t, 'berth-follow-'));
}

/** Reads a stream piecemeal: `take(n)` resolves with its next n bytes; `rest()` reads to its end. */
class Taker {
  private readonly it: AsyncIterator<Buffer>;
  private held: Buffer = Buffer.alloc(0);

  constructor(stream: Readable) {
    this.it = stream[Symbol.asyncIterator]();
  }

  async take(n: number): Promise<Buffer> {
    while (this.held.length < n) {
      const { value, done } = await this.it.next();
      if (done) throw new Error(`stream ended after ${this.held.length} of ${n} bytes`);
      this.held = Buffer.concat([this.held, value]);
    }
    const out = this.held.subarray(0, n);
    this.held = this.held.subarray(n);
    return out;
  }

  /** The next step of the stream, and whether it has settled yet (it must not, while waiting). */
  pending(): { next: Promise<IteratorResult<Buffer>>; settled: () => boolean } {
    assert.equal(this.held.length, 0, 'pending() with bytes already held');
    let settled = false;
    const next = this.it.next();
    next.then(
      () => (settled = true),
      () => (settled = true),
    );
    return { next, settled: () => settled };
  }

  async rest(): Promise<Buffer> {
    const parts = [this.held];
    for (let r = await this.it.next(); !r.done; r = await this.it.next()) parts.push(r.value);
    this.held = Buffer.alloc(0);
    return Buffer.concat(parts);
  }
}

/** Lets every callback queued so far run, and a file system round trip complete (not a timer). */
async function settle(store: LocalStore, ref: string): Promise<void> {
  await store.status(ref).catch(() => undefined);
  await new Promise((resolve) => setImmediate(resolve));
}

/** Descriptors of this process open on `path`. */
async function openFds(path: string): Promise<number> {
  let n = 0;
  for (const fd of await readdir('/proc/self/fd')) {
    if ((await readlink(join('/proc/self/fd', fd)).catch(() => '')) === path) n++;
  }
  return n;
}

// Each test waits for events; one that never comes fails it here rather than hanging the run.
const T = { timeout: 20_000 };

describe('LocalStore.follow', T, () => {
  test('a reader following a writer that writes in pieces gets exactly the bytes, and ends at commit', async (t) => {
    const store = await openStore(t);
    const { bytes, digest } = content.create(3 * (1 << 20) + 12345);
    const w = await store.writer({ ref: 'pieces', size: bytes.length });
    const reading = new Taker(await store.follow({ ref: 'pieces' })).rest();
    for (let at = 0; at < bytes.length; at += 100_003) await w.write(bytes.subarray(at, at + 100_003));
    await w.commit(bytes.length, digest);
    const got = await reading;
    assert.equal(got.length, bytes.length, 'length');
    assert.ok(got.equals(bytes), 'the bytes the writer wrote');
  });

  test('a reader may start at an offset', async (t) => {
    const store = await openStore(t);
    const { bytes, digest } = content.create(200_000);
    const w = await store.writer({ ref: 'offset' });
    await w.write(bytes.subarray(0, 50_000));
    const reading = new Taker(await store.follow({ ref: 'offset', offset: 70_000 })).rest();
    await w.write(bytes.subarray(50_000));
    await w.commit(bytes.length, digest);
    assert.ok((await reading).equals(bytes.subarray(70_000)), 'the bytes from the offset on');
  });

  test('a reader that caught up waits, and the next write wakes it', async (t) => {
    const store = await openStore(t);
    const { bytes, digest } = content.create(30_000);
    const w = await store.writer({ ref: 'wake' });
    await w.write(bytes.subarray(0, 10_000));
    const reader = new Taker(await store.follow({ ref: 'wake' }));
    assert.ok((await reader.take(10_000)).equals(bytes.subarray(0, 10_000)), 'the bytes written so far');
    const { next, settled } = reader.pending();
    await settle(store, 'wake');
    assert.equal(settled(), false, 'the reader waits while nothing new is written');
    await w.write(bytes.subarray(10_000, 20_000));
    const woken = await next;
    assert.equal(woken.done, false, 'woken with bytes, not ended');
    assert.ok(woken.value.equals(bytes.subarray(10_000, 10_000 + woken.value.length)), 'the next bytes');
    await w.write(bytes.subarray(20_000));
    await w.commit(bytes.length, digest);
    assert.ok(Buffer.concat([bytes.subarray(0, 10_000), woken.value, await reader.rest()]).equals(bytes), 'all bytes');
  });

  test('a commit while a reader waits: the reader gets the rest and ends, not before', async (t) => {
    const store = await openStore(t);
    const { bytes, digest } = content.create(64_000);
    const w = await store.writer({ ref: 'commit' });
    await w.write(bytes);
    const reader = new Taker(await store.follow({ ref: 'commit' }));
    assert.ok((await reader.take(bytes.length)).equals(bytes), 'every byte written');
    const { next, settled } = reader.pending();
    await settle(store, 'commit');
    assert.equal(settled(), false, 'no end before the commit');
    await w.commit(bytes.length, digest);
    assert.equal((await next).done, true, 'ends once committed');
  });

  test('bytes written but not yet read when the commit comes are read from the blob on', async (t) => {
    const store = await openStore(t);
    const { bytes, digest } = content.create(3 * (1 << 20));
    const w = await store.writer({ ref: 'unread' });
    const stream = await store.follow({ ref: 'unread' });
    await w.write(bytes);
    await w.commit(bytes.length, digest);
    assert.ok((await new Taker(stream).rest()).equals(bytes), 'the whole blob, read after the rename');
  });

  test('an abort while a reader waits fails it with not_found', async (t) => {
    const store = await openStore(t);
    const { bytes } = content.create(5_000);
    const w = await store.writer({ ref: 'aborted' });
    await w.write(bytes);
    await w.close();
    const reader = new Taker(await store.follow({ ref: 'aborted' }));
    await reader.take(bytes.length);
    const { next } = reader.pending();
    await store.abort('aborted');
    await expectCode(next, 'not_found', 'reader of an aborted ingest', /ingest ref "aborted": aborted/);
  });

  test('a commit with the wrong digest fails the reader with the commit error', async (t) => {
    const store = await openStore(t);
    const { bytes } = content.create(5_000);
    const other = content.create(5_000);
    const w = await store.writer({ ref: 'mismatch' });
    await w.write(bytes);
    const reader = new Taker(await store.follow({ ref: 'mismatch' }));
    await reader.take(bytes.length);
    const { next } = reader.pending();
    await expectCode(w.commit(bytes.length, other.digest), 'failed_precondition', 'commit');
    await expectCode(next, 'failed_precondition', 'reader of a refused commit', /"mismatch": commit failed: unexpected commit digest/);
  });

  test('a writer that closes without commit is waited out; the next writer resumes and the reader ends at its commit', async (t) => {
    const store = await openStore(t);
    const { bytes, digest } = content.create(90_000);
    const first = await store.writer({ ref: 'resume' });
    await first.write(bytes.subarray(0, 40_000));
    const reader = new Taker(await store.follow({ ref: 'resume' }));
    assert.ok((await reader.take(40_000)).equals(bytes.subarray(0, 40_000)), 'the first writer\'s bytes');
    const { next, settled } = reader.pending();
    await first.close();
    await settle(store, 'resume');
    assert.equal(settled(), false, 'still waiting after the writer closed');
    const second = await store.writer({ ref: 'resume' });
    assert.equal(second.status().offset, 40_000, 'the second writer resumes');
    await second.write(bytes.subarray(40_000));
    await second.commit(bytes.length, digest);
    const woken = await next;
    assert.equal(woken.done, false, 'the second writer\'s bytes');
    assert.ok(Buffer.concat([bytes.subarray(0, 40_000), woken.value, await reader.rest()]).equals(bytes), 'all bytes, then the end');
  });

  test('a truncation below the reader fails it with failed_precondition', async (t) => {
    const store = await openStore(t);
    const { bytes } = content.create(8_000);
    const w = await store.writer({ ref: 'cut' });
    t.after(() => w.close());
    await w.write(bytes);
    const reader = new Taker(await store.follow({ ref: 'cut' }));
    await reader.take(bytes.length);
    const { next } = reader.pending();
    await w.truncate(0);
    await expectCode(next, 'failed_precondition', 'reader past the cut', /"cut": cut to 0 bytes below the 8000 already read/);
  });

  test('a reader at 0 reads on over a truncation, and gets the new bytes', async (t) => {
    const store = await openStore(t);
    const stale = content.create(8_000);
    const { bytes, digest } = content.create(8_000);
    const w = await store.writer({ ref: 'restart' });
    await w.write(stale.bytes);
    const stream = await store.follow({ ref: 'restart' });
    await w.truncate(0);
    await w.write(bytes);
    await w.commit(bytes.length, digest);
    assert.ok((await new Taker(stream).rest()).equals(bytes), 'the bytes after the restart');
  });

  test('a committed blob is read: by its digest when the ingest is gone, or alone', async (t) => {
    const store = await openStore(t);
    const { bytes, digest } = content.create(2 * (1 << 20) + 7);
    await writeBlob(store, 'done', [bytes], { size: bytes.length, digest });
    assert.ok((await new Taker(await store.follow({ ref: 'done', digest })).rest()).equals(bytes), 'ref and digest');
    assert.ok((await new Taker(await store.follow({ digest, offset: 1 << 20 })).rest()).equals(bytes.subarray(1 << 20)), 'digest at an offset');
    assert.equal((await new Taker(await store.follow({ digest, offset: bytes.length })).rest()).length, 0, 'at its end: nothing');
    await expectCode(store.follow({ digest, offset: bytes.length + 1 }), 'range_not_satisfiable', 'past its end');
  });

  test('an unknown ref with no such blob is not_found naming the ref', async (t) => {
    const store = await openStore(t);
    await expectCode(store.follow({ ref: 'nothing-here' }), 'not_found', 'unknown ref', /ingest ref "nothing-here": not found/);
    const { digest } = content.create(10);
    await expectCode(
      store.follow({ ref: 'nothing-here', digest }),
      'not_found',
      'unknown ref and blob',
      new RegExp(`ingest ref "nothing-here" \\(content ${digest}\\): not found`),
    );
    await expectCode(store.follow({}), 'invalid_argument', 'neither ref nor digest');
    await expectCode(store.follow({ ref: 'x', offset: -1 }), 'invalid_argument', 'negative offset');
  });

  test('an aborted signal fails the reader and releases its descriptor', async (t) => {
    const store = await openStore(t);
    const { bytes } = content.create(4_000);
    const w = await store.writer({ ref: 'signal' });
    await w.write(bytes);
    await w.close(); // the writer's own descriptor is gone: what stays open is the reader's
    const data = join(ingestPath(store.root, 'signal'), 'data');
    const ac = new AbortController();
    const stream = await store.follow({ ref: 'signal', signal: ac.signal });
    const reader = new Taker(stream);
    await reader.take(bytes.length);
    assert.equal(await openFds(data), 1, 'the reader holds the data file open');
    const { next } = reader.pending();
    const closed = new Promise((resolve) => stream.once('close', resolve)); // events.once would reject on the error
    ac.abort(new Error('client went away'));
    await expectCode(next, 'failed_precondition', 'reader whose signal aborted', /"signal": cancelled: client went away/);
    await closed;
    assert.equal(await openFds(data), 0, 'the descriptor is closed');

    const chosen = new AbortController();
    chosen.abort(new BerthError('unavailable', 'layer x: the download failed'));
    await expectCode(store.follow({ ref: 'signal', signal: chosen.signal }), 'unavailable', 'a BerthError reason is the error', /the download failed/);
    assert.equal(await openFds(data), 0, 'a follow refused at once leaves nothing open');
  });

  test('many readers at once get identical bytes', async (t) => {
    const store = await openStore(t);
    const { bytes, digest } = content.create(2 * (1 << 20) + 999);
    const w = await store.writer({ ref: 'many' });
    await w.write(bytes.subarray(0, 333));
    const readers = await Promise.all(Array.from({ length: 8 }, (_, i) => store.follow({ ref: 'many', offset: i === 7 ? 1000 : 0 })));
    const reading = readers.map((r) => new Taker(r).rest());
    for (let at = 333; at < bytes.length; at += 65_537) await w.write(bytes.subarray(at, at + 65_537));
    await w.commit(bytes.length, digest);
    const got = await Promise.all(reading);
    for (let i = 0; i < 7; i++) assert.ok(got[i].equals(bytes), `reader ${i}`);
    assert.ok(got[7].equals(bytes.subarray(1000)), 'the reader from an offset');
  });
});

describe('MetadataContentStore.follow', T, () => {
  test('follows a namespace\'s ingest under its own ref, then its blob; other namespaces see neither', async (t) => {
    const e = await metadataEnv(t, { prefix: 'berth-follow-meta-' });
    const a = { namespace: 'a' };
    const b = { namespace: 'b' };
    const { bytes, digest } = content.create(100_000);
    const w = await e.cs.writer(a, { ref: 'layer', size: bytes.length, digest });
    await w.write(bytes.subarray(0, 30_000));
    const reading = new Taker(await e.cs.follow(a, { ref: 'layer', digest })).rest();
    await expectCode(e.cs.follow(b, { ref: 'layer', digest }), 'not_found', 'another namespace\'s ingest', /ingest ref "layer"/);
    await w.write(bytes.subarray(30_000));
    await w.commit(bytes.length, digest);
    assert.ok((await reading).equals(bytes), 'the ingest as written');
    assert.ok((await new Taker(await e.cs.follow(a, { ref: 'layer', digest })).rest()).equals(bytes), 'committed: the blob');
    await expectCode(e.cs.follow(b, { digest }), 'not_found', 'a blob the namespace does not hold', new RegExp(`content ${digest}: not found`));
  });
});
