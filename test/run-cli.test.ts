// The container commands of the CLI against a real server, with real runc and a busybox image
// pushed to a real registry: `berth run` (pull when missing, the image's Env, WorkingDir and
// Entrypoint, overrides, everything after ID passed to the container, the exit code returned,
// --rm), and `berth containers …` / `berth tasks …`.
//
// The CLI runs from the sources (tsx), in child processes started asynchronously: a synchronous
// spawn would block this process's event loop, where the server runs. Each start costs a second
// or more, so independent commands run side by side. Everything happens in a namespace of its
// own (the containers' cgroups are `/<ns>/<id>`).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { pathToFileURL } from 'node:url';

import { busyboxConfig, busyboxLayer } from './fixtures/busybox.js';
import { buildImage, pushImage } from './fixtures/images.js';
import { startRegistry, type Registry } from './fixtures/registry.js';
import { namespaceApi, removeContainersAfter } from './fixtures/container-api.js';
import { removeServerDirWithRuntime } from './fixtures/runtime.js';
import { startTestServer, type TestServer } from './fixtures/server.js';
import { mountPoints, projectRoot, until } from './fixtures/unpack.js';

const NS = `cli-${process.pid}`;
const mainModule = pathToFileURL(join(projectRoot, 'src', 'cli', 'main.ts')).href;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('berth run, containers and tasks (CLI)', { timeout: 150_000 }, () => {
  let registry: Registry;
  let server: TestServer;
  let dir: string;
  /** The busybox image, pushed, not pulled: the first `berth run` pulls it. */
  let ref: string;
  /** An image with Entrypoint ['/bin/echo', 'entry'] and Cmd ['default']. */
  let entryRef: string;

  /** `berth --address … -n NS ARGS…`, from the sources. */
  function berth(...args: string[]): Promise<Run> {
    const script = `import(${JSON.stringify(mainModule)}).then((m) => m.main(['node', 'berth', ...process.argv.slice(1)]))`;
    const argv = ['--import', 'tsx', '-e', script, '--', '--address', new URL(server.url).host, '-n', NS, ...args];
    const { BERTH_ADDRESS: _address, BERTH_NAMESPACE: _namespace, ...env } = process.env;
    return new Promise((resolve) => {
      execFile(process.execPath, argv, { cwd: projectRoot, timeout: 60_000, env }, (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      });
    });
  }

  function expectExit(r: Run, code: number, what: string): void {
    assert.equal(r.code, code, `${what}: exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }

  const api = namespaceApi(() => server.url, NS);
  /** Whatever a test left of these containers (a failed --rm): task killed and deleted, container deleted. */
  const cleanUp = (t: TestContext, ...ids: string[]) => removeContainersAfter(api, t, ...ids);

  async function assertRemoved(id: string): Promise<void> {
    assert.equal((await api('GET', `/v1/containers/${id}`)).status, 404, `--rm removed container ${id}`);
    assert.equal((await api('GET', `/v1/containers/${id}/task`)).status, 404, `no task of ${id}`);
  }

  before(async () => {
    registry = await startRegistry();
    const busybox = buildImage({ layers: [busyboxLayer()], config: { config: busyboxConfig } });
    const entry = buildImage({
      layers: [busyboxLayer()],
      config: { config: { ...busyboxConfig, Entrypoint: ['/bin/echo', 'entry'], Cmd: ['default'] } },
    });
    const [pushed, pushedEntry] = await Promise.all([
      pushImage(registry.url, 'cli/busybox', 'v1', busybox),
      pushImage(registry.url, 'cli/entry', 'v1', entry),
    ]);
    ref = pushed.reference;
    entryRef = pushedEntry.reference;
    dir = await mkdtemp(join(tmpdir(), 'berth-cli-run-'));
    server = await startTestServer({ dir });
  });

  after(async () => {
    await server?.close();
    if (dir) await removeServerDirWithRuntime(dir, NS);
    await registry?.stop();
  });

  test('run pulls a missing image first, then runs it with the image\'s Env and WorkingDir', async (t) => {
    cleanUp(t, 'first');
    const r = await berth('run', '--rm', ref, 'first', 'sh', '-c', 'env; pwd');
    expectExit(r, 0, 'berth run');
    // Pull progress first (stdout, as ctr run), then the container's output.
    assert.match(r.stdout, new RegExp(`^pulling ${ref.replace(/[.]/g, '\\.')}`, 'm'));
    assert.match(r.stdout, /^layer sha256:[0-9a-f]{12} unpacked/m);
    const output = r.stdout.slice(r.stdout.search(/^[A-Z_]+=/m));
    assert.match(output, /^GREETING=hello$/m);
    assert.match(output, /^PATH=\/usr\/local\/sbin:\/usr\/local\/bin:\/usr\/sbin:\/usr\/bin:\/sbin:\/bin$/m);
    assert.match(output, /^\/home\/app$/m);
    await assertRemoved('first');
    assert.equal((await api('GET', `/v1/images/${encodeURIComponent(ref)}`)).status, 200, 'the image stays');
  });

  describe('with the image there', { concurrency: true }, () => {
    test('the exit code comes back', async (t) => {
      cleanUp(t, 'exit7');
      const r = await berth('run', '--rm', ref, 'exit7', 'sh', '-c', 'echo before; exit 7');
      expectExit(r, 7, 'berth run … exit 7');
      assert.equal(r.stdout, 'before\n', 'no pull this time: only the container\'s output');
      await assertRemoved('exit7');
    });

    test('--env, --cwd and --user', async (t) => {
      cleanUp(t, 'over');
      const r = await berth('run', '--rm', '--env', 'K=V', '--env', 'GREETING', '--cwd', '/tmp', '--user', 'app', ref, 'over', 'sh', '-c', 'echo "$K ${GREETING-unset}"; pwd; id');
      expectExit(r, 0, 'berth run with overrides');
      assert.equal(r.stdout, 'V unset\n/tmp\nuid=1000(app) gid=1000(app) groups=1000(app),2000(extra)\n');
      await assertRemoved('over');
    });

    test('everything after ID goes to the container, options included', async (t) => {
      cleanUp(t, 'pass');
      const r = await berth('run', '--rm', ref, 'pass', 'sh', '-c', 'echo "$@"', '_', '--rm', '--env', 'X=1', '-n', 'x', '--');
      expectExit(r, 0, 'berth run with options after ID');
      assert.equal(r.stdout, '--rm --env X=1 -n x --\n');
      await assertRemoved('pass');
    });

    test('args follow the Entrypoint; without args the Cmd does', async (t) => {
      cleanUp(t, 'entry-args', 'entry-cmd');
      const withArgs = await berth('run', '--rm', entryRef, 'entry-args', 'a', 'b');
      expectExit(withArgs, 0, 'berth run with args');
      assert.match(withArgs.stdout, /^pulling /m, 'the second image is pulled too');
      assert.ok(withArgs.stdout.endsWith('\nentry a b\n'), withArgs.stdout);
      const withCmd = await berth('run', '--rm', entryRef, 'entry-cmd');
      expectExit(withCmd, 0, 'berth run without args');
      assert.equal(withCmd.stdout, 'entry default\n');
    });

    test('an unknown user: refused, naming it, and nothing made', async (t) => {
      cleanUp(t, 'baduser');
      const r = await berth('run', '--rm', '--user', 'nobody2', ref, 'baduser', 'id');
      expectExit(r, 1, 'berth run --user nobody2');
      assert.match(r.stderr, /nobody2/);
      assert.equal(r.stdout, '');
      await assertRemoved('baduser');
    });

    test('a missing executable: runc\'s message, and --rm removes the container', async (t) => {
      cleanUp(t, 'noexec');
      const r = await berth('run', '--rm', ref, 'noexec', '/nonexistent');
      expectExit(r, 1, 'berth run /nonexistent');
      assert.match(r.stderr, /exec: "\/nonexistent": stat \/nonexistent: no such file or directory/);
      await assertRemoved('noexec');
    });
  });

  test('containers ls|info|label|rm and tasks ls|logs|kill|wait|rm', async (t) => {
    cleanUp(t, 'svc');
    const created = await api('POST', '/v1/containers', { id: 'svc', image: ref, args: ['sh', '-c', 'echo hello; sleep 1000'] });
    assert.equal(created.status, 201, created.text);
    const task = await api('POST', '/v1/containers/svc/task');
    assert.equal(task.status, 201, task.text);
    const pid = JSON.parse(task.text).pid as number;

    await until('the task to write hello', async () => (await api('GET', '/v1/containers/svc/task/logs')).text === 'hello\n');

    const [ls, info, label, tasks, logs, rmLive] = await Promise.all([
      berth('containers', 'ls'),
      berth('containers', 'info', 'svc'),
      berth('containers', 'label', 'svc', 'role=web'),
      berth('tasks', 'ls'),
      berth('tasks', 'logs', 'svc'),
      berth('containers', 'rm', 'svc'),
    ]);
    expectExit(ls, 0, 'containers ls');
    assert.match(ls.stdout, /^CONTAINER\s+IMAGE\s+RUNTIME\s+CREATED$/m);
    assert.match(ls.stdout, new RegExp(`^svc\\s+${ref.replace(/[.]/g, '\\.')}\\s+io\\.containerd\\.runc\\.v2\\s`, 'm'));
    expectExit(info, 0, 'containers info');
    const json = JSON.parse(info.stdout);
    assert.equal(json.id, 'svc');
    assert.deepEqual(json.spec.process.args, ['sh', '-c', 'echo hello; sleep 1000']);
    assert.equal(json.spec.linux.cgroupsPath, `/${NS}/svc`);
    expectExit(label, 0, 'containers label');
    assert.match(label.stdout, /^svc .*role=web/);
    expectExit(tasks, 0, 'tasks ls');
    assert.match(tasks.stdout, new RegExp(`^svc\\s+${pid}\\s+RUNNING$`, 'm'));
    expectExit(rmLive, 1, 'containers rm of a container with a live task');
    assert.match(rmLive.stderr, /task/);
    expectExit(logs, 0, 'tasks logs');
    assert.equal(logs.stdout, 'hello\n');

    const [kill, wait] = await Promise.all([berth('tasks', 'kill', '-s', 'SIGKILL', 'svc'), berth('tasks', 'wait', 'svc')]);
    expectExit(kill, 0, 'tasks kill');
    expectExit(wait, 137, 'tasks wait exits with the task\'s code');
    assert.equal(wait.stdout, '137\n');
    const stopped = await berth('tasks', 'ls');
    assert.match(stopped.stdout, new RegExp(`^svc\\s+${pid}\\s+stopped \\(exit 137\\)$`, 'm'));

    const rmTask = await berth('tasks', 'rm', 'svc');
    expectExit(rmTask, 0, 'tasks rm');
    assert.equal(rmTask.stdout, 'svc: exit 137\n');
    const rmContainer = await berth('containers', 'rm', 'svc');
    expectExit(rmContainer, 0, 'containers rm');
    assert.equal(rmContainer.stdout, 'svc\n');
    assert.equal((await api('GET', '/v1/containers/svc')).status, 404, 'the container is gone');
    assert.deepEqual(await mountPoints((p) => p.startsWith(`${dir}/`)), [], 'nothing mounted under the server\'s folders');
  });
});
