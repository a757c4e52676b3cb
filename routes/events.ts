// The event stream: every event the server publishes that matches the request's filters, as
// server-sent events (`event: <topic>`, `data: <JSON>`), until the client goes away.
import type { FastifyPluginAsync } from 'fastify';
import type { EventBus } from '../src/events/bus.js';
import { routeSchema } from '../src/openapi.js';
import { formatTimestamp } from '../src/oci/time.js';
import { sendEventStream } from './event-stream.js';
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
    async (req, reply) =>
      // A malformed filter throws in `follow`, before anything is sent: a plain 400. The stream
      // starts with `: subscribed` (its first bytes send the headers: the client knows it is
      // subscribed) and goes on until the client goes away.
      sendEventStream(reply, { keepAliveMs, maxBacklog, replacer: apiTimes, announceSubscribed: true }, (write) =>
        events.subscribe(req.query.filter ?? [], (e) => write(e.topic, e)),
      ),
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
