// What a manifest or an index refers to: the descriptors it lists, checked for shape.
import { BerthError } from '../../store/errors.js';
import type { Descriptor } from './descriptor.js';
import { isIndex, isManifest } from './mediatypes.js';

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
