// Pulls are durable (issue 13): pull records live in the metadata store, so a pull outlives the
// server that ran it. The real registry (Debian's docker-registry) behind the fault-injecting
// proxy, which stalls the big layer's response after a fixed number of bytes, so that a pull is
// mid-way when berth — a child process — is killed with SIGKILL; berth is then started again on
// the same root and address.
//
//   - the pull is resumed by the server by itself under its id: GET and the event stream answer
//     again, committed blobs are not fetched again, the partial one resumes with Range, it ends
//     `done`, and it is still there after yet another restart;
//   - with resume_interrupted = false it stays `interrupted` (its stream ends at once saying
//     so), a new pull of the same ref works, and the interrupted one can be cancelled;
//   - pruning forgets old ended pulls (by count and by age, interrupted ones by age) and nothing
//     else: running pulls, images, blobs and leases stay;
//   - `berth pull` re-attaches to its pull when its server restarts under it.
//
// First, in this process: how records are written (progress at a bounded rate, never per chunk;
// in order and coalesced) and read back (checked; no GC mutation).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readSse } from '../src/cli/events.js';
import { startChildServer, type ChildServer } from './fixtures/child-server.js';
import { bigLayer, buildImage, pushImage, type Image, type Layer } from './fixtures/images.js';
import { startProxy, type Proxy } from './fixtures/proxy.js';
import { freePort, startRegistry, type Registry } from './fixtures/registry.js';
import { berth, until } from './fixtures/unpack.js';
import { metadataEnv } from './fixtures/metadata.js';
import { PullStore, type PullRecord } from '../src/metadata/pulls.js';
import { PullJournal } from '../src/pull/records.js';

const MiB = 1 << 20;
const PULLS = 'io.berth.service.v1.pulls';
/** Where the big layer's response stalls (each response counted from its own first byte). */
const STALL_AT = 3 * MiB + 4321;

let registry: Registry;
let proxy: Proxy;
let dir: string;
const servers = new Set<ChildServer>();

before(async () => {
  registry = await startRegistry();
  proxy = await startProxy(registry.host);
  dir = await mkdtemp(join(tmpdir(), 'berth-pull-durable-'));
});
after(async () => {
  await Promise.all([...servers].map((s) => s.destroy()));
  await proxy?.stop();
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** One berth: a root and an address that outlive its processes. */
interface Berth {
  root: string;
  state: string;
  port: number;
  server?: ChildServer;
}

async function newBerth(name: string): Promise<Berth> {
  return { root: join(dir, name, 'root'), state: join(dir, name, 'state'), port: await freePort() };
}

/** Starts (again) a server on the berth's root and address, with the pulls plugin's settings. */
async function serve(b: Berth, pulls: Record<string, unknown> = {}): Promise<ChildServer> {
  const server = await startChildServer({
    name: `durable ${b.port}`,
    dirPrefix: 'berth-durable-config-',
    config: { root: b.root, state: b.state, address: `127.0.0.1:${b.port}`, log_level: 'info', plugins: { [PULLS]: pulls } },
  });
  servers.add(server);
  b.server = server;
  return server;
}

/**
 * Ends the berth's server: `kill` is SIGKILL (nothing is written on the way out); `stop` is a
 * clean SIGTERM as `berth serve` takes it (running pulls left interrupted, their progress written).
 */
async function down(b: Berth, how: 'kill' | 'stop'): Promise<void> {
  const s = b.server!;
  await s[how]();
  servers.delete(s);
  await s.destroy();
  b.server = undefined;
}

const kill = (b: Berth): Promise<void> => down(b, 'kill');
const stop = (b: Berth): Promise<void> => down(b, 'stop');

async function api(b: Berth, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${b.server!.url}${path}`, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  const json = text ? JSON.parse(text) : undefined;
  assert.ok(res.status < 500, `${method} ${path}: ${res.status} ${text}\n${b.server!.logs()}`);
  return { status: res.status, json };
}

async function ok(b: Berth, method: string, path: string, body?: unknown): Promise<any> {
  const r = await api(b, method, path, body);
  assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

/** Every message of a pull's event stream, until the server ends it. */
async function streamOf(b: Berth, id: string, onMessage?: (event: string, data: any) => void): Promise<Array<{ event: string; data: any }>> {
  const res = await fetch(`${b.server!.url}/v1/pulls/${encodeURIComponent(id)}/events`);
  assert.equal(res.status, 200, `events of pull ${id}: ${res.status}`);
  const messages: Array<{ event: string; data: any }> = [];
  await readSse(res.body as unknown as AsyncIterable<Buffer>, (event, data) => {
    const m = { event, data: JSON.parse(data) };
    messages.push(m);
    onMessage?.(m.event, m.data);
  });
  return messages;
}

interface Fixture {
  image: Image;
  big: Layer;
  ref: string;
  bigPath: string;
}

/** An image of a config, two small layers and a big one, pushed; the proxy stalls the big one. */
async function stalledImage(repo: string, seed: number): Promise<Fixture> {
  const big = await bigLayer(8 * MiB, { seed });
  const image = buildImage({ layers: [{ [`etc/${repo}-a`]: `small layer a ${seed}\n` }, { [`etc/${repo}-b`]: `small layer b ${seed}\n` }, big] });
  await pushImage(registry, `durable/${repo}`, 'v1', image);
  const bigPath = `/v2/durable/${repo}/blobs/${big.digest}`;
  proxy.set({ stallAfterBytes: STALL_AT, match: bigPath });
  return { image, big, ref: `${proxy.host}/durable/${repo}:v1`, bigPath };
}

/** Waits until everything but the big layer is stored and the big one has bytes on disk, held by the stall. */
async function midway(b: Berth, id: string, f: Fixture): Promise<any> {
  let view: any;
  await until(`pull ${id} to reach the stall`, async () => {
    view = await ok(b, 'GET', `/v1/pulls/${id}`);
    const bigBlob = view.blobs.find((x: { digest: string }) => x.digest === f.big.digest);
    const others = [f.image.config, ...f.image.layers].filter((x) => x.digest !== f.big.digest);
    const othersDone = others.every((o) => view.blobs.some((x: { digest: string; state: string }) => x.digest === o.digest && (x.state === 'done' || x.state === 'exists')));
    return othersDone && bigBlob !== undefined && bigBlob.offset >= 2 * MiB && proxy.stalled().length > 0;
  });
  return view;
}

/** The blob GETs the registry saw since the proxy's last reset. */
const blobGets = () => proxy.responses.filter((r) => r.method === 'GET' && r.path.includes('/blobs/'));

/** The big layer was fetched once more, with a Range from where its ingest had got to. */
function assertResumedOnce(f: Fixture, what: string): number {
  const gets = blobGets();
  for (const blob of [f.image.config, ...f.image.layers].filter((x) => x.digest !== f.big.digest)) {
    assert.equal(gets.filter((r) => r.path.endsWith(blob.digest)).length, 0, `${what}: ${blob.digest} was stored before the kill: not fetched again`);
  }
  const bigGets = gets.filter((r) => r.path === f.bigPath);
  assert.equal(bigGets.length, 1, `${what}: the big layer is asked for once more`);
  const range = /^bytes=(\d+)-$/.exec(bigGets[0].requestHeaders.range ?? '');
  assert.ok(range, `${what}: resumed with a Range request, got ${JSON.stringify(bigGets[0].requestHeaders)}`);
  const from = Number(range[1]);
  assert.ok(from >= 2 * MiB && from <= STALL_AT, `${what}: resumed from what was on disk (${from})`);
  return from;
}

describe('pull records', () => {
  test('progress is written at a bounded rate, not per chunk; state changes at once, coalesced; the last progress at close', async () => {
    const writes: Array<{ bytes: number; sync: boolean }> = [];
    const store = {
      put: async (_ns: string, _id: string, r: PullRecord, opts: { sync?: boolean }) => void writes.push({ bytes: r.bytesFetched, sync: opts.sync === true }),
      delete: async () => {},
    } as unknown as PullStore;
    const journal = new PullJournal(store, { progressIntervalMs: 200 });
    let bytes = 0;
    const w = journal.writer('default', 'p1', () => ({ bytesFetched: bytes }) as PullRecord);
    for (let i = 0; i < 1000; i++) {
      bytes += 1000;
      w.soon();
    }
    assert.deepEqual(writes, [], 'a thousand chunks: nothing written yet');
    await until('the progress write', () => writes.length > 0, 5000);
    assert.deepEqual(writes, [{ bytes: 1_000_000, sync: false }], 'one write, with the latest progress');
    // Changes of state made in one turn become one write (synced), with the last state.
    bytes = 1;
    const a = w.now(true);
    bytes = 2;
    const b = w.now();
    await Promise.all([a, b]);
    assert.deepEqual(writes.slice(1), [{ bytes: 2, sync: true }]);
    // At close, pending progress is written at once; nothing after.
    bytes = 3;
    w.soon();
    await journal.close();
    assert.deepEqual(writes.slice(2), [{ bytes: 3, sync: false }]);
    bytes = 4;
    await w.now(true);
    assert.equal(writes.length, 3, 'nothing is written after close');
  });

  test('records are read back checked; writing them is no metadata mutation for the GC', async (t) => {
    const env = await metadataEnv(t, { prefix: 'berth-pull-durable-records-' });
    const store = new PullStore(env.db);
    const now = new Date().toISOString();
    const record: PullRecord = {
      request: { ref: 'example.com/app:v1' },
      state: 'running',
      lease: 'pull-1',
      bytesFetched: 10,
      bytesFromPeers: 0,
      blobs: [{ digest: `sha256:${'a'.repeat(64)}`, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', size: 100, offset: 10, state: 'downloading', sources: { upstream: 10 } }],
      unpacks: [],
      startedAt: now,
      updatedAt: now,
    };
    const mutations = env.db.mutations;
    await store.put('default', 'p1', record, { sync: true });
    await env.db.pulls.put('default/p2', { ...record, state: 'paused' } as unknown as PullRecord);
    await env.db.pulls.put('default/p3', { ...record, blobs: [{ digest: 'x' }] } as unknown as PullRecord);
    assert.equal(env.db.mutations, mutations, 'no mutation counted');
    const { pulls, invalid } = await store.load();
    assert.deepEqual(pulls, [{ namespace: 'default', id: 'p1', record }]);
    assert.deepEqual(invalid, [
      { key: 'default/p2', reason: 'state "paused" is unknown' },
      { key: 'default/p3', reason: 'blobs[0] needs a digest and a media type' },
    ]);
    await store.delete('default', 'p1');
    assert.deepEqual((await store.load()).pulls, []);
  });
});

describe('pulls are durable', () => {
  test('killed mid-pull: after the restart the pull is resumed by the server under its id and ends done', { timeout: 180_000 }, async () => {
    const f = await stalledImage('app', 21);
    const b = await newBerth('resume');
    await serve(b);
    const started = await ok(b, 'POST', '/v1/pulls', { ref: f.ref });
    assert.equal(started.state, 'running');
    const before = await midway(b, started.id, f);
    await kill(b);

    proxy.reset();
    const server = await serve(b); // the stall is still on: the resumed pull stops at the big layer again
    const resumed = await ok(b, 'GET', `/v1/pulls/${started.id}`);
    assert.equal(resumed.id, started.id);
    assert.equal(resumed.state, 'running', 'resumed by the server itself');
    assert.ok(resumed.resumedAt, 'says when it was resumed');
    assert.equal(resumed.startedAt, started.startedAt, 'the same pull: the same start');
    assert.equal(resumed.lease, started.lease, 'under the same lease');
    assert.equal(resumed.finishedAt, undefined);
    for (const blob of before.blobs.filter((x: { state: string }) => x.state === 'done')) {
      assert.equal(resumed.blobs.find((x: { digest: string }) => x.digest === blob.digest)?.state, 'done', `${blob.digest}: its record says it was fetched`);
    }
    assert.match(server.logs(), new RegExp(`"pull":"${started.id}".*resuming a pull the last stop interrupted`), 'the server says it resumes the pull');
    assert.deepEqual((await ok(b, 'GET', '/v1/pulls?filter=state==interrupted')).items, [], 'nothing is left interrupted');

    // Its event stream answers again: the pull as it is, then its events to the final `done`.
    const stream = streamOf(b, started.id, (event) => {
      // Let the big layer go once the stream is following.
      if (event === 'pull') proxy.set({ stallAfterBytes: undefined });
    });
    const messages = await stream;
    assert.equal(messages[0].event, 'pull');
    assert.equal(messages[0].data.id, started.id);
    const final = messages.at(-1)!;
    assert.equal(final.event, 'done', JSON.stringify(messages.map((m) => m.event)));
    assert.equal(final.data.digest, undefined, 'the pull\'s own done');
    assert.equal(final.data.image, f.ref);
    assert.ok(messages.some((m) => m.event === 'done' && m.data.digest === f.big.digest), 'the big layer is done');

    const done = await ok(b, 'GET', `/v1/pulls/${started.id}`);
    assert.equal(done.state, 'done', JSON.stringify(done.error));
    assert.equal(done.image, f.ref);
    assert.ok(done.finishedAt);
    assert.ok(done.blobs.every((x: { state: string }) => x.state === 'done'), `every blob fetched by this pull: ${JSON.stringify(done.blobs)}`);
    assertResumedOnce(f, 'after the restart');
    assert.equal((await ok(b, 'GET', `/v1/images/${encodeURIComponent(f.ref)}`)).target.digest, f.image.digest);

    // Ended pulls outlive restarts too.
    await kill(b);
    await serve(b);
    const again = await ok(b, 'GET', `/v1/pulls/${started.id}`);
    assert.equal(again.state, 'done');
    assert.equal(again.finishedAt, done.finishedAt);
    const replay = await streamOf(b, started.id);
    assert.deepEqual(replay.map((m) => m.event), ['pull', 'done'], 'an ended pull\'s stream ends at once');
    await kill(b);
  });

  test('resume_interrupted = false: the pull stays interrupted; a new pull of the ref works; cancel ends it', { timeout: 180_000 }, async () => {
    const f = await stalledImage('off', 22);
    const b = await newBerth('off');
    const settings = { resume_interrupted: false };
    await serve(b, settings);
    const started = await ok(b, 'POST', '/v1/pulls', { ref: f.ref });
    await midway(b, started.id, f);
    // A clean stop (SIGTERM), not a crash: the shutdown writes the progress not yet recorded (a
    // crash may lose up to a second of it), so the record holds the stalled offset.
    await stop(b);

    proxy.set({ stallAfterBytes: undefined });
    proxy.reset();
    const server = await serve(b, settings);
    const stopped = await ok(b, 'GET', `/v1/pulls/${started.id}`);
    assert.equal(stopped.state, 'interrupted');
    assert.equal(stopped.error?.code, 'unavailable');
    assert.match(stopped.error?.message ?? '', /interrupted by a restart.*resume_interrupted = false/);
    assert.ok(stopped.finishedAt, 'says when it was found stopped');
    assert.equal(stopped.resumedAt, undefined);
    const bigBlob = stopped.blobs.find((x: { digest: string }) => x.digest === f.big.digest);
    assert.ok(bigBlob && bigBlob.offset >= 2 * MiB && bigBlob.offset <= f.big.size, `the record kept the big layer's offset: ${JSON.stringify(bigBlob)}`);
    assert.match(server.logs(), /left interrupted \(resume_interrupted = false\)/);
    assert.deepEqual((await ok(b, 'GET', '/v1/pulls?filter=state==interrupted')).items.map((p: { id: string }) => p.id), [started.id]);
    assert.equal(blobGets().length, 0, 'nothing was fetched: it was not resumed');

    // Its stream: the pull, then `interrupted` at once.
    const messages = await streamOf(b, started.id);
    assert.deepEqual(messages.map((m) => m.event), ['pull', 'interrupted']);
    assert.equal(messages[1].data.error.code, 'unavailable');

    // A new pull of the same ref resumes the partial blob, as ever.
    const second = await ok(b, 'POST', '/v1/pulls?wait=true', { ref: f.ref });
    assert.notEqual(second.id, started.id);
    assert.equal(second.state, 'done', JSON.stringify(second.error));
    assertResumedOnce(f, 'the new pull');
    assert.equal((await ok(b, 'GET', `/v1/pulls/${started.id}`)).state, 'interrupted', 'the interrupted pull is left as it was');

    const cancelled = await ok(b, 'DELETE', `/v1/pulls/${started.id}`);
    assert.equal(cancelled.state, 'cancelled');
    assert.ok(cancelled.finishedAt);
    await kill(b);
    await serve(b, settings);
    assert.equal((await ok(b, 'GET', `/v1/pulls/${started.id}`)).state, 'cancelled', 'recorded');
    await kill(b);
  });

  test('pruning forgets old ended pulls, and nothing else', { timeout: 180_000 }, async () => {
    const small = buildImage({ layers: [{ 'etc/prune': 'prune me not\n' }] });
    await pushImage(registry, 'durable/small', 'v1', small);
    const smallRef = `${proxy.host}/durable/small:v1`;
    const f = await stalledImage('prune', 23);
    const b = await newBerth('prune');
    const keepS = 8;
    const settings = { keep_ended_max: 3, keep_ended_s: keepS, resume_interrupted: false };
    const pruneWithinMs = 3 * keepS * 1000; // the age, then the next pruning round (every keep_ended_s)
    await serve(b, settings);

    // By count: four ended pulls, the newest three kept.
    const ended: string[] = [];
    for (let i = 0; i < 4; i++) {
      const p = await ok(b, 'POST', '/v1/pulls?wait=true', { ref: smallRef });
      assert.equal(p.state, 'done', JSON.stringify(p.error));
      ended.push(p.id);
    }
    assert.equal((await api(b, 'GET', `/v1/pulls/${ended[0]}`)).status, 404, 'the oldest ended pull is pruned');
    for (const id of ended.slice(1)) assert.equal((await ok(b, 'GET', `/v1/pulls/${id}`)).state, 'done');

    // A running pull (stalled) and what the pulls made.
    const running = await ok(b, 'POST', '/v1/pulls', { ref: f.ref });
    await midway(b, running.id, f);
    const leases = async () => (await ok(b, 'GET', '/v1/leases')).items.map((l: { id: string }) => l.id).sort();
    const leasesBefore = await leases();
    assert.ok(leasesBefore.includes(running.lease));
    const smallBlobs = [small.manifest, small.config, ...small.layers].map((x) => x.digest);

    // By age: once keep_ended_s has passed, the ended pulls go — the running one stays.
    await until('the ended pulls to be pruned by age', async () => (await ok(b, 'GET', '/v1/pulls')).items.length === 1, pruneWithinMs);
    const left = (await ok(b, 'GET', '/v1/pulls')).items;
    assert.deepEqual(left.map((p: { id: string; state: string }) => [p.id, p.state]), [[running.id, 'running']]);
    for (const id of ended) assert.equal((await api(b, 'GET', `/v1/pulls/${id}`)).status, 404);
    // Nothing else went: the image, its blobs, the leases.
    assert.equal((await ok(b, 'GET', `/v1/images/${encodeURIComponent(smallRef)}`)).target.digest, small.digest);
    for (const d of smallBlobs) assert.equal((await api(b, 'GET', `/v1/content/${d}/info`)).status, 200, `${d} stays`);
    assert.deepEqual(await leases(), leasesBefore);

    // An interrupted pull that is not resumed goes by age too, once it has been stopped that long.
    await kill(b);
    await serve(b, settings);
    assert.equal((await ok(b, 'GET', `/v1/pulls/${running.id}`)).state, 'interrupted');
    await until('the interrupted pull to be pruned by age', async () => (await api(b, 'GET', `/v1/pulls/${running.id}`)).status === 404, pruneWithinMs);
    assert.deepEqual(await leases(), leasesBefore, 'its lease stays (it expires by itself)');
    await kill(b);
    proxy.set({ stallAfterBytes: undefined });
  });

  test('berth pull re-attaches to its pull when the server restarts under it', { timeout: 240_000 }, async () => {
    const f = await stalledImage('cli', 24);
    const b = await newBerth('cli');
    await serve(b);
    const address = `127.0.0.1:${b.port}`;
    const cli = berth(address, ['pull', '--no-unpack', f.ref], 200_000);
    let id = '';
    await until('the CLI\'s pull to start', async () => {
      const items = (await ok(b, 'GET', '/v1/pulls')).items;
      id = items[0]?.id ?? '';
      return items.length === 1;
    });
    await midway(b, id, f);
    await kill(b);
    proxy.reset();
    const again = await serve(b);
    // The stall ends once the CLI has re-attached (within its backoff): its request for the
    // pull's event stream is in the restarted server's request log.
    await until('the CLI to re-attach', () => again.logs().includes(`/v1/pulls/${id}/events`));
    proxy.set({ stallAfterBytes: undefined });
    const r = await cli;
    assert.equal(r.code, 0, `berth pull: exit ${r.code}\n${r.stderr}\n${r.stdout}`);
    assert.match(r.stderr, new RegExp(`lost the event stream of pull ${id} .*re-attaching to ${address.replace(/\./g, '\\.')}`));
    assert.match(r.stderr, new RegExp(`re-attached to pull ${id} on ${address.replace(/\./g, '\\.')}`));
    assert.equal(r.stdout.split('\n').filter((l) => l.startsWith('pulling ')).length, 1, `the header once:\n${r.stdout}`);
    assert.match(r.stdout, new RegExp(`^${f.ref.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: fetched `, 'm'), r.stdout);
    const done = await ok(b, 'GET', `/v1/pulls/${id}`);
    assert.equal(done.state, 'done');
    assert.ok(done.resumedAt);
    assertResumedOnce(f, 'the CLI\'s pull');
    await kill(b);
  });
});
