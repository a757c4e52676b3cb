// Bounded loss at a crash (issue 13). Bytes fetched or uploaded reach the ingest file within
// 256 KiB or 250 ms (store/copy.ts writeStream), the file is always a prefix of the stream
// (store/writer.ts), and after `kill -9` at any instant of a pull the next pull fetches again
// only what was received and not yet written.
//
// The crash test: the real registry (Debian's docker-registry) behind the loopback proxy, which
// slows each blob response to BERTH_CRASH_RATE bytes/s (default 2 MB/s) and counts what it
// sends; a berth server as a child process (`node --import tsx`, startServer(loadConfig(file)))
// on one root for the whole test. Each cycle pulls the image, kills the server with SIGKILL once
// the proxy has sent K body bytes of blobs (K random, chosen by event, not by time), reads what
// the dead server left on disk, starts a server on the same root and pulls again to the end.
// The proxy's log is the witness: a committed blob is not asked for again, a partial one is asked
// for from exactly where its ingest ends, and what the registry sent twice is what was received
// and not written — at most 256 KiB per blob in flight, plus what was on its way (see `bound`).
// Then `POST /v1/content/verify` must find nothing corrupt, and the image is deleted for the next
// cycle. BERTH_CRASH_KILLS (default 10) and BERTH_CRASH_SEED (default: random, printed) repeat
// a run.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { LocalStore } from '../store/index.js';
import { flushAfterMs, unwrittenMax, unwrittenMaxMs, writeStream } from '../store/copy.js';
import { blobPath, ingestPath } from '../store/paths.js';
import { ingestRef } from '../src/pull/children.js';
import { bigLayer, buildImage, pushImage, type Image } from './fixtures/images.js';
import { startProxy, type Proxy, type ProxyResponse } from './fixtures/proxy.js';
import { freePort, startRegistry, type Registry } from './fixtures/registry.js';
import { exactSizeLayer } from './fixtures/registry-listener.js';
import { mulberry32, seededBytes, sha256, tempDir } from './fixtures/helpers.js';

const projectRoot = new URL('..', import.meta.url).pathname;
const KiB = 1024;

// ---------------------------------------------------------------------------------------------
// The writer's bound, on its own: a real LocalStore on a temporary folder.

describe('writeStream: what a crash can lose is bounded', () => {
  test(`a stream never holds more than ${unwrittenMax / KiB} KiB received and not written`, async (t) => {
    const store = await LocalStore.open(await tempDir(t, 'berth-crash-bound-'));
    const data = seededBytes(13, 3 << 20);
    const writer = await store.writer({ ref: 'bound' });
    const file = join(ingestPath(store.root, 'bound'), 'data');
    const rng = mulberry32(5);
    let given = 0;
    let worst = 0;
    async function* source(): AsyncGenerator<Uint8Array> {
      while (given < data.length) {
        // The writer asks for more: whatever it has not written by now it holds.
        worst = Math.max(worst, given - statSync(file).size);
        const n = Math.min(data.length - given, 1 + (rng() % (96 * KiB)));
        yield data.subarray(given, given + n);
        given += n;
      }
    }
    try {
      await writeStream(writer, source());
      assert.equal(statSync(file).size, data.length);
      await writer.commit(data.length, sha256(data));
    } finally {
      await writer.close();
    }
    t.diagnostic(`at most ${worst} bytes received and not written at once`);
    assert.ok(worst <= unwrittenMax, `${worst} bytes were held unwritten at once (bound ${unwrittenMax})`);
    assert.ok(worst > unwrittenMax / 4, `the test fed the writer faster than it wrote (${worst} held at most)`);
  });

  test(`a slow stream reaches the file within ${unwrittenMaxMs} ms`, async (t) => {
    const store = await LocalStore.open(await tempDir(t, 'berth-crash-slow-'));
    const writer = await store.writer({ ref: 'slow' });
    const file = join(ingestPath(store.root, 'slow'), 'data');
    const data = seededBytes(17, 5 * 10_000);
    // Each piece is given, then the source waits for the writer to report it written (an event):
    // the time in between is how long a byte waited in memory.
    let written!: () => void;
    const waits: number[] = [];
    async function* source(): AsyncGenerator<Uint8Array> {
      for (let at = 0; at < data.length; at += 10_000) {
        const onDisk = new Promise<void>((resolve) => (written = resolve));
        const t0 = performance.now();
        yield data.subarray(at, at + 10_000);
        await onDisk;
        waits.push(performance.now() - t0);
        assert.equal((await stat(file)).size, at + 10_000, 'what the writer reported is in the file');
      }
    }
    try {
      await writeStream(writer, source(), () => written());
      await writer.commit(data.length, sha256(data));
    } finally {
      await writer.close();
    }
    t.diagnostic(`written ${waits.map((w) => w.toFixed(0)).join(', ')} ms after arriving`);
    // Written once its buffer has waited flushAfterMs (200 ms), not before (it was not full), and
    // within 250 ms — give or take a busy machine's timer lag for one of them.
    const sorted = [...waits].sort((a, b) => a - b);
    assert.ok(sorted[0] >= flushAfterMs - 5, `a piece was written after ${sorted[0].toFixed(0)} ms, before its buffer was full or old`);
    assert.ok(sorted[Math.floor(sorted.length / 2)] <= unwrittenMaxMs, `median wait ${sorted[Math.floor(sorted.length / 2)].toFixed(0)} ms, over ${unwrittenMaxMs} ms`);
    assert.ok(sorted.at(-1)! < unwrittenMaxMs + 250, `a piece waited ${sorted.at(-1)!.toFixed(0)} ms to be written`);
  });

  test('writes called without waiting land one after another: the file is a prefix, never a hole', async (t) => {
    const store = await LocalStore.open(await tempDir(t, 'berth-crash-order-'));
    const writer = await store.writer({ ref: 'order' });
    const parts = [seededBytes(1, 300 * KiB), seededBytes(2, 5), seededBytes(3, 200 * KiB), seededBytes(4, 1)];
    const file = join(ingestPath(store.root, 'order'), 'data');
    const sizes: number[] = [];
    await Promise.all(parts.map((p) => writer.write(p).then(() => sizes.push(statSync(file).size))));
    const whole = Buffer.concat(parts);
    assert.deepEqual(sizes, [300 * KiB, 300 * KiB + 5, 500 * KiB + 5, whole.length], 'each write ended where the next began');
    await writer.commit(whole.length, sha256(whole));
    assert.deepEqual(readFileSync(blobPath(store.root, sha256(whole))), whole);
  });
});

// ---------------------------------------------------------------------------------------------
// kill -9 during a pull

const KILLS = Number(process.env.BERTH_CRASH_KILLS ?? 10);
const SEED = Number(process.env.BERTH_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
/** Bytes a second of each blob response before a kill. */
const RATE = Number(process.env.BERTH_CRASH_RATE ?? 2_000_000);
/**
 * What berth's HTTP client may hold between the socket and writeStream: undici's body stream
 * stops reading the socket at its 64 KiB high-water mark, and one socket read (≤ 64 KiB) can be
 * in hand.
 */
const CLIENT_BUFFERS = 128 * KiB;

interface Blob {
  kind: string;
  digest: string;
  mediaType: string;
  size: number;
}

/** One kill: what the proxy had sent and what the dead server had on disk, per blob. */
interface Kill {
  k: number;
  /** Body bytes of blobs the proxy had sent in this cycle when the kill was sent. */
  sent: number;
  blobs: Array<{
    blob: Blob;
    /** End offset of what the proxy had sent of it (0: nothing). */
    sentEnd: number;
    /** Bytes on their way at the kill: the proxy's socket buffer and both kernel queues. */
    queued: number;
    committed: boolean;
    /** Size of the ingest's data file after the kill. */
    ingest: number;
    /** What the registry sends again: sent before the kill and not in the file. */
    lost: number;
    bound: number;
  }>;
}

let registry: Registry;
let proxy: Proxy;
let dir: string;

before(async () => {
  registry = await startRegistry();
  proxy = await startProxy(registry.host);
  dir = await mkdtemp(join(tmpdir(), 'berth-crash-pull-'));
});
after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await proxy?.stop();
  await registry?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const children = new Set<ChildProcess>();

interface Server {
  url: string;
  process: ChildProcess;
  exited: Promise<void>;
}

/** `berth serve --config FILE` as a child process: startServer(loadConfig(file)), as test/fleet.test.ts does. */
async function startServer(config: string): Promise<Server> {
  const url = (file: string) => JSON.stringify(pathToFileURL(join(projectRoot, file)).href);
  const script = `
    const { loadConfig } = await import(${url('src/config.ts')});
    const { startServer } = await import(${url('src/server.ts')});
    const server = await startServer(await loadConfig(process.argv[1]), { logger: false });
    process.stdout.write(JSON.stringify({ url: server.url }) + '\\n');
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, config], {
    cwd: projectRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => children.delete(child));
  let out = '';
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`berth did not start within 60 s: ${err}`)), 60_000);
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(out.slice(0, nl));
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`berth exited before it started: ${err}`));
    });
  });
  return { url: (JSON.parse(line) as { url: string }).url, process: child, exited };
}

async function api(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

/** Start offset of a response: its request's `Range: bytes=N-`, else 0. */
function rangeStart(r: ProxyResponse): number {
  const m = /^bytes=(\d+)-/.exec(r.requestHeaders.range ?? '');
  return m ? Number(m[1]) : 0;
}

/** The blob a request is for (by digest at the end of its path), if any. */
function blobOf(r: ProxyResponse, byDigest: Map<string, Blob>): Blob | undefined {
  const m = /\/(?:blobs|manifests)\/(sha256:[0-9a-f]{64})$/.exec(r.path.split('?')[0]);
  return m ? byDigest.get(m[1]) : undefined;
}

/**
 * Bytes in the kernel's queues of loopback TCP sockets on `port` (either end): the proxy's send
 * queue and berth's receive queue, from /proc/net/tcp (tx_queue:rx_queue, hex).
 */
function kernelQueued(port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  let total = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 5) continue;
      if (!f[1].endsWith(`:${hexPort}`) && !f[2].endsWith(`:${hexPort}`)) continue;
      const [tx, rx] = f[4].split(':').map((h) => parseInt(h, 16));
      total += tx + rx;
    }
  }
  return total;
}

/**
 * The size of each ingest's data file in a content store, by the pull's ref: the metadata store
 * writes ref R under the backend ref `<namespace>/<seq>/R` (src/metadata/content.ts), which the
 * ingest folder's `ref` file holds (containerd's layout).
 */
function ingestSizes(storeRoot: string): Map<string, number> {
  const sizes = new Map<string, number>();
  const folder = join(storeRoot, 'ingest');
  for (const name of existsSync(folder) ? readdirSync(folder) : []) {
    let ref: string;
    try {
      ref = readFileSync(join(folder, name, 'ref'), 'utf8');
    } catch {
      continue; // created, not yet written
    }
    const data = join(folder, name, 'data');
    const pullRef = ref.split('/').slice(2).join('/');
    if (existsSync(data)) sizes.set(pullRef, Math.max(sizes.get(pullRef) ?? 0, statSync(data).size));
  }
  return sizes;
}

const fmt = (n: number) => `${(n / KiB).toFixed(0)} KiB`;

describe('kill -9 during a pull', { timeout: 240_000 }, () => {
  test(`${KILLS} kills at random points: each restart resumes every blob from its file, re-fetching at most ${unwrittenMax / KiB} KiB per blob in flight`, async (t) => {
    t.diagnostic(`seed ${SEED} (BERTH_CRASH_SEED), ${KILLS} kills (BERTH_CRASH_KILLS), ${RATE} bytes/s per blob response before a kill`);
    const rng = mulberry32(SEED);
    const random = () => rng() / 2 ** 32;

    // Layers under and over 1 MiB (the old write batch), and one exactly at it.
    const image: Image = buildImage({
      layers: [
        exactSizeLayer(150_000, 1),
        exactSizeLayer(600_000, 2),
        exactSizeLayer(1 << 20, 3),
        await bigLayer(2_500_000, { seed: 4 }),
        await bigLayer(4_200_000, { seed: 5 }),
      ],
    });
    await pushImage(registry, 'crash/app', 'v1', image);
    const blobs: Blob[] = [
      { kind: 'manifest', digest: image.digest, mediaType: image.mediaType, size: image.size },
      { kind: 'config', digest: image.config.digest, mediaType: image.config.mediaType, size: image.config.size },
      ...image.layers.map((l, i) => ({ kind: `layer ${i} (${l.size} bytes)`, digest: l.digest, mediaType: l.mediaType, size: l.size })),
    ];
    const byDigest = new Map(blobs.map((b) => [b.digest, b]));
    const fetched = blobs.filter((b) => b.kind !== 'manifest');
    const blobBytes = fetched.reduce((a, b) => a + b.size, 0);
    const ref = `${proxy.host}/crash/app:v1`;

    const port = await freePort();
    const config = join(dir, 'berth.toml');
    // The killed pull is not resumed by the restarted server (resume_interrupted = false): the new
    // pull of each cycle is then the only one fetching, and the image deleted at the end of a
    // cycle is not recorded again by a resumed pull still finishing (test/pull-durable.test.ts
    // tests the resume).
    await writeFile(
      config,
      [
        `root = ${JSON.stringify(join(dir, 'root'))}`,
        `state = ${JSON.stringify(join(dir, 'state'))}`,
        `address = "127.0.0.1:${port}"`,
        'log_level = "warn"',
        '[plugins."io.berth.service.v1.pulls"]',
        'resume_interrupted = false',
        '',
      ].join('\n'),
    );
    // The content plugin's folder under the server's root (plugins/registry.ts: root/<type>.<id>).
    const storeRoot = join(dir, 'root', 'io.berth.content.v1.content');

    let server = await startServer(config);
    const kills: Kill[] = [];

    for (let cycle = 0; cycle < KILLS; cycle++) {
      // ---- pull, slowed, until the proxy has sent K body bytes of blobs; then SIGKILL ----
      proxy.reset();
      proxy.set({ bytesPerSecond: RATE, match: (r) => r.method === 'GET' && r.path.includes('/blobs/') });
      const k = 1 + Math.floor(random() * (blobBytes - 1));
      let sent = 0;
      let kill: Kill | undefined;
      const victim = server;
      const killed = new Promise<void>((resolve) => {
        const off = proxy.onForward((r, bytes) => {
          if (kill || !r.path.includes('/blobs/')) return;
          sent += bytes;
          if (sent < k) return;
          // Synchronously, before another byte moves: what was sent, and what is on its way.
          kill = { k, sent, blobs: [] };
          for (const blob of fetched) {
            const rs = proxy.responses.filter((x) => x.method === 'GET' && blobOf(x, byDigest) === blob);
            const last = rs.at(-1);
            const conn = last ? proxy.connections.find((c) => c.responses.includes(last)) : undefined;
            kill.blobs.push({
              blob,
              sentEnd: Math.max(0, ...rs.map((x) => rangeStart(x) + x.bodyBytes)),
              queued: conn && last && !last.complete ? conn.queuedToClient + kernelQueued(conn.clientPort) : 0,
              committed: false,
              ingest: 0,
              lost: 0,
              bound: 0,
            });
          }
          victim.process.kill('SIGKILL');
          off();
          resolve();
        });
      });
      const pulling = api(victim.url, 'POST', '/v1/pulls?wait=true', { ref, unpack: false }).then(
        (r) => r,
        () => undefined, // the server died under it
      );
      const t0 = performance.now();
      const first = await Promise.race([killed.then(() => 'killed' as const), pulling.then(() => 'ended' as const)]);
      assert.equal(first, 'killed', `cycle ${cycle}: the pull ended before the proxy had sent ${k} bytes`);
      await victim.exited;
      await pulling;
      const tKill = performance.now();
      assert.ok(kill);
      const dead: Kill = kill;

      // ---- what the dead server left on disk ----
      const ingests = ingestSizes(storeRoot);
      for (const b of dead.blobs) {
        b.committed = existsSync(blobPath(storeRoot, b.blob.digest));
        b.ingest = b.committed ? 0 : (ingests.get(ingestRef({ mediaType: b.blob.mediaType, digest: b.blob.digest, size: b.blob.size })) ?? 0);
        // The file never holds more than the registry sent.
        assert.ok(b.committed || b.ingest <= b.sentEnd, `cycle ${cycle}: ${b.blob.kind}: ingest of ${b.ingest} bytes, only ${b.sentEnd} sent`);
        b.lost = b.committed ? 0 : b.sentEnd - b.ingest;
        b.bound = b.committed || b.sentEnd === 0 ? 0 : unwrittenMax + CLIENT_BUFFERS + b.queued;
      }
      const committedBefore = new Set(blobs.filter((b) => existsSync(blobPath(storeRoot, b.digest))).map((b) => b.digest));
      kills.push(dead);

      // ---- restart on the same root and pull to the end, at full speed ----
      proxy.reset();
      proxy.set({ bytesPerSecond: undefined, match: undefined });
      server = await startServer(config);
      const tUp = performance.now();
      const done = await api(server.url, 'POST', '/v1/pulls?wait=true', { ref, unpack: false });
      assert.equal(done.status, 200, JSON.stringify(done.json));
      assert.equal(done.json.state, 'done', `cycle ${cycle}: the pull after the restart: ${JSON.stringify(done.json.error)}`);

      // The registry's log: committed blobs are not asked for again; a partial one is asked for
      // once, from where its ingest ends.
      const resumed = proxy.responses.filter((r) => r.method === 'GET');
      for (const blob of blobs) {
        const gets = resumed.filter((r) => blobOf(r, byDigest) === blob);
        const at = dead.blobs.find((b) => b.blob === blob);
        if (committedBefore.has(blob.digest)) {
          assert.equal(gets.length, 0, `cycle ${cycle}: ${blob.kind} was committed before the kill, yet fetched again`);
          continue;
        }
        if (!at) continue; // the manifest, resolved again by tag
        if (at.ingest === blob.size) {
          assert.equal(gets.length, 0, `cycle ${cycle}: ${blob.kind} was whole in its ingest, yet fetched again`);
          continue;
        }
        assert.equal(gets.length, 1, `cycle ${cycle}: ${blob.kind}: ${gets.length} GETs after the restart`);
        assert.equal(rangeStart(gets[0]), at.ingest, `cycle ${cycle}: ${blob.kind}: the GET after the restart starts at ${rangeStart(gets[0])}, its ingest ends at ${at.ingest}`);
        assert.equal(gets[0].status, at.ingest > 0 ? 206 : 200);
        assert.ok(gets[0].complete, `cycle ${cycle}: ${blob.kind}: the resumed response went through`);
      }
      // Cross-check with the totals: what the registry sent of the blobs over both servers,
      // less their sizes, is what it sent twice.
      const sentAfter = resumed.filter((r) => r.path.includes('/blobs/')).reduce((a, r) => a + r.bodyBytes, 0);
      const refetched = dead.blobs.reduce((a, b) => a + b.lost, 0);
      const sentBefore = dead.blobs.reduce((a, b) => a + b.sentEnd, 0);
      assert.equal(sentBefore + sentAfter - blobBytes, refetched, `cycle ${cycle}: bytes sent twice`);

      const verify = await api(server.url, 'POST', '/v1/content/verify');
      assert.equal(verify.status, 200);
      assert.deepEqual(verify.json.corrupt, [], `cycle ${cycle}: content verify`);
      assert.equal(verify.json.checked, blobs.length);

      const tDone = performance.now();
      const inFlight = dead.blobs.filter((b) => b.bound > 0);
      t.diagnostic(
        `kill ${cycle + 1} after ${fmt(dead.sent)} sent (K ${fmt(k)}): re-fetched ${fmt(refetched)} ` +
          `(${((tKill - t0) / 1000).toFixed(1)} s to the kill, ${((tUp - tKill) / 1000).toFixed(1)} s to restart, ${((tDone - tUp) / 1000).toFixed(1)} s to finish) ` +
          `[${inFlight.map((b) => `${b.blob.kind.split(' (')[0]}: sent to ${b.sentEnd}, file ${b.ingest}, lost ${b.lost}, queued ${b.queued}`).join('; ')}]`,
      );

      // ---- back to an empty store for the next cycle ----
      const del = await api(server.url, 'DELETE', `/v1/images/${encodeURIComponent(ref)}?sync=true`);
      assert.equal(del.status, 204, JSON.stringify(del.json));
      assert.deepEqual((await api(server.url, 'GET', '/v1/content')).json.items, [], 'the store is empty again');
      assert.deepEqual((await api(server.url, 'GET', '/v1/ingests')).json.items, [], 'no ingest left');
    }
    server.process.kill('SIGKILL');
    await server.exited;

    // ---- the figures, then the bound ----
    const perKill = kills.map((k) => k.blobs.reduce((a, b) => a + b.lost, 0));
    const perBlob = kills.flatMap((k) => k.blobs.filter((b) => b.bound > 0));
    const sortedKill = [...perKill].sort((a, b) => a - b);
    const sortedBlob = perBlob.map((b) => b.lost).sort((a, b) => a - b);
    const median = (xs: number[]) => (xs.length ? xs[Math.floor(xs.length / 2)] : 0);
    const small = perBlob.filter((b) => b.blob.size < 1 << 20 && b.blob.kind !== 'config');
    t.diagnostic(
      `re-fetched per kill: median ${fmt(median(sortedKill))}, max ${fmt(sortedKill.at(-1) ?? 0)}, total ${fmt(perKill.reduce((a, b) => a + b, 0))} ` +
        `over ${kills.length} kills (${((100 * perKill.reduce((a, b) => a + b, 0)) / (kills.length * blobBytes)).toFixed(1)}% of the image per kill); ` +
        `per blob in flight (${perBlob.length}): median ${fmt(median(sortedBlob))}, max ${fmt(sortedBlob.at(-1) ?? 0)}; ` +
        `layers under 1 MiB caught in flight: ${small.length}, resumed from a non-empty ingest: ${small.filter((b) => b.ingest > 0).length}; ` +
        `largest queue on the way at a kill ${fmt(Math.max(0, ...perBlob.map((b) => b.queued)))}`,
    );
    for (const [i, k] of kills.entries()) {
      for (const b of k.blobs) {
        assert.ok(
          b.lost <= b.bound,
          `kill ${i + 1}: ${b.blob.kind}: ${b.lost} bytes fetched again (sent to ${b.sentEnd}, file ${b.ingest}); ` +
            `bound ${b.bound} = ${unwrittenMax} unwritten + ${CLIENT_BUFFERS} in the HTTP client + ${b.queued} queued`,
        );
      }
    }
    assert.ok(perBlob.length >= KILLS, `${perBlob.length} blobs were in flight at ${KILLS} kills`);
  });
});
