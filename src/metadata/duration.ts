// Durations as Go writes them (time.ParseDuration): a sequence of decimal numbers, each with an
// optional fraction and a unit — "24h", "90m", "1h30m", "1.5s", "300ms", "-2h45m". Units: ns,
// us (µs, μs), ms, s, m, h. "0" needs no unit. The API takes lease lifetimes this way, as ctr does.
import { invalidArgument } from '../../store/errors.js';

const nanosPerUnit: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  'µs': 1_000n, // U+00B5 micro sign
  'μs': 1_000n, // U+03BC Greek mu
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

/** Go's limit: a Duration is an int64 of nanoseconds (about 292 years). */
const maxNanos = 2n ** 63n - 1n;

/**
 * Parses a Go duration into nanoseconds. Throws invalid_argument with Go's message (without
 * its `time: ` prefix): `invalid duration "x"`, `missing unit in duration "10"`,
 * `unknown unit "d" in duration "1d"`.
 */
export function parseDurationNanos(text: string): bigint {
  const quoted = JSON.stringify(text);
  let s = text;
  let negative = false;
  if (s[0] === '-' || s[0] === '+') {
    negative = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return 0n;
  if (s === '') throw invalidArgument(`invalid duration ${quoted}`);
  let total = 0n;
  while (s !== '') {
    // The number: digits, optionally a fraction; at least one digit on either side of the dot.
    const num = /^(\d*)(?:\.(\d*))?/.exec(s)!;
    const [whole, intPart, fracPart = ''] = num;
    if (intPart === '' && fracPart === '') throw invalidArgument(`invalid duration ${quoted}`);
    s = s.slice(whole.length);
    // The unit: everything up to the next digit or dot.
    const unit = /^[^\d.]*/.exec(s)![0];
    if (unit === '') throw invalidArgument(`missing unit in duration ${quoted}`);
    const per = nanosPerUnit[unit];
    if (per === undefined) throw invalidArgument(`unknown unit ${JSON.stringify(unit)} in duration ${quoted}`);
    s = s.slice(unit.length);
    // Exact arithmetic: whole units, then the fraction truncated to whole nanoseconds.
    let v = BigInt(intPart || '0') * per;
    if (fracPart !== '') v += (BigInt(fracPart) * per) / 10n ** BigInt(fracPart.length);
    total += v;
    if (total > maxNanos + (negative ? 1n : 0n)) throw invalidArgument(`invalid duration ${quoted}`);
  }
  return negative ? -total : total;
}

/** Parses a Go duration into milliseconds (fractions of a millisecond are kept). */
export function parseDuration(text: string): number {
  return Number(parseDurationNanos(text)) / 1e6;
}
