// Plugin io.berth.service.v1 "pulls": the registry client (hosts, credentials, tokens) and the
// pull manager over the metadata stores, with the unpacker that turns layers into snapshots, and
// the pulls service the API calls; the push manager and its service too, as they send through
// the same client (credentials, tokens, hosts.toml). Pulls are recorded in the metadata database: at start the
// manager restores them, resuming those a stop interrupted (unless resume_interrupted = false).
import type { EventBus } from '../events/bus.js';
import { Authorizer, type Credentials } from '../remotes/auth.js';
import { RegistryClient } from '../remotes/client.js';
import { credentialsFrom, readDockerConfig } from '../remotes/credentials.js';
import { Resolver } from '../remotes/resolver.js';
import { fetchToken } from '../remotes/token.js';
import { BlobFetcher } from '../pull/fetch.js';
import { PullManager } from '../pull/manager.js';
import { PushManager } from '../push/manager.js';
import { PullStore } from '../metadata/pulls.js';
import type { ImageService } from '../services/images.js';
import { PullService } from '../services/pulls.js';
import { PushService } from '../services/pushes.js';
import type { SnapshotService } from '../services/snapshots.js';
import { UnpackService } from '../services/unpack.js';
import { machineUnpackConcurrency, Unpacker } from '../unpack/unpacker.js';
import { eventsType } from './events.js';
import { metadataType, type Metadata } from './metadata.js';
import { defaultsOf } from '../settings.js';
import { numberOption } from './options.js';
import type { Registration } from './registry.js';
import { serviceType } from './services.js';

export interface Pulls {
  manager: PullManager;
  /** What the pull routes call: the manager's pulls, per namespace, with filters. */
  service: PullService;
  /** Unpacks images into snapshots (absent when no snapshotter loaded). */
  unpacker?: Unpacker;
  /** Unpacks stored images (POST /v1/images/{name}/unpack, containers); with the unpacker. */
  unpack?: UnpackService;
  resolver: Resolver;
  /** Fetches blobs once however many ask (pulls and the registry listener share it). */
  fetcher: BlobFetcher;
  client: RegistryClient;
  /** Pushes to registries, with the same client (credentials, tokens) and hosts.toml. */
  pushes: PushService;
  pushManager: PushManager;
}

export const pullPlugin: Registration<Pulls> = {
  type: serviceType,
  id: 'pulls',
  // The other services first: pulls unpack through the snapshots service.
  requires: [metadataType, eventsType, serviceType],
  async init(ctx) {
    const c = ctx.config;
    const d = defaultsOf(`${serviceType}.pulls`);
    const hostsDir = c.hosts_dir;
    if (hostsDir !== undefined && typeof hostsDir !== 'string') throw new Error('hosts_dir must be a path');
    const dockerConfig = c.docker_config;
    if (dockerConfig !== undefined && typeof dockerConfig !== 'string') throw new Error('docker_config must be a path');
    // [plugins."io.berth.service.v1.pulls".credentials."host:port"] username = "..", secret = ".."
    const configured = (c.credentials ?? {}) as Record<string, Credentials>;
    for (const [host, cred] of Object.entries(configured)) {
      if (typeof cred?.username !== 'string' || typeof cred?.secret !== 'string') {
        throw new Error(`credentials for ${host} need a username and a secret (strings)`);
      }
    }
    const credentials = credentialsFrom(configured, await readDockerConfig(dockerConfig));
    const client = new RegistryClient(new Authorizer(credentials, (realm, service, scopes, creds) => fetchToken(realm, service, scopes, creds)));
    const resolver = new Resolver(client, { hostsDir });
    const { db, content, images, leases } = ctx.get<Metadata>(metadataType);
    const fetcher = new BlobFetcher(content, resolver);
    let snapshots: SnapshotService | undefined;
    try {
      snapshots = ctx.get<SnapshotService>(serviceType, 'snapshots');
    } catch (err) {
      ctx.logger.warn({ reason: (err as Error).message }, 'pulls: no snapshots service, so no unpacking');
    }
    const unpackSync = c.unpack_sync ?? d.unpack_sync;
    if (typeof unpackSync !== 'boolean') throw new Error('unpack_sync must be true or false');
    const unpacker = snapshots
      ? new Unpacker(content, snapshots, { concurrency: numberOption(c, 'unpack_concurrency') ?? machineUnpackConcurrency(), sync: unpackSync })
      : undefined;
    const resume = c.resume_interrupted ?? d.resume_interrupted;
    if (typeof resume !== 'boolean') throw new Error('resume_interrupted must be true or false');
    const keepEndedS = numberOption(c, 'keep_ended_s') ?? (d.keep_ended_s as number);
    const keepEndedMax = numberOption(c, 'keep_ended_max') ?? (d.keep_ended_max as number);
    if (keepEndedS < 1 || keepEndedMax < 1) throw new Error('keep_ended_s and keep_ended_max must be at least 1');
    const manager = new PullManager(content, images, leases, resolver, fetcher, ctx.get<EventBus>(eventsType), {
      concurrency: numberOption(c, 'concurrency') ?? (d.concurrency as number),
      keepFailedMs: numberOption(c, 'keep_failed_ms') ?? (d.keep_failed_ms as number),
      unpacker,
      records: new PullStore(db),
      keepEndedMs: keepEndedS * 1000,
      keepEndedMax,
      onRecordError: (err, id) => ctx.logger.warn({ pull: id, err: (err as Error).message }, 'pulls: could not write the pull record'),
    });
    const restored = await manager.restore({ resume });
    for (const bad of restored.invalid) ctx.logger.warn({ key: bad.key, reason: bad.reason }, 'pulls: a stored pull record is not valid; left alone');
    for (const p of restored.resumed) ctx.logger.info({ pull: p.id, ref: p.ref }, 'pulls: resuming a pull the last stop interrupted');
    for (const p of restored.interrupted) ctx.logger.info({ pull: p.id, ref: p.ref }, 'pulls: a pull the last stop interrupted is left interrupted (resume_interrupted = false)');
    if (restored.pruned > 0) ctx.logger.info({ pruned: restored.pruned }, 'pulls: ended pulls pruned');
    if (hostsDir) ctx.exports.hosts_dir = hostsDir;
    const unpack =
      unpacker && snapshots
        ? new UnpackService(ctx.get<ImageService>(serviceType, 'images'), content, leases, unpacker, snapshots.defaultSnapshotter)
        : undefined;
    const service = new PullService(manager, snapshots?.defaultSnapshotter);
    const pushManager = new PushManager(content, images, leases, client, ctx.get<EventBus>(eventsType), { hostsDir });
    return { manager, service, resolver, fetcher, client, unpacker, unpack, pushManager, pushes: new PushService(pushManager) };
  },
  close: async (p) => {
    await p.pushManager.close();
    await p.manager.close();
    await p.client.close();
  },
};
