// Garbage collection (src/gc/collector.ts) against containerd's expectations:
//   * core/metadata/gc_test.go TestGCRoots and TestGCRefs (reference §4.10), ported as cases over
//     berth's records: the metadata is written directly (as containerd's alter funcs write bolt),
//     then GcGraph's roots(), refs() and mark() are compared exactly with the expected nodes.
//     Objects berth does not store yet (containers, snapshot records, sandboxes, conditional
//     references) are left out; lease snapshot resources, which berth stores, are kept.
//   * end-to-end collect(): image → index → manifest → layers kept and then freed, leases,
//     expired leases, dry runs, explain();
//   * the lease manager (core/metadata/leases_test.go, reference §3.5).
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

import { formatTimestamp } from '../src/oci/time.js';
import type { Labels } from '../src/oci/labels.js';
import {
  MetadataDB,
  nsKey,
  type BlobRecord,
  type ImageRecord,
  type IngestRecord,
  type LeaseRecord,
} from '../src/metadata/db.js';
import type { OpContext } from '../src/metadata/context.js';
import type { ErrorCode } from '../store/errors.js';
import { GcGraph, loadSnapshot, type GcNode } from '../src/gc/graph.js';
import { expectCode, rfc3339, sha256, sorted } from './fixtures/helpers.js';
import {
  BREF_CONTAINER,
  BREF_CONTENT,
  BREF_IMAGE,
  BREF_SNAP,
  GC_EXPIRE,
  GC_FLAT,
  GC_ROOT,
  REF_CONTENT,
  REF_IMAGE,
  REF_SNAP,
  blobFiles,
  metadataEnv,
  putBlob,
  type MetadataEnv,
} from './fixtures/metadata.js';

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const T = { timeout: 30_000 };

/** containerd's dgst(i) in gc_test.go: a digest per number. */
const dgst = (i: number): string => sha256(String(i));

type Env = MetadataEnv;
const env = (t: TestContext): Promise<Env> => metadataEnv(t, { prefix: 'berth-gc-' });

/** containerd's printNode: `content(ns1/sha256:…)`, `image-flat(ns3/image1)`. */
const show = (n: GcNode): string => `${n.type}${n.flat ? '-flat' : ''}(${n.namespace}/${n.key})`;
const node = (type: GcNode['type'], namespace: string, key: string, flat = false): GcNode => ({ type, flat, namespace, key });

/** mark() returns object ids `<type>\0<ns>\0<key>`; shown as `type(ns/key)`. */
function showMarked(id: string): string {
  const [type, ns, ...key] = id.split('\u0000');
  return `${type}(${ns}/${key.join('\u0000')})`;
}

/** Metadata written directly, as containerd's alter funcs write bolt buckets. */
class Meta {
  readonly blobs = new Map<string, BlobRecord>();
  readonly images = new Map<string, ImageRecord>();
  readonly ingests = new Map<string, IngestRecord>();
  readonly leaseRecords = new Map<string, LeaseRecord>();
  private readonly at = formatTimestamp(new Date());

  image(ns: string, name: string, digest: string, labels: Labels = {}): this {
    this.images.set(nsKey(ns, name), {
      target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: 1 },
      labels,
      createdAt: this.at,
      updatedAt: this.at,
    });
    return this;
  }

  content(ns: string, digest: string, labels: Labels = {}, expireAt?: Date): this {
    this.blobs.set(nsKey(ns, digest), {
      size: 1,
      labels,
      createdAt: this.at,
      updatedAt: this.at,
      ...(expireAt ? { expireAt: formatTimestamp(expireAt) } : {}),
    });
    return this;
  }

  /** `expected` makes a shared ingest (containerd stores `expected` only for those). */
  ingest(ns: string, ref: string, expected?: string, expireAt?: Date): this {
    this.ingests.set(nsKey(ns, ref), {
      bref: `${ns}/0/${ref}`,
      ...(expected ? { expected, shared: true } : {}),
      ...(expireAt ? { expireAt: formatTimestamp(expireAt) } : {}),
    });
    return this;
  }

  lease(ns: string, id: string, labels: Labels = {}): this {
    this.leaseOf(ns, id).labels = { ...this.leaseOf(ns, id).labels, ...labels };
    return this;
  }

  leaseContent(ns: string, id: string, digest: string): this {
    this.leaseOf(ns, id).resources.content.push(digest);
    return this;
  }

  leaseImage(ns: string, id: string, name: string): this {
    this.leaseOf(ns, id).resources.images.push(name);
    return this;
  }

  leaseIngest(ns: string, id: string, ref: string): this {
    this.leaseOf(ns, id).resources.ingests.push(ref);
    return this;
  }

  leaseSnapshot(ns: string, id: string, snapshotter: string, key: string): this {
    (this.leaseOf(ns, id).resources.snapshots[snapshotter] ??= []).push(key);
    return this;
  }

  private leaseOf(ns: string, id: string): LeaseRecord {
    let r = this.leaseRecords.get(nsKey(ns, id));
    if (!r) {
      r = { createdAt: this.at, labels: {}, resources: { content: [], ingests: [], images: [], snapshots: {} } };
      this.leaseRecords.set(nsKey(ns, id), r);
    }
    return r;
  }

  async write(db: MetadataDB): Promise<void> {
    await db.update(async (tx) => {
      for (const [k, v] of this.blobs) tx.put(db.blobs, k, v);
      for (const [k, v] of this.images) tx.put(db.images, k, v);
      for (const [k, v] of this.ingests) tx.put(db.ingests, k, v);
      for (const [k, v] of this.leaseRecords) tx.put(db.leases, k, v);
    });
  }
}

/** A moment half a second past a whole second: `nowSec` (its second, RFC 3339) has passed. */
function clock(): { now: Date; nowSec: string; hourAhead: string; hourAgo: string } {
  const now = new Date(Math.floor(Date.now() / 1000) * 1000 + 500);
  return {
    now,
    nowSec: rfc3339(now),
    hourAhead: rfc3339(new Date(now.getTime() + 3600_000)),
    hourAgo: rfc3339(new Date(now.getTime() - 3600_000)),
  };
}

const listed = async (e: Env, ctx: OpContext): Promise<string[]> => sorted((await e.cs.list(ctx)).map((i) => i.digest));

// ---------------------------------------------------------------------------------------------
// TestGCRoots
// ---------------------------------------------------------------------------------------------

/** The metadata of containerd's TestGCRoots, minus containers, snapshot records and sandboxes. */
function gcRootsMeta(c: ReturnType<typeof clock>): Meta {
  return new Meta()
    .image('ns1', 'image1', dgst(1))
    .image('ns1', 'image2', dgst(2), { [`${REF_SNAP}overlay`]: 'sn2' })
    .image('ns2', 'image3', dgst(10), { [REF_CONTENT]: dgst(11), [REF_IMAGE]: 'image4' })
    .image('ns2', 'image4', dgst(12), { [GC_EXPIRE]: c.nowSec })
    .image('ns2', 'image5', dgst(13), { [GC_EXPIRE]: c.nowSec })
    .content('ns1', dgst(1))
    .content('ns1', dgst(2))
    .content('ns1', dgst(3))
    .content('ns2', dgst(1))
    .content('ns2', dgst(2), { [GC_ROOT]: 'always' })
    .content('ns2', dgst(8))
    .content('ns2', dgst(9))
    .ingest('ns1', 'ingest-1') // no expireAt, not leased
    .ingest('ns1', 'ingest-2', undefined, new Date(c.now.getTime() - 1)) // expired
    .ingest('ns1', 'ingest-3', undefined, new Date(c.now.getTime() + 3600_000))
    .ingest('ns2', 'ingest-4')
    .ingest('ns2', 'ingest-5', dgst(8))
    .ingest('ns2', 'ingest-6') // on an expired lease
    .ingest('ns2', 'ingest-7', dgst(9)) // on an expired lease
    .leaseSnapshot('ns2', 'l1', 'overlay', 'sn5')
    .leaseSnapshot('ns2', 'l2', 'overlay', 'sn6')
    .leaseContent('ns2', 'l1', dgst(4))
    .leaseContent('ns2', 'l2', dgst(5))
    .lease('ns2', 'l3', { [GC_EXPIRE]: c.hourAhead })
    .leaseContent('ns2', 'l3', dgst(6))
    .leaseSnapshot('ns2', 'l3', 'overlay', 'sn7')
    .leaseImage('ns2', 'l3', 'image5')
    .leaseIngest('ns2', 'l3', 'ingest-4')
    .leaseIngest('ns2', 'l3', 'ingest-5')
    .lease('ns2', 'l4', { [GC_EXPIRE]: c.nowSec })
    .leaseContent('ns2', 'l4', dgst(7))
    .leaseSnapshot('ns2', 'l4', 'overlay', 'sn8')
    .leaseImage('ns2', 'l4', 'image4')
    .leaseIngest('ns2', 'l4', 'ingest-6')
    .leaseIngest('ns2', 'l4', 'ingest-7')
    .lease('ns3', 'l1', { [GC_FLAT]: c.hourAhead })
    .leaseContent('ns3', 'l1', dgst(1))
    .leaseSnapshot('ns3', 'l1', 'overlay', 'sn1')
    .leaseImage('ns3', 'l1', 'image1')
    .leaseIngest('ns3', 'l1', 'ingest-1');
}

describe('TestGCRoots (containerd core/metadata/gc_test.go)', () => {
  test('roots are exactly containerd\'s', T, async (t) => {
    const e = await env(t);
    const c = clock();
    await gcRootsMeta(c).write(e.db);
    const roots = new GcGraph(await loadSnapshot(e.db), c.now).roots().map((r) => show(r.node));
    const expected = [
      show(node('content', 'ns2', dgst(2))),
      show(node('content', 'ns2', dgst(4))),
      show(node('content', 'ns2', dgst(5))),
      show(node('content', 'ns2', dgst(6))),
      show(node('snapshot', 'ns2', 'overlay/sn5')),
      show(node('snapshot', 'ns2', 'overlay/sn6')),
      show(node('snapshot', 'ns2', 'overlay/sn7')),
      show(node('image', 'ns1', 'image1')),
      show(node('image', 'ns1', 'image2')),
      show(node('image', 'ns2', 'image3')),
      show(node('image', 'ns2', 'image5')),
      show(node('lease', 'ns2', 'l1')),
      show(node('lease', 'ns2', 'l2')),
      show(node('lease', 'ns2', 'l3')),
      show(node('ingest', 'ns1', 'ingest-3')),
      show(node('ingest', 'ns2', 'ingest-4')),
      show(node('ingest', 'ns2', 'ingest-5')),
      show(node('lease', 'ns3', 'l1')),
      show(node('ingest', 'ns3', 'ingest-1')),
      show(node('content', 'ns3', dgst(1), true)),
      show(node('snapshot', 'ns3', 'overlay/sn1', true)),
      show(node('image', 'ns3', 'image1', true)),
    ];
    assert.deepEqual(sorted(roots), sorted(expected));
  });

  test('mark reaches exactly the roots and what they reference', T, async (t) => {
    const e = await env(t);
    const c = clock();
    await gcRootsMeta(c).write(e.db);
    const black = [...new GcGraph(await loadSnapshot(e.db), c.now).mark()].map(showMarked);
    const expected = [
      // roots (flatness stripped)
      'content(ns2/' + dgst(2) + ')',
      'content(ns2/' + dgst(4) + ')',
      'content(ns2/' + dgst(5) + ')',
      'content(ns2/' + dgst(6) + ')',
      'snapshot(ns2/overlay/sn5)',
      'snapshot(ns2/overlay/sn6)',
      'snapshot(ns2/overlay/sn7)',
      'image(ns1/image1)',
      'image(ns1/image2)',
      'image(ns2/image3)',
      'image(ns2/image5)',
      'lease(ns2/l1)',
      'lease(ns2/l2)',
      'lease(ns2/l3)',
      'ingest(ns1/ingest-3)',
      'ingest(ns2/ingest-4)',
      'ingest(ns2/ingest-5)',
      'lease(ns3/l1)',
      'ingest(ns3/ingest-1)',
      'content(ns3/' + dgst(1) + ')',
      'snapshot(ns3/overlay/sn1)',
      'image(ns3/image1)',
      // reached through references
      'content(ns1/' + dgst(1) + ')', // image1's target
      'content(ns1/' + dgst(2) + ')', // image2's target
      'snapshot(ns1/overlay/sn2)', // image2's gc.ref.snapshot.overlay
      'content(ns2/' + dgst(10) + ')', // image3's target
      'content(ns2/' + dgst(11) + ')', // image3's gc.ref.content
      'image(ns2/image4)', // image3's gc.ref.image (expired, but referenced)
      'content(ns2/' + dgst(12) + ')', // image4's target
      'content(ns2/' + dgst(13) + ')', // image5's target
      'content(ns2/' + dgst(8) + ')', // ingest-5's expected digest
    ];
    assert.deepEqual(sorted(black), sorted(expected));
  });

  test('collect() removes exactly what the mark did not reach', T, async (t) => {
    const e = await env(t);
    const c = clock();
    await gcRootsMeta(c).write(e.db);
    // collect() judges expiry by the real clock: wait until the fixture's "now" (up to 500 ms
    // ahead, see clock()) has passed, so that what it made expired is expired.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, c.now.getTime() - Date.now() + 5)));
    const result = await e.gc.collect();
    assert.deepEqual(
      { ...result.removed },
      { leases: 1, images: 0, content: 3, ingests: 4, snapshots: 0 },
      'l4; ns1 d3, ns2 d1, ns2 d9; ingest-1, ingest-2 (ns1), ingest-6, ingest-7',
    );
    const snap = await loadSnapshot(e.db);
    assert.deepEqual(sorted([...snap.leases.keys()]), sorted(['ns2/l1', 'ns2/l2', 'ns2/l3', 'ns3/l1']));
    assert.deepEqual(sorted([...snap.ingests.keys()]), sorted(['ns1/ingest-3', 'ns2/ingest-4', 'ns2/ingest-5']));
    assert.deepEqual(
      sorted([...snap.blobs.keys()]),
      sorted([`ns1/${dgst(1)}`, `ns1/${dgst(2)}`, `ns2/${dgst(2)}`, `ns2/${dgst(8)}`]),
    );
    assert.equal(snap.images.size, 5);
  });

  test('expiry boundaries: expired iff now is after the expiry', T, async (t) => {
    const e = await env(t);
    const now = new Date(Math.floor(Date.now() / 1000) * 1000); // a whole second
    const exactly = rfc3339(now);
    await new Meta()
      .lease('ns', 'at-now', { [GC_EXPIRE]: exactly })
      .leaseContent('ns', 'at-now', dgst(1))
      .lease('ns', 'unparsable', { [GC_EXPIRE]: 'tomorrow' })
      .leaseContent('ns', 'unparsable', dgst(2))
      .image('ns', 'img-at-now', dgst(3), { [GC_EXPIRE]: exactly })
      .image('ns', 'img-unparsable', dgst(4), { [GC_EXPIRE]: 'never' })
      .ingest('ns', 'ing-at-now', undefined, now)
      .write(e.db);
    const roots = new GcGraph(await loadSnapshot(e.db), now).roots().map((r) => show(r.node));
    assert.deepEqual(
      sorted(roots),
      sorted([
        show(node('lease', 'ns', 'at-now')),
        show(node('content', 'ns', dgst(1))),
        show(node('lease', 'ns', 'unparsable')),
        show(node('content', 'ns', dgst(2))),
        show(node('image', 'ns', 'img-at-now')),
        show(node('image', 'ns', 'img-unparsable')),
        show(node('ingest', 'ns', 'ing-at-now')),
      ]),
    );
    const later = new Date(now.getTime() + 1);
    const rootsLater = new GcGraph(await loadSnapshot(e.db), later).roots().map((r) => show(r.node));
    assert.deepEqual(
      sorted(rootsLater),
      sorted([
        show(node('lease', 'ns', 'unparsable')),
        show(node('content', 'ns', dgst(2))),
        show(node('image', 'ns', 'img-unparsable')),
      ]),
    );
  });

  test('berth: content committed without a lease is a root until its expireAt', T, async (t) => {
    const e = await env(t);
    const c = clock();
    await new Meta()
      .content('ns', dgst(1), {}, new Date(c.now.getTime() + 60_000))
      .content('ns', dgst(2), {}, new Date(c.now.getTime() - 1))
      .content('ns', dgst(3))
      .write(e.db);
    const roots = new GcGraph(await loadSnapshot(e.db), c.now).roots().map((r) => show(r.node));
    assert.deepEqual(roots, [show(node('content', 'ns', dgst(1)))]);
  });
});

// ---------------------------------------------------------------------------------------------
// TestGCRefs
// ---------------------------------------------------------------------------------------------

describe('TestGCRefs (containerd core/metadata/gc_test.go)', () => {
  async function refsGraph(t: TestContext): Promise<GcGraph> {
    const e = await env(t);
    const c = clock();
    await new Meta()
      .content('ns1', dgst(1))
      .content('ns1', dgst(2))
      .content('ns1', dgst(3))
      .content('ns1', dgst(4), { [REF_CONTENT]: dgst(1) })
      .content('ns1', dgst(5), { [`${REF_CONTENT}.anything-1`]: dgst(2), [`${REF_CONTENT}.anything-2`]: dgst(3) })
      .content('ns1', dgst(6), { [`${REF_CONTENT}bad`]: dgst(1) })
      .content('ns1', dgst(7), {
        [`${REF_CONTENT}/anything-1`]: dgst(2),
        [`${REF_CONTENT}/anything-2`]: dgst(3),
        [BREF_CONTAINER]: 'container3',
      })
      .content('ns2', dgst(1))
      .content('ns2', dgst(2))
      .image('ns1', 'image1', dgst(3))
      .image('ns1', 'image2', dgst(4), { [`${REF_IMAGE}.anything`]: 'image1', [`${REF_CONTENT}.anotherimage`]: dgst(5) })
      .ingest('ns1', 'ingest-1')
      .ingest('ns2', 'ingest-2', dgst(8))
      // flat references do not follow label references
      .content('ns3', dgst(1))
      .content('ns3', dgst(2), { [`${REF_CONTENT}.0`]: dgst(1) })
      // back references
      .content('ns1', dgst(10), {
        [BREF_CONTAINER]: 'container1',
        [BREF_CONTENT]: dgst(5),
        [BREF_IMAGE]: 'image2',
        [`${BREF_SNAP}btrfs`]: 'sn1',
      })
      .content('ns3', dgst(10), { [BREF_CONTAINER]: 'container1' })
      // not expired: its back reference is irrelevant, it is a root already
      .image('ns1', 'image3', dgst(10), { [BREF_IMAGE]: 'image2', [GC_EXPIRE]: c.hourAhead })
      .image('ns1', 'image4', dgst(10), { [BREF_IMAGE]: 'image2', [GC_EXPIRE]: c.hourAgo })
      // berth's extras: the other suffix forms, and bad suffixes on back references
      .content('ns4', dgst(1), { [`${REF_IMAGE}/x`]: 'image1', [`${REF_IMAGE}bad`]: 'image2', [`${REF_SNAP}overlay/a`]: 'sn1' })
      .content('ns4', dgst(2), { [`${BREF_CONTENT}bad`]: dgst(1), [`${BREF_CONTENT}/x`]: dgst(3) })
      .write(e.db);
    return new GcGraph(await loadSnapshot(e.db), c.now);
  }

  const C = (ns: string, i: number, flat = false) => show(node('content', ns, dgst(i), flat));
  const cases: Array<[GcNode, string[], string?]> = [
    [node('content', 'ns1', dgst(1)), []],
    [node('content', 'ns1', dgst(2)), []],
    [node('content', 'ns1', dgst(3)), []],
    [node('content', 'ns1', dgst(4)), [C('ns1', 1)], 'gc.ref.content (no suffix)'],
    [node('content', 'ns1', dgst(5)), [C('ns1', 10), C('ns1', 2), C('ns1', 3)], 'gc.ref.content.x, and d10\'s gc.bref.content'],
    [node('content', 'ns1', dgst(6)), [], 'gc.ref.contentbad is no reference'],
    [node('content', 'ns1', dgst(7)), [C('ns1', 2), C('ns1', 3)], 'gc.ref.content/x'],
    [node('content', 'ns2', dgst(1)), []],
    [node('content', 'ns2', dgst(2)), []],
    [node('snapshot', 'ns1', 'btrfs/sn1'), [C('ns1', 10)], 'gc.bref.snapshot.btrfs'],
    // containerd also lists the container's own snapshot and label references; berth stores no
    // containers, so only the back references remain.
    [node('container', 'ns1', 'container1'), [C('ns1', 10)], 'gc.bref.container'],
    [node('container', 'ns1', 'container3'), [C('ns1', 7)], 'gc.bref.container'],
    [node('container', 'ns3', 'container1'), [C('ns3', 10)], 'gc.bref.container'],
    [node('image', 'ns1', 'image1'), [C('ns1', 3)]],
    [
      node('image', 'ns1', 'image2'),
      [C('ns1', 10), C('ns1', 4), C('ns1', 5), show(node('image', 'ns1', 'image1')), show(node('image', 'ns1', 'image4'))],
      'target, gc.ref.image.x, gc.ref.content.x, and back references from d10 and the expired image4 only',
    ],
    [node('ingest', 'ns1', 'ingest-1'), []],
    [node('ingest', 'ns2', 'ingest-2'), [C('ns2', 8)], 'expected digest of a shared ingest'],
    [node('content', 'ns3', dgst(2), true), [], 'flat content has no edges'],
    [node('content', 'ns3', dgst(2)), [C('ns3', 1)]],
    [node('content', 'ns1', dgst(4), true), [], 'flat content has no edges'],
    [node('image', 'ns1', 'image1', true), [C('ns1', 3, true)], 'flat image: flat target only'],
    [node('image', 'ns1', 'image2', true), [C('ns1', 4, true)], 'flat image: flat target only, no label or back references'],
    [
      node('content', 'ns1', dgst(5), true),
      [],
      'flat content: no back references either (containerd keys back references by the exact node)',
    ],
    [
      node('content', 'ns4', dgst(1)),
      [show(node('image', 'ns4', 'image1')), show(node('snapshot', 'ns4', 'overlay/sn1'))],
      'gc.ref.image/x followed, gc.ref.imagebad not; gc.ref.snapshot.overlay/a → overlay/sn1',
    ],
    [node('content', 'ns4', dgst(3)), [C('ns4', 2)], 'gc.bref.content/x followed, gc.bref.contentbad not'],
  ];

  for (const [n, expected, why] of cases) {
    test(`refs(${show(n).replace(/sha256:[0-9a-f]{64}/, (d) => `dgst(${[...Array(31).keys()].find((i) => dgst(i) === d) ?? '?'})`)})${why ? ` — ${why}` : ''}`, T, async (t) => {
      const graph = await refsGraph(t);
      const got = graph.refs(n).map((edge) => show(edge.node));
      assert.deepEqual(sorted(got), sorted(expected));
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Flat leases and back references, end to end
// ---------------------------------------------------------------------------------------------

describe('flat leases', () => {
  test('a flat lease keeps only what it names, not what back-references it', T, async (t) => {
    const e = await env(t);
    const ns = 'flat';
    const ctx: OpContext = { namespace: ns };
    const c = clock();
    const target = await putBlob(e, ctx, Buffer.from('flat target'));
    const child = await putBlob(e, ctx, Buffer.from('child of the image'), { [BREF_IMAGE]: 'expired-image' });
    const parent = await putBlob(e, ctx, Buffer.from('leased parent'));
    const childOfParent = await putBlob(e, ctx, Buffer.from('child of the parent'), { [BREF_CONTENT]: parent.digest });
    await e.images.create(ctx, {
      name: 'expired-image',
      target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: target.digest, size: target.size },
      labels: { [GC_EXPIRE]: c.hourAgo },
    });
    await e.leases.create(ctx, { id: 'flat-lease', labels: { [GC_FLAT]: 'true' } });
    await e.leases.addResource(ctx, 'flat-lease', { type: 'images', id: 'expired-image' });
    await e.leases.addResource(ctx, 'flat-lease', { type: 'content', id: parent.digest });

    await e.gc.collect();
    assert.equal((await e.images.get(ctx, 'expired-image')).name, 'expired-image', 'the leased image is kept');
    const left = await listed(e, ctx);
    assert.ok(left.includes(target.digest), 'the flat image keeps its target');
    assert.ok(left.includes(parent.digest), 'the flat lease keeps its content');
    assert.deepEqual(
      left,
      sorted([target.digest, parent.digest]),
      'children that back-reference a flatly leased image or content are not kept (containerd: flat nodes have no back references)',
    );
    assert.ok(!left.includes(child.digest) && !left.includes(childOfParent.digest));
  });

  test('a normal lease keeps back-referencing children', T, async (t) => {
    const e = await env(t);
    const ctx: OpContext = { namespace: 'deep' };
    const parent = await putBlob(e, ctx, Buffer.from('parent'));
    const child = await putBlob(e, ctx, Buffer.from('child'), { [`${BREF_CONTENT}.x`]: parent.digest });
    const grandchild = await putBlob(e, ctx, Buffer.from('grandchild'));
    await e.cs.update(ctx, child.digest, { [`${REF_CONTENT}.l.0`]: grandchild.digest }, [`labels.${REF_CONTENT}.l.0`]);
    const stray = await putBlob(e, ctx, Buffer.from('stray'));
    await e.leases.create(ctx, { id: 'deep' });
    await e.leases.addResource(ctx, 'deep', { type: 'content', id: parent.digest });
    await e.gc.collect();
    assert.deepEqual(await listed(e, ctx), sorted([parent.digest, child.digest, grandchild.digest]));
    assert.deepEqual(await blobFiles(e), sorted([parent.digest, child.digest, grandchild.digest]));
    assert.ok(!(await blobFiles(e)).includes(stray.digest));
  });
});

// ---------------------------------------------------------------------------------------------
// collect(), end to end over real blobs
// ---------------------------------------------------------------------------------------------

/** An image as a pull leaves it: index → manifest → config + layers, with containerd's labels. */
async function pullLike(e: Env, ctx: OpContext, name: string, seed: string) {
  const layers = [await putBlob(e, ctx, randomBytes(3000)), await putBlob(e, ctx, randomBytes(5000))];
  const config = await putBlob(e, ctx, Buffer.from(JSON.stringify({ seed, architecture: 'amd64', os: 'linux' })));
  const manifestBody = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...l })),
    }),
  );
  const manifest = await putBlob(e, ctx, manifestBody, {
    [`${REF_CONTENT}.config`]: config.digest,
    [`${REF_CONTENT}.l.0`]: layers[0].digest,
    [`${REF_CONTENT}.l.1`]: layers[1].digest,
  });
  const indexBody = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest }],
    }),
  );
  const index = await putBlob(e, ctx, indexBody, { [`${REF_CONTENT}.m.0`]: manifest.digest });
  await e.images.create(ctx, {
    name,
    target: { mediaType: 'application/vnd.oci.image.index.v1+json', digest: index.digest, size: index.size },
  });
  const all = sorted([index.digest, manifest.digest, config.digest, ...layers.map((l) => l.digest)]);
  return { index, manifest, config, layers, all };
}

describe('collect()', () => {
  test('an image keeps index → manifest → config and layers; deleting it frees them all', T, async (t) => {
    const e = await env(t);
    const ctx: OpContext = { namespace: 'images' };
    const img = await pullLike(e, ctx, 'docker.io/library/app:1', 'a');
    const garbage = await putBlob(e, ctx, Buffer.from('nothing references me'));

    let r = await e.gc.collect();
    assert.equal(r.removed.content, 1, 'only the unreferenced blob');
    assert.equal(r.backend.blobs, 1);
    assert.equal(r.bytesFreed, Buffer.byteLength('nothing references me'));
    assert.deepEqual(await listed(e, ctx), img.all, 'the whole image is kept in metadata');
    assert.deepEqual(await blobFiles(e), img.all, 'and on disk');
    assert.ok(!(await blobFiles(e)).includes(garbage.digest));

    await e.images.delete(ctx, 'docker.io/library/app:1');
    r = await e.gc.collect();
    assert.equal(img.all.length, 5, 'index, manifest, config, two layers');
    assert.equal(r.removed.content, 5);
    assert.equal(r.backend.blobs, 5);
    assert.deepEqual(await listed(e, ctx), [], 'no records left');
    assert.deepEqual(await blobFiles(e), [], 'no blob files left under blobs/sha256');
  });

  test('a blob two namespaces have stays on disk until both let go', T, async (t) => {
    const e = await env(t);
    const a: OpContext = { namespace: 'ns-a' };
    const b: OpContext = { namespace: 'ns-b' };
    const bytes = randomBytes(2048);
    const blob = await putBlob(e, a, bytes);
    await putBlob(e, b, bytes); // adopted (shared policy)
    await e.images.create(a, { name: 'a', target: { mediaType: 'application/octet-stream', ...blob } });
    await e.images.create(b, { name: 'b', target: { mediaType: 'application/octet-stream', ...blob } });

    await e.images.delete(a, 'a');
    let r = await e.gc.collect();
    assert.equal(r.removed.content, 1, 'ns-a\'s record');
    assert.equal(r.backend.blobs, 0, 'ns-b still has it');
    assert.deepEqual(await listed(e, a), []);
    assert.deepEqual(await listed(e, b), [blob.digest]);
    assert.deepEqual(await blobFiles(e), [blob.digest]);

    await e.images.delete(b, 'b');
    r = await e.gc.collect();
    assert.equal(r.backend.blobs, 1);
    assert.deepEqual(await blobFiles(e), []);
  });

  test('a blob a live ingest expects stays (a crash between its rename and its record); the ref\'s next writer adopts it', T, async (t) => {
    const e = await env(t);
    // The pull's lease holds its ingest.
    await e.leases.create({ namespace: 'ns-crash' }, { id: 'pull' });
    const ctx: OpContext = { namespace: 'ns-crash', lease: 'pull' };
    const bytes = randomBytes(64 * 1024);
    const digest = sha256(bytes);
    // The pull's ingest, partly written, expecting the blob.
    const w = await e.cs.writer(ctx, { ref: 'layer-ref', size: bytes.length, digest });
    await w.write(bytes.subarray(0, 1024));
    await w.close();
    // What the crash left: the blob's bytes published in the backend, no record of the commit.
    const b = await e.backend.writer({ ref: 'left-by-the-crash' });
    await b.write(bytes);
    await b.commit(bytes.length, digest);
    assert.deepEqual(await listed(e, ctx), [], 'no namespace records it');

    await e.gc.collect();
    assert.deepEqual(await blobFiles(e), [digest], 'the collection keeps the blob the ingest expects');
    const again = await e.cs.writer(ctx, { ref: 'layer-ref', size: bytes.length, digest });
    assert.equal(again.status().offset, bytes.length, 'adopted: nothing left to write');
    await again.commit(bytes.length, digest);
    assert.deepEqual(await listed(e, ctx), [digest]);
  });

  test('leased content is kept until the lease is deleted', T, async (t) => {
    const e = await env(t);
    await e.leases.create({ namespace: 'ns' }, { id: 'hold' });
    const lctx: OpContext = { namespace: 'ns', lease: 'hold' };
    const blob = await putBlob(e, lctx, randomBytes(1000));
    assert.deepEqual(await e.leases.listResources(lctx, 'hold'), [{ id: blob.digest, type: 'content' }]);

    let r = await e.gc.collect();
    assert.equal(r.removed.content, 0);
    assert.deepEqual(await listed(e, lctx), [blob.digest]);
    assert.deepEqual(await blobFiles(e), [blob.digest]);

    await e.leases.delete({ namespace: 'ns' }, 'hold');
    r = await e.gc.collect();
    assert.equal(r.removed.content, 1);
    assert.deepEqual(await listed(e, lctx), []);
    assert.deepEqual(await blobFiles(e), []);
  });

  test('an expired lease is collected with what only it held', T, async (t) => {
    const e = await env(t);
    const c = clock();
    const ns: OpContext = { namespace: 'ns' };
    await e.leases.create(ns, { id: 'old', labels: { [GC_EXPIRE]: c.hourAgo } });
    await e.leases.create(ns, { id: 'young', labels: { [GC_EXPIRE]: c.hourAhead } });
    const old = await putBlob(e, { ...ns, lease: 'old' }, randomBytes(700));
    const young = await putBlob(e, { ...ns, lease: 'young' }, randomBytes(900));
    const w = await e.cs.writer({ ...ns, lease: 'old' }, { ref: 'half-written' });
    await w.write(randomBytes(100));
    await w.close();

    const r = await e.gc.collect();
    assert.equal(r.removed.leases, 1);
    assert.equal(r.removed.content, 1);
    assert.equal(r.removed.ingests, 1, 'the expired lease\'s ingest record');
    assert.equal(r.backend.ingests, 1, 'and its backend ingest');
    assert.deepEqual((await e.leases.list(ns)).map((l) => l.id), ['young']);
    await expectCode(e.leases.get(ns, 'old'), 'not_found', 'collected lease');
    assert.deepEqual(await listed(e, ns), [young.digest]);
    assert.deepEqual(await blobFiles(e), [young.digest]);
    assert.ok(!(await blobFiles(e)).includes(old.digest));
    assert.deepEqual(await e.backend.listStatuses(), []);
  });

  test('dryRun removes nothing and reports what the real run then removes', T, async (t) => {
    const e = await env(t);
    const c = clock();
    const ns: OpContext = { namespace: 'ns' };
    const img = await pullLike(e, ns, 'kept:1', 'k');
    const gone = await pullLike(e, ns, 'gone:1', 'g');
    await e.images.delete(ns, 'gone:1');
    await e.images.create(ns, {
      name: 'expired:1',
      target: { mediaType: 'application/octet-stream', ...(await putBlob(e, ns, randomBytes(64))) },
      labels: { [GC_EXPIRE]: c.hourAgo },
    });
    await e.leases.create(ns, { id: 'expired', labels: { [GC_EXPIRE]: c.hourAgo } });
    const w = await e.cs.writer({ ...ns, lease: 'expired' }, { ref: 'partial' });
    await w.write(randomBytes(333));
    await w.close();

    const before = { files: await blobFiles(e), records: await listed(e, ns), snap: await loadSnapshot(e.db) };
    const dry = await e.gc.collect({ dryRun: true });
    assert.deepEqual(await blobFiles(e), before.files, 'dry run: blob files untouched');
    assert.deepEqual(await listed(e, ns), before.records, 'dry run: content records untouched');
    const after = await loadSnapshot(e.db);
    assert.deepEqual([...after.leases.keys()], [...before.snap.leases.keys()], 'dry run: leases untouched');
    assert.deepEqual([...after.images.keys()], [...before.snap.images.keys()], 'dry run: images untouched');
    assert.deepEqual([...after.ingests.keys()], [...before.snap.ingests.keys()], 'dry run: ingest records untouched');
    assert.equal((await e.backend.listStatuses()).length, 1, 'dry run: backend ingest untouched');

    const real = await e.gc.collect();
    assert.deepEqual(dry.removed, real.removed, 'same metadata counts');
    assert.deepEqual(dry.backend, real.backend, 'same backend counts');
    assert.equal(dry.bytesFreed, real.bytesFreed, 'same bytes freed');
    assert.deepEqual(
      { ...real.removed },
      { leases: 1, images: 1, content: gone.all.length + 1, ingests: 1, snapshots: 0 },
    );
    assert.deepEqual(await listed(e, ns), img.all);
    assert.deepEqual(await blobFiles(e), img.all);
    assert.deepEqual(await e.backend.listStatuses(), []);
  });

  test('explain(): the path from the image to a kept layer; collectable for garbage', T, async (t) => {
    const e = await env(t);
    const ctx: OpContext = { namespace: 'explain' };
    const img = await pullLike(e, ctx, 'docker.io/library/app:2', 'x');
    const garbage = await putBlob(e, ctx, Buffer.from('garbage'));

    const kept = await e.gc.explain(img.layers[1].digest);
    assert.equal(kept.collectable, false);
    assert.equal(kept.namespaces.length, 1);
    const [nsKept] = kept.namespaces;
    assert.equal(nsKept.namespace, 'explain');
    assert.equal(nsKept.kept, true);
    const path = nsKept.path ?? [];
    assert.deepEqual(
      path.map((s) => `${s.type}:${s.key}`),
      [
        'image:docker.io/library/app:2',
        `content:${img.index.digest}`,
        `content:${img.manifest.digest}`,
        `content:${img.layers[1].digest}`,
      ],
      'image → index → manifest → layer',
    );
    assert.match(path[0].via, /image/, 'the path starts at a root, the image');
    assert.equal(path[2].via, `${REF_CONTENT}.m.0`, 'index → manifest by its gc.ref label');
    assert.equal(path[3].via, `${REF_CONTENT}.l.1`, 'manifest → layer by its gc.ref label');

    const g = await e.gc.explain(garbage.digest);
    assert.equal(g.collectable, true);
    assert.deepEqual(g.namespaces.map((n) => [n.namespace, n.kept]), [['explain', false]]);

    // explain() agrees with collect().
    await e.gc.collect();
    assert.ok((await listed(e, ctx)).includes(img.layers[1].digest));
    assert.ok(!(await listed(e, ctx)).includes(garbage.digest));
  });
});

// ---------------------------------------------------------------------------------------------
// Leases (containerd core/metadata/leases_test.go, reference §3.5)
// ---------------------------------------------------------------------------------------------

describe('lease manager (containerd leases_test.go)', () => {
  const ns: OpContext = { namespace: 'testing' };

  test('TestLeases: create, duplicate id, list, delete, delete unknown', T, async (t) => {
    const e = await env(t);
    const created = [];
    created.push(await e.leases.create(ns, { id: 'tx1' }));
    await expectCode(e.leases.create(ns, { id: 'tx1' }), 'already_exists', 'duplicate id', /lease "tx1": already exists/);
    created.push(await e.leases.create(ns, { id: 'tx2' }));

    const list = await e.leases.list(ns);
    assert.deepEqual(list.map((l) => l.id), ['tx1', 'tx2']);
    for (const [i, l] of list.entries()) {
      assert.equal(l.createdAt.getTime(), created[i].createdAt.getTime(), `${l.id} createdAt as created`);
    }
    assert.deepEqual(await e.leases.list({ namespace: 'other' }), [], 'leases are per namespace');

    await e.leases.delete(ns, 'tx1');
    await expectCode(e.leases.delete(ns, 'tx1'), 'not_found', 'second delete', /lease "tx1": not found/);
    await e.leases.delete(ns, 'tx2');
    await expectCode(e.leases.delete(ns, 'never'), 'not_found', 'unknown lease');
    assert.deepEqual(await e.leases.list(ns), []);
  });

  test('TestLeasesList: labels and filters', T, async (t) => {
    const e = await env(t);
    await e.leases.create(ns, { id: 'lease1', labels: { label1: 'value1', label3: 'other' } });
    await e.leases.create(ns, { id: 'lease2', labels: { label1: 'value1', label2: '', label3: 'other' } });
    await e.leases.create(ns, { id: 'lease3', labels: { label1: 'value2', label2: 'something' } });
    assert.deepEqual((await e.leases.get(ns, 'lease2')).labels, { label1: 'value1', label3: 'other' }, 'empty values are dropped');

    const cases: Array<[string, string[], string[]]> = [
      ['All', [], ['lease1', 'lease2', 'lease3']],
      ['ID', ['id==lease1'], ['lease1']],
      ['IDx2', ['id==lease1', 'id==lease2'], ['lease1', 'lease2']],
      ['Label1', ['labels.label1'], ['lease1', 'lease2', 'lease3']],
      ['Label1value1', ['labels.label1==value1'], ['lease1', 'lease2']],
      ['Label1value2', ['labels.label1==value2'], ['lease3']],
      ['Label2', ['labels.label2'], ['lease3']],
      ['Label3', ['labels.label2', 'labels.label3'], ['lease1', 'lease2', 'lease3']],
    ];
    for (const [name, filters, expected] of cases) {
      assert.deepEqual(sorted((await e.leases.list(ns, filters)).map((l) => l.id)), expected, name);
    }
    await expectCode(e.leases.list(ns, ['labels.a==']), 'invalid_argument', 'malformed filter');

    for (const id of ['lease1', 'lease2', 'lease3']) {
      await e.leases.delete(ns, id);
      await expectCode(e.leases.delete(ns, id), 'not_found', `${id} deleted twice`);
    }
  });

  test('expiresIn sets containerd.io/gc.expire (RFC 3339, whole seconds)', T, async (t) => {
    const e = await env(t);
    const before = Date.now();
    const lease = await e.leases.create(ns, { id: 'exp', expiresIn: 90_000 });
    const value = lease.labels[GC_EXPIRE];
    assert.match(value ?? '', /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$/);
    const at = Date.parse(value);
    assert.ok(at >= before + 90_000 - 1000 && at <= Date.now() + 90_000 + 1000, `expiry ${value}`);
    assert.equal((await e.leases.get(ns, 'exp')).labels[GC_EXPIRE], value);
  });

  test('TestLeaseResource: add, list (containerd\'s order), delete, type errors', T, async (t) => {
    const e = await env(t);
    const lease = 'l1';
    const snapshotterKey = 'RstMI3X8vguKoPFkmIStZ5fQFI7F1L0o';
    await e.leases.create(ns, { id: lease });

    const cases: Array<{ lease: string; type: string; id: string; err?: ErrorCode }> = [
      { lease, type: 'content', id: 'sha256:29f5d56d12684887bdfa50dcd29fc31eea4aaf4ad3bec43daf19026a7ce69912' },
      { lease, type: 'ingests', id: 'd2UdcINOwrBTQG9kS8rySAM3eMNBSojH' },
      { lease, type: 'ingests', id: 'd2UdcINOwrBTQG9kS8rySAM3eMNBSojH' }, // adding it again is fine
      { lease, type: 'leases', id: 'xCAV3F6PddlXitbtby0Vo23Qof6RTWpG', err: 'not_implemented' },
      { lease, type: 'containers', id: '05O9ljptPu5Qq9kZGOacEfymBwQFM8ZH', err: 'not_implemented' },
      { lease, type: 'images', id: 'qBUHpWBn03YaCt9cL3PPGKWoxBqTlLfu' },
      { lease, type: 'snapshots', id: 'HMemOhlygombYhkhHhAZj5aRbDy2a3z2', err: 'invalid_argument' },
      { lease, type: 'snapshots/overlayfs', id: snapshotterKey },
      { lease, type: 'snapshots/overlayfs/type1', id: 'HMemOhlygombYhkhHhAZj5aRbDy2a3z2', err: 'invalid_argument' },
      { lease: 'non-found', type: 'snapshots/overlayfs', id: 'HMemOhlygombYhkhHhAZj5aRbDy2a3z2', err: 'not_found' },
      // reference §3.5's other type rules
      { lease, type: 'content', id: 'not-a-digest', err: 'invalid_argument' },
      { lease, type: 'content/x', id: 'sha256:29f5d56d12684887bdfa50dcd29fc31eea4aaf4ad3bec43daf19026a7ce69912', err: 'invalid_argument' },
      { lease, type: 'ingests/x', id: 'a', err: 'invalid_argument' },
      { lease, type: 'images/x', id: 'a', err: 'invalid_argument' },
    ];
    for (const [i, c] of cases.entries()) {
      const p = e.leases.addResource(ns, c.lease, { type: c.type, id: c.id });
      if (c.err) await expectCode(p, c.err, `case ${i}: ${c.type} ${c.id}`);
      else await p;
    }
    await expectCode(
      e.leases.addResource(ns, lease, { type: 'content', id: 'not-a-digest' }),
      'invalid_argument',
      'message',
      /invalid content resource id/,
    );
    await expectCode(
      e.leases.addResource(ns, lease, { type: 'containers', id: 'c' }),
      'not_implemented',
      'message',
      /resource type containers not supported yet/,
    );

    // content, images, ingests, then snapshots — whatever the order they were added in.
    assert.deepEqual(await e.leases.listResources(ns, lease), [
      { id: 'sha256:29f5d56d12684887bdfa50dcd29fc31eea4aaf4ad3bec43daf19026a7ce69912', type: 'content' },
      { id: 'qBUHpWBn03YaCt9cL3PPGKWoxBqTlLfu', type: 'images' },
      { id: 'd2UdcINOwrBTQG9kS8rySAM3eMNBSojH', type: 'ingests' },
      { id: snapshotterKey, type: 'snapshots/overlayfs' },
    ]);

    await e.leases.deleteResource(ns, lease, { type: 'snapshots/overlayfs', id: snapshotterKey });
    assert.equal((await e.leases.listResources(ns, lease)).length, 3);
    await e.leases.deleteResource(ns, lease, { type: 'images', id: 'not-there' }); // no-op
    assert.equal((await e.leases.listResources(ns, lease)).length, 3);
    await expectCode(e.leases.deleteResource(ns, lease, { type: 'snapshots', id: 'x' }), 'invalid_argument', 'delete bad type');
    await expectCode(e.leases.deleteResource(ns, lease, { type: 'containers', id: 'x' }), 'not_implemented', 'delete unsupported type');
    await expectCode(e.leases.deleteResource(ns, 'nope', { type: 'images', id: 'x' }), 'not_found', 'delete on unknown lease');
    await expectCode(e.leases.listResources(ns, 'nope'), 'not_found', 'list on unknown lease');
    assert.equal((await e.leases.listResources(ns, lease)).length, 3, 'refused changes change nothing');
  });
});
