// The OCI image layout as an archive holds it (image-spec image-layout.md): the file names,
// where a blob lives, and the annotations that name an image in `index.json` (containerd's
// archive package writes and reads both).
import { parseDigest } from '../../store/digest.js';

export const layoutFile = 'oci-layout';
export const layoutVersion = '1.0.0';
export const indexFile = 'index.json';
/** Docker's `docker save` / `docker load` description of the images in an archive. */
export const dockerManifestFile = 'manifest.json';

export const nameAnnotations = {
  /** containerd's full image name (`docker.io/library/busybox:1`). */
  image: 'io.containerd.image.name',
  /** The OCI reference name: the tag alone, as the image spec has it. */
  ref: 'org.opencontainers.image.ref.name',
} as const;

/**
 * The largest JSON document (index.json, manifest.json, an index or a manifest) an archive may
 * carry: read whole into memory, so bounded; the distribution spec's manifest limit.
 */
export const documentLimit = 4 << 20;

/** `blobs/<algorithm>/<encoded>`: where a layout keeps the blob `digest`. */
export function blobEntryName(digest: string): string {
  const { algorithm, encoded } = parseDigest(digest);
  return `blobs/${algorithm}/${encoded}`;
}

/** The digest a `blobs/<algorithm>/<encoded>` name stands for; undefined for any other name. */
export function blobEntryDigest(name: string): string | undefined {
  const parts = name.split('/');
  if (parts.length !== 3 || parts[0] !== 'blobs') return undefined;
  const digest = `${parts[1]}:${parts[2]}`;
  try {
    parseDigest(digest);
    return digest;
  } catch {
    return undefined;
  }
}
