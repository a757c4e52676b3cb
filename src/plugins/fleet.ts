// Plugin io.berth.service.v1 "fleet": this node's membership of a fleet of berth nodes that find
// content on each other through etcd (issue 12): membership, the fleet's view, advertisements and
// claims, and the pulls' use of them — pulls (and the registry listener's pull-through) fetch from
// peers first and advertise what they fetch. Off unless endpoints are configured:
//
//   [plugins."io.berth.service.v1.fleet"]
//   etcd_endpoints = ["http://10.0.0.5:2379"]   # or https://, with:
//   etcd_ca_file = "/etc/berth/etcd-ca.pem"     # unset: the system's roots
//   etcd_cert_file = "/etc/berth/etcd-client.pem"  # with etcd_key_file: for --client-cert-auth
//   etcd_key_file = "/etc/berth/etcd-client-key.pem"
//   node_name = "node-a"                  # default: the host name
//   advertise_address = "10.0.0.7:5050"   # default: the registry listener's address
//   lease_ttl_s = 10
//   prefix = "/berth/fleet"
//   namespace = "default"                 # default: the registry listener's namespace
//   peer_timeout_ms = 200                 # a peer that has not answered by then is passed over
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { parseAddress } from '../config.js';
import type { EventBus } from '../events/bus.js';
import type { EtcdFleet } from '../fleet/fleet.js';
import { normalisePrefix, parseEndpoints, readTlsFiles, validateLeaseTtl, validateNodeName } from '../fleet/options.js';
import { validateIdentifier } from '../metadata/validate.js';
import { eventsType } from './events.js';
import { metadataType, type Metadata } from './metadata.js';
import type { Registry } from './registry-listener.js';
import { checkKeys, numberOption } from './options.js';
import { defaultsOf, settingsOf } from '../settings.js';
import { gcType, type Gc } from './gc.js';
import type { Pulls } from './pull.js';
import { PeerClient } from '../remotes/peer.js';
import { SkipPlugin, type Registration } from './registry.js';
import { serviceType } from './services.js';

// Its keys and defaults: the settings table the configuration file is checked against.
const pluginKey = `${serviceType}.fleet`;
const keys = new Set(settingsOf(pluginKey).keys());
const defaults = defaultsOf(pluginKey);

export const fleetPlugin: Registration<EtcdFleet> = {
  type: serviceType,
  id: 'fleet',
  // Last, like the registry listener, whose address peers are given. Plugins that require `*` do
  // not wait for one another: they initialise in the order they are registered
  // (src/plugins/index.ts registers this one after the registry listener, and a test holds it),
  // so the listener is up, bound and its address known by the time this init runs.
  requires: ['*'],
  async init(ctx) {
    const c = ctx.config;
    checkKeys(c, keys);
    if (c.etcd_endpoints === undefined) throw new SkipPlugin('no etcd_endpoints configured: this node works alone', true);
    const parsed = parseEndpoints(c.etcd_endpoints);
    const endpoints = parsed.hosts;
    const tls = await readTlsFiles(c, parsed, (path) => readFile(path));
    const node = validateNodeName(c.node_name ?? hostname());
    const leaseTtlS = validateLeaseTtl(c.lease_ttl_s ?? defaults.lease_ttl_s);
    const prefix = normalisePrefix(c.prefix ?? defaults.prefix);

    // The registry listener, when it runs: peers fetch from it, so it gives the default address.
    let registry: Registry | undefined;
    let registryMissing = '';
    try {
      registry = ctx.get<Registry>(serviceType, 'registry');
    } catch (err) {
      registryMissing = (err as Error).message;
    }
    const address = advertiseAddress(c.advertise_address, registry, registryMissing);
    const namespace = c.namespace ?? (registry ? registry.stats().namespace : 'default');
    if (typeof namespace !== 'string') throw new Error('namespace must be a string');
    validateIdentifier(namespace, `namespace ${JSON.stringify(namespace)}`);

    const { content } = ctx.get<Metadata>(metadataType);
    // Loaded only for a node in a fleet: the etcd client (with gRPC) is ~10 MB of resident memory.
    const { EtcdFleet } = await import('../fleet/fleet.js');
    const fleet = new EtcdFleet({
      endpoints,
      tls,
      node,
      address,
      prefix,
      leaseTtlS,
      logger: ctx.logger,
      // What the registry listener serves: the namespace's committed content.
      committed: async function* () {
        for (const info of await content.list({ namespace })) yield { digest: info.digest, size: info.size };
      },
    });

    // Exports follow the state: `berth plugins ls` shows whether the node is in the fleet, and why not.
    const show = () => {
      ctx.exports.state = fleet.state;
      if (fleet.reason !== undefined && fleet.state === 'alone') ctx.exports.reason = fleet.reason;
      else delete ctx.exports.reason;
      if (fleet.lease !== undefined) ctx.exports.lease = fleet.lease;
      else delete ctx.exports.lease;
    };
    Object.assign(ctx.exports, { node, address, endpoints: endpoints.join(','), tls: tls ? 'on' : 'off', prefix, namespace });
    show();
    fleet.onStateChange(show);

    // Blobs committed or deleted through the content API in the served namespace. (Pulls
    // advertise their own blobs from their first byte: src/pull/fetch.ts.)
    const unsubscribe = ctx.get<EventBus>(eventsType).subscribe([`namespace==${JSON.stringify(namespace)}`], (e) => {
      const digest = e.event.digest;
      if (typeof digest !== 'string') return;
      if (e.topic === '/content/create' && typeof e.event.size === 'number') fleet.advertise(digest, e.event.size, e.event.size, true);
      else if (e.topic === '/content/delete') void fleet.withdraw(digest);
    });
    // The GC withdraws a blob's advertisement before it removes the blob.
    const stopWithdrawing = gcOf(ctx)?.collector.beforeBlobsRemoved(async (blobs) => {
      await Promise.all(blobs.filter((b) => b.namespace === namespace).map((b) => fleet.withdraw(b.digest).catch(() => {})));
    }) ?? (() => {});
    // Pulls use the peers from now on (the pulls plugin initialised before this one).
    const pulls = ctx.get<Pulls>(serviceType, 'pulls');
    const client = new PeerClient({ node, token: registry?.token, connectTimeoutMs: numberOption(c, 'peer_timeout_ms') ?? (defaults.peer_timeout_ms as number) });
    const stop = async () => {
      pulls.fetcher.usePeers(undefined);
      unsubscribe();
      stopWithdrawing();
      await client.close();
    };
    try {
      await fleet.start();
    } catch (err) {
      await stop();
      await fleet.close();
      throw err;
    }
    pulls.fetcher.usePeers({ fleet, client, namespace });
    closers.set(fleet, stop);
    return fleet;
  },
  async close(fleet) {
    await closers.get(fleet)?.();
    closers.delete(fleet);
    await fleet.close();
  },
};

/** What each fleet undoes at close: the pulls' use of peers, its subscriptions, its peer client. */
const closers = new WeakMap<EtcdFleet, () => Promise<void>>();

/** The garbage collector, unless it is switched off. */
function gcOf(ctx: { get<T>(type: string, id?: string): T }): Gc | undefined {
  try {
    return ctx.get<Gc>(gcType);
  } catch {
    return undefined;
  }
}

/** The configured address, else the registry listener's; one way or the other, one peers can dial. */
function advertiseAddress(configured: unknown, registry: Registry | undefined, registryMissing: string): string {
  if (configured !== undefined) {
    if (typeof configured !== 'string') throw new Error('advertise_address must be HOST:PORT');
    const a = parseAddress(configured);
    if (a.kind !== 'tcp' || a.port === 0) throw new Error(`advertise_address ${configured}: peers need a HOST:PORT with a port`);
    if (isWildcard(a.host)) throw new Error(`advertise_address ${configured}: ${a.host} is no address a peer can dial`);
    return configured;
  }
  if (!registry) {
    throw new Error(`advertise_address is required: it defaults to the registry listener's address, and the listener is not running (${registryMissing})`);
  }
  const bound = registry.listener.address;
  const a = parseAddress(bound);
  if (a.kind === 'tcp' && isWildcard(a.host)) {
    throw new Error(`advertise_address is required: the registry listener is bound to ${bound} (every interface), which names no address peers can dial`);
  }
  return bound;
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]';
}
