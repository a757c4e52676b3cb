// The berth server: takes the root, initialises the plugins, serves the HTTP API.
import Fastify, { type FastifyError, type FastifyInstance, type FastifyPluginAsync, type FastifyReply } from 'fastify';
import { lstat, mkdir, rm } from 'node:fs/promises';
import { context, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { contentRoutes } from '../routes/content.js';
import { eventRoutes } from '../routes/events.js';
import { gcRoutes } from '../routes/gc.js';
import { healthRoutes } from '../routes/health.js';
import { imageRoutes } from '../routes/images.js';
import { ingestRoutes } from '../routes/ingests.js';
import { leaseRoutes } from '../routes/leases.js';
import { namespaceRoutes } from '../routes/namespaces.js';
import { pluginRoutes } from '../routes/plugins.js';
import { pullRoutes } from '../routes/pulls.js';
import { snapshotRoutes } from '../routes/snapshots.js';
import { containerRoutes } from '../routes/containers.js';
import { parseAddress, type Config } from './config.js';
import { BerthError, errorCode, httpStatus, type ErrorCode } from '../store/errors.js';
import { componentSchemas } from './openapi.js';
import type { EventBus } from './events/bus.js';
import { eventsType } from './plugins/events.js';
import { gcType, type Gc } from './plugins/gc.js';
import { runtimeType, type Runtime } from './plugins/runtime.js';
import { pluginsFor } from './plugins/index.js';
import type { Pulls } from './plugins/pull.js';
import { serviceType } from './plugins/services.js';
import { PluginSet, type PluginLogger, type Registration } from './plugins/registry.js';
import { lockRoot } from './rootlock.js';
import type { ContentService } from './services/content.js';
import type { ImageService } from './services/images.js';
import type { LeaseService } from './services/leases.js';
import type { NamespaceService } from './services/namespaces.js';
import type { SnapshotService } from './services/snapshots.js';
import { PullService } from './services/pulls.js';
import { tracer } from '../store/telemetry.js';

export interface ServerOptions {
  /** A pino-style logger setting for fastify; false for none. */
  logger?: boolean | { level: string };
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

/** Starts a server on `config.address`; fails (naming the holder) if the root is taken. */
export async function startServer(config: Config, opts: ServerOptions = {}): Promise<RunningServer> {
  const address = parseAddress(config.address);
  await mkdir(config.root, { recursive: true, mode: 0o711 });
  await mkdir(config.state, { recursive: true, mode: 0o711 });
  const unlockRoot = await lockRoot(config.root, config.address);
  let plugins: PluginSet | undefined;
  let app: FastifyInstance | undefined;
  try {
    app = Fastify({
      logger: opts.logger ?? { level: config.logLevel },
      exposeHeadRoutes: false,
      // At shutdown an upload still streaming is cut: what arrived is kept and resumable.
      forceCloseConnections: true,
      // Bodies of uploads stream to disk; this limits only the JSON bodies fastify parses.
      bodyLimit: 1 << 20,
      // Refs and digests travel URL-encoded in one segment and can be long.
      routerOptions: { maxParamLength: 8192 },
      // Errors the router raises before any route runs (a malformed URL, an over-long
      // parameter) get the same body as every other error.
      frameworkErrors: (err, _req, reply) => {
        void (reply as FastifyReply).code(400).send({ error: { code: 'invalid_argument', message: err.message } });
      },
    });
    const log: PluginLogger = app.log;
    plugins = await PluginSet.init(opts.plugins ?? pluginsFor(config), {
      root: config.root,
      state: config.state,
      config: config.plugins,
      required: config.requiredPlugins,
      logger: log,
    });
    await registerApi(app, plugins);
    let url: string;
    if (address.kind === 'unix') {
      await removeStaleSocket(address.path);
      await app.listen({ path: address.path });
      url = `unix://${address.path}`;
    } else {
      await app.listen({ host: address.host, port: address.port });
      const bound = app.server.address();
      const port = typeof bound === 'object' && bound ? bound.port : address.port;
      url = `http://${address.host.includes(':') ? `[${address.host}]` : address.host}:${port}`;
    }
    const running = { app, plugins, url };
    let closing: Promise<void> | undefined;
    return {
      ...running,
      close: () => (closing ??= (async () => {
        await app!.close();
        await plugins!.close();
        await unlockRoot();
      })()),
    };
  } catch (err) {
    await app?.close().catch(() => {});
    await plugins?.close();
    await unlockRoot();
    throw err;
  }
}

/** Registers schemas, error mapping, tracing and every resource's routes. */
export async function registerApi(app: FastifyInstance, plugins: PluginSet): Promise<void> {
  for (const schema of componentSchemas()) app.addSchema(schema);
  app.setValidatorCompiler(requestValidators());

  const spans = new WeakMap<object, Span>();
  // Each handler runs inside its request's span, so store spans become its children.
  app.addHook('onRoute', (route) => {
    const handler = route.handler;
    route.handler = function (this: FastifyInstance, req, reply) {
      const span = spans.get(req);
      return span ? context.with(trace.setSpan(context.active(), span), () => handler.call(this, req, reply)) : handler.call(this, req, reply);
    };
  });
  app.addHook('onRequest', async (req) => {
    spans.set(req, tracer.startSpan(`HTTP ${req.method} ${req.routeOptions.url ?? 'unknown'}`, {
      attributes: { 'http.method': req.method, 'http.route': req.routeOptions.url ?? '' },
    }));
  });
  app.addHook('onResponse', async (req, reply) => {
    const span = spans.get(req);
    if (!span) return;
    span.setAttribute('http.status_code', reply.statusCode);
    if (reply.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
  });

  app.setErrorHandler((err: FastifyError | BerthError, req, reply) => {
    let code: ErrorCode;
    let status: number;
    let message = err.message;
    if (err instanceof BerthError || errorCode(err) !== 'internal') {
      code = errorCode(err);
      status = httpStatus(code);
      const offset = err instanceof BerthError ? err.details.offset : undefined;
      if (offset !== undefined) reply.header('upload-offset', offset);
    } else if ((err as FastifyError).validation) {
      code = 'invalid_argument';
      status = 400;
      // ajv says "must NOT have additional properties"; say which one (a typo, usually).
      const extra = (err as FastifyError).validation!.find((v) => v.keyword === 'additionalProperties');
      const name = (extra?.params as { additionalProperty?: string } | undefined)?.additionalProperty;
      if (name !== undefined) message = `${message}: unknown property ${JSON.stringify(name)}`;
    } else if ((err as FastifyError).statusCode && (err as FastifyError).statusCode! < 500) {
      code = (err as FastifyError).statusCode === 404 ? 'not_found' : 'invalid_argument';
      status = (err as FastifyError).statusCode!;
    } else {
      code = 'internal';
      status = 500;
      req.log.error({ err }, 'internal error');
    }
    return reply.code(status).send({ error: { code, message } });
  });

  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: { code: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` } }),
  );

  await app.register(healthRoutes);
  await app.register(pluginRoutes, { plugins });
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
  await registerResource(app, 'leases', leaseRoutes, () => ({ leases: plugins.get<LeaseService>(serviceType, 'leases') }));
  await registerResource(app, 'garbage collection', gcRoutes, () => ({ gc: plugins.get<Gc>(gcType) }));
  await registerResource(app, 'pulls', pullRoutes, () => {
    const pulls = plugins.get<Pulls>(serviceType, 'pulls');
    return { pulls: new PullService(pulls.manager, pulls.defaultSnapshotter) };
  });
  await registerResource(app, 'snapshots', snapshotRoutes, () => ({
    snapshots: plugins.get<SnapshotService>(serviceType, 'snapshots'),
  }));
  await registerResource(app, 'containers', containerRoutes, () => plugins.get<Runtime>(runtimeType));
  await registerResource(app, 'events', eventRoutes, () => ({ events: plugins.get<EventBus>(eventsType) }));
}

/**
 * Registers a resource's routes with the plugins they need. When one of those did not load
 * (skipped, failed, absent), the routes are still served — the API is the same on every server
 * — and answer 501 naming the plugin and why, as containerd answers Unimplemented for a
 * service whose plugin failed.
 */
async function registerResource<O extends Record<string, unknown>>(
  app: FastifyInstance,
  what: string,
  routes: FastifyPluginAsync<O>,
  deps: () => O,
): Promise<void> {
  let opts: O | undefined;
  let missing: string | undefined;
  try {
    opts = deps();
  } catch (err) {
    missing = (err as Error).message;
  }
  await app.register(async (scope) => {
    if (missing !== undefined) {
      const message = `${what} unavailable: ${missing}`;
      scope.addHook('onRequest', async () => {
        throw new BerthError('not_implemented', message);
      });
    }
    // Without its plugins no handler runs (the hook above answers first).
    await scope.register(routes, opts ?? ({} as O));
  });
}

/**
 * JSON bodies are validated strictly — an unknown property or a number where a string belongs is
 * a 400, never silently dropped or coerced (a typo in `digest` must not commit unchecked) —
 * while headers, query strings and path parameters are coerced from their text.
 */
function requestValidators(): (req: { schema: object; httpPart?: string }) => ReturnType<Ajv['compile']> {
  const addFormats = addFormatsModule.default;
  const make = (coerceTypes: boolean | 'array') => {
    const ajv = new Ajv({ coerceTypes, useDefaults: true, removeAdditional: false, allErrors: false, strict: false });
    addFormats(ajv);
    ajv.addFormat('binary', true);
    for (const schema of componentSchemas()) ajv.addSchema(schema);
    return ajv;
  };
  const bodies = make(false);
  const texts = make('array');
  return ({ schema, httpPart }) => (httpPart === 'body' ? bodies : texts).compile(schema);
}

/** A socket file left by a process that no longer holds the root. */
async function removeStaleSocket(path: string): Promise<void> {
  try {
    if ((await lstat(path)).isSocket()) await rm(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
