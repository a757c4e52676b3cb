// containerd's filter language (pkg/filters), used by every List/Walk API to select objects,
// e.g. `labels."containerd.io/gc.root"`, `name==foo,labels.env!=prod`, `digest~=^sha256:`.
// Objects expose their fields through an Adaptor; a Filter asks it only for the paths it names.

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
 * invalid_argument whose message is containerd's text.
 */
export function parseFilters(filters: readonly string[]): Filter {
  if (filters.length === 0) return () => true;
  const alternatives = filters.map((filter) => allOf(parseSelectors(filter).map(compile)));
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

function compile({ fieldpath, operator, value }: Selector): Filter {
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
      const re = compileRegExp(value);
      return re === undefined ? () => false : (adaptor) => re.test(read(adaptor));
    }
  }
}

/**
 * Compiled once per filter, not per object. containerd uses Go RE2; the closest JS equivalent
 * is a `u`-flag RegExp, which matches by code point as RE2 matches by rune. Unanchored, like
 * Go's MatchString. A pattern JS rejects is not a parse error in containerd either: it simply
 * never matches (containerd logs it; berth has no logger at this layer).
 */
function compileRegExp(pattern: string): RegExp | undefined {
  try {
    return new RegExp(pattern, 'u');
  } catch {
    return undefined;
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
