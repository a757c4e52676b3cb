// What this server is: its version and the commit it was built from (`berth --version` says the same of the CLI).
import type { FastifyPluginAsync } from 'fastify';
import { routeSchema } from '../src/openapi.js';
import { buildInfo } from '../src/version.js';
import type { Route } from './route-types.js';

export const versionRoutes: FastifyPluginAsync = async (app) => {
  app.get<Route<'/v1/version', 'get'>>('/v1/version', { schema: routeSchema('get', '/v1/version') }, async () => {
    const { version, commit } = buildInfo();
    return { version, commit };
  });
};
