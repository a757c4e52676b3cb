// Pulls in a fleet (issue 12, part 2): nodes fetch blobs from each other through their registry
// listeners, and the upstream serves each blob once however many nodes pull. Real parts: one real
// etcd (Debian etcd-server), the real distribution registry behind the loopback proxy of
// test/fixtures/proxy.ts (which counts what the upstream sent), and berth servers, each with its
// own root, API and registry listener — in this process, or as child processes where a node is
// to be killed.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { buildImage, bigLayer, pushImage, type Image } from './fixtures/images.js';
import { api, assertHoldsVerified, fleetTestBed, pullAndWait, upstreamGets as gets, type Json } from './fixtures/fleet.js';
import type { TestServer } from './fixtures/server.js';
import { waitUntil } from './fixtures/registry-listener.js';
import { berth } from './fixtures/unpack.js';

const MiB = 1024 * 1024;

/** One etcd, and the upstream as the nodes see it: a proxy in front of the registry, counting what it sends (`bed.up`). */
const bed = fleetTestBed({ prefix: 'berth-pull-test', upstream: true });
/** Each test its own fleet: its own key prefix in the one etcd. */
const newPrefix = bed.newPrefix;

/** A berth node in this process: a registry listener on a free port, in fleet `prefix`. */
function startNode(prefix: string, name: string, extra: Json = {}): Promise<TestServer> {
  // A generous peer timeout: on a busy test machine a peer may take more than the default
  // 200 ms to answer, and these tests count bytes, not milliseconds.
  return bed.startNode(prefix, name, { lease_ttl_s: 5, peer_timeout_ms: 5000, ...extra });
}

/** Starts a pull on `node` and waits for its end; fails the test unless it is done. */
const pull = (node: { url: string }, ref: string): Promise<Json> => pullAndWait(node, ref);

/** The upstream's complete GET responses for blobs and manifests by digest, by digest. */
const upstreamGets = (since: number) => gets(bed.up, since);

/** Every blob of `img` is in the node's store, verified (`POST /v1/content/verify` finds nothing wrong). */
const assertHolds = (node: { url: string }, img: Image, what: string): Promise<void> => assertHoldsVerified(node, img.blobs, what);

let images = 0;
/** A fresh image of `layers` layers of `size` bytes each, pushed to the registry as `fleet/<n>:v1`. */
async function pushFresh(layers: number, size: number): Promise<{ img: Image; ref: string }> {
  const n = ++images;
  const img = buildImage({ layers: await Promise.all(Array.from({ length: layers }, (_, i) => bigLayer(size, { seed: n * 100 + i }))) });
  await pushImage(bed.registry.url, `fleet/${n}`, 'v1', img);
  return { img, ref: `${bed.up.host}/fleet/${n}:v1` };
}

describe('pulls in a fleet', { timeout: 180_000 }, () => {
  test('three nodes pull one image at once: the upstream serves each blob once, and every node holds it verified', async (t) => {
    const prefix = newPrefix();
    const nodes = await Promise.all(['a', 'b', 'c'].map((n) => startNode(prefix, `node-${n}`)));
    await waitUntil('every node sees three', async () => {
      for (const node of nodes) if ((await api(node, 'GET', '/v1/fleet/nodes')).json.items.length !== 3) return false;
      return true;
    });
    const { img, ref } = await pushFresh(3, 2 * MiB);
    const since = bed.up.responses.length;
    const pulls = await Promise.all(nodes.map((node) => pull(node, ref)));
    const gets = upstreamGets(since);
    for (const b of img.blobs) {
      if (b.mediaType.includes('index')) continue;
      assert.equal(gets.get(b.digest)?.length ?? 0, 1, `${b.digest} (${b.mediaType}) was sent by the upstream once`);
    }
    const fromUpstream = pulls.reduce((n, p) => n + p.bytesFromUpstream, 0);
    const fromPeers = pulls.reduce((n, p) => n + p.bytesFromPeers, 0);
    t.diagnostic(`bytes from the upstream ${fromUpstream}, from peers ${fromPeers}, image ${img.blobs.reduce((n, b) => n + b.size, 0)}`);
    for (const [i, p] of pulls.entries()) {
      assert.equal(p.bytesFromUpstream + p.bytesFromPeers, p.bytesFetched, 'every byte has a source');
      for (const blob of p.blobs) {
        const total = Object.values(blob.sources as Record<string, number>).reduce((n, v) => n + v, 0);
        if (blob.state === 'done') assert.equal(total, blob.size, `${blob.digest}: its sources add up to its size`);
        for (const source of Object.keys(blob.sources)) assert.match(source, /^(upstream|peer node-[abc])$/);
        assert.ok(!Object.keys(blob.sources).includes(`peer node-${'abc'[i]}`), 'a node is never its own peer');
      }
      await assertHolds(nodes[i], img, `node-${'abc'[i]}`);
    }
    assert.ok(fromPeers > 0, 'some bytes came from peers');
  });

  test('a new node pulls an image another node holds: the upstream sends no blob bytes', async () => {
    const prefix = newPrefix();
    const holder = await startNode(prefix, 'holder');
    const { img, ref } = await pushFresh(2, 1 * MiB);
    await pull(holder, ref);
    const newcomer = await startNode(prefix, 'newcomer');
    await waitUntil('the newcomer sees the holder\'s blobs', async () => {
      for (const b of img.blobs) if ((await api(newcomer, 'GET', `/v1/fleet/blobs/${b.digest}`)).json.holders?.length !== 1) return false;
      return true;
    });
    const since = bed.up.responses.length;
    const p = await pull(newcomer, ref);
    assert.deepEqual([...upstreamGets(since).keys()], [], 'no blob or manifest by digest from the upstream');
    assert.equal(p.bytesFromUpstream, 0);
    assert.equal(p.bytesFromPeers, p.bytesFetched);
    for (const blob of p.blobs) assert.deepEqual(Object.keys(blob.sources), ['peer holder'], `${blob.digest} came from the holder`);
    await assertHolds(newcomer, img, 'newcomer');
    const stats = (await api(holder, 'GET', '/v1/registry/stats')).json;
    assert.equal(stats.bytesServedToPeers, p.bytesFetched, 'the holder counts what it served its peer');
    assert.ok(stats.peerRequests >= img.blobs.length);

    // The command line says it too: where each blob came from, and the holder's peer traffic.
    const get = await berth(new URL(newcomer.url).host, ['pulls', 'get', p.id]);
    assert.equal(get.code, 0, get.stderr);
    assert.match(get.stdout, /^sources:\s+0 B upstream, \S+ \S+ from peers$/m);
    const rows = get.stdout.split('\n').filter((l) => /^(index|manifest|config|layer)\s/.test(l));
    assert.equal(rows.length, p.blobs.length);
    for (const row of rows) assert.match(row, /\sholder$/, `every blob from the holder: ${row}`);
    const reg = await berth(new URL(holder.url).host, ['registry', 'stats']);
    assert.equal(reg.code, 0, reg.stderr);
    assert.match(reg.stdout, new RegExp(`^bytes served .*to ${stats.peerRequests} peer requests\\)$`, 'm'));
  });

  test('the GC withdraws what it removes: once an image is collected, no peer is sent for its blobs', async () => {
    const prefix = newPrefix();
    const [holder, looker] = await Promise.all([startNode(prefix, 'collected'), startNode(prefix, 'looker')]);
    const { img, ref } = await pushFresh(1, 1 * MiB);
    const p = await pull(holder, ref);
    const held = async () => {
      const counts = await Promise.all(img.blobs.map(async (b) => (await api(looker, 'GET', `/v1/fleet/blobs/${b.digest}`)).json.holders.length));
      return counts.reduce((n, c) => n + c, 0);
    };
    await waitUntil('the looker sees every blob held', async () => (await held()) === img.blobs.length);
    assert.equal((await api(holder, 'DELETE', `/v1/images/${encodeURIComponent(p.image)}`)).status, 204);
    // The delete schedules a collection; this one makes sure it has run.
    const gc = await api(holder, 'POST', '/v1/gc');
    assert.equal(gc.status, 200, JSON.stringify(gc.json));
    await waitUntil('the looker sees none held', async () => (await held()) === 0);
    for (const b of img.blobs) assert.equal((await api(holder, 'GET', `/v1/content/${b.digest}/info`)).status, 404);
  });
});
