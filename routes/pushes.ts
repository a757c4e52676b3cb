// Pushes as resources: POST starts one (202 with its id, or 200 with its final state with
// `?wait=true`), GET reads it, DELETE cancels it, and `/events` streams its progress as
// server-sent events until it ends.
import type { FastifyPluginAsync } from 'fastify';
import type { components } from '../src/client/openapi.js';
import { formatTimestamp } from '../src/oci/time.js';
import { routeSchema } from '../src/openapi.js';
import type { PushView } from '../src/push/manager.js';
import { isFinalPushEvent, type PushService } from '../src/services/pushes.js';
import { opContext } from './context.js';
import { sendEventStream } from './event-stream.js';
import type { Route } from './route-types.js';

export interface PushRouteOptions {
  pushes: PushService;
  /** How often an idle event stream gets a comment line (ms). */
  keepAliveMs?: number;
  /** Bytes a client may fall behind by before its event stream is dropped. */
  maxBacklog?: number;
}

/** A push as the API shows it (the wire type generated from openapi.yaml's `Push`). */
export function pushView(p: PushView): components['schemas']['Push'] {
  return {
    id: p.id,
    ref: p.ref,
    image: p.image,
    namespace: p.namespace,
    state: p.state,
    ...(p.error ? { error: { code: p.error.code, message: p.error.message } } : {}),
    ...(p.digest ? { digest: p.digest } : {}),
    lease: p.lease,
    bytesSent: p.bytesSent,
    startedAt: formatTimestamp(p.startedAt),
    ...(p.finishedAt ? { finishedAt: formatTimestamp(p.finishedAt) } : {}),
    blobs: p.blobs.map((b) => ({ digest: b.digest, mediaType: b.mediaType, size: b.size, offset: b.offset, state: b.state, bytesSent: b.bytesSent })),
  };
}

export const pushRoutes: FastifyPluginAsync<PushRouteOptions> = async (app, opts) => {
  const { pushes, keepAliveMs = 15_000, maxBacklog = 16 << 20 } = opts;

  app.get<Route<'/v1/pushes', 'get'>>(
    '/v1/pushes',
    { schema: routeSchema('get', '/v1/pushes') },
    async (req) => ({ items: pushes.list(opContext(req), req.query.filter ?? []).map(pushView) }),
  );

  app.post<Route<'/v1/pushes', 'post'>>(
    '/v1/pushes',
    { schema: routeSchema('post', '/v1/pushes') },
    async (req, reply) => {
      const ctx = opContext(req);
      const started = await pushes.start(ctx, req.body);
      reply.header('location', `/v1/pushes/${encodeURIComponent(started.id)}`);
      if (!req.query.wait) return reply.code(202).send(pushView(started));
      return reply.code(200).send(pushView(await pushes.wait(ctx, started.id)));
    },
  );

  app.get<Route<'/v1/pushes/{id}', 'get'>>(
    '/v1/pushes/:id',
    { schema: routeSchema('get', '/v1/pushes/{id}') },
    async (req) => pushView(pushes.get(opContext(req), req.params.id)),
  );

  app.delete<Route<'/v1/pushes/{id}', 'delete'>>(
    '/v1/pushes/:id',
    { schema: routeSchema('delete', '/v1/pushes/{id}') },
    async (req) => pushView(await pushes.cancel(opContext(req), req.params.id)),
  );

  app.get<Route<'/v1/pushes/{id}/events', 'get'>>(
    '/v1/pushes/:id/events',
    { schema: routeSchema('get', '/v1/pushes/{id}/events') },
    async (req, reply) =>
      // First the push as it is now (`event: push`), then its events, ending after the final one.
      sendEventStream(reply, { keepAliveMs, maxBacklog }, (write, end) =>
        pushes.follow(
          opContext(req),
          req.params.id,
          (view) => write('push', pushView(view)),
          (e) => {
            write(e.type, e);
            if (isFinalPushEvent(e)) end();
          },
        ),
      ),
  );
};
