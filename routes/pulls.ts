// Pulls as resources: POST starts one (202 with its id, or 200 with its final state with
// `?wait=true`), GET reads it, DELETE cancels it, and `/events` streams its progress as
// server-sent events until it ends.
import type { FastifyPluginAsync } from 'fastify';
import { PassThrough } from 'node:stream';
import { routeSchema } from '../src/openapi.js';
import { isFinalEvent, type PullService } from '../src/services/pulls.js';
import { opContext } from './context.js';
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
    async (req, reply) => {
      const stream = new PassThrough();
      let keepAlive: NodeJS.Timeout | undefined;
      let unsubscribe = () => {};
      const stop = () => {
        clearInterval(keepAlive);
        unsubscribe();
      };
      const write = (type: string, data: unknown) => {
        if (stream.writableEnded) return;
        if (stream.writableLength > maxBacklog) {
          stream.end(': dropped: the client fell too far behind\n\n');
          return stop();
        }
        stream.write(`event: ${type}\ndata: ${JSON.stringify(data)}\n\n`);
      };
      // First the pull as it is now (`event: pull`), then the manager's events; the stream ends
      // after the final one — at once for a pull that has already ended. An unknown pull (or
      // one of another namespace) throws here: a plain 404, no stream.
      unsubscribe = pulls.follow(
        opContext(req),
        req.params.id,
        (view) => write('pull', pullView(view)),
        (e) => {
          write(e.type, e);
          if (isFinalEvent(e)) stream.end();
        },
      );
      if (!stream.writableEnded) {
        keepAlive = setInterval(() => {
          if (!stream.writableEnded) stream.write(': keep-alive\n\n');
        }, keepAliveMs);
        keepAlive.unref();
      }
      // Closed when it ends, when the client disconnects (fastify destroys the payload) or at shutdown.
      stream.once('close', stop);
      stream.once('finish', stop);
      return reply
        .header('content-type', 'text/event-stream; charset=utf-8')
        .header('cache-control', 'no-cache')
        .header('x-accel-buffering', 'no')
        .send(stream);
    },
  );
};
