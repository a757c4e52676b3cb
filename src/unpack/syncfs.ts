// syncfs(2): flush every file and folder of one file system (containerd's WithSyncFs), called in
// libc through koffi, a foreign-function interface whose binary comes in its npm package. Node has
// no binding for it; spawning coreutils' `sync --file-system` instead forks the whole server
// process for one system call. Loaded on first use: most commands never sync a file system.
import { closeSync, openSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createRequire } from 'node:module';

interface SyncFs {
  (fd: number): number;
  async(fd: number, done: (err: unknown, result: number) => void): void;
}

let syncfs: SyncFs | undefined;

function binding(): SyncFs {
  if (!syncfs) {
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    syncfs = koffi.load('libc.so.6').func('int syncfs(int fd)') as unknown as SyncFs;
  }
  return syncfs;
}

const failed = (path: string, detail: string, cause?: unknown): Error => new Error(`syncfs of ${path}'s file system: ${detail}`, { cause });

/** syncfs(2) of the file system holding `path`, blocking this thread (for the unpack workers). */
export function syncFileSystemSync(path: string): void {
  const fn = binding();
  const fd = openSync(path, 'r');
  try {
    if (fn(fd) !== 0) {
      const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
      throw failed(path, `errno ${koffi.errno()}`);
    }
  } finally {
    closeSync(fd);
  }
}

/** syncfs(2) of the file system holding `path`, on a thread of koffi's pool: the event loop goes on. */
export async function syncFileSystem(path: string): Promise<void> {
  const fn = binding();
  const fh = await open(path, 'r');
  try {
    const result = await new Promise<number>((resolve, reject) => fn.async(fh.fd, (err, r) => (err ? reject(failed(path, String(err), err)) : resolve(r))));
    if (result !== 0) throw failed(path, 'the call failed');
  } finally {
    await fh.close();
  }
}
