// What a manifest or an index refers to, and the GC labels a pull writes on it so that the GC
// keeps an image whole and frees it whole (containerd images.SetChildrenMappedLabels, §4.7).
import { BerthError } from '../errors.js';
import { mediaTypes, type Descriptor } from '../remotes/resolver.js';
import { isLayerType } from '../unpack/mediatypes.js';

const configTypes = new Set<string>([mediaTypes.dockerConfig, mediaTypes.ociConfig]);
const manifestTypes = new Set<string>([mediaTypes.dockerManifest, mediaTypes.ociManifest]);
const indexTypes = new Set<string>([mediaTypes.dockerManifestList, mediaTypes.ociIndex]);

export const isIndex = (mediaType: string): boolean => indexTypes.has(mediaType);
export const isManifest = (mediaType: string): boolean => manifestTypes.has(mediaType);


/** The children a manifest (config, layers) or an index (manifests) lists; none for blobs. */
export function childrenOf(desc: Descriptor, body: Buffer): Descriptor[] {
  if (!isIndex(desc.mediaType) && !isManifest(desc.mediaType)) return [];
  let doc: { config?: Descriptor; layers?: Descriptor[]; manifests?: Descriptor[] };
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new BerthError('invalid_argument', `${desc.mediaType} ${desc.digest} is not JSON`, { cause: err });
  }
  const list = isIndex(desc.mediaType) ? (doc.manifests ?? []) : [...(doc.config ? [doc.config] : []), ...(doc.layers ?? [])];
  for (const c of list) {
    if (!c || typeof c.digest !== 'string' || typeof c.mediaType !== 'string' || !Number.isSafeInteger(c.size)) {
      throw new BerthError('invalid_argument', `${desc.mediaType} ${desc.digest} lists a malformed descriptor`);
    }
  }
  return list;
}

/** containerd's ChildGCLabels: the label key prefix for a child by its kind. */
function labelKeyFor(child: Descriptor): string {
  if (child.annotations?.['io.containerd.manifest.subject']) return 'containerd.io/gc.ref.content.referrer.sha256.';
  if (configTypes.has(child.mediaType)) return 'containerd.io/gc.ref.content.config';
  if (manifestTypes.has(child.mediaType)) return 'containerd.io/gc.ref.content.m.';
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
      : configTypes.has(desc.mediaType)
        ? 'config'
        : isLayerType(desc.mediaType)
          ? 'layer'
          : 'unknown';
  return `${prefix}-${desc.digest}`;
}
