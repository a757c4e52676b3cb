// Leases: create (with an expiry as a Go duration), list, read, delete (optionally waiting for
// the GC that frees what only the lease kept), and the resources a lease holds.
import type { FastifyPluginAsync } from 'fastify';
import { invalidArgument } from '../store/errors.js';
import { parseDuration } from '../src/metadata/duration.js';
import { routeSchema } from '../src/openapi.js';
import type { LeaseService } from '../src/services/leases.js';
import { opContext } from './context.js';
import type { Route } from './route-types.js';
import { leaseView, resourceView } from './views.js';

export const leaseRoutes: FastifyPluginAsync<{ leases: LeaseService }> = async (app, { leases }) => {
  app.get<Route<'/v1/leases', 'get'>>(
    '/v1/leases',
    { schema: routeSchema('get', '/v1/leases') },
    async (req) => ({ items: (await leases.list(opContext(req), req.query.filter ?? [])).map(leaseView) }),
  );

  app.post<Route<'/v1/leases', 'post'>>(
    '/v1/leases',
    { schema: routeSchema('post', '/v1/leases') },
    async (req, reply) => {
      const { id, labels, expiresIn } = req.body;
      let ms: number | undefined;
      if (expiresIn !== undefined) {
        try {
          ms = parseDuration(expiresIn);
        } catch (err) {
          throw invalidArgument(`lease${id ? ` "${id}"` : ''}: expiresIn: ${(err as Error).message} (e.g. "24h", "90m", "1h30m")`, err);
        }
        if (ms < 0) throw invalidArgument(`lease${id ? ` "${id}"` : ''}: expiresIn ${JSON.stringify(expiresIn)} is negative`);
      }
      const lease = await leases.create(opContext(req), { id: id || undefined, labels, expiresIn: ms });
      return reply.code(201).send(leaseView(lease));
    },
  );

  app.get<Route<'/v1/leases/{id}', 'get'>>(
    '/v1/leases/:id',
    { schema: routeSchema('get', '/v1/leases/{id}') },
    async (req) => leaseView(await leases.get(opContext(req), req.params.id)),
  );

  app.delete<Route<'/v1/leases/{id}', 'delete'>>(
    '/v1/leases/:id',
    { schema: routeSchema('delete', '/v1/leases/{id}') },
    async (req, reply) => {
      await leases.delete(opContext(req), req.params.id, { sync: req.query.sync ?? false });
      return reply.code(204).send();
    },
  );

  app.get<Route<'/v1/leases/{id}/resources', 'get'>>(
    '/v1/leases/:id/resources',
    { schema: routeSchema('get', '/v1/leases/{id}/resources') },
    async (req) => ({ items: (await leases.listResources(opContext(req), req.params.id)).map(resourceView) }),
  );

  app.post<Route<'/v1/leases/{id}/resources', 'post'>>(
    '/v1/leases/:id/resources',
    { schema: routeSchema('post', '/v1/leases/{id}/resources') },
    async (req, reply) => {
      await leases.addResource(opContext(req), req.params.id, { id: req.body.id, type: req.body.type });
      return reply.code(204).send();
    },
  );

  app.delete<Route<'/v1/leases/{id}/resources/{type}/{resourceId}', 'delete'>>(
    '/v1/leases/:id/resources/:type/:resourceId',
    { schema: routeSchema('delete', '/v1/leases/{id}/resources/{type}/{resourceId}') },
    async (req, reply) => {
      const { id, type, resourceId } = req.params;
      await leases.deleteResource(opContext(req), id, { id: resourceId, type });
      return reply.code(204).send();
    },
  );
};
