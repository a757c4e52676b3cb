// The registry listener's counters, on the management API (the listener itself serves only the
// OCI distribution API).
import type { FastifyPluginAsync } from 'fastify';
import { routeSchema } from '../src/openapi.js';
import type { RegistryStats } from '../src/registry/stats.js';
import type { Route } from './route-types.js';
import { registryStatsView } from './views.js';

export const registryRoutes: FastifyPluginAsync<{ registry: { stats(): RegistryStats } }> = async (app, { registry }) => {
  app.get<Route<'/v1/registry/stats', 'get'>>(
    '/v1/registry/stats',
    { schema: routeSchema('get', '/v1/registry/stats') },
    async () => registryStatsView(registry.stats()),
  );
};
