// Resolving tar entry paths inside an extraction root, as containerd's fs.RootPath and
// hardlinkRootPath do: symlinks met on the way are followed as if `root` were `/` (absolute
// targets restart at root, `..` stops at root), so no path ever leaves the root.
import { lstatSync, readlinkSync } from 'node:fs';
import { posix } from 'node:path';

/** continuity's limit against symlink cycles. */
const MAX_LINKS = 255;

export class TooManyLinksError extends Error {
  constructor() {
    super('too many links');
  }
}

/**
 * `unsafe` under `root` with every component that is a symlink resolved inside root; a missing
 * component is taken as a plain name (it may be created later). The last
 * component is followed too; callers that must not follow it resolve only the directory part.
 * `root` must be absolute and normalised, without a trailing slash.
 */
export function rootPath(root: string, unsafe: string): string {
  return resolveInRoot(root, unsafe).path;
}

/** What rootPath found on the way, for callers that remember resolutions (resolved-dirs.ts). */
export interface Resolution {
  path: string;
  /** A symlink was followed on the way. */
  followedLink: boolean;
}

export function resolveInRoot(root: string, unsafe: string): Resolution {
  const pending = unsafe.split('/').reverse();
  const resolved: string[] = [];
  let links = 0;
  let followedLink = false;
  while (pending.length > 0) {
    const part = pending.pop()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    resolved.push(part);
    const full = `${root}/${resolved.join('/')}`;
    const st = lstatSync(full, { throwIfNoEntry: false });
    if (!st?.isSymbolicLink()) continue;
    if (++links > MAX_LINKS) throw new TooManyLinksError();
    followedLink = true;
    const target = readlinkSync(full);
    resolved.pop();
    if (target.startsWith('/')) resolved.length = 0;
    for (const p of target.split('/').reverse()) pending.push(p);
  }
  return { path: resolved.length === 0 ? root : `${root}/${resolved.join('/')}`, followedLink };
}

/** containerd's hardlinkRootPath: the link target's directory is resolved, its last component is not (a hardlink to a symlink links the symlink). */
export function hardlinkRootPath(root: string, linkname: string): string {
  const slash = linkname.lastIndexOf('/');
  const dir = rootPath(root, linkname.slice(0, slash + 1));
  const target = posix.join(dir, linkname.slice(slash + 1));
  return isWithin(root, target) ? target : root;
}

export const isWithin = (root: string, p: string): boolean => p === root || p.startsWith(`${root}/`);
