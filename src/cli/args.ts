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

/** A label change as PATCH wants it: only the keys given change, unless `replace`. */
export function labelPatch(args: string[], replace: boolean | undefined): LabelsUpdate {
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
