// A root folder is owned by one process. The owner writes `<root>/berth.lock` (its pid, address
// and start time) so that a second `berth serve` can say who holds the root. LevelDB's own LOCK
// (flock) backs this up where two processes race past a stale lock file.
import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { failedPrecondition } from '../store/errors.js';

export interface RootHolder {
  pid: number;
  address: string;
  startedAt: string;
}

export const rootLockFile = (root: string): string => join(root, 'berth.lock');

/** Takes the root or throws failed_precondition naming the process that holds it. */
export async function lockRoot(root: string, address: string): Promise<() => Promise<void>> {
  const path = rootLockFile(root);
  const me: RootHolder = { pid: process.pid, address, startedAt: new Date().toISOString() };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o644);
      try {
        await fh.writeFile(JSON.stringify(me) + '\n');
        await fh.sync();
      } finally {
        await fh.close();
      }
      return async () => {
        const holder = await readHolder(path);
        if (holder?.pid === me.pid && holder.startedAt === me.startedAt) await rm(path, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = await readHolder(path);
    if (holder && isAlive(holder.pid)) {
      throw failedPrecondition(
        `root ${root} is in use by berth pid ${holder.pid} (serving ${holder.address} since ${holder.startedAt}); ` +
          `stop it or choose another --root`,
      );
    }
    // The holder is gone (crash, kill -9): its lock is stale.
    await rm(path, { force: true });
  }
  throw failedPrecondition(`root ${root}: could not take ${path}; another berth may be starting on it`);
}

async function readHolder(path: string): Promise<RootHolder | undefined> {
  try {
    const holder = JSON.parse(await readFile(path, 'utf8')) as RootHolder;
    return Number.isInteger(holder.pid) ? holder : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
