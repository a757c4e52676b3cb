// Labels: an in-memory LabelStore (the one containerd's conformance suite runs the bare store
// with; the service keeps labels in the metadata store) and containerd's field-path updates,
// which every object with labels shares.
import { invalidArgument } from './errors.js';
import type { LabelStore, Labels } from './types.js';

export class MemoryLabelStore implements LabelStore {
  private readonly byDigest = new Map<string, Labels>();

  async get(digest: string): Promise<Labels | undefined> {
    const labels = this.byDigest.get(digest);
    return labels && { ...labels };
  }

  async set(digest: string, labels: Labels): Promise<void> {
    this.byDigest.set(digest, withoutEmpty(labels));
  }

  async update(digest: string, labels: Labels): Promise<Labels> {
    const merged = withoutEmpty({ ...this.byDigest.get(digest), ...labels });
    this.byDigest.set(digest, merged);
    return { ...merged };
  }
}

/** containerd drops empty-valued labels on every replace and merge. */
export function withoutEmpty(labels: Labels): Labels {
  return Object.fromEntries(Object.entries(labels).filter(([, v]) => v !== '' && v !== undefined));
}

/**
 * No field paths (or `labels`) → the new labels replace the old; `labels.<k>` → only key k
 * changes, and is removed when the new labels have no (or an empty) value for it. Empty values
 * never stay. Any other path is refused naming `owner`.
 */
export function applyLabelPaths(current: Labels, labels: Labels, fieldpaths: string[], owner: string): Labels {
  if (fieldpaths.length === 0 || fieldpaths.includes('labels')) return withoutEmpty(labels);
  const next: Labels = { ...current };
  for (const path of fieldpaths) {
    if (!path.startsWith('labels.') || path.length === 'labels.'.length) {
      throw invalidArgument(`cannot update ${JSON.stringify(path)} field on ${owner}`);
    }
    const k = path.slice('labels.'.length);
    if (labels[k]) next[k] = labels[k];
    else delete next[k];
  }
  return next;
}
