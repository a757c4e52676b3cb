import type { FastifyPluginAsync } from 'fastify';
import { routeSchema } from '../src/openapi.js';
import type { PluginSet } from '../src/plugins/registry.js';
import type { Route } from './route-types.js';

export const pluginRoutes: FastifyPluginAsync<{ plugins: PluginSet }> = async (app, { plugins }) => {
  app.get<Route<'/v1/plugins', 'get'>>('/v1/plugins', { schema: routeSchema('get', '/v1/plugins') }, async () => ({ items: plugins.list() }));
};
