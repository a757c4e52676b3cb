// Times as containerd writes them: RFC 3339 with nanoseconds (Go's time.MarshalText). berth's
// clock is the JS clock (milliseconds); parsing keeps what JS can hold.
import { open, readFile, rename } from 'node:fs/promises';
import { constants } from 'node:fs';

/** `2026-11-23T01:02:03.456000000Z` */
export function formatTimestamp(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000000Z');
}

/** Parses RFC 3339 with any number of fractional digits and any offset; undefined if malformed. */
export function parseTimestamp(text: string): Date | undefined {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/.exec(text.trim());
  if (!m) return undefined;
  const ms = (m[2] ?? '').padEnd(3, '0').slice(0, 3);
  const date = new Date(`${m[1]}.${ms}${m[3]}`);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** Writes `<path>.tmp` synchronously to disk, then renames it over `path`: never half a file. */
export async function writeTimestampFile(path: string, date: Date): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC | constants.O_SYNC, 0o666);
  try {
    await fh.writeFile(formatTimestamp(date));
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

/** Reads a timestamp file; throws the fs error (ENOENT) or a parse error naming the file. */
export async function readTimestampFile(path: string): Promise<Date> {
  const text = await readFile(path, 'utf8');
  const date = parseTimestamp(text);
  if (!date) throw new Error(`could not parse timestamp file ${path}: ${JSON.stringify(text)}`);
  return date;
}
