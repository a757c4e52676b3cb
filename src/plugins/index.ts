// The plugins a berth server is built from.
import { contentPlugin } from './content.js';
import { eventsPlugin } from './events.js';
import { gcPlugin } from './gc.js';
import { metadataPlugin } from './metadata.js';
import { pullPlugin } from './pull.js';
import type { Registration } from './registry.js';
import { contentServicePlugin, imageServicePlugin, leaseServicePlugin, namespaceServicePlugin } from './services.js';

export const builtinPlugins: Registration[] = [
  contentPlugin,
  metadataPlugin,
  eventsPlugin,
  gcPlugin,
  contentServicePlugin,
  imageServicePlugin,
  leaseServicePlugin,
  namespaceServicePlugin,
  pullPlugin,
] as Registration[];
