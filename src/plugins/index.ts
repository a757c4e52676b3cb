// The plugins a berth server is built from.
import { archivePlugin } from './archive.js';
import { contentPlugin } from './content.js';
import { eventsPlugin } from './events.js';
import { fleetPlugin } from './fleet.js';
import { gcPlugin } from './gc.js';
import { metadataPlugin } from './metadata.js';
import { pullPlugin } from './pull.js';
import { registryListenerPlugin } from './registry-listener.js';
import { runtimePlugin } from './runtime.js';
import type { Registration } from './registry.js';
import { contentServicePlugin, imageServicePlugin, leaseServicePlugin, namespaceServicePlugin, snapshotServicePlugin } from './services.js';
import { nativePlugin, overlayfsPlugin, proxySnapshotterPlugin } from './snapshots.js';
import type { Config } from '../config.js';

export const builtinPlugins: Registration[] = [
  contentPlugin,
  overlayfsPlugin,
  nativePlugin,
  metadataPlugin,
  eventsPlugin,
  gcPlugin,
  contentServicePlugin,
  imageServicePlugin,
  leaseServicePlugin,
  namespaceServicePlugin,
  snapshotServicePlugin,
  pullPlugin,
  archivePlugin,
  registryListenerPlugin,
  fleetPlugin, // after the registry listener: both require `*`, and it advertises the listener's address
  runtimePlugin,
] as Registration[];

/** The plugins a configuration asks for: the built-in ones not disabled, and its proxy plugins. */
export function pluginsFor(config: Pick<Config, 'disabledPlugins' | 'proxyPlugins'>): Registration[] {
  const disabled = new Set(config.disabledPlugins);
  const known = new Set(builtinPlugins.map((r) => `${r.type}.${r.id}`));
  for (const key of disabled) {
    if (!known.has(key)) throw new Error(`disabled_plugins names unknown plugin ${key}`);
  }
  return [
    ...builtinPlugins.filter((r) => !disabled.has(`${r.type}.${r.id}`)),
    ...Object.entries(config.proxyPlugins).map(([name, cfg]) => proxySnapshotterPlugin(name, cfg) as Registration),
  ];
}
