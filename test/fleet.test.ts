// A fleet of berth nodes coordinating through a real etcd (Debian's etcd-server, started here on
// loopback), issue 12 part 1: membership, the watch cache, advertisements and claims. Nodes are
// berth servers in this process — and, where a node must die without a word, a berth server in a
// child process killed with SIGKILL. Every wait polls a condition against a deadline.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as net from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Etcd3 } from 'etcd3';
import type { EtcdFleet } from '../src/fleet/fleet.js';
import { FleetKeys } from '../src/fleet/keys.js';
import { Session } from '../src/fleet/session.js';
import { FleetView } from '../src/fleet/view.js';
import { builtinPlugins } from '../src/plugins/index.js';
import { initOrder, pluginKey } from '../src/plugins/registry.js';
import {
  api,
  FLEET_PLUGIN as fleetKey,
  fleetExports,
  fleetNodeNames as names,
  fleetTestBed,
  REGISTRY_PLUGIN as registryKey,
  waitFor as waitForWithin,
  type Json,
} from './fixtures/fleet.js';
import { freePort } from './fixtures/registry.js';
import { startTestServer, type TestServer } from './fixtures/server.js';

const projectRoot = join(import.meta.dirname, '..');
/**
 * 5 s: short enough for tests that wait for a lease to expire, long enough that a busy 2-core
 * test machine (etcd answering slowly, event loops stalled) does not lose a lease it keeps alive.
 */
const TTL = 5;

/** The one etcd of this file (`bed.etcd`). */
const bed = fleetTestBed({ prefix: 'berth-test' });
const cleanups = bed.cleanups;
/** Each test its own fleet: its own key prefix in the one etcd. */
const newPrefix = bed.newPrefix;

/** A berth server in this process with a registry listener on a free port and a fleet table. */
function startNode(prefix: string, name: string, extra: Json = {}): Promise<TestServer> {
  return bed.startNode(prefix, name, { lease_ttl_s: TTL, ...extra });
}

const fleetOf = (server: TestServer) => server.plugins.get<EtcdFleet>('io.berth.service.v1', 'fleet');

/** Polls `check` until it returns something other than undefined/false, or fails naming `what` after `ms`. */
const waitFor = <T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, ms = 10_000): Promise<T> => waitForWithin(what, check, ms);

const sameSet = (a: string[], b: string[]) => a.length === b.length && [...a].sort().join() === [...b].sort().join();

function blob(text: string) {
  const bytes = Buffer.from(text);
  return { bytes, size: bytes.length, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` };
}

async function putBlob(server: TestServer, b: { bytes: Buffer; digest: string }): Promise<void> {
  const r = await api(server, 'PUT', `/v1/content/${b.digest}`, b.bytes);
  assert.ok(r.status === 201 || r.status === 200, `PUT content: ${r.status} ${JSON.stringify(r.json)}`);
}

async function registryAddress(server: TestServer): Promise<string> {
  return (await api(server, 'GET', '/v1/registry/stats')).json.address;
}

/** The holders of `digest` that `server` sees. */
async function holders(server: TestServer, digest: string): Promise<Json[]> {
  const r = await api(server, 'GET', `/v1/fleet/blobs/${digest}`);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json.holders;
}

// ---------------------------------------------------------------------------------------------
// A node in its own process, killed with SIGKILL: nothing of it says goodbye.
// ---------------------------------------------------------------------------------------------

interface ChildNode {
  url: string;
  process: ChildProcess;
  /** Its answer to claiming the digest it was given, when it was given one. */
  claimMine?: boolean;
}

/** `berth serve` in a child process (from the sources), which takes a claim on `claim` once it is up. */
async function startChildNode(prefix: string, name: string, claim?: string): Promise<ChildNode> {
  // The server as `berth serve --config` starts it, then (for the claim) the fleet it loaded.
  const child = await bed.startChildNode(prefix, name, { lease_ttl_s: TTL }, {
    logLevel: 'warn',
    serverOptions: { logger: false },
    args: claim ? [claim] : [],
    onReady: `
      const fleet = server.plugins.get('io.berth.service.v1', 'fleet');
      const claim = args[0] ? await fleet.claim(args[0]) : undefined;
      return { state: fleet.state, claimMine: claim?.mine };
    `,
  });
  assert.equal(child.ready.state, 'joined', `child node ${name} joined the fleet`);
  return { url: child.url, process: child.process, claimMine: child.ready.claimMine };
}

// ---------------------------------------------------------------------------------------------

describe('fleet membership', { timeout: 120_000 }, () => {
  test('nodes see each other, each listing all with its registry address; a bad digest is 400', async () => {
    const prefix = newPrefix();
    // A TTL of 10 s (not the short one): this test is about what each node lists, not about leaving.
    const nodes = await Promise.all(['a', 'b', 'c'].map((n) => startNode(prefix, `node-${n}`, { lease_ttl_s: 10 })));
    for (const node of nodes) {
      await waitFor(`${node.url} lists node-a, node-b, node-c`, async () => sameSet(await names(node), ['node-a', 'node-b', 'node-c']));
    }
    const addresses = await Promise.all(nodes.map(registryAddress));
    for (const [i, node] of nodes.entries()) {
      const { items } = (await api(node, 'GET', '/v1/fleet/nodes')).json;
      assert.deepEqual(
        items.map((n: Json) => [n.name, n.address, n.self]),
        [0, 1, 2].map((j) => [`node-${'abc'[j]}`, addresses[j], j === i]),
        `by name, each with the address its registry listener is bound to, itself marked (fleet: ${JSON.stringify(await fleetExports(node))})`,
      );
      for (const n of items) assert.match(n.startedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
      const ex = await fleetExports(node);
      assert.equal(ex.status, 'ok');
      assert.equal(ex.state, 'joined');
      assert.equal(ex.node, `node-${'abc'[i]}`);
      assert.equal(ex.endpoints, bed.etcd.endpoint.replace('http://', ''));
      assert.equal(ex.reason, undefined, 'no reason while joined');
      assert.match(ex.lease, /^[0-9a-f]+$/);
    }
    const bad = await api(nodes[0], 'GET', `/v1/fleet/blobs/${encodeURIComponent('sha256:nothex')}`);
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.code, 'invalid_argument');
    assert.match(bad.json.error.message, /sha256:nothex/);
    await Promise.all(nodes.map((n) => n.destroy()));
  });

  test('a node stopped cleanly vanishes from the others at once (its lease is revoked)', async (t) => {
    const prefix = newPrefix();
    // A long TTL: were the lease left to expire, the node would stay listed for a minute.
    const [a, b] = await Promise.all([startNode(prefix, 'stays', { lease_ttl_s: 60 }), startNode(prefix, 'leaves', { lease_ttl_s: 60 })]);
    await waitFor('both see both', async () => sameSet(await names(a), ['stays', 'leaves']) && sameSet(await names(b), ['stays', 'leaves']));
    const t0 = Date.now();
    await b.destroy();
    await waitFor('the stopped node is gone from the other\'s view', async () => sameSet(await names(a), ['stays']), 30_000);
    const ms = Date.now() - t0;
    t.diagnostic(`gone from the other's view ${ms} ms after the stop began`);
    assert.ok(ms < 60_000, `gone ${ms} ms after the stop began, before its 60 s lease could expire: revoked`);
    await a.destroy();
  });

  test('a node killed with SIGKILL leaves every view when its lease expires, and its claim goes with it', async (t) => {
    const prefix = newPrefix();
    const digest = blob('claimed by the node that dies').digest;
    const [a, b] = await Promise.all([startNode(prefix, 'survivor-a'), startNode(prefix, 'survivor-b')]);
    const dying = await startChildNode(prefix, 'doomed', digest);
    assert.equal(dying.claimMine, true, 'the child node took the claim');
    for (const node of [a, b]) {
      await waitFor('the child node is seen', async () => sameSet(await names(node), ['survivor-a', 'survivor-b', 'doomed']));
    }
    // The others see the claim; a claim by them answers the holder, and its release is awaited.
    await waitFor('the claim is seen', async () => (await api(a, 'GET', `/v1/fleet/blobs/${digest}`)).json.claim === 'doomed');
    assert.deepEqual(await fleetOf(a).claim(digest), { mine: false, holder: 'doomed' });
    const released = fleetOf(b).claimReleased(digest);
    let releasedAt = 0;
    void released.then(() => (releasedAt = Date.now()));

    const t0 = Date.now();
    dying.process.kill('SIGKILL');
    const gone: number[] = [];
    await Promise.all(
      [a, b].map(async (node) => {
        await waitFor('the killed node leaves the view', async () => sameSet(await names(node), ['survivor-a', 'survivor-b']), (TTL + 5) * 1000);
        gone.push(Date.now() - t0);
      }),
    );
    // How soon is a figure of bench/fleet.ts (TTL + 1 s at most); here, that it happens at all,
    // by the lease's expiry (the node never said goodbye).
    t.diagnostic(`gone from the views ${gone.join(' and ')} ms after SIGKILL (TTL ${TTL} s)`);
    await released;
    t.diagnostic(`claimReleased resolved ${releasedAt - t0} ms after SIGKILL`);
    assert.equal((await api(a, 'GET', `/v1/fleet/blobs/${digest}`)).json.claim, undefined, 'no claim left');
    const taken = await fleetOf(b).claim(digest);
    assert.equal(taken.mine, true, 'another node takes the claim over');
    await Promise.all([a.destroy(), b.destroy()]);
  });
});

describe('the watch cache', { timeout: 60_000 }, () => {
  test('lists the prefix a page at a time at one revision, then follows the watch from the next revision', async () => {
    const prefix = newPrefix();
    const keys = new FleetKeys(prefix);
    const client = new Etcd3({ hosts: bed.etcd.endpoint });
    cleanups.push(async () => client.close());
    const record = (name: string) => JSON.stringify({ name, address: `127.0.0.1:${1000 + name.length}`, startedAt: '2026-01-02T03:04:05.000000000Z' });
    for (const name of ['n1', 'n2', 'n3', 'n4', 'n5']) await client.put(keys.node(name)).value(record(name));
    await client.put(`${prefix}-other/nodes/outside`).value(record('outside')); // beside the prefix, not under it
    const view = new FleetView(keys);
    const broken: string[] = [];
    const session = await Session.open({
      endpoints: [bed.etcd.endpoint.replace('http://', '')],
      keys,
      ttlS: TTL,
      callTimeoutMs: 2000,
      view,
      onBroken: (reason) => broken.push(reason),
      pageSize: 2, // five keys: three pages
    });
    try {
      assert.deepEqual(view.nodes().map((n) => n.name), ['n1', 'n2', 'n3', 'n4', 'n5']);
      await client.put(keys.node('n6')).value(record('n6'));
      await client.delete().key(keys.node('n2'));
      await client.put(keys.blob(blob('b').digest, 'n6')).value(JSON.stringify({ size: 10, offset: 4, complete: false }));
      await client.put(keys.blob(blob('b').digest, 'n1')).value('not json'); // not trusted: not listed
      await waitFor('the watch delivered the changes', () =>
        view.nodes().map((n) => n.name).join() === 'n1,n3,n4,n5,n6' && view.holders(blob('b').digest).length === 1,
      );
      assert.deepEqual(view.holders(blob('b').digest), [{ node: 'n6', address: '127.0.0.1:1002', size: 10, offset: 4, complete: false }]);
      assert.deepEqual(broken, []);
    } finally {
      await session.close({ revoke: true });
    }
  });

  test('a connection to etcd cut and back at once: the session stays open on its lease and misses no change', async () => {
    const prefix = newPrefix();
    const keys = new FleetKeys(prefix);
    const client = new Etcd3({ hosts: bed.etcd.endpoint });
    cleanups.push(async () => client.close());
    // A plain TCP pipe in front of etcd that can drop every connection through it.
    const target = new URL(bed.etcd.endpoint);
    const sockets = new Set<net.Socket>();
    const pipe = net.createServer((inbound) => {
      const outbound = net.connect(Number(target.port), target.hostname);
      for (const [a, b] of [[inbound, outbound], [outbound, inbound]]) {
        sockets.add(a);
        a.pipe(b);
        a.on('error', () => b.destroy());
        a.on('close', () => {
          sockets.delete(a);
          b.destroy();
        });
      }
    });
    await new Promise<void>((resolve) => pipe.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => pipe.close(resolve)));
    const view = new FleetView(keys);
    const broken: string[] = [];
    const session = await Session.open({
      endpoints: [`127.0.0.1:${(pipe.address() as net.AddressInfo).port}`],
      keys,
      ttlS: 10,
      callTimeoutMs: 5000,
      view,
      onBroken: (reason) => broken.push(reason),
    });
    try {
      const record = (name: string) => JSON.stringify({ name, address: '127.0.0.1:1', startedAt: '2026-01-02T03:04:05.000000000Z' });
      await session.put(keys.node('self'), record('self'));
      await waitFor('the watch delivered its own record', () => view.nodes().length === 1);
      const cut = sockets.size;
      assert.ok(cut > 0, 'the session has connections through the pipe');
      for (const socket of sockets) socket.destroy();
      // A change while the watch is down: the reconnected watch delivers it from its revision.
      await client.put(keys.node('other')).value(record('other'));
      await waitFor('the change made while the watch was down arrived', () => view.nodes().map((n) => n.name).join() === 'other,self');
      await session.put(keys.node('self'), record('self'));
      assert.deepEqual(broken, [], 'a drop the client repaired is no reason to leave');
      assert.equal(session.isOpen, true);
      // Still on its lease: the node's record goes with it.
      await client.leaseClient.leaseRevoke({ ID: session.leaseId });
      await waitFor('the record went with the lease', () => view.nodes().map((n) => n.name).join() === 'other');
    } finally {
      await session.close({ revoke: true }).catch(() => {});
    }
  });
});

describe('advertisements', { timeout: 120_000 }, () => {
  test('a blob put into one node is advertised complete, seen by another; at a (re)join the store is advertised; delete withdraws', async () => {
    const prefix = newPrefix();
    const [a, b] = await Promise.all([startNode(prefix, 'holder'), startNode(prefix, 'seeker')]);
    const x = blob('a blob the seeker looks for');
    assert.deepEqual(await holders(b, x.digest), [], 'nobody holds it yet');
    await putBlob(a, x);
    const address = await registryAddress(a);
    const seen = await waitFor('the seeker sees the holder', async () => {
      const h = await holders(b, x.digest);
      return h.length > 0 ? h : undefined;
    });
    assert.deepEqual(seen, [{ node: 'holder', address, size: x.size, offset: x.size, complete: true }]);
    assert.deepEqual(fleetOf(b).holders(x.digest), seen, 'the pull\'s lookup says the same, from memory');

    // Committed before the node joins: advertised at the join (the restart keeps the store).
    const y = blob('in the store before the join');
    await putBlob(b, y);
    const a2 = await a.restart();
    cleanups.push(() => a2.destroy());
    await putBlob(a2, y);
    const b2 = await b.restart();
    cleanups.push(() => b2.destroy());
    for (const d of [x, y]) {
      await waitFor(`after restarts, ${d.digest} is advertised by both`, async () => {
        const h = await holders(a2, d.digest);
        return sameSet(h.map((e) => e.node), d === x ? ['holder'] : ['holder', 'seeker']) && h.every((e) => e.complete);
      });
    }

    // Deleted from the served namespace: withdrawn.
    assert.equal((await api(a2, 'DELETE', `/v1/content/${y.digest}`)).status, 204);
    await waitFor('the deleted blob is withdrawn', async () => sameSet((await holders(b2, y.digest)).map((e) => e.node), ['seeker']));
    await Promise.all([a2.destroy(), b2.destroy()]);
  });

  test('progress is written at most every 250 ms per digest, the complete state at once', async () => {
    const prefix = newPrefix();
    const node = await startNode(prefix, 'fetcher');
    const fleet = fleetOf(node);
    const digest = blob('arriving slowly').digest;
    // What etcd records, watched by a client of its own.
    const client = new Etcd3({ hosts: bed.etcd.endpoint });
    cleanups.push(async () => client.close());
    const puts: Array<{ at: number; value: Json }> = [];
    const watcher = await client.watch().key(`${prefix}/blobs/${digest}/fetcher`).create();
    watcher.on('put', (kv) => puts.push({ at: Date.now(), value: JSON.parse(kv.value.toString()) }));

    const size = 1000;
    const t0 = Date.now();
    let offset = 0;
    // 1 s of progress reported every 10 ms (as a download's chunks arrive).
    while (Date.now() - t0 < 1000) {
      offset = Math.min(size - 1, offset + 5);
      fleet.advertise(digest, size, offset, false);
      await new Promise((r) => setTimeout(r, 10));
    }
    await waitFor('the progress reached etcd', () => puts.some((p) => p.value.offset === offset) || undefined, 2000);
    const partial = puts.length;
    assert.ok(partial >= 3 && partial <= 6, `${partial} progress writes in ~1 s (about one per 250 ms)`);
    for (let i = 1; i < puts.length; i++) {
      assert.ok(puts[i].at - puts[i - 1].at >= 150, `progress writes ${puts[i].at - puts[i - 1].at} ms apart`);
    }
    assert.ok(puts.every((p) => !p.value.complete && p.value.size === size));
    const holder = fleet.holders(digest)[0];
    assert.equal(holder?.complete, false, 'peers see a partial holder');

    // One more step of progress, written: a complete state right after it would wait ~250 ms if rate-limited.
    fleet.advertise(digest, size, size - 1, false);
    await waitFor('the last progress reached etcd', () => puts.at(-1)?.value.offset === size - 1 || undefined, 2000);
    const t1 = Date.now();
    fleet.advertise(digest, size, size, true);
    await waitFor('the complete state reached etcd', () => puts.at(-1)?.value.complete === true || undefined, 2000);
    assert.ok(puts.at(-1)!.at - t1 < 200, `written ${puts.at(-1)!.at - t1} ms after commit (not held by the rate limit)`);
    assert.deepEqual(puts.at(-1)!.value, { size, offset: size, complete: true });

    await fleet.withdraw(digest);
    assert.equal((await client.get(`${prefix}/blobs/${digest}/fetcher`).string()), null, 'withdrawn from etcd');
    await watcher.cancel();
    await node.destroy();
  });
});

describe('claims', { timeout: 60_000 }, () => {
  test('two nodes claim one digest at once: exactly one gets it; its release wakes the other, who can claim', async () => {
    const prefix = newPrefix();
    const [a, b] = await Promise.all([startNode(prefix, 'racer-a'), startNode(prefix, 'racer-b')]);
    // A node that has not joined (yet: a busy machine) claims alone, and every claim is its own.
    for (const node of [a, b]) await waitFor('the node has joined', async () => (await fleetExports(node)).state === 'joined');
    const digest = blob('wanted by two').digest;
    for (let round = 0; round < 5; round++) {
      const d = `${digest.slice(0, -1)}${round}`;
      const [ca, cb] = await Promise.all([fleetOf(a).claim(d), fleetOf(b).claim(d)]);
      const winners = [ca, cb].filter((c) => c.mine);
      assert.equal(winners.length, 1, `round ${round}: exactly one claim is mine (${JSON.stringify([ca, cb])})`);
      const [winner, loser, loserNode, winnerName] = ca.mine ? [ca, cb, b, 'racer-a'] : [cb, ca, a, 'racer-b'];
      assert.deepEqual(loser, { mine: false, holder: winnerName });
      const blobView = (await api(loserNode, 'GET', `/v1/fleet/blobs/${d}`)).json;
      assert.equal(blobView.claim, winnerName, 'the loser sees the claim at once (no waiting for the watch)');
      let woken = false;
      const released = fleetOf(loserNode).claimReleased(d).then(() => (woken = true));
      await new Promise((r) => setImmediate(r));
      assert.equal(woken, false, 'claimReleased waits while the claim is held');
      if (winner.mine) await winner.release();
      await released;
      const again = await fleetOf(loserNode).claim(d);
      assert.equal(again.mine, true, 'after the release the other node takes the claim');
      if (again.mine) await again.release();
    }
    // An aborted wait rejects with the signal's reason.
    const held = await fleetOf(a).claim(digest);
    assert.equal(held.mine, true);
    await waitFor('b sees the claim', () => fleetOf(b).claimOf(digest) === 'racer-a' || undefined);
    const abort = new AbortController();
    const waiting = fleetOf(b).claimReleased(digest, abort.signal);
    abort.abort(new Error('pull cancelled'));
    await assert.rejects(waiting, /pull cancelled/);
    await Promise.all([a.destroy(), b.destroy()]);
  });
});

describe('etcd unavailable', { timeout: 120_000 }, () => {
  test('etcd stopped: the node works alone, says why, keeps serving; etcd back (empty): it re-joins and re-advertises', async (t) => {
    const prefix = newPrefix();
    const [a, b] = await Promise.all([startNode(prefix, 'steady-a'), startNode(prefix, 'steady-b')]);
    const before = blob('held before etcd went away');
    await putBlob(a, before);
    await waitFor('b sees a\'s blob', async () => (await holders(b, before.digest)).length === 1);

    await bed.etcd.stop();
    try {
      const ex = await waitFor('a works alone', async () => {
        const e = await fleetExports(a);
        return e.state === 'alone' ? e : undefined;
      });
      assert.equal(ex.status, 'ok', 'the plugin stays ok: the node works');
      assert.ok(ex.reason && ex.reason.length > 0, 'with the reason');
      t.diagnostic(`alone because: ${ex.reason}`);
      assert.equal(ex.lease, undefined);
      // It keeps serving its API, alone: only itself in view, nobody's blobs, every claim its own.
      assert.equal((await fetch(`${a.url}/healthz`)).status, 200);
      assert.deepEqual(await names(a), ['steady-a']);
      assert.deepEqual(await holders(a, before.digest), []);
      const during = blob('committed while etcd was away');
      await putBlob(a, during);
      assert.equal((await api(a, 'GET', `/v1/content/${during.digest}/info`)).status, 200);
      // No wait for etcd: the answer comes before any I/O could (a request to etcd needs at least
      // a turn of the event loop; setImmediate runs after the next one).
      const claiming = fleetOf(a).claim(during.digest);
      const first = await Promise.race([claiming.then(() => 'the claim'), new Promise((resolve) => setImmediate(() => resolve('a turn of the event loop')))]);
      assert.equal(first, 'the claim', 'and costs no wait for etcd: answered before any I/O');
      const claim = await claiming;
      assert.equal(claim.mine, true, 'alone, a claim is the node\'s own');

      // etcd comes back with nothing (a lost cluster): lease, node record and advertisements are made again.
      await bed.etcd.start({ wipe: true });
      for (const node of [a, b]) await waitFor('re-joined', async () => (await fleetExports(node)).state === 'joined', 20_000);
      await waitFor('each sees both again', async () => sameSet(await names(b), ['steady-a', 'steady-b']) && sameSet(await names(a), ['steady-a', 'steady-b']));
      for (const d of [before, during]) {
        await waitFor(`b sees a's ${d === before ? 'earlier' : 'alone-time'} blob again`, async () => {
          const h = await holders(b, d.digest);
          return h.length === 1 && h[0].node === 'steady-a' && h[0].complete;
        });
      }
      assert.equal((await fleetExports(a)).reason, undefined);
    } finally {
      if (!(await fetch(`${bed.etcd.endpoint}/health`).then((r) => r.ok, () => false))) await bed.etcd.start();
    }
    await Promise.all([a.destroy(), b.destroy()]);
  });
  test('etcd restarted with its data: the node moves its keys to a new lease and revokes the old one', async () => {
    const prefix = newPrefix();
    // A long TTL: an old lease left to expire would keep its keys for a minute; only its revocation removes them sooner.
    const [a, b] = await Promise.all([startNode(prefix, 'keeper', { lease_ttl_s: 60 }), startNode(prefix, 'looker', { lease_ttl_s: 60 })]);
    const kept = blob('kept across the etcd restart');
    const dropped = blob('deleted while etcd was down');
    await putBlob(a, kept);
    await putBlob(a, dropped);
    for (const d of [kept, dropped]) await waitFor('b sees a\'s blobs', async () => (await holders(b, d.digest)).length === 1);
    const oldLease = (await fleetExports(a)).lease as string;

    await bed.etcd.stop();
    try {
      await waitFor('a works alone', async () => (await fleetExports(a)).state === 'alone');
      assert.equal((await api(a, 'DELETE', `/v1/content/${dropped.digest}`)).status, 204, 'withdrawn while alone: nothing written yet');
    } finally {
      await bed.etcd.start();
    }
    const newLease = await waitFor('a re-joins', async () => {
      const e = await fleetExports(a);
      return e.state === 'joined' ? (e.lease as string) : undefined;
    }, 20_000);
    assert.notEqual(newLease, oldLease, 'a new lease');
    await waitFor('b no longer sees the blob a deleted while alone (well before the old lease could expire)', async () => (await holders(b, dropped.digest)).length === 0, 30_000);
    await waitFor('b sees the kept blob', async () => (await holders(b, kept.digest)).length === 1);

    // In etcd: every key of a's is on its new lease; the old lease is gone.
    const client = new Etcd3({ hosts: bed.etcd.endpoint });
    try {
      const { kvs } = await client.getAll().prefix(`${prefix}/`).exec();
      const mine = kvs.filter((kv) => /\/keeper$/.test(kv.key.toString()));
      assert.deepEqual(mine.map((kv) => kv.key.toString()).sort(), [`${prefix}/blobs/${kept.digest}/keeper`, `${prefix}/nodes/keeper`].sort());
      for (const kv of mine) assert.equal(BigInt(kv.lease).toString(16), newLease, `${kv.key} is on the new lease`);
      const old = await client.leaseClient.leaseTimeToLive({ ID: BigInt(`0x${oldLease}`).toString() });
      assert.equal(old.TTL, '-1', 'the old lease was revoked');
    } finally {
      client.close();
    }
    await Promise.all([a.destroy(), b.destroy()]);
  });
});

describe('configuration', { timeout: 60_000 }, () => {
  test('a bad etcd_endpoints value is a start-up error naming it', async () => {
    // The scheme left out: a URL this is not.
    const plugins = { [fleetKey]: { etcd_endpoints: ['127.0.0.1:2379'], node_name: 'n', advertise_address: '127.0.0.1:5050' } };
    // Required: the server does not start, and says why.
    const dir = await mkdtemp(join(tmpdir(), 'berth-fleet-required-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await assert.rejects(
      startTestServer({ dir, config: { plugins, requiredPlugins: [fleetKey] } }),
      (err: Error) => /io\.berth\.service\.v1\.fleet/.test(err.message) && /etcd_endpoints: "127\.0\.0\.1:2379" is not an etcd URL/.test(err.message),
    );
    // Not required: the plugin is `error`, naming the value; the rest of the server runs.
    const server = await startTestServer({ config: { plugins } });
    cleanups.push(() => server.destroy());
    const ex = await fleetExports(server);
    assert.equal(ex.status, 'error');
    assert.match(ex.message, /etcd_endpoints: "127\.0\.0\.1:2379" is not an etcd URL \(expected http:\/\/HOST:PORT or https:\/\/HOST:PORT\)/);
    assert.equal((await api(server, 'GET', '/v1/fleet/nodes')).status, 501);
    await server.destroy();

    for (const [table, message] of [
      [{ etcd_endpoints: 'http://127.0.0.1:2379' }, /must be a list of URLs/],
      [{ etcd_endpoints: ['ftp://127.0.0.1:2379'] }, /unsupported scheme ftp:/],
      [{ etcd_endpoints: ['http://127.0.0.1:2379'], lease_ttl_s: 1 }, /lease_ttl_s 1 must be/],
      [{ etcd_endpoints: ['http://127.0.0.1:2379'], node_name: 'a/b' }, /node_name "a\/b"/],
      [{ etcd_endpoints: ['http://127.0.0.1:2379'], ttl: 3 }, /unknown key "ttl"/],
      // No registry listener and no advertise_address: no address to give peers.
      [{ etcd_endpoints: ['http://127.0.0.1:2379'] }, /advertise_address is required.*registry/],
    ] as Array<[Json, RegExp]>) {
      const s = await startTestServer({ config: { plugins: { [fleetKey]: table } } });
      try {
        const e = await fleetExports(s);
        assert.equal(e.status, 'error', JSON.stringify(table));
        assert.match(e.message, message);
      } finally {
        await s.destroy();
      }
    }
  });

  test('a second node with a name already in the fleet stays alone, saying why, and joins once the first has left', async () => {
    const prefix = newPrefix();
    const first = await startNode(prefix, 'twin', { lease_ttl_s: 10 });
    await waitFor('the first joined', async () => (await fleetExports(first)).state === 'joined');
    const second = await startNode(prefix, 'twin', { lease_ttl_s: 10 });
    const ex = await waitFor('the second works alone', async () => {
      const e = await fleetExports(second);
      return e.state === 'alone' && /taken/.test(e.reason ?? '') ? e : undefined;
    });
    assert.match(ex.reason, /node name "twin" is taken by another node \(127\.0\.0\.1:\d+, started \d{4}-/);
    const firstAddress = await registryAddress(first);
    const seen = (await api(first, 'GET', '/v1/fleet/nodes')).json.items;
    assert.deepEqual(seen.map((n: Json) => [n.name, n.address]), [['twin', firstAddress]], 'the first node\'s record is untouched');
    await first.destroy(); // a clean stop: its lease, and the record with it, go at once
    await waitFor('the second joins', async () => (await fleetExports(second)).state === 'joined', 15_000);
    assert.equal((await api(second, 'GET', '/v1/fleet/nodes')).json.items[0].address, await registryAddress(second));
    await second.destroy();
  });

  test('an unreachable etcd is no hang at start: the node starts alone, saying why', async () => {
    // An endpoint that accepts connections and never answers: the start waits for the first
    // request's deadline, not for etcd (a hang would be the test's timeout).
    const held: net.Socket[] = [];
    const blackhole = net.createServer((s) => void held.push(s));
    await new Promise<void>((resolve) => blackhole.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => {
      for (const s of held) s.destroy();
      blackhole.close(() => resolve());
    }));
    const port = (blackhole.address() as net.AddressInfo).port;
    const server = await startTestServer({
      config: {
        plugins: {
          [fleetKey]: { etcd_endpoints: [`http://127.0.0.1:${port}`], node_name: 'early', advertise_address: '127.0.0.1:5050', lease_ttl_s: TTL },
        },
      },
    });
    cleanups.push(() => server.destroy());
    const ex = await fleetExports(server);
    assert.equal(ex.status, 'ok');
    assert.equal(ex.state, 'alone');
    assert.match(ex.reason, new RegExp(`127\\.0\\.0\\.1:${port} did not answer within ${(TTL * 1000) / 2} ms \\(still trying\\)`), 'the reason names the endpoint and the deadline');
    assert.ok(held.length > 0, 'the node did dial the endpoint');
    assert.deepEqual((await api(server, 'GET', '/v1/fleet/nodes')).json.items.map((n: Json) => [n.name, n.address, n.self]), [
      ['early', '127.0.0.1:5050', true],
    ]);
    await server.destroy();
  });

  test('without etcd_endpoints the plugin is skipped, saying so, and the fleet routes answer 501', async () => {
    const server = await startTestServer();
    cleanups.push(() => server.destroy());
    const ex = await fleetExports(server);
    assert.equal(ex.status, 'skip');
    assert.equal(ex.message, 'no etcd_endpoints configured: this node works alone');
    for (const path of ['/v1/fleet/nodes', `/v1/fleet/blobs/${blob('x').digest}`]) {
      const r = await api(server, 'GET', path);
      assert.equal(r.status, 501, path);
      assert.equal(r.json.error.code, 'not_implemented');
      assert.match(r.json.error.message, /fleet unavailable: .*io\.berth\.service\.v1\.fleet.*no etcd_endpoints configured/);
    }
    await server.destroy();
  });

  test('the fleet initialises after the registry listener (both require `*`): the listener\'s address is known', () => {
    const order = initOrder(builtinPlugins).map((r) => pluginKey(r.type, r.id));
    assert.ok(order.indexOf(registryKey) < order.indexOf(fleetKey), order.join(' '));
    assert.equal(order.at(-1), fleetKey);
  });
});

describe('berth fleet (CLI)', { timeout: 120_000 }, () => {
  test('`berth fleet nodes` and `berth fleet where` show the fleet', async () => {
    const prefix = newPrefix();
    const [a, b] = await Promise.all([startNode(prefix, 'cli-a'), startNode(prefix, 'cli-b')]);
    const x = blob('looked up from the command line');
    await putBlob(a, x);
    await waitFor('b sees a\'s blob', async () => (await holders(b, x.digest)).length === 1);
    await waitFor('b sees both nodes', async () => sameSet(await names(b), ['cli-a', 'cli-b']));
    const berth = (...args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        const main = JSON.stringify(pathToFileURL(join(projectRoot, 'src', 'cli', 'main.ts')).href);
        const script = `import(${main}).then((m) => m.main(['node', 'berth', ...process.argv.slice(1)]))`;
        execFile(process.execPath, ['--import', 'tsx', '-e', script, '--', '--address', new URL(b.url).host, ...args], { cwd: projectRoot, timeout: 60_000 }, (err, stdout, stderr) =>
          resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
        );
      });
    // One after another: each is a Node process compiling the CLI.
    const nodes = await berth('fleet', 'nodes');
    const where = await berth('fleet', 'where', x.digest);
    const json = await berth('fleet', 'nodes', '--json');
    const none = await berth('fleet', 'where', blob('held by nobody').digest);
    assert.equal(nodes.code, 0, nodes.stderr);
    assert.equal(nodes.stderr, '', 'a joined node: no note about working alone');
    const lines = nodes.stdout.trim().split('\n');
    assert.match(lines[0], /^NAME\s+ADDRESS\s+STARTED\s+SELF$/);
    assert.match(lines[1], /^cli-a\s+127\.0\.0\.1:\d+\s+\d+ seconds? ago$/);
    assert.match(lines[2], /^cli-b\s+127\.0\.0\.1:\d+\s+\d+ seconds? ago\s+yes$/);
    assert.equal(where.code, 0, where.stderr);
    assert.match(where.stdout, /^NODE\s+ADDRESS\s+STATE\s+SIZE\ncli-a\s+127\.0\.0\.1:\d+\s+complete\s+31 B\n$/);
    assert.deepEqual(JSON.parse(json.stdout).map((n: Json) => n.name), ['cli-a', 'cli-b']);
    assert.equal(none.stdout, `no node of the fleet advertises ${blob('held by nobody').digest}\n`);
    const bad = await berth('fleet', 'where', 'sha256:zz');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /sha256:zz/);
    await Promise.all([a.destroy(), b.destroy()]);
  });
});
