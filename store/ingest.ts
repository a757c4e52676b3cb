// Reading an ingest folder back into a Status (containerd's readStatus), for Status,
// ListStatuses and resumption.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isMissingFile, notFound } from './errors.js';
import { readTimestampFile } from './timestamp.js';
import type { Status } from './types.js';

export const ingestFiles = {
  data: 'data',
  ref: 'ref',
  startedAt: 'startedat',
  updatedAt: 'updatedat',
  total: 'total',
} as const;

/**
 * The status of the ingest in `dir`. A missing `data` or `ref` file is not_found (the ingest
 * is gone or was never finished being created); `name` is what the error message calls it.
 */
export async function readIngestStatus(dir: string, name: string): Promise<Status> {
  const missing = (what: string, err: unknown) => notFound(`ingest ref ${JSON.stringify(name)}: ${what} not found`, err);
  let size: number;
  let mtime: Date;
  try {
    const st = await stat(join(dir, ingestFiles.data));
    size = st.size;
    mtime = st.mtime;
  } catch (err) {
    if (isMissingFile(err)) throw missing('data', err);
    throw err;
  }
  let ref: string;
  try {
    ref = await readFile(join(dir, ingestFiles.ref), 'utf8');
  } catch (err) {
    if (isMissingFile(err)) throw missing('ref', err);
    throw err;
  }
  const startedAt = await readTime(dir, ingestFiles.startedAt, missing);
  const updatedAt = await readTime(dir, ingestFiles.updatedAt, missing);
  return {
    ref,
    offset: size,
    total: await readTotal(dir),
    startedAt,
    // Writes since the last Close are only in the data file's mtime.
    updatedAt: mtime > updatedAt ? truncateToMs(mtime) : updatedAt,
  };
}

async function readTime(dir: string, file: string, missing: (what: string, err: unknown) => Error): Promise<Date> {
  try {
    return await readTimestampFile(join(dir, file));
  } catch (err) {
    if (isMissingFile(err)) throw missing(file, err);
    throw new Error(`could not read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** The expected total, 0 when none was recorded or the file is unreadable (as containerd). */
async function readTotal(dir: string): Promise<number> {
  try {
    const n = Number.parseInt(await readFile(join(dir, ingestFiles.total), 'utf8'), 10);
    return Number.isSafeInteger(n) && n > 0 ? n : 0;
  } catch {
    return 0;
  }
}

function truncateToMs(date: Date): Date {
  return new Date(Math.floor(date.getTime()));
}
