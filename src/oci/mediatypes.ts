// The image media types (OCI and Docker) and their predicates: which are indexes, manifests,
// configs and layers, and what a layer's type says about its compression (containerd
// core/images/mediatypes.go: DiffCompression, IsLayerType).
import { BerthError } from '../../store/errors.js';

export const mediaTypes = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  /** Docker's signed schema 1 manifest: recognised only to be refused. */
  dockerManifestSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

const configTypes = new Set<string>([mediaTypes.dockerConfig, mediaTypes.ociConfig]);
const manifestTypes = new Set<string>([mediaTypes.dockerManifest, mediaTypes.ociManifest]);
const indexTypes = new Set<string>([mediaTypes.dockerManifestList, mediaTypes.ociIndex]);

export const isIndex = (mediaType: string): boolean => indexTypes.has(mediaType);
export const isManifest = (mediaType: string): boolean => manifestTypes.has(mediaType);
export const isConfig = (mediaType: string): boolean => configTypes.has(mediaType);

/** An index or a manifest: what a registry serves under `/manifests/`. */
export function isManifestType(mediaType: string): boolean {
  return isIndex(mediaType) || isManifest(mediaType);
}

export const layerMediaTypes = {
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociLayerNonDistributable: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerLayerZstd: 'application/vnd.docker.image.rootfs.diff.tar.zstd',
  dockerLayerForeign: 'application/vnd.docker.image.rootfs.foreign.diff.tar',
  dockerLayerForeignGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  erofsLayer: 'application/vnd.erofs.layer.v1',
} as const;

/**
 * What a layer's media type says about its compression:
 * - 'unknown': a Docker tar type that tools often label wrongly; sniffed like gzip/zstd.
 * - 'gzip' / 'zstd': declared, but the bytes are still sniffed (the declaration is not trusted).
 * - 'none': containerd's "": the blob goes to the tar reader untouched. Also used for types
 *   wrapped in a suffix we do not know (e.g. `+encrypted`), which then fail as tar.
 */
export type DiffCompression = 'unknown' | 'gzip' | 'zstd' | 'none';

/** `type+b+a` → base `type` and its suffixes, sorted as containerd sorts them (the last one decides for OCI types). */
function parseMediaType(mt: string): { base: string; suffixes: string[] } {
  const plus = mt.indexOf('+');
  if (plus < 0) return { base: mt, suffixes: [] };
  return { base: mt.slice(0, plus), suffixes: mt.slice(plus + 1).split('+').sort() };
}

/** containerd's DiffCompression; an unknown media type is not_implemented. */
export function diffCompression(mediaType: string): DiffCompression {
  const { base, suffixes } = parseMediaType(mediaType);
  switch (base) {
    case layerMediaTypes.dockerLayer:
    case layerMediaTypes.dockerLayerForeign:
      return suffixes.length > 0 ? 'none' : 'unknown';
    case layerMediaTypes.dockerLayerGzip:
    case layerMediaTypes.dockerLayerForeignGzip:
      return suffixes.length > 0 ? 'none' : 'gzip';
    case layerMediaTypes.dockerLayerZstd:
      return suffixes.length > 0 ? 'none' : 'zstd';
    case layerMediaTypes.ociLayer:
    case layerMediaTypes.ociLayerNonDistributable: {
      const last = suffixes.at(-1);
      return last === 'gzip' || last === 'zstd' ? last : 'none';
    }
    default:
      throw new BerthError('not_implemented', `unrecognised mediatype ${mediaType}`);
  }
}

const dockerLayerBases = new Set<string>([
  layerMediaTypes.dockerLayer,
  layerMediaTypes.dockerLayerGzip,
  layerMediaTypes.dockerLayerZstd,
  layerMediaTypes.dockerLayerForeign,
  layerMediaTypes.dockerLayerForeignGzip,
]);

/** containerd's IsLayerType: any OCI layer type, the Docker layer types (suffixes ignored), erofs. */
export function isLayerType(mediaType: string): boolean {
  if (mediaType.startsWith('application/vnd.oci.image.layer.')) return true;
  if (mediaType === layerMediaTypes.erofsLayer) return true;
  return dockerLayerBases.has(parseMediaType(mediaType).base);
}

/**
 * The media type of an index or manifest read from its own JSON: its `mediaType` field, or for an
 * OCI document that omits it (the field is optional), what its shape says; undefined when neither.
 */
export function documentMediaType(body: Buffer): string | undefined {
  let doc: { mediaType?: unknown; manifests?: unknown; config?: unknown; layers?: unknown };
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof doc?.mediaType === 'string' && isManifestType(doc.mediaType)) return doc.mediaType;
  if (Array.isArray(doc?.manifests)) return mediaTypes.ociIndex;
  if (doc?.config && Array.isArray(doc.layers)) return mediaTypes.ociManifest;
  return undefined;
}
