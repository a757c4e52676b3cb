// Snapshots on a running server (reference §3.7, §5.5, §3.8):
//   * containerd's snapshotter conformance suite (test/fixtures/snapshotter-suite.ts) run against
//     the namespaced metadata layer (`SnapshotStore.bind`, one namespace per case) and over the
//     HTTP API (a small Snapshotter adapter below), for overlayfs and native;
//   * what only the API has: error kinds as statuses, namespaces that keep keys apart, the list
//     of snapshotters, the /snapshot/* events on the event stream;
//   * the `berth snapshots` commands and their output.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { ApiError, BerthClient } from '../src/client/http.js';
import { readSse } from '../src/cli/events.js';
import { BerthError, type ErrorCode } from '../store/errors.js';
import { metadataType, type Metadata } from '../src/plugins/metadata.js';
import type { Mount, SnapshotInfo, SnapshotOptions, Snapshotter, Usage } from '../src/snapshots/types.js';
import type { Labels } from '../src/oci/labels.js';
import { T } from './fixtures/content-suite.js';
import { snapshotterSuite } from './fixtures/snapshotter-suite.js';
import { startTestServer, type TestServer } from './fixtures/server.js';
import { berth, cliOk, expectApiError, listSnapshots, overlayUnsupported, snapshotPath, type SnapshotJson } from './fixtures/unpack.js';

const overlaySkip = await overlayUnsupported();
const backends = overlaySkip ? (['native'] as const) : (['overlayfs', 'native'] as const);

let server: TestServer;
let cases = 0;
const address = () => new URL(server.url).host;
const client = (namespace = 'default', lease?: string) => new BerthClient(address(), { namespace, lease });
const snapshotterRoot = (sn: string) => join(server.config.root, `io.berth.snapshotter.v1.${sn}`);

before(async () => {
  server = await startTestServer();
});
after(() => server?.destroy());

// ---------------------------------------------------------------------------------------------
// A Snapshotter over the HTTP API: what a remote client of berth sees.

/** The API's errors as the kinds they carry, so the suite's error checks apply unchanged. */
function asBerthError(err: unknown): unknown {
  if (err instanceof ApiError && err.status > 0) return new BerthError(err.code as ErrorCode, err.message, { cause: err });
  return err;
}

const infoOf = (j: SnapshotJson): SnapshotInfo => ({
  kind: j.kind,
  name: j.name,
  ...(j.parent ? { parent: j.parent } : {}),
  labels: j.labels,
  createdAt: new Date(j.createdAt),
  updatedAt: new Date(j.updatedAt),
});

class HttpSnapshotter implements Snapshotter {
  private closed = false;

  constructor(
    private readonly api: BerthClient,
    private readonly sn: string,
  ) {}

  private call<T>(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', parts: string[], json?: unknown, filter?: string[]): Promise<T> {
    return this.api.json<T>(method, snapshotPath(this.sn, ...parts), { json, query: { filter } }).catch((err: unknown) => {
      throw asBerthError(err);
    });
  }

  async stat(key: string): Promise<SnapshotInfo> {
    return infoOf(await this.call<SnapshotJson>('GET', [key]));
  }
  async update(info: { name: string; labels: Labels }, fieldpaths: string[] = []): Promise<SnapshotInfo> {
    return infoOf(await this.call<SnapshotJson>('PATCH', [info.name], { labels: info.labels, fieldpaths }));
  }
  usage(key: string): Promise<Usage> {
    return this.call<Usage>('GET', [key, 'usage']);
  }
  async mounts(key: string): Promise<Mount[]> {
    return (await this.call<{ mounts: Mount[] }>('GET', [key, 'mounts'])).mounts;
  }
  async prepare(key: string, parent: string, opts: SnapshotOptions = {}): Promise<Mount[]> {
    return (await this.call<{ mounts: Mount[] }>('POST', ['prepare'], { key, parent, labels: opts.labels })).mounts;
  }
  async view(key: string, parent: string, opts: SnapshotOptions = {}): Promise<Mount[]> {
    return (await this.call<{ mounts: Mount[] }>('POST', ['view'], { key, parent, labels: opts.labels })).mounts;
  }
  async commit(name: string, key: string, opts: SnapshotOptions = {}): Promise<void> {
    await this.call('POST', ['commit'], { name, key, labels: opts.labels, ...(opts.parent ? { parent: opts.parent } : {}) });
  }
  async remove(key: string): Promise<void> {
    await this.call('DELETE', [key]);
  }
  async walk(fn: (info: SnapshotInfo) => void | Promise<void>, filters: readonly string[] = []): Promise<void> {
    const { items } = await this.call<{ items: SnapshotJson[] }>('GET', [], undefined, [...filters]);
    for (const item of items) await fn(infoOf(item));
  }
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.api.close();
  }
}

// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------

// The suites, the API cases and the CLI case side by side: they wait on mounts, copies and child
// processes more than they compute.
describe('snapshots on a running server', { concurrency: 3 }, () => {
  // The conformance suite: each case in a namespace of its own on the one server.
  // 128LayersMount (30 s alone) runs once, on the metadata layer over the default backend: the
  // backends run it in test/snapshotters.test.ts, and over HTTP it adds only 256 more requests.
  describe('conformance', { concurrency: 4 }, () => {
    for (const sn of backends) {
      const once = sn === backends[0] ? {} : { skip: ['128LayersMount'] };
      // (Not `metadata/${sn}`: the suite names temporary folders after the suite.)
      snapshotterSuite(
        `metadata-${sn}`,
        async () => ({
          sn: server.plugins.get<Metadata>(metadataType).snapshots.bind({ namespace: `metadata-suite-${++cases}` }, sn),
          root: snapshotterRoot(sn),
        }),
        once,
      );
      snapshotterSuite(
        `http-${sn}`,
        async () => ({ sn: new HttpSnapshotter(client(`http-suite-${++cases}`), sn), root: snapshotterRoot(sn) }),
        { skip: ['128LayersMount'] },
      );
    }
    if (overlaySkip) test('overlayfs suites', { skip: overlaySkip }, () => undefined);
  });

  describe('the snapshots API', () => {
    test('an existing snapshot named again (its key, a commit name, or the target label) joins the lease, and 409', T, async () => {
      const ns = 'lease-join';
      const sn = backends[0];
      const c = client(ns);
      await c.json('POST', snapshotPath(sn, 'prepare'), { json: { key: 'layer-a' } });
      await c.json('POST', snapshotPath(sn, 'commit'), { json: { name: 'layer', key: 'layer-a' } });
      await c.json('POST', snapshotPath(sn, 'prepare'), { json: { key: 'work' } });
      await c.json('POST', '/v1/leases', { json: { id: 'holder' } });
      const leased = client(ns, 'holder');
      const resources = async () =>
        ((await c.json<{ items: Array<{ id: string; type: string }> }>('GET', '/v1/leases/holder/resources')).items)
          .filter((r) => r.type === `snapshots/${sn}`)
          .map((r) => r.id)
          .sort();
      // The target label (the unpacker's way of finding a layer unpacked before).
      await expectApiError(
        leased.json('POST', snapshotPath(sn, 'prepare'), { json: { key: 'extract-1 layer', labels: { 'containerd.io/snapshot.ref': 'layer' } } }),
        409,
        'already_exists',
        'prepare with an existing target',
        /target snapshot "layer"/,
      );
      assert.deepEqual(await resources(), ['layer']);
      await expectApiError(leased.json('POST', snapshotPath(sn, 'prepare'), { json: { key: 'work' } }), 409, 'already_exists', 'prepare of an existing key');
      assert.deepEqual(await resources(), ['layer', 'work']);
      await c.json('POST', snapshotPath(sn, 'prepare'), { json: { key: 'other-a' } });
      await expectApiError(
        leased.json('POST', snapshotPath(sn, 'commit'), { json: { name: 'layer', key: 'other-a' } }),
        409,
        'already_exists',
        'commit under an existing name',
      );
      assert.deepEqual(await resources(), ['layer', 'work']);
    });

    test('error kinds as statuses: 404, 409, 412, 400; a missing snapshotter is named', T, async () => {
      const c = client('errors');
      const sn = backends[0];
      const post = (how: string, json: unknown) => c.send('POST', snapshotPath(sn, how), { json });
      const prepared = await post('prepare', { key: 'base-a' });
      assert.equal(prepared.statusCode, 201);
      assert.equal(((await prepared.body.json()) as { mounts: Mount[] }).mounts.length, 1);
      const committed = await post('commit', { name: 'base', key: 'base-a' });
      assert.equal(committed.statusCode, 201);
      assert.equal(((await committed.body.json()) as SnapshotJson).kind, 'committed');
      await c.json('POST', snapshotPath(sn, 'prepare'), { json: { key: 'child', parent: 'base' } });
      await c.json('POST', snapshotPath(sn, 'view'), { json: { key: 'a-view', parent: 'base' } });

      await expectApiError(c.json('GET', snapshotPath(sn, 'nope')), 404, 'not_found', 'unknown key', /nope/);
      await expectApiError(c.json('GET', snapshotPath(sn, 'nope', 'mounts')), 404, 'not_found', 'mounts of an unknown key');
      await expectApiError(c.json('DELETE', snapshotPath(sn, 'nope')), 404, 'not_found', 'remove an unknown key');
      await expectApiError(post('prepare', { key: 'orphan', parent: 'no-such-parent' }), 404, 'not_found', 'unknown parent', /no-such-parent/);
      await expectApiError(post('commit', { name: 'x', key: 'no-such-key' }), 404, 'not_found', 'commit an unknown key');
      await expectApiError(post('prepare', { key: 'child', parent: 'base' }), 409, 'already_exists', 'duplicate key', /child/);
      await expectApiError(post('view', { key: 'base' }), 409, 'already_exists', 'a view named as a committed snapshot');
      await expectApiError(post('commit', { name: 'base', key: 'child' }), 409, 'already_exists', 'commit to an existing name');
      await expectApiError(c.json('DELETE', snapshotPath(sn, 'base')), 412, 'failed_precondition', 'remove with children', /child/);
      await expectApiError(c.json('GET', snapshotPath(sn, 'base', 'mounts')), 412, 'failed_precondition', 'mounts of a committed snapshot');
      await expectApiError(post('commit', { name: 'from-view', key: 'a-view' }), 412, 'failed_precondition', 'commit a view');
      await expectApiError(
        c.json('PATCH', snapshotPath(sn, 'base'), { json: { labels: {}, fieldpaths: ['parent'] } }),
        400,
        'invalid_argument',
        'a field path other than labels',
      );
      await expectApiError(post('prepare', { key: 'k2', colour: 'blue' }), 400, 'invalid_argument', 'an unknown body property');
      await expectApiError(post('prepare', { key: '' }), 400, 'invalid_argument', 'an empty key');
      await expectApiError(c.json('GET', snapshotPath('no-such-snapshotter')), 404, 'not_found', 'unknown snapshotter', /no-such-snapshotter/);
      await expectApiError(c.json('POST', snapshotPath('zfs', 'prepare'), { json: { key: 'x' } }), 404, 'not_found', 'prepare in an unknown snapshotter', /zfs/);

      // Nothing the refused requests named was made.
      assert.deepEqual((await listSnapshots(c, sn)).map((s) => s.name).sort(), ['a-view', 'base', 'child']);
      const del = await c.send('DELETE', snapshotPath(sn, 'child'));
      assert.equal(del.statusCode, 204);
      await del.body.dump();
    });

    test('namespaces keep keys apart: the same key in two namespaces are two snapshots', T, async () => {
      const sn = backends[0];
      const [a, b] = [client('ns-a'), client('ns-b')];
      const [ma, mb] = await Promise.all(
        [a, b].map((c, i) => c.json<{ mounts: Mount[] }>('POST', snapshotPath(sn, 'prepare'), { json: { key: 'same', labels: { owner: `ns-${i}` } } })),
      );
      assert.notDeepEqual(ma.mounts, mb.mounts, 'two file systems');
      await writeFile(join(ma.mounts[0].source, 'only-in-a'), 'a');
      assert.equal((await a.json<SnapshotJson>('GET', snapshotPath(sn, 'same'))).labels.owner, 'ns-0');
      assert.equal((await b.json<SnapshotJson>('GET', snapshotPath(sn, 'same'))).labels.owner, 'ns-1');
      await a.json('POST', snapshotPath(sn, 'commit'), { json: { name: 'a-only', key: 'same' } });
      assert.deepEqual((await listSnapshots(a, sn)).map((s) => s.name), ['a-only']);
      assert.deepEqual((await listSnapshots(b, sn)).map((s) => s.name), ['same']);
      await expectApiError(b.json('GET', snapshotPath(sn, 'a-only')), 404, 'not_found', 'another namespace\'s snapshot');
      await expectApiError(b.json('POST', snapshotPath(sn, 'prepare'), { json: { key: 'x', parent: 'a-only' } }), 404, 'not_found', 'a parent from another namespace');
      await b.json('DELETE', snapshotPath(sn, 'same'));
      assert.equal((await a.json<SnapshotJson>('GET', snapshotPath(sn, 'a-only'))).kind, 'committed', 'removing b\'s leaves a\'s');
    });

    test('/v1/snapshotters lists the loaded snapshotters and the default', T, async () => {
      const { items } = await client().json<{ items: Array<{ name: string; default: boolean }> }>('GET', '/v1/snapshotters');
      const want = overlaySkip ? [{ name: 'native', default: true }] : [{ name: 'overlayfs', default: true }, { name: 'native', default: false }];
      assert.deepEqual([...items].sort((x, y) => x.name.localeCompare(y.name)), [...want].sort((x, y) => x.name.localeCompare(y.name)));
    });

    test('prepare, commit and remove publish /snapshot/prepare, /snapshot/commit, /snapshot/remove on the event stream', T, async () => {
      const sn = backends[0];
      const c = client('events');
      const abort = new AbortController();
      const res = await client().send('GET', '/v1/events', { query: { filter: ['topic~="^/snapshot/",namespace==events'] }, signal: abort.signal });
      const seen: Array<{ topic: string; namespace: string; event: Record<string, unknown> }> = [];
      const reading = readSse(res.body, (_event, data) => void seen.push(JSON.parse(data))).catch(() => undefined);
      try {
        await c.json('POST', snapshotPath(sn, 'prepare'), { json: { key: 'ev-a' } });
        await c.json('POST', snapshotPath(sn, 'commit'), { json: { name: 'ev', key: 'ev-a' } });
        await c.json('DELETE', snapshotPath(sn, 'ev'));
        const deadline = Date.now() + 10_000;
        while (seen.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      } finally {
        abort.abort();
        await reading;
      }
      assert.deepEqual(
        seen.map((e) => [e.topic, e.namespace, e.event]),
        [
          ['/snapshot/prepare', 'events', { key: 'ev-a', parent: '', snapshotter: sn }],
          ['/snapshot/commit', 'events', { key: 'ev-a', name: 'ev', snapshotter: sn }],
          ['/snapshot/remove', 'events', { key: 'ev', snapshotter: sn }],
        ],
      );
    });
  });

  describe('berth snapshots', () => {
    test('prepare, view, commit, label, ls, tree, info, usage, mounts, rm: what each prints', T, async () => {
      const ns = 'cli';
      const sn = backends[0];
      const c = client(ns);
      const cli = (...args: string[]) => berth(address(), ['-n', ns, 'snapshots', ...args]);
      // A committed base with a file in it, made through the API.
      const { mounts } = await c.json<{ mounts: Mount[] }>('POST', snapshotPath(sn, 'prepare'), { json: { key: 'base-a' } });
      await writeFile(join(mounts[0].source, 'data.bin'), Buffer.alloc(40_000, 7));
      await c.json('POST', snapshotPath(sn, 'prepare'), { json: { key: 'to-commit' } });

      const [committedBase, commit, nativePrepared] = await Promise.all([
        cli('commit', 'base', 'base-a', '--label', 'team=storage', '--label', 'tier=1'),
        cli('commit', 'committed-2', 'to-commit'),
        cli('--snapshotter', 'native', 'prepare', 'native-one', '--json'),
      ]);
      assert.equal(cliOk(committedBase, 'commit').trim(), 'base');
      assert.equal(cliOk(commit, 'commit committed-2').trim(), 'committed-2');
      const nativeMounts = JSON.parse(cliOk(nativePrepared, 'prepare --snapshotter native --json')) as Mount[];
      assert.equal(nativeMounts[0].type, 'bind');
      assert.equal((await c.json<SnapshotJson>('GET', snapshotPath('native', 'native-one'))).kind, 'active');

      const [prepared, viewed, labelled] = await Promise.all([
        cli('prepare', 'child', 'base'),
        cli('view', 'a-view', 'base', '--target', '/mnt/x'),
        cli('label', 'base', 'team=', 'owner=me'),
      ]);
      const mountLines = (ms: Mount[], target: string) => ms.map((m) => `mount -t ${m.type} ${m.source} ${target} -o ${m.options.join(',')}`).join('\n');
      const childMounts = (await c.json<{ mounts: Mount[] }>('GET', snapshotPath(sn, 'child', 'mounts'))).mounts;
      const childOut = cliOk(prepared, 'prepare child').trim();
      assert.equal(childOut, mountLines(childMounts, '/tmp/mnt'));
      assert.match(childOut, sn === 'overlayfs' ? /^mount -t overlay overlay \/tmp\/mnt -o .*upperdir=.*lowerdir=/ : /^mount -t bind \S+ \/tmp\/mnt -o rbind,rw$/);
      const viewMounts = (await c.json<{ mounts: Mount[] }>('GET', snapshotPath(sn, 'a-view', 'mounts'))).mounts;
      assert.equal(cliOk(viewed, 'view').trim(), mountLines(viewMounts, '/mnt/x'));
      assert.ok(viewMounts[0].options.includes('ro'), 'a view mounts read-only');
      assert.deepEqual(cliOk(labelled, 'label').trim().split(',').sort(), ['owner=me', 'tier=1']);

      const [ls, quiet, tree, info, usage, mountsOut] = await Promise.all([
        cli('ls'),
        cli('ls', '-q', '--filter', 'kind==committed'),
        cli('tree'),
        cli('info', 'base'),
        cli('usage', 'base', '--json'),
        cli('mounts', '/target', 'child'),
      ]);
      const [header, ...rows] = cliOk(ls, 'ls').trimEnd().split('\n');
      assert.match(header, /^KEY\s+PARENT\s+KIND\s+CREATED$/);
      const col = (name: string) => header.indexOf(name);
      const cell = (row: string, from: string, to: string) => row.slice(col(from), col(to)).trim();
      assert.deepEqual(
        rows.map((r) => [cell(r, 'KEY', 'PARENT'), cell(r, 'PARENT', 'KIND'), cell(r, 'KIND', 'CREATED')]),
        [
          ['a-view', 'base', 'view'],
          ['base', '', 'committed'],
          ['child', 'base', 'active'],
          ['committed-2', '', 'committed'],
        ],
      );
      assert.deepEqual(cliOk(quiet, 'ls -q').trim().split('\n'), ['base', 'committed-2']);
      assert.equal(
        cliOk(tree, 'tree'),
        ['\\_ base (committed)', '   \\_ a-view (view)', '   \\_ child (active)', '\\_ committed-2 (committed)', ''].join('\n'),
      );
      const infoJson = JSON.parse(cliOk(info, 'info')) as SnapshotJson;
      assert.deepEqual([infoJson.name, infoJson.kind, infoJson.labels], ['base', 'committed', { tier: '1', owner: 'me' }]);
      const [u] = JSON.parse(cliOk(usage, 'usage')) as Array<{ key: string; size: number; inodes: number }>;
      assert.equal(u.key, 'base');
      assert.ok(u.size >= 40_000 && u.inodes >= 1, `usage of base: ${JSON.stringify(u)}`);
      assert.equal(cliOk(mountsOut, 'mounts').trim(), mountLines(childMounts, '/target'));

      const refused = await cli('rm', 'base');
      assert.notEqual(refused.code, 0, 'a snapshot with a child is not removed');
      assert.match(refused.stderr, /base.*child|child.*base/);
      assert.deepEqual(cliOk(await cli('rm', 'child', 'a-view', 'base'), 'rm').trim().split('\n'), ['child', 'a-view', 'base']);
      assert.deepEqual((await listSnapshots(c, sn)).map((s) => s.name), ['committed-2']);
    });
  });
});
