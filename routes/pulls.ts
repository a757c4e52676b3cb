// Pulls as resources: POST starts one (202 with its id, or 200 with its final state with
// `?wait=true`), GET reads it, DELETE cancels it, and `/events` streams its progress as
// server-sent events until it ends.
import type { FastifyPluginAsync } from 'fastify';
import { routeSchema } from '../src/openapi.js';
import { isFinalEvent, type PullService } from '../src/services/pulls.js';
import { opContext } from './context.js';
import { sendEventStream } from './event-stream.js';
import type { Route } from './route-types.js';
import { pullView } from './views.js';

export interface PullRouteOptions {
  pulls: PullService;
  /** How often an idle event stream gets a comment line (ms). */
  keepAliveMs?: number;
  /** Bytes a client may fall behind by before its event stream is dropped. */
  maxBacklog?: number;
}

export const pullRoutes: FastifyPluginAsync<PullRouteOptions> = async (app, opts) => {
  const { pulls, keepAliveMs = 15_000, maxBacklog = 16 << 20 } = opts;

  app.get<Route<'/v1/pulls', 'get'>>(
    '/v1/pulls',
    { schema: routeSchema('get', '/v1/pulls') },
    async (req) => ({ items: pulls.list(opContext(req), req.query.filter ?? []).map(pullView) }),
  );

  app.post<Route<'/v1/pulls', 'post'>>(
    '/v1/pulls',
    { schema: routeSchema('post', '/v1/pulls') },
    async (req, reply) => {
      const ctx = opContext(req);
      const started = await pulls.start(ctx, req.body);
      reply.header('location', `/v1/pulls/${encodeURIComponent(started.id)}`);
      if (!req.query.wait) return reply.code(202).send(pullView(started));
      return reply.code(200).send(pullView(await pulls.wait(ctx, started.id)));
    },
  );

  app.get<Route<'/v1/pulls/{id}', 'get'>>(
    '/v1/pulls/:id',
    { schema: routeSchema('get', '/v1/pulls/{id}') },
    async (req) => pullView(pulls.get(opContext(req), req.params.id)),
  );

  app.delete<Route<'/v1/pulls/{id}', 'delete'>>(
    '/v1/pulls/:id',
    { schema: routeSchema('delete', '/v1/pulls/{id}') },
    async (req) => pullView(await pulls.cancel(opContext(req), req.params.id)),
  );

  app.get<Route<'/v1/pulls/{id}/events', 'get'>>(
    '/v1/pulls/:id/events',
    { schema: routeSchema('get', '/v1/pulls/{id}/events') },
    async (req, reply) =>
      // First the pull as it is now (`event: pull`), then the manager's events; the stream ends
      // after the final one — at once for a pull that has already ended. An unknown pull (or
      // one of another namespace) throws in `follow`: a plain 404, no stream.
      sendEventStream(reply, { keepAliveMs, maxBacklog }, (write, end) =>
        pulls.follow(
          opContext(req),
          req.params.id,
          (view) => write('pull', pullView(view)),
          (e) => {
            write(e.type, e);
            if (isFinalEvent(e)) end();
          },
        ),
      ),
  );
};
