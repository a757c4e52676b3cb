// Argument parsing shared by the client commands.
import { InvalidArgumentError } from 'commander';
import type { LabelsUpdate } from '../client/types.js';

/** For repeatable options: `--filter a --filter b` → ['a', 'b']. */
export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** `k=v` pairs; `k=` (or `k`) means remove k. */
export function parseLabelArgs(args: string[]): Record<string, string> {
  return Object.fromEntries(
    args.map((a) => {
      const i = a.indexOf('=');
      return i < 0 ? [a, ''] : [a.slice(0, i), a.slice(i + 1)];
    }),
  );
}

/** A label change as PATCH wants it: only the keys given change, unless `replace`; every argument needs its `=`. */
export function labelPatch(args: string[], replace: boolean | undefined): LabelsUpdate {
  // As `ctr content label`: `k=` removes k; a bare `k` is a mistake, not a silent no-op.
  const bare = args.filter((a) => !a.includes('='));
  if (bare.length) throw new Error(`${bare.map((a) => JSON.stringify(a)).join(', ')}: not k=v (give k=v to set a label, k= to remove it)`);
  const labels = parseLabelArgs(args);
  if (replace) return { labels, fieldpaths: [] }; // no field paths: the labels are replaced
  const fieldpaths = Object.keys(labels).map((k) => `labels.${k}`);
  if (fieldpaths.length === 0) throw new Error('give at least one label k=v (or k= to remove)');
  return { labels, fieldpaths };
}

/** A positive integer option (commander argParser). */
export function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}
