// Containers and tasks over HTTP, with real runc, real overlayfs mounts and a busybox image pushed
// to a real registry and pulled by the server: the OCI spec as containerd builds it, the process
// it describes (env, cwd, args, user), signals and exit codes (collected even when nobody waits),
// task events, one writable layer per container, refusals that leave nothing behind, clean-up
// down to the GC of the snapshot, and tasks found again after a server restart.
//
// Everything runs in a namespace of its own (so the cgroups `/<ns>/<id>` of these containers
// cannot meet another test's), and every container, mount and runc container is removed in
// t.after / after, even when a test fails.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

import type { BerthEvent } from '../src/events/bus.js';
import { mountAll, unmountAll } from '../src/snapshots/mount.js';
import type { Mount } from '../src/snapshots/types.js';
import { busyboxConfig, busyboxLayer } from './fixtures/busybox.js';
import { buildImage, pushImage, type Image } from './fixtures/images.js';
import { startRegistry, type Registry } from './fixtures/registry.js';
import { removeRuntimeLeftovers } from './fixtures/runtime.js';
import { startTestServer, type TestServer } from './fixtures/server.js';
import { mountPoints, until } from './fixtures/unpack.js';

const execFileAsync = promisify(execFile);

const NS = `ctr-${process.pid}`;
const RUNC = 'runc';
const SNAPSHOTTER = 'overlayfs';

interface Reply {
  status: number;
  text: string;
  json: any;
}

describe('containers and tasks (HTTP, runc)', { timeout: 120_000 }, () => {
  let registry: Registry;
  let server: TestServer;
  let dir: string;
  let busybox: Image;
  /** The busybox image's name in the namespace (pulled and unpacked before the tests). */
  let imageName: string;
  /** An image with an Entrypoint, pushed but not pulled: containers unpack it themselves. */
  let entryRef: string;
  const made = new Set<string>();

  const runtimeState = () => join(dir, 'state', 'io.berth.runtime.v1.runc');
  const bundleOf = (id: string) => join(runtimeState(), 'tasks', NS, id);
  const runcRoot = () => join(runtimeState(), 'runc', NS);

  async function api(method: string, path: string, body?: unknown): Promise<Reply> {
    const res = await fetch(server.url + path, {
      method,
      headers: { 'berth-namespace': NS, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.status, text, json };
  }

  function expectStatus(r: Reply, status: number, what: string): Reply {
    assert.equal(r.status, status, `${what}: ${r.status} ${r.text}`);
    return r;
  }

  async function createContainer(id: string, extra: Record<string, unknown> = {}): Promise<Reply> {
    made.add(id);
    return expectStatus(await api('POST', '/v1/containers', { id, image: imageName, ...extra }), 201, `create container ${id}`);
  }

  async function startTask(id: string): Promise<{ pid: number; status: string }> {
    return expectStatus(await api('POST', `/v1/containers/${id}/task`), 201, `start task ${id}`).json;
  }

  async function waitTask(id: string): Promise<number> {
    return expectStatus(await api('GET', `/v1/containers/${id}/task/wait`), 200, `wait ${id}`).json.exitCode;
  }

  const logsOf = async (id: string, stream = 'stdout') =>
    expectStatus(await api('GET', `/v1/containers/${id}/task/logs?stream=${stream}`), 200, `logs of ${id}`).text;

  /** The task killed and deleted, then the container: whatever of it exists. */
  async function removeContainer(id: string): Promise<void> {
    const task = await api('GET', `/v1/containers/${id}/task`).catch(() => undefined);
    if (task?.status === 200) {
      if (task.json.status !== 'stopped') {
        await api('POST', `/v1/containers/${id}/task/kill`, { signal: 'SIGKILL', all: true }).catch(() => undefined);
        await api('GET', `/v1/containers/${id}/task/wait`).catch(() => undefined);
      }
      await api('DELETE', `/v1/containers/${id}/task`).catch(() => undefined);
    }
    await api('DELETE', `/v1/containers/${id}`).catch(() => undefined);
    made.delete(id);
  }

  const cleanUp = (t: TestContext, ...ids: string[]) => t.after(async () => {
    for (const id of ids) await removeContainer(id);
  });

  async function runcIds(): Promise<string[]> {
    const { stdout } = await execFileAsync(RUNC, ['--root', runcRoot(), 'list', '--quiet']);
    return stdout.split('\n').filter(Boolean);
  }

  const mountsUnder = (path: string) => mountPoints((p) => p === path || p.startsWith(`${path}/`));

  /** No runc container, no bundle, nothing mounted: what a deleted (or never made) task leaves. */
  async function assertNoTaskLeft(id: string): Promise<void> {
    assert.equal((await runcIds()).includes(id), false, `no runc container ${id}`);
    assert.equal(existsSync(bundleOf(id)), false, `no bundle ${bundleOf(id)}`);
    assert.deepEqual(await mountsUnder(bundleOf(id)), [], `nothing mounted in the bundle of ${id}`);
  }

  /** The folder of a container's snapshot in the overlayfs root (its upperdir's parent). */
  async function snapshotFolder(key: string): Promise<string> {
    const r = expectStatus(await api('GET', `/v1/snapshotters/${SNAPSHOTTER}/snapshots/${key}/mounts`), 200, `mounts of ${key}`);
    const upper = (r.json.mounts as Mount[]).flatMap((m) => m.options).find((o) => o.startsWith('upperdir='));
    assert.ok(upper, `an overlay upperdir for ${key}: ${r.text}`);
    return dirname(upper.slice('upperdir='.length));
  }

  async function snapshotNames(): Promise<string[]> {
    const r = expectStatus(await api('GET', `/v1/snapshotters/${SNAPSHOTTER}/snapshots`), 200, 'list snapshots');
    return (r.json.items as Array<{ name: string }>).map((s) => s.name);
  }

  /** The events of GET /v1/events matching `filter`, as they come. */
  async function subscribe(filter: string): Promise<{ events: BerthEvent[]; close(): void }> {
    const ac = new AbortController();
    const res = await fetch(`${server.url}/v1/events?filter=${encodeURIComponent(filter)}`, { signal: ac.signal });
    assert.equal(res.status, 200, `subscribe ${filter}`);
    const events: BerthEvent[] = [];
    void (async () => {
      const decoder = new TextDecoder();
      let buffered = '';
      for await (const chunk of res.body!) {
        buffered += decoder.decode(chunk as Uint8Array, { stream: true });
        for (let end = buffered.indexOf('\n\n'); end >= 0; end = buffered.indexOf('\n\n')) {
          const data = buffered.slice(0, end).split('\n').find((l) => l.startsWith('data: '));
          buffered = buffered.slice(end + 2);
          if (data) events.push(JSON.parse(data.slice('data: '.length)) as BerthEvent);
        }
      }
    })().catch(() => undefined); // aborted
    return { events, close: () => ac.abort() };
  }

  before(async () => {
    registry = await startRegistry();
    busybox = buildImage({ layers: [busyboxLayer()], config: { config: busyboxConfig } });
    const entry = buildImage({
      layers: [busyboxLayer()],
      config: { config: { ...busyboxConfig, Entrypoint: ['/bin/echo', 'entry'], Cmd: ['default'] } },
    });
    const [pushed, pushedEntry] = await Promise.all([
      pushImage(registry.url, 'ctr/busybox', 'v1', busybox),
      pushImage(registry.url, 'ctr/entry', 'v1', entry),
    ]);
    entryRef = pushedEntry.reference;
    dir = await mkdtemp(join(tmpdir(), 'berth-ctr-test-'));
    server = await startTestServer({ dir });
    const pull = expectStatus(await api('POST', '/v1/pulls?wait=true', { ref: pushed.reference, unpack: true }), 200, 'pull');
    assert.equal(pull.json.state, 'done', pull.text);
    imageName = pull.json.image;
  });

  after(async () => {
    for (const id of [...made]) await removeContainer(id).catch(() => undefined);
    await server?.close();
    if (dir) {
      await removeRuntimeLeftovers({ state: runtimeState(), namespace: NS, mountsUnder: dir });
      await rm(dir, { recursive: true, force: true });
    }
    await registry?.stop();
  });

  test('the spec: containerd defaults, then the image config, then the request', async (t) => {
    cleanUp(t, 'spec-req', 'spec-plain', 'spec-entry', 'spec-entry-cmd');
    const c = (
      await createContainer('spec-req', {
        args: ['sh', '-c', 'true'],
        env: ['GREETING=bye', 'EXTRA=1'],
        cwd: '/tmp',
        user: 'app',
        labels: { role: 'spec' },
      })
    ).json;
    assert.equal(c.image, imageName);
    assert.deepEqual(c.runtime, { name: 'io.containerd.runc.v2' });
    assert.equal(c.snapshotter, SNAPSHOTTER);
    assert.equal(c.snapshotKey, 'spec-req');
    assert.deepEqual(c.labels, { role: 'spec' });

    const got = expectStatus(await api('GET', '/v1/containers/spec-req'), 200, 'get container').json;
    assert.deepEqual(got, c, 'GET answers what create did');
    const spec = got.spec;
    assert.deepEqual(spec.root, { path: 'rootfs', readonly: false });
    assert.deepEqual(
      spec.linux.namespaces.map((n: { type: string }) => n.type),
      ['pid', 'ipc', 'uts', 'mount', 'network'],
    );
    assert.deepEqual(spec.linux.maskedPaths, [
      '/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
      '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/sys/devices/virtual/powercap', '/proc/scsi',
    ]);
    assert.deepEqual(spec.linux.readonlyPaths, ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger']);
    const caps = [
      'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
      'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
    ];
    assert.deepEqual(spec.process.capabilities, { bounding: caps, permitted: caps, effective: caps });
    assert.equal(spec.process.noNewPrivileges, true);
    assert.equal(spec.linux.cgroupsPath, `/${NS}/spec-req`);
    assert.deepEqual(
      spec.mounts.map((m: { destination: string }) => m.destination),
      ['/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys', '/run'],
    );
    // The request's env wins over the image's (GREETING replaced in place, EXTRA appended).
    assert.deepEqual(spec.process.args, ['sh', '-c', 'true']);
    assert.deepEqual(spec.process.env, [busyboxConfig.Env![0], 'GREETING=bye', 'EXTRA=1']);
    assert.equal(spec.process.cwd, '/tmp');
    assert.deepEqual(spec.process.user, { uid: 1000, gid: 1000, additionalGids: [1000, 2000] });

    // Nothing asked but a removal: the image's Cmd, Env (less GREETING) and WorkingDir, root.
    const plain = (await createContainer('spec-plain', { env: ['GREETING'] })).json.spec;
    assert.deepEqual(plain.process.args, ['sh']);
    assert.deepEqual(plain.process.env, [busyboxConfig.Env![0]]);
    assert.equal(plain.process.cwd, '/home/app');
    assert.deepEqual(plain.process.user, { uid: 0, gid: 0, additionalGids: [0] });
    assert.equal(plain.linux.cgroupsPath, `/${NS}/spec-plain`);

    // The container's snapshot: active, on the image's top chainID (one layer: its diffID).
    const snap = expectStatus(await api('GET', `/v1/snapshotters/${SNAPSHOTTER}/snapshots/spec-req`), 200, 'snapshot').json;
    assert.equal(snap.kind, 'active');
    assert.equal(snap.parent, busybox.layers[0].diffID);

    // An image pulled without unpacking is unpacked by the container create; args follow the
    // Entrypoint, which stays.
    const pulled = expectStatus(await api('POST', '/v1/pulls?wait=true', { ref: entryRef }), 200, 'pull without unpack');
    assert.equal(pulled.json.state, 'done', pulled.text);
    made.add('spec-entry');
    const entry = expectStatus(
      await api('POST', '/v1/containers', { id: 'spec-entry', image: pulled.json.image, args: ['a', 'b'] }),
      201,
      'create from a packed image',
    ).json;
    assert.deepEqual(entry.spec.process.args, ['/bin/echo', 'entry', 'a', 'b']);
    made.add('spec-entry-cmd');
    const entryCmd = expectStatus(
      await api('POST', '/v1/containers', { id: 'spec-entry-cmd', image: pulled.json.image }),
      201,
      'create without args',
    ).json;
    assert.deepEqual(entryCmd.spec.process.args, ['/bin/echo', 'entry', 'default']);
    await startTask('spec-entry');
    assert.equal(await waitTask('spec-entry'), 0);
    assert.equal(await logsOf('spec-entry'), 'entry a b\n');

    const listed = expectStatus(await api('GET', `/v1/containers?filter=${encodeURIComponent('labels.role==spec')}`), 200, 'list').json;
    assert.deepEqual(listed.items.map((x: { id: string }) => x.id), ['spec-req']);
  });

  test('a task runs the spec\'s process: env, cwd, user and groups; output in its logs', async (t) => {
    cleanUp(t, 'proc');
    await createContainer('proc', {
      args: ['sh', '-c', 'env; pwd; id; echo oops >&2'],
      env: ['K=V'],
      user: 'app',
    });
    const started = await startTask('proc');
    assert.ok(started.pid > 0, 'a pid');
    assert.equal(await waitTask('proc'), 0);
    const out = await logsOf('proc');
    assert.match(out, /^GREETING=hello$/m);
    assert.match(out, /^PATH=\/usr\/local\/sbin:\/usr\/local\/bin:\/usr\/sbin:\/usr\/bin:\/sbin:\/bin$/m);
    assert.match(out, /^K=V$/m);
    assert.match(out, /^\/home\/app$/m);
    assert.match(out, /^uid=1000\(app\) gid=1000\(app\) groups=1000\(app\),2000\(extra\)$/m);
    assert.equal(await logsOf('proc', 'stderr'), 'oops\n');
    const task = expectStatus(await api('GET', '/v1/containers/proc/task'), 200, 'get task').json;
    assert.equal(task.status, 'stopped');
    assert.equal(task.exitCode, 0);
    assert.ok(Date.parse(task.exitedAt) >= Date.parse(task.startedAt), `exitedAt ${task.exitedAt} >= startedAt ${task.startedAt}`);
  });

  test('signals: SIGKILL → 137, SIGTERM to an init that handles it → 143; status, wait and events', async (t) => {
    cleanUp(t, 'sleeper', 'trapper');
    const sub = await subscribe(`topic~="^/tasks/",namespace=="${NS}"`);
    t.after(() => sub.close());
    await createContainer('sleeper', { args: ['sleep', '1000'] });
    // A container's init (pid 1 of its pid namespace) gets only the signals it has a handler for
    // (SIGKILL aside), as in containerd: this one forwards SIGTERM to its child, which dies by it.
    await createContainer('trapper', {
      args: ['sh', '-c', 'sleep 1000 & c=$!; trap "kill -TERM $c" TERM; echo ready; wait $c; wait $c'],
    });
    const sleeper = await startTask('sleeper');
    const trapper = await startTask('trapper');

    const running = expectStatus(await api('GET', '/v1/containers/sleeper/task'), 200, 'get running task').json;
    assert.equal(running.status, 'running');
    assert.equal(running.pid, sleeper.pid);
    assert.equal(running.exitCode, undefined);
    assert.ok(existsSync(`/proc/${sleeper.pid}`), 'the pid is a live process');
    const listed = expectStatus(await api('GET', '/v1/tasks'), 200, 'list tasks').json.items;
    assert.deepEqual(
      listed.map((x: { id: string; status: string }) => `${x.id} ${x.status}`),
      ['sleeper running', 'trapper running'],
    );
    expectStatus(await api('DELETE', '/v1/containers/sleeper'), 412, 'delete a container with a live task');
    expectStatus(await api('DELETE', '/v1/containers/sleeper/task'), 412, 'delete a running task');
    expectStatus(await api('POST', '/v1/containers/sleeper/task'), 409, 'a second task');

    // `sleep` as pid 1 has no handler: SIGTERM does nothing (so does containerd); SIGKILL ends it.
    expectStatus(await api('POST', '/v1/containers/sleeper/task/kill', { signal: 'SIGTERM' }), 204, 'SIGTERM');
    await sleep(300);
    assert.equal((await api('GET', '/v1/containers/sleeper/task')).json.status, 'running', 'pid 1 ignores an unhandled SIGTERM');
    expectStatus(await api('POST', '/v1/containers/sleeper/task/kill', { signal: 'SIGKILL' }), 204, 'SIGKILL');
    assert.equal(await waitTask('sleeper'), 137);
    const stopped = expectStatus(await api('GET', '/v1/containers/sleeper/task'), 200, 'get stopped task').json;
    assert.equal(stopped.status, 'stopped');
    assert.equal(stopped.exitCode, 137);
    assert.equal(stopped.pid, sleeper.pid);
    assert.ok(stopped.exitedAt, 'exitedAt');

    await until('the trapper to install its trap', async () => (await logsOf('trapper')) === 'ready\n');
    expectStatus(await api('POST', '/v1/containers/trapper/task/kill', { signal: 15 }), 204, 'SIGTERM by number');
    assert.equal(await waitTask('trapper'), 143);
    expectStatus(await api('POST', '/v1/containers/trapper/task/kill', { signal: 'SIGKILL' }), 404, 'kill of an exited task');
    expectStatus(await api('POST', '/v1/containers/trapper/task/kill', { signal: 'SIGNOPE' }), 400, 'an unknown signal');

    assert.deepEqual(expectStatus(await api('DELETE', '/v1/containers/sleeper/task'), 200, 'delete task').json.exitCode, 137);
    assert.deepEqual(expectStatus(await api('DELETE', '/v1/containers/trapper/task'), 200, 'delete task').json.exitCode, 143);

    await until('all eight task events', () => sub.events.length >= 8);
    for (const [id, pid, code] of [['sleeper', sleeper.pid, 137], ['trapper', trapper.pid, 143]] as const) {
      const mine = sub.events.filter((e) => e.event.containerId === id);
      assert.deepEqual(mine.map((e) => e.topic), ['/tasks/create', '/tasks/start', '/tasks/exit', '/tasks/delete'], `events of ${id}`);
      assert.ok(mine.every((e) => e.namespace === NS));
      assert.equal(mine[0].event.pid, pid);
      assert.equal(mine[1].event.pid, pid);
      assert.equal(mine[2].event.exitStatus, code);
      assert.equal(mine[3].event.exitStatus, code);
    }
  });

  test('an exit code is kept when nobody waits', async (t) => {
    cleanUp(t, 'exit3');
    await createContainer('exit3', { args: ['sh', '-c', 'exit 3'] });
    const { pid } = await startTask('exit3');
    // The shim writes the exit file whether or not berth asks; only then does anyone look.
    await until('the process to be gone', () => !existsSync(`/proc/${pid}`));
    await until('the exit file', () => existsSync(join(bundleOf('exit3'), 'exit')));
    assert.equal(await waitTask('exit3'), 3);
    const task = expectStatus(await api('GET', '/v1/containers/exit3/task'), 200, 'get task').json;
    assert.equal(task.status, 'stopped');
    assert.equal(task.exitCode, 3);
    assert.deepEqual(
      expectStatus(await api('GET', '/v1/tasks'), 200, 'list').json.items.map((x: { id: string; exitCode?: number }) => `${x.id} ${x.exitCode}`),
      ['exit3 3'],
    );
    const kill = expectStatus(await api('POST', '/v1/containers/exit3/task/kill', { signal: 'SIGTERM' }), 404, 'kill of an exited task');
    assert.match(kill.json.error.message, /process already finished/);
    assert.equal(expectStatus(await api('DELETE', '/v1/containers/exit3/task'), 200, 'delete task').json.exitCode, 3);
    const none = expectStatus(await api('GET', '/v1/containers/exit3/task'), 404, 'the task after delete');
    assert.match(none.json.error.message, /exit3/);
    expectStatus(await api('GET', '/v1/containers/exit3/task/wait'), 404, 'wait after delete');
    await assertNoTaskLeft('exit3');
  });

  test('two containers of one image, at once, each with its own writable layer', async (t) => {
    cleanUp(t, 'layer-a', 'layer-b', 'layer-c');
    await createContainer('layer-a', { args: ['sh', '-c', 'echo a > /tmp/f; echo written; sleep 1000'] });
    await createContainer('layer-b', { args: ['sh', '-c', 'echo b > /tmp/f; echo written; sleep 1000'] });
    await startTask('layer-a');
    await startTask('layer-b');
    await until('both to write /tmp/f', async () => (await logsOf('layer-a')) === 'written\n' && (await logsOf('layer-b')) === 'written\n');
    // Each write landed in its own container's upper layer, on the host.
    const [folderA, folderB] = await Promise.all([snapshotFolder('layer-a'), snapshotFolder('layer-b')]);
    assert.notEqual(folderA, folderB);
    assert.equal(await readFile(join(folderA, 'fs', 'tmp', 'f'), 'utf8'), 'a\n');
    assert.equal(await readFile(join(folderB, 'fs', 'tmp', 'f'), 'utf8'), 'b\n');

    // A third container sees the image as it was: no /tmp/f.
    await createContainer('layer-c', { args: ['sh', '-c', 'cat /tmp/f || echo absent'] });
    await startTask('layer-c');
    assert.equal(await waitTask('layer-c'), 0);
    assert.equal(await logsOf('layer-c'), 'absent\n');

    // And the committed snapshot under them all, mounted as a view, has no /tmp/f either.
    const parent = expectStatus(await api('GET', `/v1/snapshotters/${SNAPSHOTTER}/snapshots/layer-a`), 200, 'snapshot').json.parent;
    const viewKey = `view-${process.pid}`;
    const view = expectStatus(
      await api('POST', `/v1/snapshotters/${SNAPSHOTTER}/snapshots/view`, { key: viewKey, parent }),
      201,
      'view of the image',
    ).json;
    const target = await mkdtemp(join(tmpdir(), 'berth-ctr-view-'));
    t.after(async () => {
      await unmountAll(target);
      await rm(target, { recursive: true, force: true });
      await api('DELETE', `/v1/snapshotters/${SNAPSHOTTER}/snapshots/${viewKey}`);
    });
    await mountAll(view.mounts, target);
    assert.ok(existsSync(join(target, 'bin', 'busybox')), 'the view shows the image');
    assert.equal(existsSync(join(target, 'tmp', 'f')), false, 'the image has no /tmp/f');
    await unmountAll(target);
  });

  test('deleting the task and the container leaves no mount, bundle or runc state; GC frees the snapshot', async (t) => {
    cleanUp(t, 'gone', 'kept');
    await createContainer('gone', { args: ['sleep', '1000'] });
    await startTask('gone');
    const folder = await snapshotFolder('gone');
    // While it runs: a runc container, a bundle, the rootfs mounted in it.
    assert.ok((await runcIds()).includes('gone'), 'runc knows the container');
    assert.ok(existsSync(join(bundleOf('gone'), 'config.json')), 'the bundle');
    assert.deepEqual(await mountsUnder(join(bundleOf('gone'), 'rootfs')), [join(bundleOf('gone'), 'rootfs')], 'the rootfs mount');

    expectStatus(await api('POST', '/v1/containers/gone/task/kill', { signal: 'SIGKILL' }), 204, 'kill');
    assert.equal(await waitTask('gone'), 137);
    expectStatus(await api('DELETE', '/v1/containers/gone/task'), 200, 'delete task');
    await assertNoTaskLeft('gone');
    assert.ok(existsSync(folder), 'the container\'s snapshot stays with the container');

    expectStatus(await api('DELETE', '/v1/containers/gone'), 204, 'delete container');
    expectStatus(await api('GET', '/v1/containers/gone'), 404, 'the container after delete');
    expectStatus(await api('DELETE', '/v1/containers/gone'), 404, 'a second delete');
    assert.equal((await snapshotNames()).includes('gone'), false, 'the snapshot is no longer listed');
    // The backend snapshot goes with a collection (the scheduler may have run one already).
    expectStatus(await api('POST', '/v1/gc'), 200, 'gc');
    assert.equal(existsSync(folder), false, `the snapshot's folder ${folder} is gone`);
    assert.deepEqual(await mountsUnder(dir), [], 'nothing mounted under the server\'s folders');

    // keepSnapshot: the container goes, its snapshot stays. Nothing references it then, so (as in
    // containerd) whoever keeps it holds it: here a gc.root label, else the next GC takes it.
    await createContainer('kept');
    const keptFolder = await snapshotFolder('kept');
    expectStatus(
      await api('PATCH', `/v1/snapshotters/${SNAPSHOTTER}/snapshots/kept`, {
        labels: { 'containerd.io/gc.root': 'test' },
        fieldpaths: ['labels.containerd.io/gc.root'],
      }),
      200,
      'label the snapshot a GC root',
    );
    t.after(() => api('DELETE', `/v1/snapshotters/${SNAPSHOTTER}/snapshots/kept`));
    expectStatus(await api('DELETE', '/v1/containers/kept?keepSnapshot=true'), 204, 'delete, keeping the snapshot');
    made.delete('kept');
    expectStatus(await api('GET', '/v1/containers/kept'), 404, 'the container after delete');
    expectStatus(await api('POST', '/v1/gc'), 200, 'gc');
    assert.ok((await snapshotNames()).includes('kept'), 'the snapshot is kept');
    assert.ok(existsSync(keptFolder), 'and its folder');
    expectStatus(await api('DELETE', `/v1/snapshotters/${SNAPSHOTTER}/snapshots/kept`), 204, 'remove the kept snapshot');
    expectStatus(await api('POST', '/v1/gc'), 200, 'gc');
    assert.equal(existsSync(keptFolder), false, 'its folder goes once it is removed');
  });

  test('refusals: unknown image, duplicate or invalid id, unknown user, missing executable, no task', async (t) => {
    cleanUp(t, 'dup', 'noexec');
    const before = await snapshotNames();

    const unknown = expectStatus(await api('POST', '/v1/containers', { id: 'ghost', image: 'example.com/no/such:image' }), 404, 'unknown image');
    assert.match(unknown.json.error.message, /example\.com\/no\/such:image/);

    await createContainer('dup');
    const dup = expectStatus(await api('POST', '/v1/containers', { id: 'dup', image: imageName }), 409, 'duplicate id');
    assert.match(dup.json.error.message, /dup/);

    for (const id of ['bad id!', 'x'.repeat(77), '-lead']) {
      const r = expectStatus(await api('POST', '/v1/containers', { id, image: imageName }), 400, `invalid id ${JSON.stringify(id)}`);
      assert.equal(r.json.error.code, 'invalid_argument');
    }

    const user = expectStatus(await api('POST', '/v1/containers', { id: 'baduser', image: imageName, user: 'nobody2' }), 400, 'unknown user');
    assert.match(user.json.error.message, /nobody2/);
    expectStatus(await api('GET', '/v1/containers/baduser'), 404, 'no container for an unknown user');
    assert.deepEqual((await snapshotNames()).sort(), [...before, 'dup'].sort(), 'refused creates leave no snapshot');

    // runc refuses to create a process whose executable is not in the image: nothing stays.
    await createContainer('noexec', { args: ['/nonexistent'] });
    const noexec = expectStatus(await api('POST', '/v1/containers/noexec/task'), 400, 'missing executable');
    assert.match(noexec.json.error.message, /"\/nonexistent"/);
    assert.match(noexec.json.error.message, /no such file or directory/);
    await assertNoTaskLeft('noexec');
    expectStatus(await api('GET', '/v1/containers/noexec/task'), 404, 'no task after a failed create');
    assert.deepEqual((await api('GET', '/v1/tasks')).json.items, [], 'no task listed');

    // No task: 404 for each task call; no container: 404 too.
    const none = expectStatus(await api('GET', '/v1/containers/dup/task'), 404, 'task of a container without one');
    assert.match(none.json.error.message, /dup/);
    expectStatus(await api('POST', '/v1/containers/dup/task/kill', { signal: 'SIGKILL' }), 404, 'kill without a task');
    expectStatus(await api('GET', '/v1/containers/dup/task/wait'), 404, 'wait without a task');
    expectStatus(await api('DELETE', '/v1/containers/dup/task'), 404, 'delete without a task');
    expectStatus(await api('POST', '/v1/containers/ghost/task'), 404, 'task of an unknown container');
  });

  // Last: it restarts the server.
  test('a restarted server finds its tasks again: the running one runs on, the stopped one keeps its code', async (t) => {
    cleanUp(t, 'survivor', 'five');
    await createContainer('survivor', { args: ['sleep', '1000'] });
    await createContainer('five', { args: ['sh', '-c', 'exit 5'] });
    const survivor = await startTask('survivor');
    const five = await startTask('five');
    await until('five to exit', () => existsSync(join(bundleOf('five'), 'exit')));

    server = await server.restart();

    const running = expectStatus(await api('GET', '/v1/containers/survivor/task'), 200, 'running task after restart').json;
    assert.equal(running.status, 'running');
    assert.equal(running.pid, survivor.pid);
    assert.ok(existsSync(`/proc/${survivor.pid}`), 'the same process lives');
    const stopped = expectStatus(await api('GET', '/v1/containers/five/task'), 200, 'stopped task after restart').json;
    assert.equal(stopped.status, 'stopped');
    assert.equal(stopped.exitCode, 5);
    assert.equal(stopped.pid, five.pid);
    assert.equal(await waitTask('five'), 5);

    expectStatus(await api('POST', '/v1/containers/survivor/task/kill', { signal: 'SIGKILL' }), 204, 'kill after restart');
    assert.equal(await waitTask('survivor'), 137);
    for (const [id, code] of [['survivor', 137], ['five', 5]] as const) {
      assert.equal(expectStatus(await api('DELETE', `/v1/containers/${id}/task`), 200, `delete task ${id}`).json.exitCode, code);
      expectStatus(await api('DELETE', `/v1/containers/${id}`), 204, `delete container ${id}`);
      made.delete(id);
      await assertNoTaskLeft(id);
    }
    assert.deepEqual(await runcIds(), [], 'no runc container left');
    assert.deepEqual(await readdir(join(runtimeState(), 'tasks', NS)), [], 'no bundle left');
    assert.deepEqual(await mountsUnder(dir), [], 'nothing mounted under the server\'s folders');
  });
});
