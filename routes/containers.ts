// Containers (metadata records) and their tasks (the process, through runc): create from an
// image, list, read, relabel, delete; a container's task is created and started, read, signalled,
// waited for, its output read (or followed), and deleted; started attached and exec'd into over
// a WebSocket (exec.ts).
import type { FastifyPluginAsync } from 'fastify';
import { routeSchema } from '../src/openapi.js';
import type { ContainerService } from '../src/services/containers.js';
import type { TaskService } from '../src/services/tasks.js';
import { opContext } from './context.js';
import { execRoutes } from './exec.js';
import type { Route } from './route-types.js';
import { containerView, exitView, taskView } from './views.js';

export const containerRoutes: FastifyPluginAsync<{ containers: ContainerService; tasks: TaskService }> = async (app, { containers, tasks }) => {
  await app.register(execRoutes, { tasks });

  app.get<Route<'/v1/containers', 'get'>>(
    '/v1/containers',
    { schema: routeSchema('get', '/v1/containers') },
    async (req) => ({ items: (await containers.list(opContext(req), req.query.filter ?? [])).map(containerView) }),
  );

  app.post<Route<'/v1/containers', 'post'>>('/v1/containers', { schema: routeSchema('post', '/v1/containers') }, async (req, reply) =>
    reply.code(201).send(containerView(await containers.create(opContext(req), req.body))),
  );

  app.get<Route<'/v1/containers/{id}', 'get'>>('/v1/containers/:id', { schema: routeSchema('get', '/v1/containers/{id}') }, async (req) =>
    containerView(await containers.get(opContext(req), req.params.id)),
  );

  app.patch<Route<'/v1/containers/{id}', 'patch'>>(
    '/v1/containers/:id',
    { schema: routeSchema('patch', '/v1/containers/{id}') },
    async (req) => containerView(await containers.updateLabels(opContext(req), req.params.id, req.body.labels ?? {}, req.body.fieldpaths ?? [])),
  );

  app.delete<Route<'/v1/containers/{id}', 'delete'>>(
    '/v1/containers/:id',
    { schema: routeSchema('delete', '/v1/containers/{id}') },
    async (req, reply) => {
      await containers.delete(opContext(req), req.params.id, { keepSnapshot: req.query.keepSnapshot ?? false });
      return reply.code(204).send();
    },
  );

  app.get<Route<'/v1/tasks', 'get'>>('/v1/tasks', { schema: routeSchema('get', '/v1/tasks') }, async (req) => ({
    items: (await tasks.list(opContext(req))).map(taskView),
  }));

  app.post<Route<'/v1/containers/{id}/task', 'post'>>('/v1/containers/:id/task', { schema: routeSchema('post', '/v1/containers/{id}/task') }, async (req, reply) =>
    reply.code(201).send(taskView(await tasks.create(opContext(req), req.params.id))),
  );

  app.get<Route<'/v1/containers/{id}/task', 'get'>>('/v1/containers/:id/task', { schema: routeSchema('get', '/v1/containers/{id}/task') }, async (req) =>
    taskView(await tasks.get(opContext(req), req.params.id)),
  );

  app.delete<Route<'/v1/containers/{id}/task', 'delete'>>('/v1/containers/:id/task', { schema: routeSchema('delete', '/v1/containers/{id}/task') }, async (req) =>
    exitView(await tasks.delete(opContext(req), req.params.id)),
  );

  app.post<Route<'/v1/containers/{id}/task/kill', 'post'>>(
    '/v1/containers/:id/task/kill',
    { schema: routeSchema('post', '/v1/containers/{id}/task/kill') },
    async (req, reply) => {
      await tasks.kill(opContext(req), req.params.id, req.body.signal ?? 'SIGTERM', req.body.all ?? false);
      return reply.code(204).send();
    },
  );

  app.get<Route<'/v1/containers/{id}/task/wait', 'get'>>('/v1/containers/:id/task/wait', { schema: routeSchema('get', '/v1/containers/{id}/task/wait') }, async (req) =>
    exitView(await tasks.wait(opContext(req), req.params.id)),
  );

  app.get<Route<'/v1/containers/{id}/task/logs', 'get'>>(
    '/v1/containers/:id/task/logs',
    { schema: routeSchema('get', '/v1/containers/{id}/task/logs') },
    async (req, reply) => {
      const ac = new AbortController();
      req.raw.once('close', () => ac.abort());
      const body = tasks.logs(opContext(req), req.params.id, req.query.stream ?? 'stdout', { follow: req.query.follow ?? false, signal: ac.signal });
      return reply.header('content-type', 'application/octet-stream').send(body);
    },
  );
};
