// Layer media types and how each one is decompressed (containerd core/images/mediatypes.go:
// DiffCompression, IsLayerType).
import { BerthError } from '../errors.js';

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
