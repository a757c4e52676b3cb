// An exec process: another process in a running container (containerd's exec process, ctr tasks
// exec), `runc exec --detach` under a shim of its own so that its exit status is collected as the
// init's is. Its files live in `<bundle>/execs/<exec id>` (process.json, pid, exit, shim.pid,
// log.json) and go with the folder once the exit has been read.
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { Bundle } from './bundle.js';
import type { ConsoleRelay } from './console.js';
import { waitForExit, type ExitStatus } from './exit.js';
import type { ShimPipes } from './shim.js';
import type { Runc } from './runc.js';
import type { Process } from './spec.js';

export interface ExecProcessOptions {
  runc: Runc;
  /** The container's id and its task's bundle. */
  id: string;
  bundle: Bundle;
  /** The whole process (the container's, with the args and overrides of the exec). */
  process: Process;
  /** With process.terminal: the relay that receives the terminal. */
  console?: ConsoleRelay;
  /** Without a terminal: stdin a pipe from berth (else /dev/null); stdout and stderr are always pipes. */
  stdin?: boolean;
}

export class ExecProcess {
  readonly execId: string;
  readonly pid: number;
  /** berth's ends of the process's pipes (none with a terminal: the relay carries its I/O). */
  readonly pipes: ShimPipes;
  private readonly dir: string;

  private constructor(execId: string, dir: string, pid: number, pipes: ShimPipes) {
    this.execId = execId;
    this.dir = dir;
    this.pid = pid;
    this.pipes = pipes;
  }

  /** Starts the process; resolves once it runs. runc's refusal (no such executable, container not running) is thrown. */
  static async start(opts: ExecProcessOptions): Promise<ExecProcess> {
    const execId = randomBytes(8).toString('hex');
    const dir = join(opts.bundle.path, 'execs', execId);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    try {
      const processFile = join(dir, 'process.json');
      await writeFile(processFile, JSON.stringify(opts.process), { mode: 0o600 });
      const terminal = opts.process.terminal === true;
      const created = await opts.runc.exec(opts.id, {
        dir,
        processFile,
        consoleSocket: terminal ? opts.console?.socketPath : undefined,
        stdin: !terminal && opts.stdin ? 'pipe' : undefined,
        // With a terminal runc writes nothing there (its errors go to log.json).
        stdout: terminal ? join(dir, 'stdout.log') : 'pipe',
        stderr: terminal ? join(dir, 'stderr.log') : 'pipe',
      });
      return new ExecProcess(execId, dir, created.pid, created.pipes);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Resolves with the exit status once the process has ended; its folder is removed then. */
  async wait(): Promise<ExitStatus> {
    const exit = await waitForExit(this.dir, `exec process ${this.execId}`);
    await rm(this.dir, { recursive: true, force: true });
    return exit;
  }
}
