// What a descriptor is, in a word for messages ("layer sha256:… is not in the content store").
import type { Descriptor } from '../oci/descriptor.js';
import { isConfig, isIndex, isLayerType, isManifest } from '../oci/mediatypes.js';

export function kindOf(desc: Descriptor): string {
  if (isIndex(desc.mediaType)) return 'index';
  if (isManifest(desc.mediaType)) return 'manifest';
  if (isConfig(desc.mediaType)) return 'config';
  if (isLayerType(desc.mediaType)) return 'layer';
  return 'blob';
}
