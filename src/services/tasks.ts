// The tasks service: the process running in a container, through runc (runtime/task.ts). One
// task per container, keyed by namespace and container id. Exit codes are written by each
// task's shim whether or not anyone waits; at start the service finds the tasks of an earlier
// berth again from their bundles (running ones keep running, stopped ones keep their status).
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { alreadyExists, failedPrecondition, invalidArgument, isMissingFile, notFound } from '../../store/errors.js';
import type { EventBus } from '../events/bus.js';
import type { Container, ContainerStore } from '../metadata/containers.js';
import { checkNamespace, type OpContext } from '../metadata/context.js';
import { nsKey } from '../metadata/db.js';
import { Runc } from '../runtime/runc.js';
import { ConsoleRelay } from '../runtime/console.js';
import { ExecProcess } from '../runtime/exec.js';
import { withCwd, withEnv, withTty, type Spec } from '../runtime/spec.js';
import { Task, type ExitStatus, type TaskStatus } from '../runtime/task.js';
import type { SnapshotService } from './snapshots.js';

export interface TaskView extends TaskStatus {
  id: string;
}

/** A terminal's window size in characters. */
export interface WindowSize {
  cols: number;
  rows: number;
}

/** How a client attaches to a process it starts (berth run -i/-t, berth exec). */
export interface AttachOptions {
  /** Forward the client's input (to the terminal, or to the process's stdin). */
  stdin?: boolean;
  /** The terminal's window size at start (with a terminal). */
  size?: WindowSize;
}

export interface ExecRequest extends AttachOptions {
  /** The command and its arguments (not empty). */
  args: string[];
  /** A terminal for the process (its output then comes as one stream). */
  tty?: boolean;
  /** `K=V` set, `K` removed, over the container's environment. */
  env?: string[];
  /** Default: the container's working directory. */
  cwd?: string;
}

/**
 * A process started with its I/O on one client: what it writes (one stream with a terminal,
 * stdout and stderr without), what the client types, the terminal's size.
 */
export interface AttachedProcess {
  pid: number;
  /** Set for an exec process. */
  execId?: string;
  terminal: boolean;
  stdout: Readable;
  stderr?: Readable;
  /** Present when the client's input is forwarded. */
  stdin?: Writable;
  /** Sets the terminal's window size (nothing without a terminal). */
  resize(size: WindowSize): void;
  /** The exit status, once the process has ended and its terminal (if any) is drained. */
  exited: Promise<ExitStatus>;
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
    const { task, pid } = await this.start(ctx, id, undefined);
    // Just started: running (asking runc would cost a process; GET .../task asks).
    return { id: task.id, status: 'running', pid, startedAt: new Date() };
  }

  /**
   * Creates and starts the container's task with its I/O on the caller: its terminal (a container
   * made with `tty`) through a console relay, else its stdin a pipe (with `stdin`) and its output
   * the log files, followed. The output then also stays in the logs only without a terminal.
   */
  async createAttached(ctx: OpContext, id: string, opts: AttachOptions): Promise<AttachedProcess> {
    const { task, pid, relay } = await this.start(ctx, id, opts);
    const exited = task.wait();
    if (relay) return terminalProcess(pid, relay, opts.stdin === true, exited);
    const stdin = opts.stdin && task.stdin ? task.stdin : undefined;
    if (!stdin) task.stdin?.destroy();
    return {
      pid,
      terminal: false,
      stdout: this.logs(ctx, id, 'stdout', { follow: true }),
      stderr: this.logs(ctx, id, 'stderr', { follow: true }),
      stdin,
      resize: () => undefined,
      exited,
    };
  }

  private async start(ctx: OpContext, id: string, attach: AttachOptions | undefined): Promise<{ task: Task; pid: number; relay?: ConsoleRelay }> {
    const key = nsKey(checkNamespace(ctx), id);
    if (this.tasks.has(key) || this.creating.has(key)) throw alreadyExists(`container "${id}" has a task already`);
    // Reserved before the first await: a container delete now sees a task and refuses.
    this.creating.add(key);
    let task: Task;
    let pid: number;
    let relay: ConsoleRelay | undefined;
    try {
      const container = await this.containers.get(ctx, id);
      let spec = container.spec as unknown as Spec;
      const terminal = spec.process.terminal === true;
      if (terminal) {
        // Only an attached client can hold a terminal: nobody would read it otherwise.
        if (!attach) throw failedPrecondition(`container "${id}" has a terminal (tty): start its task attached (berth run -t, GET /v1/containers/{id}/task/attach)`);
        relay = await ConsoleRelay.start();
        if (attach.size) spec = { ...spec, process: { ...spec.process, consoleSize: { height: attach.size.rows, width: attach.size.cols } } };
      }
      const rootfs = container.snapshotter && container.snapshotKey ? await this.snapshots.mounts(ctx, container.snapshotter, container.snapshotKey) : [];
      try {
        task = await Task.create({
          runc: this.runc(ctx.namespace),
          stateDir: this.opts.stateDir,
          namespace: ctx.namespace,
          id,
          spec,
          rootfs,
          consoleSocket: relay?.socketPath,
          stdin: !terminal && attach?.stdin ? 'pipe' : undefined,
        });
      } catch (err) {
        await relay?.close();
        throw err;
      }
      try {
        pid = await task.pid();
        this.events.publish(ctx.namespace, '/tasks/create', { containerId: id, pid });
        await task.start();
      } catch (err) {
        task.stdin?.destroy();
        await relay?.close();
        await task.delete().catch(() => {});
        throw err;
      }
      this.tasks.set(key, task);
    } finally {
      this.creating.delete(key);
    }
    this.events.publish(ctx.namespace, '/tasks/start', { containerId: id, pid });
    this.watchExit(ctx.namespace, task);
    return { task, pid, relay };
  }

  /** The container and its task, which runs: not_found for no such container, failed_precondition for no running task. */
  async running(ctx: OpContext, id: string): Promise<{ container: Container; task: Task }> {
    checkNamespace(ctx);
    const container = await this.containers.get(ctx, id);
    const task = this.tasks.get(nsKey(ctx.namespace, id));
    if (!task) throw failedPrecondition(`container "${id}" has no running task (start it first: berth run, POST /v1/containers/{id}/task)`);
    const { status } = await task.status();
    if (status !== 'running') throw failedPrecondition(`container "${id}": its task is ${status}, not running`);
    return { container, task };
  }

  /** Refuses as createAttached would before starting anything: not_found for no such container, already_exists for a task already. */
  async checkCreate(ctx: OpContext, id: string): Promise<void> {
    await this.containers.get(ctx, id);
    if (this.has(ctx, id)) throw alreadyExists(`container "${id}" has a task already`);
  }

  /**
   * Runs another process in the container's running task (ctr tasks exec): the container's
   * process with `args`, `env`, `cwd` and a terminal or not. not_found for an unknown container,
   * failed_precondition when its task is not running.
   */
  async exec(ctx: OpContext, id: string, req: ExecRequest): Promise<AttachedProcess> {
    const { container, task } = await this.running(ctx, id);
    if (req.args.length === 0) throw invalidArgument(`exec in container "${id}": args must not be empty`);
    let spec = withEnv({ ...(container.spec as unknown as Spec) }, req.env ?? []);
    spec = { ...spec, process: { ...spec.process, args: [...req.args], terminal: req.tty === true } };
    if (req.cwd) spec = withCwd(spec, req.cwd);
    if (req.tty) {
      spec = withTty(spec);
      if (req.size) spec = { ...spec, process: { ...spec.process, consoleSize: { height: req.size.rows, width: req.size.cols } } };
    }
    const relay = req.tty ? await ConsoleRelay.start() : undefined;
    let exec: ExecProcess;
    try {
      exec = await ExecProcess.start({ runc: this.runc(ctx.namespace), id, bundle: task.bundle, process: spec.process, console: relay, stdin: req.stdin });
    } catch (err) {
      await relay?.close();
      throw err;
    }
    const { execId, pid } = exec;
    this.events.publish(ctx.namespace, '/tasks/exec-started', { containerId: id, execId, pid });
    const exited = exec.wait().then((exit) => {
      this.events.publish(ctx.namespace, '/tasks/exit', { containerId: id, execId, exitStatus: exit.exitCode, exitedAt: exit.exitedAt.toISOString() });
      return exit;
    });
    if (relay) return { ...terminalProcess(pid, relay, req.stdin === true, exited), execId };
    const { stdin, stdout, stderr } = exec.pipes;
    return { pid, execId, terminal: false, stdout: stdout!, stderr: stderr!, stdin: stdin ?? undefined, resize: () => undefined, exited };
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

/** A process's terminal I/O through its relay: the output ends once the process has exited and the terminal is drained. */
function terminalProcess(pid: number, relay: ConsoleRelay, stdin: boolean, exit: Promise<ExitStatus>): AttachedProcess {
  if (!stdin) relay.input.end();
  const exited = exit.then(async (status) => {
    await relay.drain();
    return status;
  });
  return {
    pid,
    terminal: true,
    stdout: relay.output,
    stdin: stdin ? relay.input : undefined,
    resize: (size) => relay.resize(size.cols, size.rows),
    exited,
  };
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
