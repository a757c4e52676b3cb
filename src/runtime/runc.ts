// A runc driver, as containerd's go-runc is used by containerd-shim-runc-v2: the same command
// lines, global flags and error mapping. One Runc per namespace (its `root` is runc's state
// directory for that namespace, `<runcRoot>/<ns>`).
//
// `create` does not run runc itself but starts a shim (shim.ts) that runs `runc create` and
// then stays as the parent of the container's init, so the exit code lands in `<bundle>/exit`
// whether or not berth is running when the container ends; `exec` likewise runs `runc exec
// --detach` under a shim of its own, for another process in the container. Everything else
// (start, state, kill, delete, list) is a plain runc invocation from berth.
import { execFile } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { BerthError, failedPrecondition, invalidArgument, isMissingFile, notFound, type ErrorCode } from '../../store/errors.js';
import { startShim, type ShimPipes, type ShimResult, type ShimStdio } from './shim.js';

const execFileAsync = promisify(execFile);

export type RuncStatus = 'creating' | 'created' | 'running' | 'paused' | 'stopped';

/** `runc state` / `runc list` entries. */
export interface RuncState {
  id: string;
  pid: number;
  status: RuncStatus;
  bundle: string;
  rootfs: string;
  /** RFC 3339 with nanoseconds. */
  created: string;
  annotations?: Record<string, string>;
}

/** A file path (opened for append, created 0640), an open file descriptor, or a pipe to berth. */
export type Output = string | number | 'pipe';

export interface CreateOptions {
  bundle: string;
  /** Default `<bundle>/init.pid`. */
  pidFile?: string;
  /**
   * The container's stdout and stderr: files, so that the container outlives berth; pipes only
   * for an attached process. With a terminal (the spec's process.terminal) they carry nothing.
   */
  stdout: Output;
  stderr: Output;
  /** A pipe from berth (an interactive process); default none (/dev/null). */
  stdin?: 'pipe';
  /** Where runc sends the terminal's master (a console relay listens there: console.ts). */
  consoleSocket?: string;
  noPivot?: boolean;
}

export interface ExecOptions {
  /** The exec process's folder: its pid, exit, shim.pid and log.json files. */
  dir: string;
  /** The process as the spec's `process` (args, env, cwd, user, terminal, consoleSize). */
  processFile: string;
  stdin?: 'pipe';
  stdout: Output;
  stderr: Output;
  consoleSocket?: string;
}

export interface Created {
  /** The container's init, as the host sees it. */
  pid: number;
  /** The shim that waits for it and writes the exit file. */
  shimPid: number;
  /** berth's ends of the pipes asked for. */
  pipes: ShimPipes;
}

/** The files of a bundle runc and the shim write (containerd's names where it has them). */
export const bundleFiles = {
  pid: 'init.pid',
  log: 'log.json',
  /** The init's exit code (or 128+signal), written by the shim. */
  exit: 'exit',
  /** The shim's pid, written by the shim. */
  shimPid: 'shim.pid',
} as const;

export class Runc {
  readonly binary: string;
  readonly root: string;
  private readonly env: NodeJS.ProcessEnv;

  constructor({ binary = 'runc', root }: { binary?: string; root: string }) {
    this.binary = binary;
    this.root = root;
    // As go-runc: the daemon's environment without NOTIFY_SOCKET (runc would talk to systemd).
    const { NOTIFY_SOCKET: _notify, ...env } = process.env;
    this.env = env;
  }

  /** `runc create` under a shim; resolves with the init's pid once the container is `created`. */
  async create(id: string, opts: CreateOptions): Promise<Created> {
    const pidFile = opts.pidFile ?? join(opts.bundle, bundleFiles.pid);
    const logFile = join(opts.bundle, bundleFiles.log);
    const args = [...this.global(logFile), 'create', '--bundle', opts.bundle, '--pid-file', pidFile];
    if (opts.consoleSocket) args.push('--console-socket', opts.consoleSocket);
    if (opts.noPivot) args.push('--no-pivot');
    args.push(id);
    const result = await this.underShim(args, opts.bundle, pidFile, opts);
    if (result.created) return { pid: result.pid, shimPid: result.shimPid, pipes: result.pipes };
    const msg = (await lastLoggedError(logFile)) ?? `runc create exited with status ${result.runcExit}`;
    throw new BerthError(createErrorCode(msg), `OCI runtime create failed: ${msg} (container ${id})`);
  }

  /**
   * `runc exec --detach` of another process in container `id`, under a shim of its own (its exit
   * status lands in `<dir>/exit`); resolves once the process runs.
   */
  async exec(id: string, opts: ExecOptions): Promise<Created> {
    const pidFile = join(opts.dir, bundleFiles.pid);
    const logFile = join(opts.dir, bundleFiles.log);
    const args = [...this.global(logFile), 'exec', '--detach', '--pid-file', pidFile, '--process', opts.processFile];
    if (opts.consoleSocket) args.push('--console-socket', opts.consoleSocket);
    args.push(id);
    const result = await this.underShim(args, opts.dir, pidFile, opts);
    if (result.created) return { pid: result.pid, shimPid: result.shimPid, pipes: result.pipes };
    const msg = (await lastLoggedError(logFile)) ?? `runc exec exited with status ${result.runcExit}`;
    throw new BerthError(execErrorCode(msg), `OCI runtime exec failed: ${msg} (container ${id})`);
  }

  /** Runs runc `args` under a shim whose files live in `dir`. */
  private async underShim(args: string[], dir: string, pidFile: string, io: { stdin?: 'pipe'; stdout: Output; stderr: Output }): Promise<ShimResult> {
    const opened: number[] = [];
    const stdioOf = (out: Output): ShimStdio => {
      if (typeof out === 'number' || out === 'pipe') return out;
      const fd = openSync(out, 'a', 0o640);
      opened.push(fd);
      return fd;
    };
    try {
      return await startShim({
        runc: this.binary,
        runcArgs: args,
        shimPidFile: join(dir, bundleFiles.shimPid),
        pidFile,
        exitFile: join(dir, bundleFiles.exit),
        stdin: io.stdin,
        stdout: stdioOf(io.stdout),
        stderr: stdioOf(io.stderr),
        env: this.env,
      });
    } finally {
      for (const fd of opened) closeSync(fd);
    }
  }

  async start(id: string): Promise<void> {
    const { failure } = await this.run(['start', id]);
    if (failure === undefined) return;
    const code: ErrorCode = /does not exist/.test(failure) ? 'not_found' : /cannot start/.test(failure) ? 'failed_precondition' : 'internal';
    throw new BerthError(code, `OCI runtime start failed: ${failure} (container ${id})`);
  }

  async state(id: string): Promise<RuncState> {
    const { stdout, failure } = await this.run(['state', id]);
    if (failure === undefined) return JSON.parse(stdout) as RuncState;
    if (/does not exist/.test(failure)) throw notFound(`no such container: ${id} (runc root ${this.root})`);
    throw new BerthError('internal', `runc state ${id}: ${failure}`);
  }

  /** `signal`: a number or a name (`SIGTERM`, `TERM`); `all` signals every process of the container. */
  async kill(id: string, signal: number | string, opts: { all?: boolean } = {}): Promise<void> {
    const args = ['kill', ...(opts.all ? ['--all'] : []), id, String(signalNumber(signal))];
    const { failure } = await this.run(args);
    if (failure === undefined) return;
    if (/os: process already finished|container not running|no such process/i.test(failure)) {
      throw notFound(`process already finished: container ${id}`);
    }
    if (/does not exist/.test(failure)) throw notFound(`no such container: ${id}`);
    throw new BerthError('internal', `unknown error after kill: ${failure} (container ${id})`);
  }

  /** A container that does not exist is already deleted. */
  async delete(id: string, opts: { force?: boolean } = {}): Promise<void> {
    const { failure } = await this.run(['delete', ...(opts.force ? ['--force'] : []), id]);
    if (failure === undefined || /does not exist/.test(failure)) return;
    const code: ErrorCode = /not stopped|is (running|paused)/.test(failure) ? 'failed_precondition' : 'internal';
    throw new BerthError(code, `failed to delete task: ${failure} (container ${id})`);
  }

  async list(): Promise<RuncState[]> {
    const { stdout, failure } = await this.run(['list', '--format', 'json']);
    if (failure !== undefined) throw new BerthError('internal', `runc list: ${failure}`);
    return (JSON.parse(stdout) as RuncState[] | null) ?? [];
  }

  private global(logFile?: string): string[] {
    // With no --log, runc logs to stderr; JSON either way, so a failure's message can be read.
    return ['--root', this.root, ...(logFile ? ['--log', logFile] : []), '--log-format', 'json'];
  }

  /** Runs runc; a non-zero exit gives `failure`, the last error runc logged. */
  private async run(args: string[]): Promise<{ stdout: string; failure?: string }> {
    try {
      const { stdout } = await execFileAsync(this.binary, [...this.global(), ...args], { env: this.env, maxBuffer: 16 << 20 });
      return { stdout };
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
      if (e.code === 'ENOENT') throw failedPrecondition(`runc binary ${this.binary} not found`, err);
      const failure = lastError(e.stderr ?? '') ?? (e.stderr?.trim() || e.message);
      return { stdout: e.stdout ?? '', failure };
    }
  }
}

/** runc's JSON log lines are `{level, msg, time}`: the message of the last `error` one. */
function lastError(log: string): string | undefined {
  let msg: string | undefined;
  for (const line of log.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const entry = JSON.parse(line) as { level?: string; msg?: string };
      if (entry.level === 'error' && entry.msg) msg = entry.msg;
    } catch {
      // A torn line (runc killed mid-write) says nothing.
    }
  }
  return msg;
}

async function lastLoggedError(logFile: string): Promise<string | undefined> {
  try {
    return lastError(await readFile(logFile, 'utf8'));
  } catch (err) {
    if (isMissingFile(err)) return undefined;
    throw err;
  }
}

/**
 * A process that cannot be executed is the caller's mistake (a wrong command or image), so it is
 * invalid_argument, naming the executable as runc does: `exec: "foo": executable file not found
 * in $PATH`, `exec: "/bin/foo": stat /bin/foo: no such file or directory`, `…: permission denied`.
 */
function createErrorCode(msg: string): ErrorCode {
  if (/exec: ".*": (executable file not found|stat .*: no such file or directory|permission denied)/.test(msg)) {
    return 'invalid_argument';
  }
  if (/args must not be empty/.test(msg)) return 'invalid_argument';
  return 'internal';
}

/** As create, and a container that is not running (any more) is the caller's precondition. */
function execErrorCode(msg: string): ErrorCode {
  if (/cannot exec in a (stopped|paused|created) (container|state)|container .*not running|does not exist/.test(msg)) return 'failed_precondition';
  return createErrorCode(msg);
}

function signalNumber(signal: number | string): number {
  if (typeof signal === 'number') return signal;
  if (/^\d+$/.test(signal)) return Number(signal);
  const name = (signal.startsWith('SIG') ? signal : `SIG${signal}`).toUpperCase() as keyof typeof osConstants.signals;
  const n = osConstants.signals[name];
  if (n === undefined) throw invalidArgument(`unknown signal ${JSON.stringify(signal)}`);
  return n;
}
