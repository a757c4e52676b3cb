// Prometheus metrics of the server, in the text exposition format.
import type { FastifyPluginAsync } from 'fastify';
import { routeSchema } from '../src/openapi.js';
import type { Route } from './route-types.js';

export const metricsRoutes: FastifyPluginAsync<{ metrics: { contentType: string; scrape(): Promise<string> } }> = async (app, { metrics }) => {
  app.get<Route<'/metrics', 'get'>>('/metrics', { schema: routeSchema('get', '/metrics') }, async (_req, reply) =>
    reply.type(metrics.contentType).send(await metrics.scrape()),
  );
};
