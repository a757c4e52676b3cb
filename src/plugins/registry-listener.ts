// Plugin io.berth.service.v1 "registry": berth's store served as an OCI registry (the pull side of
// the distribution API) on its own address, filled from the upstream through the pull machinery.
// Off unless an address is configured:
//
//   [plugins."io.berth.service.v1.registry"]
//   address = "127.0.0.1:5050"
//   namespace = "default"
//   default_upstream = "docker.io"
//   pull_through = true
//   auth_token_file = "/etc/berth/registry.token"
import { readFile } from 'node:fs/promises';
import { parseAddress } from '../config.js';
import { validateIdentifier } from '../metadata/validate.js';
import { upstreamOf } from '../registry/names.js';
import { PullThrough } from '../registry/pull-through.js';
import { startRegistryListener, type RegistryListener } from '../registry/listener.js';
import { RegistryService } from '../registry/service.js';
import { RegistryCounters, type RegistryStats } from '../registry/stats.js';
import { metadataType, type Metadata } from './metadata.js';
import type { Pulls } from './pull.js';
import { defaultsOf, settingsOf } from '../settings.js';
import { checkKeys } from './options.js';
import { SkipPlugin, type Registration } from './registry.js';
import { serviceType } from './services.js';

export interface Registry {
  service: RegistryService;
  listener: RegistryListener;
  pullThrough: PullThrough;
  /** What `GET /v1/registry/stats` answers. */
  stats(): RegistryStats;
  /** The token clients must send (`auth_token_file`); peers in a fleet send it to each other. */
  token?: string;
}

const pluginKey = `${serviceType}.registry`;
const keys = new Set(settingsOf(pluginKey).keys());
const defaults = defaultsOf(pluginKey);

export const registryListenerPlugin: Registration<Registry> = {
  type: serviceType,
  id: 'registry',
  // Last: it serves from the pulls service and the metadata stores, and is opened to clients only
  // once everything else is up.
  requires: ['*'],
  async init(ctx) {
    const c = ctx.config;
    checkKeys(c, keys);
    if (c.address === undefined || c.address === '') throw new SkipPlugin('no address configured (berth serve --registry-address HOST:PORT)', true);
    if (typeof c.address !== 'string') throw new Error('address must be HOST:PORT');
    const address = parseAddress(c.address);
    if (address.kind !== 'tcp') throw new Error(`address ${c.address}: the registry listens on HOST:PORT`);
    const namespace = c.namespace ?? defaults.namespace;
    if (typeof namespace !== 'string') throw new Error('namespace must be a string');
    validateIdentifier(namespace, `namespace ${JSON.stringify(namespace)}`);
    const defaultUpstream = c.default_upstream;
    if (defaultUpstream !== undefined && (typeof defaultUpstream !== 'string' || !upstreamOf(defaultUpstream, undefined))) {
      throw new Error('default_upstream must be a registry host, e.g. docker.io or registry.example:5000');
    }
    const pullThrough = c.pull_through ?? defaults.pull_through;
    if (typeof pullThrough !== 'boolean') throw new Error('pull_through must be true or false');
    let token: string | undefined;
    if (c.auth_token_file !== undefined) {
      if (typeof c.auth_token_file !== 'string') throw new Error('auth_token_file must be a path');
      token = (await readFile(c.auth_token_file, 'utf8')).trim();
      if (!token) throw new Error(`auth_token_file ${c.auth_token_file} is empty`);
    }

    const { content, images, leases } = ctx.get<Metadata>(metadataType);
    const pulls = ctx.get<Pulls>(serviceType, 'pulls');
    const counters = new RegistryCounters();
    const through = new PullThrough(content, pulls.fetcher, leases, counters);
    const service = new RegistryService(content, images, pulls.resolver, through, counters, { namespace, pullThrough });
    const listener = await startRegistryListener(
      service,
      { host: address.host, port: address.port, defaultUpstream: defaultUpstream as string | undefined, token },
      ctx.logger,
    );
    ctx.exports.address = listener.address;
    ctx.exports.namespace = namespace;
    if (defaultUpstream) ctx.exports.default_upstream = defaultUpstream as string;
    ctx.logger.info({ address: listener.address, namespace, defaultUpstream, pullThrough }, 'registry listener started');
    return { service, listener, pullThrough: through, stats: () => counters.snapshot(listener.address, namespace), token };
  },
  async close(registry) {
    registry.pullThrough.close();
    await registry.listener.close();
  },
};
