// Randomized GC test: random graphs of real blobs (written through the namespaced store) with
// gc.ref labels between them, images pointing at some, leases (some expired, some flat) holding
// some, in two namespaces that share some digests. The reachable set is computed here with a
// plain breadth-first search over the rules of reference §4.2–4.4 (not with GcGraph); after one
// collect() exactly that set must be left, in the metadata (list per namespace) and on disk
// (backend.walk). Each iteration prints its seed on failure; BERTH_GC_SEED=<n> replays one
// (BERTH_GC_ITERATIONS changes how many run).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';

import { readBlob } from '../store/copy.js';
import type { Labels } from '../src/oci/labels.js';
import type { MetadataContentStore } from '../src/metadata/content.js';
import type { OpContext } from '../src/metadata/context.js';
import type { ImageStore } from '../src/metadata/images.js';
import type { LeaseManager } from '../src/metadata/leases.js';
import { mulberry32, rfc3339, sha256, sorted } from './fixtures/helpers.js';
import {
  GC_EXPIRE,
  GC_FLAT,
  GC_ROOT,
  REF_CONTENT,
  REF_IMAGE,
  bind,
  openMetadataEnv,
  walkedBlobs,
} from './fixtures/metadata.js';

const NAMESPACES = ['ns-a', 'ns-b'] as const;

/** mulberry32, as a fraction in [0, 1), with the picks the model makes. */
function prng(seed: number) {
  const u32 = mulberry32(seed);
  const next = (): number => u32() / 4294967296;
  return {
    next,
    int: (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1)),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)],
    bytes(n: number): Buffer {
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) b[i] = Math.floor(next() * 256);
      return b;
    },
  };
}
type Rng = ReturnType<typeof prng>;

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

interface Blob {
  bytes: Buffer;
  digest: string;
}

interface NsModel {
  /** digest → labels of this namespace's record */
  content: Map<string, Labels>;
  images: Map<string, { target: Blob; labels: Labels }>;
  leases: Map<string, { labels: Labels; content: string[]; images: string[] }>;
}

interface Model {
  blobs: Blob[];
  ns: Record<string, NsModel>;
}

function generate(rng: Rng, now: Date): Model {
  const past = rfc3339(new Date(now.getTime() - 3600_000));
  const future = rfc3339(new Date(now.getTime() + 3600_000));
  const blobs: Blob[] = [];
  const count = rng.int(10, 22);
  for (let i = 0; i < count; i++) {
    // A distinct prefix per blob keeps digests distinct even for tiny sizes.
    const bytes = Buffer.concat([Buffer.from(`blob-${i}:`), rng.bytes(rng.int(1, 4096))]);
    blobs.push({ bytes, digest: sha256(bytes) });
  }
  const unknownDigest = (): string => sha256(`nowhere-${rng.int(0, 1e9)}`);
  const model: Model = { blobs, ns: {} };
  for (const ns of NAMESPACES) model.ns[ns] = { content: new Map(), images: new Map(), leases: new Map() };

  // Which namespaces have which blob: a only, b only, or both (shared digests).
  for (const b of blobs) {
    const r = rng.next();
    const where = r < 0.35 ? ['ns-a'] : r < 0.65 ? ['ns-b'] : ['ns-a', 'ns-b'];
    for (const ns of where) model.ns[ns].content.set(b.digest, {});
  }

  for (const ns of NAMESPACES) {
    const m = model.ns[ns];
    const imageNames = Array.from({ length: rng.int(0, 5) }, (_, k) => `img-${k}`);
    const mine = [...m.content.keys()];
    const anyDigest = (): string => (rng.next() < 0.1 ? unknownDigest() : rng.pick(blobs).digest);

    // Content labels: roots, references in every suffix form, decoys that are no references.
    for (const digest of mine) {
      const labels: Labels = {};
      if (rng.next() < 0.12) labels[GC_ROOT] = 'always';
      const refs = rng.int(0, 3);
      for (let n = 0; n < refs; n++) {
        const form = rng.pick(['', '.l.', '/', 'bad', '.m.', '.config'] as const);
        const key = form === '' ? REF_CONTENT : form === '.config' ? `${REF_CONTENT}.config` : `${REF_CONTENT}${form}${n}`;
        labels[key] = anyDigest();
      }
      if (imageNames.length > 0 && rng.next() < 0.1) labels[`${REF_IMAGE}.${rng.int(0, 9)}`] = rng.pick(imageNames);
      if (rng.next() < 0.05) labels[`${REF_IMAGE}bad`] = rng.pick([...imageNames, 'img-x']);
      m.content.set(digest, labels);
    }

    // Images: mostly onto this namespace's blobs (else a dead edge), some expiring.
    for (const name of imageNames) {
      let target = rng.pick(blobs);
      if (mine.length > 0 && rng.next() < 0.85) {
        const d = rng.pick(mine);
        target = blobs.find((b) => b.digest === d)!;
      }
      const labels: Labels = {};
      const r = rng.next();
      if (r < 0.3) labels[GC_EXPIRE] = past;
      else if (r < 0.45) labels[GC_EXPIRE] = future;
      if (rng.next() < 0.3) labels[`${REF_CONTENT}.x`] = anyDigest();
      m.images.set(name, { target, labels });
    }

    // Leases: normal, flat, expired, expiring later; holding content and images.
    for (let k = rng.int(0, 4); k > 0; k--) {
      const labels: Labels = {};
      if (rng.next() < 0.35) labels[GC_FLAT] = 'true';
      const r = rng.next();
      if (r < 0.3) labels[GC_EXPIRE] = past;
      else if (r < 0.5) labels[GC_EXPIRE] = future;
      const content = Array.from({ length: rng.int(0, 3) }, anyDigest);
      const images = Array.from({ length: rng.int(0, 2) }, () => rng.pick([...imageNames, 'ghost']));
      m.leases.set(`lease-${k}`, { labels, content: [...new Set(content)], images: [...new Set(images)] });
    }
  }
  return model;
}

/** The reference's rules, written out: what survives a collection at `now` in one namespace. */
function expectedAfterGc(m: NsModel, now: Date): { content: string[]; images: string[]; leases: string[] } {
  const expired = (labels: Labels): boolean => {
    const v = labels[GC_EXPIRE];
    if (v === undefined) return false;
    const at = Date.parse(v);
    return !Number.isNaN(at) && now.getTime() > at;
  };
  const suffixed = (key: string, prefix: string): boolean =>
    key === prefix || (key.startsWith(prefix) && (key[prefix.length] === '.' || key[prefix.length] === '/'));
  const labelEdges = (labels: Labels): Array<['content' | 'image', string]> => {
    const out: Array<['content' | 'image', string]> = [];
    for (const [k, v] of Object.entries(labels)) {
      if (suffixed(k, REF_CONTENT)) out.push(['content', v]);
      else if (suffixed(k, REF_IMAGE)) out.push(['image', v]);
    }
    return out;
  };

  const seen = new Set<string>();
  const queue: Array<{ kind: 'content' | 'image'; flat: boolean; key: string }> = [];
  const reach = (kind: 'content' | 'image', flat: boolean, key: string) => {
    const id = `${kind}|${flat}|${key}`;
    if (seen.has(id)) return;
    seen.add(id);
    queue.push({ kind, flat, key });
  };

  const leases: string[] = [];
  for (const [id, lease] of m.leases) {
    if (expired(lease.labels)) continue;
    leases.push(id);
    const flat = lease.labels[GC_FLAT] !== undefined;
    for (const d of lease.content) reach('content', flat, d);
    for (const n of lease.images) reach('image', flat, n);
  }
  for (const [name, img] of m.images) if (!expired(img.labels)) reach('image', false, name);
  for (const [d, labels] of m.content) if (labels[GC_ROOT] !== undefined) reach('content', false, d);

  while (queue.length > 0) {
    const { kind, flat, key } = queue.shift()!;
    if (kind === 'content') {
      const labels = m.content.get(key);
      if (!labels || flat) continue;
      for (const [k, v] of labelEdges(labels)) reach(k, false, v);
    } else {
      const img = m.images.get(key);
      if (!img) continue;
      reach('content', flat, img.target.digest);
      if (!flat) for (const [k, v] of labelEdges(img.labels)) reach(k, false, v);
    }
  }
  const reached = (kind: string, key: string) => seen.has(`${kind}|true|${key}`) || seen.has(`${kind}|false|${key}`);
  return {
    content: sorted([...m.content.keys()].filter((d) => reached('content', d))),
    images: sorted([...m.images.keys()].filter((n) => reached('image', n))),
    leases: sorted(leases),
  };
}

// ---------------------------------------------------------------------------------------------
// Building the store from the model
// ---------------------------------------------------------------------------------------------

async function build(rng: Rng, model: Model, cs: MetadataContentStore, images: ImageStore, leases: LeaseManager): Promise<void> {
  for (const ns of NAMESPACES) {
    const ctx: OpContext = { namespace: ns };
    const m = model.ns[ns];
    for (const [digest, labels] of m.content) {
      const blob = model.blobs.find((b) => b.digest === digest)!;
      const ref = `ref-${digest.slice(7, 19)}`;
      if (rng.next() < 0.5) {
        // With the digest: a blob another namespace wrote is adopted without its bytes.
        const w = await cs.writer(ctx, { ref, size: blob.bytes.length, digest });
        try {
          const at = w.status().offset;
          if (at < blob.bytes.length) await w.write(blob.bytes.subarray(at));
          await w.commit(blob.bytes.length, digest, { labels });
        } finally {
          await w.close();
        }
      } else {
        // Without: the bytes are sent again (the backend may already have them).
        const w = await cs.writer(ctx, { ref });
        try {
          for (let i = 0; i < blob.bytes.length; i += 1000) await w.write(blob.bytes.subarray(i, i + 1000));
          await w.commit(blob.bytes.length, undefined, { labels });
        } finally {
          await w.close();
        }
        assert.equal(w.digest(), digest);
      }
    }
    for (const [name, img] of m.images) {
      await images.create(ctx, {
        name,
        target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: img.target.digest, size: img.target.bytes.length },
        labels: img.labels,
      });
    }
    for (const [id, lease] of m.leases) {
      await leases.create(ctx, { id, labels: lease.labels });
      for (const d of lease.content) await leases.addResource(ctx, id, { type: 'content', id: d });
      for (const n of lease.images) await leases.addResource(ctx, id, { type: 'images', id: n });
    }
  }
}

async function oneIteration(t: TestContext, seed: number): Promise<void> {
  const e = await openMetadataEnv({ prefix: 'berth-gc-random-' });
  try {
    const { cs, images, leases, gc, backend } = e;
    const rng = prng(seed);
    const now = new Date();
    const model = generate(rng, now);
    await build(rng, model, cs, images, leases);

    // The store holds what the model says before the collection.
    for (const ns of NAMESPACES) {
      const got = sorted((await cs.list({ namespace: ns })).map((i) => i.digest));
      assert.deepEqual(got, sorted(model.ns[ns].content.keys()), `${ns}: content before GC`);
    }

    const result = await gc.collect();

    const keptOnDisk = new Set<string>();
    let recordsRemoved = 0;
    for (const ns of NAMESPACES) {
      const ctx: OpContext = { namespace: ns };
      const want = expectedAfterGc(model.ns[ns], new Date());
      const content = sorted((await cs.list(ctx)).map((i) => i.digest));
      assert.deepEqual(content, want.content, `${ns}: content records after GC`);
      assert.deepEqual(sorted((await images.list(ctx)).map((i) => i.name)), want.images, `${ns}: images after GC`);
      assert.deepEqual(sorted((await leases.list(ctx)).map((l) => l.id)), want.leases, `${ns}: leases after GC`);
      for (const d of want.content) keptOnDisk.add(d);
      recordsRemoved += model.ns[ns].content.size - want.content.length;
      // What is kept is whole: its bytes are there and verify.
      for (const d of want.content) {
        const bytes = await readBlob(bind(cs, ctx), d);
        assert.equal(sha256(bytes), d, `${ns}: bytes of ${d}`);
      }
    }
    assert.deepEqual(await walkedBlobs(backend), sorted(keptOnDisk), 'blobs on disk after GC');
    assert.equal(result.removed.content, recordsRemoved, 'content records removed');
    assert.equal(result.backend.blobs, model.blobs.length - keptOnDisk.size, 'blob files removed');
    assert.deepEqual(await backend.listStatuses(), [], 'no ingest left');

    // A second collection finds nothing more.
    const again = await gc.collect();
    assert.deepEqual(
      { ...again.removed, ...again.backend },
      { leases: 0, images: 0, content: 0, ingests: 0, snapshots: 0, blobs: 0 },
      'a second collection removes nothing',
    );
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    t.diagnostic(`failing seed: ${seed} (replay with BERTH_GC_SEED=${seed})`);
    throw new Error(`seed ${seed}: ${msg}`, { cause: err });
  } finally {
    await e.close();
  }
}

test('random graphs: after GC exactly the reachable set is left, in metadata and on disk', { timeout: 120_000 }, async (t) => {
  const fixed = process.env.BERTH_GC_SEED;
  const iterations = fixed ? 1 : Number(process.env.BERTH_GC_ITERATIONS ?? 20);
  const base = fixed ? Number(fixed) : Math.floor(Math.random() * 2 ** 31);
  t.diagnostic(`base seed ${base}`);
  for (let i = 0; i < iterations; i++) {
    const seed = fixed ? base : (base + i * 7919) % 2 ** 31;
    await oneIteration(t, seed);
  }
});

test('the independent model agrees with hand-computed cases', () => {
  const now = new Date();
  const past = rfc3339(new Date(now.getTime() - 1000));
  const b = (s: string): Blob => ({ bytes: Buffer.from(s), digest: sha256(s) });
  const [x, y, z, w] = [b('x'), b('y'), b('z'), b('w')];
  const m: NsModel = {
    content: new Map<string, Labels>([
      [x.digest, { [`${REF_CONTENT}.l.0`]: y.digest }],
      [y.digest, { [`${REF_CONTENT}bad`]: z.digest }],
      [z.digest, {}],
      [w.digest, { [`${REF_CONTENT}/q`]: z.digest }],
    ]),
    images: new Map([['old', { target: w, labels: { [GC_EXPIRE]: past } }]]),
    leases: new Map<string, { labels: Labels; content: string[]; images: string[] }>([
      ['flat', { labels: { [GC_FLAT]: '1' }, content: [x.digest], images: [] }],
      ['gone', { labels: { [GC_EXPIRE]: past }, content: [z.digest], images: ['old'] }],
    ]),
  };
  assert.deepEqual(expectedAfterGc(m, now), { content: [x.digest], images: [], leases: ['flat'] });
  m.leases.get('flat')!.labels = {};
  assert.deepEqual(expectedAfterGc(m, now), { content: sorted([x.digest, y.digest]), images: [], leases: ['flat'] });
  m.images.get('old')!.labels = {};
  assert.deepEqual(expectedAfterGc(m, now), { content: sorted([x.digest, y.digest, z.digest, w.digest]), images: ['old'], leases: ['flat'] });
});
