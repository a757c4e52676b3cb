// The runtime: the OCI spec as containerd builds it (default spec, image config, user
// resolution inside the rootfs), then real containers with runc — bundle, shim, exit codes,
// kills, failures that leave nothing behind, and recovery after a berth restart.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, rmdir, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

import { createBundle } from '../src/runtime/bundle.js';
import { Runc } from '../src/runtime/runc.js';
import {
  DEFAULT_PATH_ENV,
  defaultSpec,
  mergeEnv,
  withArgs,
  withCwd,
  withEnv,
  withImageConfig,
  withTty,
  withUser,
  type Spec,
} from '../src/runtime/spec.js';
import { Task } from '../src/runtime/task.js';
import { unmountAll } from '../src/snapshots/mount.js';
import { busyboxConfig, busyboxLayer, extractLayer } from './fixtures/busybox.js';
import { expectCode, tempDir } from './fixtures/helpers.js';

const execFileAsync = promisify(execFile);

describe('default spec', () => {
  const spec = defaultSpec({ namespace: 'ns1', id: 'c1' });

  test('process, capabilities, rlimits and namespaces as containerd', () => {
    assert.equal(spec.ociVersion, '1.1.0');
    assert.deepEqual(spec.root, { path: 'rootfs', readonly: false });
    assert.equal(spec.process.cwd, '/');
    assert.equal(spec.process.noNewPrivileges, true);
    assert.deepEqual(spec.process.user, { uid: 0, gid: 0 });
    assert.equal(spec.process.env, undefined, 'no env until the image config');
    assert.equal(spec.process.args, undefined);
    const caps = [
      'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
      'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
    ];
    assert.deepEqual(spec.process.capabilities, { bounding: caps, permitted: caps, effective: caps });
    assert.deepEqual(spec.process.rlimits, [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }]);
    assert.deepEqual(spec.linux.namespaces.map((n) => n.type), ['pid', 'ipc', 'uts', 'mount', 'network']);
    assert.equal(spec.linux.cgroupsPath, '/ns1/c1');
  });

  test('masked and read-only paths, devices, mounts', () => {
    assert.deepEqual(spec.linux.maskedPaths, [
      '/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
      '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/sys/devices/virtual/powercap', '/proc/scsi',
    ]);
    assert.deepEqual(spec.linux.readonlyPaths, ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger']);
    const devices = spec.linux.resources.devices;
    assert.deepEqual(devices[0], { allow: false, access: 'rwm' });
    assert.deepEqual(
      devices.slice(1).map((d) => `${d.type} ${d.major}:${d.minor ?? '*'} ${d.access} ${d.allow}`),
      ['1:3', '1:8', '1:7', '5:0', '1:5', '1:9', '5:1', '136:*', '5:2'].map((mm) => `c ${mm} rwm true`),
    );
    assert.deepEqual(
      spec.mounts.map((m) => [m.destination, m.type, m.source]),
      [
        ['/proc', 'proc', 'proc'],
        ['/dev', 'tmpfs', 'tmpfs'],
        ['/dev/pts', 'devpts', 'devpts'],
        ['/dev/shm', 'tmpfs', 'shm'],
        ['/dev/mqueue', 'mqueue', 'mqueue'],
        ['/sys', 'sysfs', 'sysfs'],
        ['/run', 'tmpfs', 'tmpfs'],
      ],
    );
    assert.deepEqual(spec.mounts[2].options, ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5']);
    assert.deepEqual(spec.mounts[5].options, ['nosuid', 'noexec', 'nodev', 'ro']);
  });

  test('a namespace is required', () => {
    assert.throws(() => defaultSpec({ namespace: '', id: 'c1' }), (err: Error & { code?: string }) => err.code === 'failed_precondition');
  });
});

describe('image config and overrides', () => {
  let rootfs: string;
  before(async () => {
    rootfs = await mkdtemp(join(tmpdir(), 'berth-rt-spec-'));
    await extractLayer(busyboxLayer(), rootfs);
  });
  after(() => rm(rootfs, { recursive: true, force: true }));
  const base = (): Spec => defaultSpec({ namespace: 'ns1', id: 'c1' });

  test('env merge: in place, appended, removed', () => {
    assert.deepEqual(mergeEnv(['A=1', 'B=2', 'C=3'], ['B=20', 'D=4', 'A']), ['B=20', 'C=3', 'D=4']);
    assert.deepEqual(mergeEnv(['A=1'], ['A', 'A=2']), ['A=2'], 'removed then set again');
    assert.deepEqual(mergeEnv(['A=1'], ['Z']), ['A=1'], 'removing an absent key does nothing');
  });

  test('image Env, or the default PATH; env set before the image config wins', async () => {
    const plain = await withImageConfig(base(), busyboxConfig, rootfs);
    assert.deepEqual(plain.process.env, busyboxConfig.Env);
    const early = await withImageConfig(withEnv(base(), ['GREETING=bye', 'EXTRA=1', 'PATH']), busyboxConfig, rootfs);
    // `PATH` (remove) met no PATH yet, so the image's PATH stays.
    assert.deepEqual(early.process.env, [busyboxConfig.Env![0], 'GREETING=bye', 'EXTRA=1']);
    const noEnv = await withImageConfig(base(), { Cmd: ['sh'] }, rootfs);
    assert.deepEqual(noEnv.process.env, [DEFAULT_PATH_ENV]);
    assert.deepEqual(withEnv(plain, ['GREETING']).process.env, [busyboxConfig.Env![0]]);
    assert.deepEqual(withTty(plain).process.env?.at(-1), 'TERM=xterm');
    assert.equal(withTty(plain).process.terminal, true);
  });

  test('args: Entrypoint kept, args replace Cmd; cwd from WorkingDir or /', async () => {
    const config = { ...busyboxConfig, Entrypoint: ['/bin/sh', '-c'], Cmd: ['echo default'] };
    assert.deepEqual((await withImageConfig(base(), config, rootfs)).process.args, ['/bin/sh', '-c', 'echo default']);
    assert.deepEqual((await withImageConfig(base(), config, rootfs, ['echo given'])).process.args, ['/bin/sh', '-c', 'echo given']);
    assert.deepEqual((await withImageConfig(base(), config, rootfs, [])).process.args, ['/bin/sh', '-c', 'echo default']);
    assert.equal((await withImageConfig(base(), config, rootfs)).process.cwd, '/home/app');
    assert.equal((await withImageConfig(base(), { Cmd: ['sh'] }, rootfs)).process.cwd, '/');
    assert.equal(withCwd(base(), '/tmp').process.cwd, '/tmp');
    assert.deepEqual(withArgs(base(), ['true']).process.args, ['true']);
  });

  test('user forms: name, uid, uid:gid, name:group, mixed; additional gids from /etc/group', async () => {
    const cases: Array<[string, { uid: number; gid: number; additionalGids: number[] }]> = [
      ['', { uid: 0, gid: 0, additionalGids: [0] }],
      ['app', { uid: 1000, gid: 1000, additionalGids: [1000, 2000] }],
      ['1000', { uid: 1000, gid: 1000, additionalGids: [1000, 2000] }],
      ['1234', { uid: 1234, gid: 0, additionalGids: [0] }],
      ['1000:2000', { uid: 1000, gid: 2000, additionalGids: [2000] }],
      ['app:extra', { uid: 1000, gid: 2000, additionalGids: [2000] }],
      ['app:0', { uid: 1000, gid: 0, additionalGids: [0, 2000] }],
      ['0:extra', { uid: 0, gid: 2000, additionalGids: [2000] }],
      ['5:6', { uid: 5, gid: 6, additionalGids: [6] }],
    ];
    for (const [user, want] of cases) {
      assert.deepEqual((await withUser(base(), user, rootfs)).process.user, want, `USER ${JSON.stringify(user)}`);
      assert.deepEqual((await withImageConfig(base(), { ...busyboxConfig, User: user }, rootfs)).process.user, want, `image USER ${JSON.stringify(user)}`);
    }
  });

  test('user errors: unknown names, out of range, too many colons', async () => {
    await expectCode(withUser(base(), 'nobody', rootfs), 'invalid_argument', 'unknown user', /no users found.*"nobody"/);
    await expectCode(withUser(base(), 'nobody:0', rootfs), 'invalid_argument', 'unknown user with gid', /no users found.*"nobody"/);
    await expectCode(withUser(base(), 'app:nogroup', rootfs), 'invalid_argument', 'unknown group', /no groups found.*"nogroup"/);
    await expectCode(withUser(base(), '4294967296', rootfs), 'invalid_argument', 'uid range', /invalid USER value "4294967296": uid out of range/);
    await expectCode(withUser(base(), '0:-1', rootfs), 'invalid_argument', 'gid range', /invalid USER value "0:-1": gid out of range/);
    await expectCode(withUser(base(), '1:2:3', rootfs), 'invalid_argument', 'colons', /invalid USER value 1:2:3/);
  });

  test('/etc/passwd is read inside the rootfs even through symlinks that point out of it', async (t) => {
    const root = await tempDir(t, 'berth-rt-links-');
    await mkdir(join(root, 'etc'));
    await mkdir(join(root, 'data'));
    await writeFile(join(root, 'data', 'passwd'), 'inside:x:7:8::/:/bin/sh\n');
    // Absolute and climbing targets both stay in the root.
    await symlink('/../../../../../../data/passwd', join(root, 'etc', 'passwd'));
    assert.deepEqual((await withUser(base(), 'inside', root)).process.user, { uid: 7, gid: 8, additionalGids: [8] });
    await rm(join(root, 'etc', 'passwd'));
    await symlink('../../../../../../../etc/passwd', join(root, 'data', 'up'));
    await symlink('/data/up', join(root, 'etc', 'passwd'));
    await writeFile(join(root, 'etc', 'group'), 'g:x:9:inside\n');
    await expectCode(withUser(base(), '0', root), 'invalid_argument', 'climbing link loops back onto itself', /too many levels/);
    await rm(join(root, 'etc', 'passwd'));
    await symlink('passwd.d/../../data/passwd', join(root, 'etc', 'passwd'));
    await mkdir(join(root, 'etc', 'passwd.d'));
    assert.deepEqual((await withUser(base(), 'inside', root)).process.user, { uid: 7, gid: 8, additionalGids: [8, 9] });
    // Host users are not found: this root has no `root` user.
    await expectCode(withUser(base(), 'root', root), 'invalid_argument', 'host passwd not read', /no users found/);
  });
});

describe('bundle', () => {
  test('layout, permissions, already_exists, delete', async (t) => {
    const stateDir = await tempDir(t, 'berth-rt-bundle-');
    const spec = defaultSpec({ namespace: 'ns1', id: 'b1' });
    const bundle = await createBundle({ stateDir, namespace: 'ns1', id: 'b1', spec });
    assert.equal(bundle.path, join(stateDir, 'ns1', 'b1'));
    assert.equal((await stat(join(stateDir, 'ns1'))).mode & 0o777, 0o711);
    assert.equal((await stat(bundle.path)).mode & 0o777, 0o700);
    assert.equal((await stat(bundle.rootfs)).mode & 0o777, 0o711);
    assert.deepEqual(JSON.parse(await readFile(bundle.configPath, 'utf8')), spec);
    await expectCode(createBundle({ stateDir, namespace: 'ns1', id: 'b1', spec }), 'already_exists', 'second bundle', /b1/);
    await expectCode(createBundle({ stateDir, namespace: 'ns1', id: 'bad/id', spec }), 'invalid_argument', 'bad id', /invalid task id/);
    await bundle.delete();
    assert.deepEqual(await readdir(join(stateDir, 'ns1')), []);
    await bundle.delete();
  });
});

// ------------------------------------------------------------------------------------------------
// Real containers
// ------------------------------------------------------------------------------------------------

describe('runc tasks', () => {
  const namespace = `berth-rt-${process.pid}`;
  let base: string;
  let image: string;
  let runc: Runc;
  let stateDir: string;
  let runcRoot: string;

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'berth-rt-'));
    image = join(base, 'image');
    await mkdir(image);
    await extractLayer(busyboxLayer(), image);
    stateDir = join(base, 'state');
    runcRoot = join(base, 'runc', namespace);
    runc = new Runc({ binary: '/usr/sbin/runc', root: runcRoot });
  });

  after(async () => {
    for (const c of await runc.list().catch(() => [])) await runc.delete(c.id, { force: true }).catch(() => undefined);
    await unmountAll(base);
    await rm(base, { recursive: true, force: true });
    // runc leaves the namespace's parent cgroup (as containerd does); a test run should not.
    for (const hierarchy of await readdir('/sys/fs/cgroup').catch(() => [])) {
      await rmdir(join('/sys/fs/cgroup', hierarchy, namespace)).catch(() => undefined);
    }
  });

  async function newTask(id: string, args: string[], config = busyboxConfig): Promise<Task> {
    const spec = withArgs(await withImageConfig(defaultSpec({ namespace, id }), config, image), args);
    return Task.create({ runc, stateDir, namespace, id, spec, rootfs: [{ type: 'bind', source: image, options: ['rbind', 'rw'] }] });
  }

  /** Polls until `check` holds; the deadline only guards against a hang. */
  async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
    for (const deadline = Date.now() + 20_000; !(await check()); await sleep(25)) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    }
  }

  const stdoutOf = (task: Task) => readFile(join(task.bundle.path, 'stdout.log'), 'utf8');

  async function assertGone(id: string): Promise<void> {
    assert.equal((await runc.list()).find((c) => c.id === id), undefined, `no runc container ${id}`);
    assert.equal(existsSync(join(stateDir, namespace, id)), false, `no bundle of ${id}`);
    const mounts = await readFile('/proc/self/mountinfo', 'utf8');
    assert.equal(mounts.includes(join(stateDir, namespace, id)), false, `no mounts of ${id}`);
  }

  test('created, then running: env and cwd from the image, output in the stdout log', async () => {
    const task = await newTask('envpwd', ['sh', '-c', 'env; pwd']);
    const created = await task.status();
    assert.equal(created.status, 'created');
    assert.ok(created.pid > 0);
    await task.start();
    const exit = await task.wait();
    assert.equal(exit.exitCode, 0);
    const out = await stdoutOf(task);
    assert.match(out, /^GREETING=hello$/m);
    assert.match(out, /^PATH=\/usr\/local\/sbin:/m);
    assert.match(out, /^\/home\/app$/m);
    const status = await task.status();
    assert.equal(status.status, 'stopped');
    assert.equal(status.exitCode, 0);
    assert.ok(status.startedAt && status.exitedAt && status.exitedAt >= status.startedAt);
    assert.deepEqual(await task.delete(), exit);
    await assertGone('envpwd');
    await expectCode(task.status(), 'not_found', 'status after delete', /deleted/);
    await expectCode(task.delete(), 'not_found', 'second delete', /cannot delete a deleted process/);
  });

  test('the image USER runs with its supplementary groups', async () => {
    const task = await newTask('user', ['id'], { ...busyboxConfig, User: 'app' });
    await task.start();
    assert.equal((await task.wait()).exitCode, 0);
    assert.equal((await stdoutOf(task)).trim(), 'uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)');
    await task.delete();
  });

  test('an exit code is collected when nobody waits at the time of exit', async () => {
    const task = await newTask('exit7', ['sh', '-c', 'exit 7']);
    await task.start();
    await until(() => existsSync(join(task.bundle.path, 'exit')), 'the shim to write the exit file');
    const status = await task.status();
    assert.equal(status.status, 'stopped');
    assert.equal(status.exitCode, 7);
    assert.equal((await task.wait()).exitCode, 7);
    await expectCode(task.kill('SIGKILL'), 'not_found', 'kill of an exited task', /process already finished/);
    await expectCode(task.start(), 'failed_precondition', 'start of a stopped task', /cannot start a stopped process/);
    assert.equal((await task.delete()).exitCode, 7);
    await assertGone('exit7');
  });

  test('kill: SIGTERM to an init that handles it, SIGKILL to one that does not (137)', async () => {
    // A container's pid 1 gets only the signals it handles (SIGKILL aside): hence the trap.
    const term = await newTask('term', ['sh', '-c', 'trap "exit 143" TERM; echo ready; sleep 1000 & wait']);
    const kill = await newTask('kill', ['sleep', '1000']);
    await term.start();
    await kill.start();
    assert.equal((await kill.status()).status, 'running');
    await expectCode(kill.start(), 'failed_precondition', 'start of a running task', /cannot start a running process/);
    await expectCode(kill.delete(), 'failed_precondition', 'delete of a running task', /cannot delete a running process/);
    await until(async () => (await stdoutOf(term)).includes('ready'), 'the trap to be set');
    await term.kill('SIGTERM');
    await kill.kill(9);
    assert.equal((await term.wait()).exitCode, 143);
    assert.equal((await kill.wait()).exitCode, 137);
    const status = await kill.status();
    assert.equal(status.status, 'stopped');
    assert.equal(status.exitCode, 137);
    await term.delete();
    await kill.delete();
    await expectCode(kill.kill('SIGKILL'), 'not_found', 'kill of a deleted task', /deleted/);
    await expectCode(runc.kill('kill', 'SIGKILL'), 'not_found', 'runc kill of a deleted container', /no such container/);
    await assertGone('term');
    await assertGone('kill');
  });

  test('a created task that is deleted is killed (137) and leaves nothing', async () => {
    const task = await newTask('never', ['sleep', '1000']);
    assert.equal((await task.delete()).exitCode, 137);
    await assertGone('never');
  });

  test('a missing executable fails create with its name, and nothing is left', async () => {
    await expectCode(newTask('missing', ['no-such-command']), 'invalid_argument', 'missing in PATH', /"no-such-command": executable file not found in \$PATH/);
    await assertGone('missing');
    await expectCode(newTask('missing2', ['/bin/nope']), 'invalid_argument', 'missing by path', /"\/bin\/nope": stat \/bin\/nope: no such file or directory/);
    await assertGone('missing2');
    assert.deepEqual((await readdir(join(stateDir, namespace))).filter((n) => n.startsWith('missing')), []);
  });

  test('after a restart: a running task is found by its bundle, a stopped one keeps its exit code', async () => {
    // "berth" is a separate node process that creates and starts both tasks, then exits.
    const go = join(image, 'tmp', `go-${process.pid}`);
    const script = `
      import { Runc } from './src/runtime/runc.js';
      import { Task } from './src/runtime/task.js';
      import { defaultSpec, withArgs, withImageConfig } from './src/runtime/spec.js';
      const [stateDir, runcRoot, namespace, image, config] = process.argv.slice(1);
      const runc = new Runc({ binary: '/usr/sbin/runc', root: runcRoot });
      for (const [id, args] of [['survivor', ['sleep', '1000']], ['later', ['sh', '-c', 'while [ ! -e /tmp/go-${process.pid} ]; do sleep 0.05; done; exit 5']]]) {
        const spec = withArgs(await withImageConfig(defaultSpec({ namespace, id }), JSON.parse(config), image), args);
        const task = await Task.create({ runc, stateDir, namespace, id, spec, rootfs: [{ type: 'bind', source: image, options: ['rbind', 'rw'] }] });
        await task.start();
      }`;
    await execFileAsync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, stateDir, runcRoot, namespace, image, JSON.stringify(busyboxConfig)], {
      cwd: join(import.meta.dirname, '..'),
    });
    // The exit happens while no berth process is alive at all.
    await writeFile(go, '');
    await until(() => existsSync(join(stateDir, namespace, 'later', 'exit')), 'the shim of "later" to record its exit');

    const restarted = new Runc({ binary: '/usr/sbin/runc', root: runcRoot });
    const tasks = await Task.recoverAll(restarted, stateDir, namespace);
    const byId = new Map(tasks.map((task) => [task.id, task]));
    assert.deepEqual([...byId.keys()].filter((id) => id === 'survivor' || id === 'later').sort(), ['later', 'survivor']);
    const survivor = byId.get('survivor')!;
    const running = await survivor.status();
    assert.equal(running.status, 'running');
    assert.equal(running.pid, (await restarted.state('survivor')).pid);
    assert.ok(running.startedAt);
    const later = await byId.get('later')!.status();
    assert.equal(later.status, 'stopped');
    assert.equal(later.exitCode, 5);

    await survivor.kill('SIGKILL');
    assert.equal((await survivor.wait()).exitCode, 137);
    await survivor.delete();
    await byId.get('later')!.delete();
    await assertGone('survivor');
    await assertGone('later');
  });
});
