// One OpenTelemetry span per request (a no-op unless the host registers a tracer provider),
// named after the route, with its status; a 5xx marks it failed.
import type { FastifyInstance } from 'fastify';
import { context, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { tracer } from '../../store/telemetry.js';

/** Adds the hooks; routes registered after this run inside their request's span. */
export function registerTracing(app: FastifyInstance): void {
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
}
