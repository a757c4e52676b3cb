// Disk usage of a snapshot's folder, as containerd's fs.DiskUsage counts it: every inode once
// (hardlinks are not counted twice; the folder itself counts), size = allocated blocks × 512
// (what `du` shows, not the apparent size — a sparse file costs what it occupies).
//
// Measured on 10,101 inodes (100 folders × 100 small files, page cache warm, 9 runs): GNU `du`
// (two runs in parallel, bytes and inodes) 26–77 ms; a synchronous lstat walk in Node 34–100 ms,
// which also blocks the event loop for that long. So `du` it is.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Usage } from './types.js';

const run = promisify(execFile);

export async function diskUsage(dir: string): Promise<Usage> {
  try {
    const [bytes, inodes] = await Promise.all([
      run('du', ['-s', '-B1', '--', dir]),
      run('du', ['-s', '--inodes', '--', dir]),
    ]);
    return { inodes: firstNumber(inodes.stdout, dir), size: firstNumber(bytes.stdout, dir) };
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    throw new Error(`disk usage of ${dir}: ${stderr || (err as Error).message}`, { cause: err });
  }
}

/** `du -s` prints `<number>\t<path>`. */
function firstNumber(stdout: string, dir: string): number {
  const n = Number(stdout.slice(0, stdout.indexOf('\t')));
  if (!Number.isSafeInteger(n)) throw new Error(`disk usage of ${dir}: unexpected du output ${JSON.stringify(stdout)}`);
  return n;
}
