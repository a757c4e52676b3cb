// An in-memory LabelStore: the one containerd's conformance suite runs the bare store with.
// The service keeps labels in the metadata store instead (src/metadata).
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
