// The OCI descriptor: what every stage passes around to name a blob (image-spec descriptor.md).
import type { OciPlatform } from './platforms/types.js';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  /** Set on an index's children: the platform the manifest is for. */
  platform?: OciPlatform;
  urls?: string[];
}
