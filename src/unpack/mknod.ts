// Device nodes and FIFOs: Node has no mknod(2), so coreutils' mknod does it (devices need root).
import { execFileSync } from 'node:child_process';

export type NodeKind = 'char' | 'block' | 'fifo';

const typeArg: Record<NodeKind, string> = { char: 'c', block: 'b', fifo: 'p' };

/** Creates `path` (which must not exist) with the CLI's default mode; the caller chmods it. */
export function mknod(path: string, kind: NodeKind, major = 0, minor = 0): void {
  const args = kind === 'fifo' ? [path, 'p'] : [path, typeArg[kind], String(major), String(minor)];
  try {
    execFileSync('mknod', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? '').trim();
    const failure = new Error(stderr || `mknod ${args.join(' ')}: ${(err as Error).message}`, { cause: err });
    // The CLI reports no errno; "File exists" is the one the applier must tell apart (the layer's
    // own conflict, e.g. an overlay whiteout of an entry the same layer wrote).
    throw stderr.endsWith('File exists') ? Object.assign(failure, { code: 'EEXIST' }) : failure;
  }
}
