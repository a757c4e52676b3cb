// Where things live under a store root, exactly as containerd's local store lays them out.
// Ingest folders are named by the sha256 of the ref, so no ref can name a path outside `ingest/`.
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isMissingFile } from './errors.js';
import { parseDigest } from './digest.js';

export function blobsRoot(root: string): string {
  return join(root, 'blobs');
}

/** `<root>/blobs/<algorithm>/<hex>`; throws invalid_argument for an invalid digest. */
export function blobPath(root: string, digest: string): string {
  const { algorithm, encoded } = parseDigest(digest);
  return join(root, 'blobs', algorithm, encoded);
}

/** Blobs the GC removed, waiting to be unlinked (not part of containerd's layout; it ignores it). */
export function trashRoot(root: string): string {
  return join(root, '.trash');
}

export function ingestRoot(root: string): string {
  return join(root, 'ingest');
}

/** `<root>/ingest/<sha256 hex of ref>`. */
export function ingestPath(root: string, ref: string): string {
  return join(root, 'ingest', createHash('sha256').update(ref).digest('hex'));
}

export async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (isMissingFile(err)) return false;
    throw err;
  }
}
