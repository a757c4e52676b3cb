// The GC labels a pull writes on a manifest or an index so that the GC keeps an image whole and
// frees it whole (containerd images.SetChildrenMappedLabels, §4.7), and the ingest ref of each blob.
import type { Descriptor } from '../oci/descriptor.js';
import { isConfig, isIndex, isLayerType, isManifest } from '../oci/mediatypes.js';

/** containerd's ChildGCLabels: the label key prefix for a child by its kind. */
function labelKeyFor(child: Descriptor): string {
  if (child.annotations?.['io.containerd.manifest.subject']) return 'containerd.io/gc.ref.content.referrer.sha256.';
  if (isConfig(child.mediaType)) return 'containerd.io/gc.ref.content.config';
  if (isManifest(child.mediaType)) return 'containerd.io/gc.ref.content.m.';
  if (isLayerType(child.mediaType)) return 'containerd.io/gc.ref.content.l.';
  return 'containerd.io/gc.ref.content.';
}

/** The GC labels for a parent's children, in order, byte-identical to containerd's. */
export function childGcLabels(children: Descriptor[]): Record<string, string> {
  const labels: Record<string, string> = {};
  const used = new Map<string, number>();
  for (const child of children) {
    const base = labelKeyFor(child);
    const idx = used.get(base) ?? 0;
    used.set(base, idx + 1);
    let key: string;
    if (base.endsWith('.sha256.')) key = base + child.digest.slice('sha256:'.length, 'sha256:'.length + 12);
    else if (idx > 0 || base.endsWith('.')) key = base + String(idx);
    else key = base;
    labels[key] = child.digest;
  }
  return labels;
}

/** The ingest ref a pull writes a descriptor under (containerd's MakeRefKey). */
export function ingestRef(desc: Descriptor): string {
  const prefix = isIndex(desc.mediaType)
    ? 'index'
    : isManifest(desc.mediaType)
      ? 'manifest'
      : isConfig(desc.mediaType)
        ? 'config'
        : isLayerType(desc.mediaType)
          ? 'layer'
          : 'unknown';
  return `${prefix}-${desc.digest}`;
}
