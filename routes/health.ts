import type { FastifyPluginAsync } from 'fastify';
import { routeSchema } from '../src/openapi.js';
import type { Route } from './route-types.js';

export const healthRoutes: FastifyPluginAsync = async (app) => {
  app.get<Route<'/healthz', 'get'>>('/healthz', { schema: routeSchema('get', '/healthz') }, async () => ({ status: 'ok' }));
};
