// The event stream: every event the server publishes that matches the request's filters, as
// server-sent events (`event: <topic>`, `data: <JSON>`), until the client goes away.
import type { FastifyPluginAsync } from 'fastify';
import { PassThrough } from 'node:stream';
import type { EventBus } from '../src/events/bus.js';
import { routeSchema } from '../src/openapi.js';
import { formatTimestamp } from '../src/oci/time.js';
import type { Route } from './route-types.js';

export interface EventRouteOptions {
  events: EventBus;
  /** How often an idle stream gets a comment line, so that proxies and clients keep it open. */
  keepAliveMs?: number;
  /** Bytes a client may fall behind by before its stream is dropped (publishers never wait). */
  maxBacklog?: number;
}

export const eventRoutes: FastifyPluginAsync<EventRouteOptions> = async (app, opts) => {
  const { events, keepAliveMs = 15_000, maxBacklog = 16 << 20 } = opts;

  app.get<Route<'/v1/events', 'get'>>(
    '/v1/events',
    { schema: routeSchema('get', '/v1/events') },
    async (req, reply) => {
      const stream = new PassThrough();
      // A malformed filter throws here, before anything is sent: a plain 400.
      const unsubscribe = events.subscribe(req.query.filter ?? [], (e) => {
        if (stream.writableLength > maxBacklog) {
          stream.end(': dropped: the client fell too far behind\n\n');
          return stop();
        }
        stream.write(`event: ${e.topic}\ndata: ${JSON.stringify(e, apiTimes)}\n\n`);
      });
      const keepAlive = setInterval(() => stream.write(': keep-alive\n\n'), keepAliveMs);
      keepAlive.unref();
      const stop = () => {
        clearInterval(keepAlive);
        unsubscribe();
      };
      // Closed when the client disconnects (fastify destroys the payload) or at shutdown.
      stream.once('close', stop);
      // The first bytes send the headers: the client knows it is subscribed.
      stream.write(': subscribed\n\n');
      return reply
        .header('content-type', 'text/event-stream; charset=utf-8')
        .header('cache-control', 'no-cache')
        .header('x-accel-buffering', 'no')
        .send(stream);
    },
  );
};

/**
 * JSON.stringify replacer: a Date in an event's payload (a GcResult's `nextExpiry`) is written
 * as every time in the API is, RFC 3339 with nanoseconds, not as Date's own JSON.
 */
function apiTimes(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const raw = this[key];
  return raw instanceof Date ? formatTimestamp(raw) : value;
}
