// The exit of a process run under a shim (shim.ts): the shim writes `<dir>/exit` (the status)
// when the process ends, atomically, its mtime being the exit time. The init task and each exec
// process have such a folder; both wait for their exit the same way.
import { watch } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { isMissingFile, notFound } from '../../store/errors.js';
import { bundleFiles } from './runc.js';

export interface ExitStatus {
  /** The exit code, 128+signal when killed, 255 when the status was lost (the shim died). */
  exitCode: number;
  exitedAt: Date;
}

/** containerd's UnknownExitStatus. */
export const UNKNOWN_EXIT_STATUS = 255;

/** How often waitForExit() looks again when no file event came (fs.watch can miss one). */
const pollMs = 250;

/** The status in `<dir>/exit`, or undefined while the process runs. */
export async function readExit(dir: string): Promise<ExitStatus | undefined> {
  const path = join(dir, bundleFiles.exit);
  try {
    const [text, info] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    return { exitCode: Number(text.trim()), exitedAt: info.mtime };
  } catch (err) {
    if (isMissingFile(err)) return undefined;
    throw err;
  }
}

/** The shim of `dir` lives while its command line still names that folder's exit file (pids are reused). */
export async function shimAlive(dir: string): Promise<boolean> {
  let pid: number;
  try {
    pid = Number((await readFile(join(dir, bundleFiles.shimPid), 'utf8')).trim());
  } catch (err) {
    if (isMissingFile(err)) return false;
    throw err;
  }
  if (!pid) return false;
  try {
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    return argv.includes(join(dir, bundleFiles.exit));
  } catch {
    return false;
  }
}

/**
 * Resolves when the shim of `dir` has written the exit file, at once if it has; with an unknown
 * status (255) if the shim is gone without writing it. `what` names the process in errors.
 */
export async function waitForExit(dir: string, what: string): Promise<ExitStatus> {
  const ac = new AbortController();
  let wake: () => void = () => undefined;
  let watcher;
  try {
    watcher = watch(dir, { signal: ac.signal }, (_event, file) => {
      if (file === bundleFiles.exit) wake();
    });
  } catch (err) {
    if (isMissingFile(err)) throw notFound(`${what}: ${dir} does not exist`, err);
    throw err;
  }
  watcher.on('error', () => undefined);
  try {
    for (;;) {
      const exit = await readExit(dir);
      if (exit) return exit;
      if (!(await shimAlive(dir))) {
        // The shim may have written the file just before leaving.
        return (await readExit(dir)) ?? { exitCode: UNKNOWN_EXIT_STATUS, exitedAt: new Date() };
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        void sleep(pollMs, undefined, { signal: ac.signal }).then(resolve, resolve);
      });
    }
  } finally {
    ac.abort();
  }
}
