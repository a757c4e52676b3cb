// The berth server: takes the root, initialises the plugins, serves the HTTP API. What HTTP
// adds around the routes (validation, error replies, tracing) lives in src/http/.
import websocket from '@fastify/websocket';
import Fastify, { type FastifyInstance } from 'fastify';
import { mkdir } from 'node:fs/promises';
import { contentRoutes } from '../routes/content.js';
import { eventRoutes } from '../routes/events.js';
import { fleetRoutes } from '../routes/fleet.js';
import { gcRoutes } from '../routes/gc.js';
import { healthRoutes } from '../routes/health.js';
import { imageArchiveRoutes } from '../routes/image-archives.js';
import { imageTagRoutes } from '../routes/image-tags.js';
import { imageRoutes } from '../routes/images.js';
import { ingestRoutes } from '../routes/ingests.js';
import { leaseRoutes } from '../routes/leases.js';
import { metricsRoutes } from '../routes/metrics.js';
import { namespaceRoutes } from '../routes/namespaces.js';
import { openApiRoutes } from '../routes/openapi.js';
import { pluginRoutes } from '../routes/plugins.js';
import { pullRoutes } from '../routes/pulls.js';
import { pushRoutes } from '../routes/pushes.js';
import { registryRoutes } from '../routes/registry.js';
import { snapshotRoutes } from '../routes/snapshots.js';
import { containerRoutes } from '../routes/containers.js';
import { versionRoutes } from '../routes/version.js';
import { parseAddress, readTokenFile, type Config } from './config.js';
import { nameMaxLength } from './openapi.js';
import type { EventBus } from './events/bus.js';
import type { EtcdFleet } from './fleet/fleet.js';
import { registerAuth } from './http/auth.js';
import { registerDocs } from './http/docs.js';
import { clientErrorReply, frameworkErrorReply, registerErrorReplies } from './http/errors.js';
import { checkListenAddress, listenUnix } from './http/listen.js';
import { registerMetrics } from './http/metrics.js';
import { startTraceExport } from './http/otlp.js';
import { registerResource } from './http/resources.js';
import { registerTracing } from './http/tracing.js';
import { registerValidation } from './http/validation.js';
import { archiveType, type ImageArchives } from './plugins/archive.js';
import { eventsType } from './plugins/events.js';
import { gcType, type Gc } from './plugins/gc.js';
import { runtimeType, type Runtime } from './plugins/runtime.js';
import { pluginsFor } from './plugins/index.js';
import type { Pulls } from './plugins/pull.js';
import type { Registry } from './plugins/registry-listener.js';
import { serviceType } from './plugins/services.js';
import { PluginSet, type PluginLogger, type Registration } from './plugins/registry.js';
import { lockRoot } from './rootlock.js';
import type { ContentService } from './services/content.js';
import type { ImageService } from './services/images.js';
import type { LeaseService } from './services/leases.js';
import type { NamespaceService } from './services/namespaces.js';
import type { SnapshotService } from './services/snapshots.js';

export interface ServerOptions {
  /** A pino-style logger setting for fastify; false for none. `stream` receives the JSON lines (tests). */
  logger?: boolean | { level: string; stream?: { write(line: string): void } };
  /** Replaces the built-in plugin list (tests). */
  plugins?: Registration[];
}

export interface RunningServer {
  app: FastifyInstance;
  plugins: PluginSet;
  /** Where it listens: `http://127.0.0.1:7420` or `unix:///path`. */
  url: string;
  close(): Promise<void>;
}

/**
 * Starts a server on `config.address`; fails (naming the holder) if the root is taken, and
 * (naming the settings) on an address that is not loopback without a token.
 */
export async function startServer(config: Config, opts: ServerOptions = {}): Promise<RunningServer> {
  const address = parseAddress(config.address);
  const token = config.authTokenFile === undefined ? undefined : await readTokenFile(config.authTokenFile, 'auth_token_file');
  const exposed = await checkListenAddress(address, config.address, { token: token !== undefined, insecure: config.insecureListen ?? false });
  await mkdir(config.root, { recursive: true, mode: 0o711 });
  await mkdir(config.state, { recursive: true, mode: 0o711 });
  const unlockRoot = await lockRoot(config.root, config.address);
  let plugins: PluginSet | undefined;
  let app: FastifyInstance | undefined;
  let removeSocket = async () => {};
  let stopTraceExport: (() => Promise<void>) | undefined;
  try {
    app = Fastify({
      logger: opts.logger ?? { level: config.logLevel },
      exposeHeadRoutes: false,
      // At shutdown an upload still streaming is cut: what arrived is kept and resumable.
      forceCloseConnections: true,
      // Bodies of uploads stream to disk; this limits only the JSON bodies fastify parses.
      bodyLimit: 1 << 20,
      // Names travel URL-encoded in one segment: up to openapi.yaml's limit of characters, each
      // up to 4 UTF-8 bytes of 3 characters (`%XX`) each. The schemas then hold the limit.
      routerOptions: { maxParamLength: nameMaxLength() * 12 },
      frameworkErrors: frameworkErrorReply,
      clientErrorHandler: clientErrorReply,
    });
    const log: PluginLogger = app.log;
    // Before the plugins: a pull they resume at start is traced too.
    stopTraceExport = await startTraceExport(log);
    plugins = await PluginSet.init(opts.plugins ?? pluginsFor(config), {
      root: config.root,
      state: config.state,
      config: config.plugins,
      required: config.requiredPlugins,
      logger: log,
    });
    // WebSocket upgrades (routes/exec.ts) before the token check: its onRequest hook marks an
    // upgrade first, so that one refused there (401) has its socket closed, not left open.
    await app.register(websocket, { options: { maxPayload: 1 << 20 } });
    // Before the routes: the hook applies to every scope registered after it.
    if (token !== undefined) registerAuth(app, token);
    await registerApi(app, plugins);
    await registerDocs(app);
    let url: string;
    if (address.kind === 'unix') {
      removeSocket = await listenUnix(app, address.path, config.socketGroup);
      url = `unix://${address.path}`;
    } else {
      await app.listen({ host: address.host, port: address.port });
      const bound = app.server.address();
      const port = typeof bound === 'object' && bound ? bound.port : address.port;
      url = `http://${address.host.includes(':') ? `[${address.host}]` : address.host}:${port}`;
      if (exposed) {
        app.log.warn({ address: config.address }, 'insecure_listen: the management API has no token and listens beyond loopback');
      }
    }
    const running = { app, plugins, url };
    let closing: Promise<void> | undefined;
    return {
      ...running,
      close: () => (closing ??= (async () => {
        await app!.close();
        await removeSocket();
        await plugins!.close();
        await unlockRoot();
        await stopTraceExport?.();
      })()),
    };
  } catch (err) {
    await app?.close().catch(() => {});
    await removeSocket().catch(() => {});
    await plugins?.close();
    await unlockRoot();
    await stopTraceExport?.();
    throw err;
  }
}

/** Registers validation, tracing, metrics, error replies and every resource's routes with its services. */
export async function registerApi(app: FastifyInstance, plugins: PluginSet): Promise<void> {
  registerValidation(app);
  registerTracing(app);
  const metrics = registerMetrics(app, plugins);
  registerErrorReplies(app);

  await app.register(healthRoutes);
  await app.register(versionRoutes);
  await app.register(openApiRoutes);
  await app.register(pluginRoutes, { plugins });
  await app.register(metricsRoutes, { metrics });
  const content = () => ({ content: plugins.get<ContentService>(serviceType, 'content') });
  await registerResource(app, 'content', contentRoutes, content);
  await registerResource(app, 'ingests', ingestRoutes, content);
  await registerResource(app, 'namespaces', namespaceRoutes, () => ({
    namespaces: plugins.get<NamespaceService>(serviceType, 'namespaces'),
  }));
  await registerResource(app, 'images', imageRoutes, () => ({
    images: plugins.get<ImageService>(serviceType, 'images'),
    unpack: plugins.getAll<Pulls>(serviceType).get('pulls')?.unpack,
  }));
  await registerResource(app, 'image archives', imageArchiveRoutes, () => ({ archives: plugins.get<ImageArchives>(archiveType).archives }));
  await registerResource(app, 'image tags', imageTagRoutes, () => ({ tags: plugins.get<ImageArchives>(archiveType).tags }));
  await registerResource(app, 'leases', leaseRoutes, () => ({ leases: plugins.get<LeaseService>(serviceType, 'leases') }));
  await registerResource(app, 'garbage collection', gcRoutes, () => ({ gc: plugins.get<Gc>(gcType) }));
  await registerResource(app, 'pulls', pullRoutes, () => ({ pulls: plugins.get<Pulls>(serviceType, 'pulls').service }));
  await registerResource(app, 'pushes', pushRoutes, () => ({ pushes: plugins.get<Pulls>(serviceType, 'pulls').pushes }));
  await registerResource(app, 'snapshots', snapshotRoutes, () => ({
    snapshots: plugins.get<SnapshotService>(serviceType, 'snapshots'),
  }));
  await registerResource(app, 'containers', containerRoutes, () => {
    const { containers, tasks } = plugins.get<Runtime>(runtimeType);
    return { containers, tasks };
  });
  await registerResource(app, 'events', eventRoutes, () => ({ events: plugins.get<EventBus>(eventsType) }));
  await registerResource(app, 'registry', registryRoutes, () => ({ registry: plugins.get<Registry>(serviceType, 'registry') }));
  await registerResource(app, 'fleet', fleetRoutes, () => ({ fleet: plugins.get<EtcdFleet>(serviceType, 'fleet') }));
}
