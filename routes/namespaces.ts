// Namespaces: list, create, read, label, delete (only when empty). Not themselves namespaced:
// the Berth-Namespace header plays no part here.
import type { FastifyPluginAsync } from 'fastify';
import { routeSchema } from '../src/openapi.js';
import type { NamespaceService } from '../src/services/namespaces.js';
import type { Route } from './route-types.js';
import { namespaceView } from './views.js';

export const namespaceRoutes: FastifyPluginAsync<{ namespaces: NamespaceService }> = async (app, { namespaces }) => {
  app.get<Route<'/v1/namespaces', 'get'>>(
    '/v1/namespaces',
    { schema: routeSchema('get', '/v1/namespaces') },
    async (req) => ({ items: (await namespaces.list(req.query.filter ?? [])).map(namespaceView) }),
  );

  app.post<Route<'/v1/namespaces', 'post'>>(
    '/v1/namespaces',
    { schema: routeSchema('post', '/v1/namespaces') },
    async (req, reply) => reply.code(201).send(namespaceView(await namespaces.create(req.body.name, req.body.labels))),
  );

  app.get<Route<'/v1/namespaces/{name}', 'get'>>(
    '/v1/namespaces/:name',
    { schema: routeSchema('get', '/v1/namespaces/{name}') },
    async (req) => namespaceView(await namespaces.get(req.params.name)),
  );

  app.patch<Route<'/v1/namespaces/{name}', 'patch'>>(
    '/v1/namespaces/:name',
    { schema: routeSchema('patch', '/v1/namespaces/{name}') },
    async (req) => namespaceView(await namespaces.update(req.params.name, req.body.labels, req.body.fieldpaths ?? [])),
  );

  app.delete<Route<'/v1/namespaces/{name}', 'delete'>>(
    '/v1/namespaces/:name',
    { schema: routeSchema('delete', '/v1/namespaces/{name}') },
    async (req, reply) => {
      await namespaces.delete(req.params.name);
      return reply.code(204).send();
    },
  );
};
