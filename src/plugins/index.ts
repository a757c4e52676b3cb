// The plugins a berth server is built from.
import { contentPlugin, contentServicePlugin } from './content.js';
import { metadataPlugin } from './metadata.js';
import type { Registration } from './registry.js';

export const builtinPlugins: Registration[] = [
  metadataPlugin as Registration,
  contentPlugin as Registration,
  contentServicePlugin as Registration,
];
