// containerd's filter language (pkg/filters), used by every List/Walk API to select objects,
// e.g. `labels."containerd.io/gc.root"`, `name==foo,labels.env!=prod`, `digest~=^sha256:`.
// Objects expose their fields through an Adaptor; a Filter asks it only for the paths it names.

import { invalidArgument } from '../errors.js';
import { parseSelectors, type Selector } from './parser.js';

export interface FieldValue {
  value: string;
  present: boolean;
}

/** Looks up a field path, e.g. ['labels', 'containerd.io', 'gc.root'] or ['digest']. */
export type Adaptor = (fieldpath: string[]) => FieldValue;

export type Filter = (adaptor: Adaptor) => boolean;

/**
 * containerd's filters.ParseAll: no strings (or only empty ones) → match everything; each
 * string parsed separately and the results OR-ed; a parse error throws BerthError
 * invalid_argument whose message is containerd's text. Unlike containerd, a `~=` pattern that is
 * not a valid regular expression is an error too (containerd logs it and matches nothing).
 */
export function parseFilters(filters: readonly string[]): Filter {
  if (filters.length === 0) return () => true;
  const alternatives = filters.map((filter) => allOf(parseSelectors(filter).map((s) => compile(s, filter))));
  return (adaptor) => alternatives.some((matches) => matches(adaptor));
}

/**
 * Adaptor helper for `labels.<k...>`: joins the rest of the path with '.' and looks the key up;
 * absent when labels is empty/undefined or the key is missing.
 */
export function labelField(labels: Record<string, string> | undefined, rest: string[]): FieldValue {
  const key = rest.join('.');
  // Own keys only: `labels.constructor` must not find Object.prototype.constructor.
  if (labels === undefined || !Object.hasOwn(labels, key)) return { value: '', present: false };
  return { value: labels[key], present: true };
}

function allOf(filters: Filter[]): Filter {
  return (adaptor) => filters.every((matches) => matches(adaptor));
}

function compile({ fieldpath, operator, value }: Selector, filter: string): Filter {
  // containerd's `!=` and `~=` see an absent field as "" (so `labels.x!=v` matches objects
  // without label x); normalising here keeps that true whatever an adaptor puts in `value`.
  const read = (adaptor: Adaptor): string => {
    const field = adaptor(fieldpath);
    return field.present ? field.value : '';
  };
  switch (operator) {
    case 'present':
      return (adaptor) => adaptor(fieldpath).present;
    case '==':
      return (adaptor) => {
        const field = adaptor(fieldpath);
        return field.present && field.value === value;
      };
    case '!=':
      return (adaptor) => read(adaptor) !== value;
    case '~=': {
      const re = compileRegExp(value, filter);
      return (adaptor) => re.test(read(adaptor));
    }
  }
}

/**
 * Compiled once per filter, not per object. containerd uses Go RE2; the closest JS equivalent
 * is a `u`-flag RegExp, which matches by code point as RE2 matches by rune. Unanchored, like
 * Go's MatchString. A pattern JS rejects never matches in containerd (which only logs it); berth
 * refuses the filter instead, naming it, so that a typo is not read as "nothing matches".
 */
function compileRegExp(pattern: string, filter: string): RegExp {
  try {
    return new RegExp(pattern, 'u');
  } catch (err) {
    // V8 says "Invalid regular expression: /(/u: Unterminated group": keep only the reason.
    const reason = (err as Error).message.split(': ').pop();
    throw invalidArgument(`filters: parse error: [${filter}]: invalid regular expression ${JSON.stringify(pattern)}: ${reason}`, err);
  }
}

/**
 * The adaptor most objects need: plain fields by their dotted path (present when not undefined)
 * and maps of string values (`labels.<key>`, `annotations.<key>`) looked up with `labelField`.
 */
export function objectAdaptor(
  fields: Record<string, string | undefined>,
  maps: Record<string, Record<string, string> | undefined> = {},
): Adaptor {
  return (path) => {
    if (path.length > 1 && Object.hasOwn(maps, path[0])) return labelField(maps[path[0]], path.slice(1));
    const key = path.join('.');
    const value = Object.hasOwn(fields, key) ? fields[key] : undefined;
    return value === undefined ? { value: '', present: false } : { value, present: true };
  };
}
