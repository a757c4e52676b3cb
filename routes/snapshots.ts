// Snapshots of one snapshotter, in the request's namespace: list (filters), stat, update labels,
// remove, prepare, view, commit, mounts and usage. Keys travel URL-encoded in one path segment.
import type { FastifyPluginAsync } from 'fastify';
import { routeSchema } from '../src/openapi.js';
import type { SnapshotService } from '../src/services/snapshots.js';
import { opContext } from './context.js';
import type { Route } from './route-types.js';
import { snapshotView } from './views.js';

export const snapshotRoutes: FastifyPluginAsync<{ snapshots: SnapshotService }> = async (app, { snapshots }) => {
  const base = '/v1/snapshotters/{sn}/snapshots';
  app.get<Route<'/v1/snapshotters', 'get'>>('/v1/snapshotters', { schema: routeSchema('get', '/v1/snapshotters') }, async () => ({
    items: snapshots.names().map((name) => ({ name, default: name === snapshots.defaultSnapshotter })),
  }));

  app.get<Route<'/v1/snapshotters/{sn}/snapshots', 'get'>>(
    '/v1/snapshotters/:sn/snapshots',
    { schema: routeSchema('get', base) },
    async (req) => ({ items: (await snapshots.list(opContext(req), req.params.sn, req.query.filter ?? [])).map(snapshotView) }),
  );

  for (const how of ['prepare', 'view'] as const) {
    app.post<Route<`/v1/snapshotters/{sn}/snapshots/${typeof how}`, 'post'>>(
      `/v1/snapshotters/:sn/snapshots/${how}`,
      { schema: routeSchema('post', `${base}/${how}`) },
      async (req, reply) => {
        const { key, parent, labels } = req.body;
        const mounts = await snapshots[how](opContext(req), req.params.sn, key, parent ?? '', { labels });
        return reply.code(201).send({ key, mounts });
      },
    );
  }

  app.post<Route<'/v1/snapshotters/{sn}/snapshots/commit', 'post'>>(
    '/v1/snapshotters/:sn/snapshots/commit',
    { schema: routeSchema('post', `${base}/commit`) },
    async (req, reply) => {
      const { name, key, labels, parent } = req.body;
      const info = await snapshots.commit(opContext(req), req.params.sn, name, key, { labels, ...(parent ? { parent } : {}) });
      return reply.code(201).send(snapshotView(info));
    },
  );

  app.get<Route<'/v1/snapshotters/{sn}/snapshots/{key}', 'get'>>(
    '/v1/snapshotters/:sn/snapshots/:key',
    { schema: routeSchema('get', `${base}/{key}`) },
    async (req) => snapshotView(await snapshots.stat(opContext(req), req.params.sn, req.params.key)),
  );

  app.patch<Route<'/v1/snapshotters/{sn}/snapshots/{key}', 'patch'>>(
    '/v1/snapshotters/:sn/snapshots/:key',
    { schema: routeSchema('patch', `${base}/{key}`) },
    async (req) => {
      const { labels, fieldpaths } = req.body;
      return snapshotView(await snapshots.update(opContext(req), req.params.sn, req.params.key, labels ?? {}, fieldpaths ?? []));
    },
  );

  app.delete<Route<'/v1/snapshotters/{sn}/snapshots/{key}', 'delete'>>(
    '/v1/snapshotters/:sn/snapshots/:key',
    { schema: routeSchema('delete', `${base}/{key}`) },
    async (req, reply) => {
      await snapshots.remove(opContext(req), req.params.sn, req.params.key);
      return reply.code(204).send();
    },
  );

  app.get<Route<'/v1/snapshotters/{sn}/snapshots/{key}/mounts', 'get'>>(
    '/v1/snapshotters/:sn/snapshots/:key/mounts',
    { schema: routeSchema('get', `${base}/{key}/mounts`) },
    async (req) => ({ mounts: await snapshots.mounts(opContext(req), req.params.sn, req.params.key) }),
  );

  app.get<Route<'/v1/snapshotters/{sn}/snapshots/{key}/usage', 'get'>>(
    '/v1/snapshotters/:sn/snapshots/:key/usage',
    { schema: routeSchema('get', `${base}/{key}/usage`) },
    async (req) => snapshots.usage(opContext(req), req.params.sn, req.params.key),
  );
};
