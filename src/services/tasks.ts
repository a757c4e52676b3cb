// The tasks service: the process running in a container, through runc (runtime/task.ts). One
// task per container, keyed by namespace and container id. Exit codes are written by each
// task's shim whether or not anyone waits; at start the service finds the tasks of an earlier
// berth again from their bundles (running ones keep running, stopped ones keep their status).
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { alreadyExists, isMissingFile, notFound } from '../../store/errors.js';
import type { EventBus } from '../events/bus.js';
import type { ContainerStore } from '../metadata/containers.js';
import { checkNamespace, type OpContext } from '../metadata/context.js';
import { nsKey } from '../metadata/db.js';
import { Runc } from '../runtime/runc.js';
import type { Spec } from '../runtime/spec.js';
import { Task, type ExitStatus, type TaskStatus } from '../runtime/task.js';
import type { SnapshotService } from './snapshots.js';

export interface TaskView extends TaskStatus {
  id: string;
}

export type LogStream = 'stdout' | 'stderr';

export interface TaskServiceOptions {
  /** Where bundles live: `<stateDir>/<ns>/<id>`. */
  stateDir: string;
  /** runc's state roots: `<runcRoot>/<ns>`. */
  runcRoot: string;
  runcBinary?: string;
  logger?: { warn(obj: object, msg: string): void };
}

export class TaskService {
  private readonly tasks = new Map<string, Task>();
  private readonly exitReported = new WeakSet<Task>();
  /** `<ns>/<id>` of tasks being created: their containers count as having a task already. */
  private readonly creating = new Set<string>();

  constructor(
    private readonly containers: ContainerStore,
    private readonly snapshots: SnapshotService,
    private readonly events: EventBus,
    private readonly opts: TaskServiceOptions,
  ) {}

  private runc(ns: string): Runc {
    return new Runc({ binary: this.opts.runcBinary, root: join(this.opts.runcRoot, ns) });
  }

  /** Finds the tasks an earlier berth left (running or stopped) and watches them for their exit. */
  async recover(): Promise<void> {
    let namespaces: string[];
    try {
      namespaces = await readdir(this.opts.stateDir);
    } catch (err) {
      if (isMissingFile(err)) return;
      throw err;
    }
    for (const ns of namespaces) {
      for (const task of await Task.recoverAll(this.runc(ns), this.opts.stateDir, ns)) {
        this.tasks.set(nsKey(ns, task.id), task);
        this.watchExit(ns, task);
      }
    }
  }

  has(ctx: OpContext, id: string): boolean {
    const key = nsKey(ctx.namespace, id);
    return this.tasks.has(key) || this.creating.has(key);
  }

  private task(ctx: OpContext, id: string): Task {
    const task = this.tasks.get(nsKey(checkNamespace(ctx), id));
    if (!task) throw notFound(`container "${id}" has no task`);
    return task;
  }

  /** Creates the container's task and starts it: its root file system mounted, `runc create` + `runc start`. */
  async create(ctx: OpContext, id: string): Promise<TaskView> {
    const key = nsKey(checkNamespace(ctx), id);
    if (this.tasks.has(key) || this.creating.has(key)) throw alreadyExists(`container "${id}" has a task already`);
    // Reserved before the first await: a container delete now sees a task and refuses.
    this.creating.add(key);
    let task: Task;
    let pid: number;
    try {
      const container = await this.containers.get(ctx, id);
      const rootfs = container.snapshotter && container.snapshotKey ? await this.snapshots.mounts(ctx, container.snapshotter, container.snapshotKey) : [];
      task = await Task.create({
        runc: this.runc(ctx.namespace),
        stateDir: this.opts.stateDir,
        namespace: ctx.namespace,
        id,
        spec: container.spec as unknown as Spec,
        rootfs,
      });
      try {
        pid = await task.pid();
        this.events.publish(ctx.namespace, '/tasks/create', { containerId: id, pid });
        await task.start();
      } catch (err) {
        await task.delete().catch(() => {});
        throw err;
      }
      this.tasks.set(key, task);
    } finally {
      this.creating.delete(key);
    }
    this.events.publish(ctx.namespace, '/tasks/start', { containerId: id, pid });
    this.watchExit(ctx.namespace, task);
    // Just started: running (asking runc would cost a process; GET .../task asks).
    return { id, status: 'running', pid, startedAt: new Date() };
  }

  /** Publishes `/tasks/exit` when the task's process ends (or at once if it has). */
  private watchExit(ns: string, task: Task): void {
    task.wait().then(
      (exit) => this.publishExit(ns, task, exit),
      () => {}, // deleted meanwhile (the delete reported the exit)
    );
  }

  /** `/tasks/exit`, once per task, whether the watcher or a delete sees the exit first. */
  private publishExit(ns: string, task: Task, exit: ExitStatus): void {
    if (this.exitReported.has(task)) return;
    this.exitReported.add(task);
    this.events.publish(ns, '/tasks/exit', { containerId: task.id, exitStatus: exit.exitCode, exitedAt: exit.exitedAt.toISOString() });
  }

  async list(ctx: OpContext): Promise<TaskView[]> {
    const out: TaskView[] = [];
    const prefix = `${checkNamespace(ctx)}/`;
    for (const [key, task] of this.tasks) {
      if (key.startsWith(prefix)) out.push({ id: task.id, ...(await task.status()) });
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  async get(ctx: OpContext, id: string): Promise<TaskView> {
    return { id, ...(await this.task(ctx, id).status()) };
  }

  async kill(ctx: OpContext, id: string, signal: string | number, all = false): Promise<void> {
    await this.task(ctx, id).kill(signal, { all });
  }

  wait(ctx: OpContext, id: string): Promise<ExitStatus> {
    return this.task(ctx, id).wait();
  }

  /** Deletes a stopped (or never started) task: runc delete, the rootfs unmounted, the bundle gone. */
  async delete(ctx: OpContext, id: string): Promise<ExitStatus> {
    const task = this.task(ctx, id);
    const exit = await task.delete();
    this.tasks.delete(nsKey(ctx.namespace, id));
    this.publishExit(ctx.namespace, task, exit);
    this.events.publish(ctx.namespace, '/tasks/delete', { containerId: id, exitStatus: exit.exitCode });
    return exit;
  }

  /**
   * The task's output (its log files), from the start. With `follow`, the stream goes on until
   * the task has exited and everything it wrote has been read.
   */
  logs(ctx: OpContext, id: string, stream: LogStream, opts: { follow?: boolean; signal?: AbortSignal } = {}): Readable {
    const task = this.task(ctx, id);
    const path = join(task.bundle.path, `${stream}.log`);
    if (!opts.follow) return createReadStream(path);
    return Readable.from(followFile(path, task, opts.signal));
  }
}

/** Reads a growing file until its writer (the task) has exited and the end is reached. */
async function* followFile(path: string, task: Task, signal?: AbortSignal): AsyncGenerator<Buffer> {
  let pos = 0;
  // One wait (the exit file, watched), not a `runc state` process per poll.
  let gone = false;
  task.wait().then(
    () => (gone = true),
    () => (gone = true), // deleted meanwhile
  );
  for (;;) {
    // Read before the size: what the task wrote before it exited is then in the file.
    const exited = gone;
    const size = await stat(path).then((s) => s.size, () => 0);
    if (size > pos) {
      for await (const chunk of createReadStream(path, { start: pos, end: size - 1 })) {
        pos += (chunk as Buffer).length;
        yield chunk as Buffer;
      }
      continue;
    }
    if (exited) return;
    if (signal?.aborted) return;
    await sleep(50, undefined, { signal }).catch(() => {});
  }
}
