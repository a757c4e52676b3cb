import type { FastifyPluginAsync } from 'fastify';
import { routeSchema } from '../src/openapi.js';

export const healthRoutes: FastifyPluginAsync = async (app) => {
  app.get('/healthz', { schema: routeSchema('get', '/healthz') }, async () => ({ status: 'ok' }));
};
