// A task: the init process of a container, over a bundle and runc — create, start, status,
// kill, wait, delete — and found again after a berth restart from its bundle alone. Its state
// lives on disk, not in berth: runc's state (created/running/paused/stopped), the pid file, the
// exit file the shim writes (shim.ts) and a `started` file whose mtime is the start time. So a Task
// object is a handle; two handles on one bundle agree.
//
// State machine (containerd shim, §8.6): created → start → running → exit → stopped → delete →
// deleted. Errors: start of a running/paused/stopped task and delete of a running/paused one are
// failed_precondition; anything on a deleted task is not_found.
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Writable } from 'node:stream';

import { failedPrecondition, isCode, isMissingFile, isNotFound, notFound } from '../../store/errors.js';
import { mountAll } from '../snapshots/mount.js';
import type { Mount } from '../snapshots/types.js';
import { createBundle, openBundle, type Bundle } from './bundle.js';
import { readExit, waitForExit, type ExitStatus } from './exit.js';
import { bundleFiles, type Output, type Runc } from './runc.js';
import type { Spec } from './spec.js';

export type TaskState = 'created' | 'running' | 'paused' | 'stopped';

export interface TaskStatus {
  status: TaskState;
  /** The init's pid (0 when create never got that far). */
  pid: number;
  exitCode?: number;
  startedAt?: Date;
  exitedAt?: Date;
}

export type { ExitStatus } from './exit.js';
export { UNKNOWN_EXIT_STATUS } from './exit.js';

export interface CreateTaskOptions {
  runc: Runc;
  /** Bundles live at `<stateDir>/<namespace>/<id>`. */
  stateDir: string;
  namespace: string;
  id: string;
  spec: Spec;
  /** Mounted onto `<bundle>/rootfs` before create (a snapshot's mounts); none when root.path is absolute. */
  rootfs?: Mount[];
  /** Default `<bundle>/stdout.log` and `<bundle>/stderr.log`. */
  stdout?: Output;
  stderr?: Output;
  /** A pipe from berth to the init's stdin (an attached task without a terminal); default /dev/null. */
  stdin?: 'pipe';
  /** With the spec's process.terminal: where runc sends the terminal (console.ts). */
  consoleSocket?: string;
  noPivot?: boolean;
}

const startedFile = 'started';

export class Task {
  readonly id: string;
  readonly bundle: Bundle;
  private readonly runc: Runc;
  private deleted = false;
  /** berth's end of the init's stdin, when created with `stdin: 'pipe'` (this berth only). */
  stdin: Writable | null = null;

  constructor(runc: Runc, bundle: Bundle) {
    this.runc = runc;
    this.bundle = bundle;
    this.id = basename(bundle.path);
  }

  /** Creates the bundle, mounts the rootfs and runs `runc create`; on failure nothing is left. */
  static async create(opts: CreateTaskOptions): Promise<Task> {
    const bundle = await createBundle(opts);
    const task = new Task(opts.runc, bundle);
    try {
      if (opts.rootfs?.length) await mountAll(opts.rootfs, bundle.rootfs);
      const created = await opts.runc.create(opts.id, {
        bundle: bundle.path,
        stdout: opts.stdout ?? join(bundle.path, 'stdout.log'),
        stderr: opts.stderr ?? join(bundle.path, 'stderr.log'),
        stdin: opts.stdin,
        consoleSocket: opts.consoleSocket,
        noPivot: opts.noPivot,
      });
      task.stdin = created.pipes.stdin;
    } catch (err) {
      // runc removes what a failed create made (and a container of the same id that runc
      // refused to create again is not ours to delete).
      await bundle.delete();
      throw err;
    }
    return task;
  }

  /** The task of a bundle made before a restart (its id is the folder's name). */
  static recover(runc: Runc, bundlePath: string): Task {
    return new Task(runc, openBundle(bundlePath));
  }

  /** Every task under `<stateDir>/<namespace>`; folders of interrupted deletes are finished off. */
  static async recoverAll(runc: Runc, stateDir: string, namespace: string): Promise<Task[]> {
    let names: string[];
    try {
      names = await readdir(join(stateDir, namespace));
    } catch (err) {
      if (isMissingFile(err)) return [];
      throw err;
    }
    const tasks: Task[] = [];
    for (const name of names.sort()) {
      const bundle = openBundle(join(stateDir, namespace, name));
      if (name.startsWith('.')) await bundle.delete();
      else tasks.push(new Task(runc, bundle));
    }
    return tasks;
  }

  async start(): Promise<void> {
    this.assertNotDeleted('start');
    // Written just before: its mtime comes from the same (coarse) file system clock as the exit
    // file's, so startedAt <= exitedAt holds even for a process that ends at once.
    const started = join(this.bundle.path, startedFile);
    const startedBefore = await this.startedAt();
    if (!startedBefore) await writeFile(started, '');
    try {
      await this.runc.start(this.id);
    } catch (err) {
      if (!startedBefore) await rm(started, { force: true });
      // runc refuses anything but a created container; say why in the shim's words (§8.6).
      // Asked only now: the happy path costs no `runc state`.
      if (isCode(err, 'failed_precondition')) {
        const { status } = await this.status();
        throw failedPrecondition(`cannot start a ${status} process: task ${this.id}`, err);
      }
      throw err;
    }
  }

  async status(): Promise<TaskStatus> {
    this.assertNotDeleted('get the status of');
    const [pid, startedAt] = await Promise.all([this.pid(), this.startedAt()]);
    const base = { pid, ...(startedAt ? { startedAt } : {}) };
    let exit = await readExit(this.bundle.path);
    if (!exit) {
      const state = await this.runc.state(this.id).catch((err: unknown) => {
        if (isNotFound(err)) return undefined;
        throw err;
      });
      if (state && state.status !== 'stopped') return { ...base, status: state.status === 'creating' ? 'created' : state.status };
      // runc sees the init gone: the shim is writing the exit file, or it is gone too.
      exit = await this.wait();
    }
    return { ...base, status: 'stopped', exitCode: exit.exitCode, exitedAt: exit.exitedAt };
  }

  /** Signals the init (`all`: every process of the container); not_found once it has exited. */
  async kill(signal: number | string, opts: { all?: boolean } = {}): Promise<void> {
    this.assertNotDeleted('kill');
    await this.runc.kill(this.id, signal, opts);
  }

  /** Resolves when the init has exited, at once if it already has (no matter who was watching). */
  async wait(): Promise<ExitStatus> {
    this.assertNotDeleted('wait for');
    return waitForExit(this.bundle.path, `task ${this.id}`);
  }

  /**
   * `runc delete` (which kills a created task: exit 137), then the rootfs is unmounted and the
   * bundle removed. Resolves with the exit status.
   */
  async delete(): Promise<ExitStatus> {
    this.assertNotDeleted('delete');
    const { status } = await this.status();
    if (status === 'running' || status === 'paused') throw failedPrecondition(`cannot delete a ${status} process: task ${this.id}`);
    await this.runc.delete(this.id);
    // The shim writes into the bundle until the init is reaped: let it finish first.
    const exit = await this.wait();
    await this.bundle.delete();
    this.deleted = true;
    return exit;
  }

  private assertNotDeleted(what: string): void {
    if (this.deleted) throw notFound(`cannot ${what} a deleted process: task ${this.id}`);
  }

  /** The init's pid, from the pid file runc wrote (0 before create got that far). */
  async pid(): Promise<number> {
    return Number((await this.readOptional(bundleFiles.pid))?.trim() ?? 0) || 0;
  }

  private async startedAt(): Promise<Date | undefined> {
    try {
      return (await stat(join(this.bundle.path, startedFile))).mtime;
    } catch (err) {
      if (isMissingFile(err)) return undefined;
      throw err;
    }
  }

  private async readOptional(name: string): Promise<string | undefined> {
    try {
      return await readFile(join(this.bundle.path, name), 'utf8');
    } catch (err) {
      if (isMissingFile(err)) return undefined;
      throw err;
    }
  }
}
