// One byte range per request (RFC 9110 §14): `bytes=a-b`, `bytes=a-`, `bytes=-n`. A range past the
// end is clipped; one that starts past the end or runs backwards is unsatisfiable (416, which
// containerd and the conformance suite expect, where some mirrors answer 400). Several ranges in
// one request are refused with 416 too: a blob is never sent as multipart.
import { RegistryError } from './errors.js';

export interface ByteRange {
  /** First byte. */
  start: number;
  /** One past the last byte. */
  end: number;
}

/** The range a `Range` header asks of a `size`-byte blob; undefined for the whole blob. */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (header === undefined) return undefined;
  const unsatisfiable = (why: string) =>
    new RegistryError(416, 'RANGE_INVALID', `range ${JSON.stringify(header)} ${why}`, undefined, { 'content-range': `bytes */${size}` });
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) {
    if (/^bytes=.*,/.test(header)) throw unsatisfiable('asks for more than one range; one range per request');
    throw unsatisfiable('is not a byte range');
  }
  const [, first, last] = m;
  if (first === '' && last === '') throw unsatisfiable('names no bytes');
  if (first === '') {
    // The last n bytes.
    const n = Number(last);
    if (n === 0) throw unsatisfiable('asks for no bytes');
    return { start: Math.max(0, size - n), end: size };
  }
  const start = Number(first);
  const end = last === '' ? size : Math.min(size, Number(last) + 1);
  if (!Number.isSafeInteger(start) || start >= size) throw unsatisfiable(`starts past the end of a ${size}-byte blob`);
  if (end <= start) throw unsatisfiable('ends before it starts');
  return { start, end };
}
