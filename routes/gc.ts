// Garbage collection on request: a real run (through the scheduler, so it never overlaps a
// scheduled one), a dry run, and why a blob is kept.
import type { FastifyPluginAsync } from 'fastify';
import type { Gc } from '../src/plugins/gc.js';
import { routeSchema } from '../src/openapi.js';
import { parseDigest } from '../store/digest.js';
import type { Route } from './route-types.js';
import { gcExplanationView, gcResultView } from './views.js';

export const gcRoutes: FastifyPluginAsync<{ gc: Gc }> = async (app, { gc }) => {
  app.post<Route<'/v1/gc', 'post'>>(
    '/v1/gc',
    { schema: routeSchema('post', '/v1/gc') },
    async (req) => {
      const result = req.query.dryRun ? await gc.collector.collect({ dryRun: true }) : await gc.scheduler.scheduleAndWait();
      return gcResultView(result);
    },
  );

  app.get<Route<'/v1/gc/explain', 'get'>>(
    '/v1/gc/explain',
    { schema: routeSchema('get', '/v1/gc/explain') },
    async (req) => {
      parseDigest(req.query.digest);
      return gcExplanationView(await gc.collector.explain(req.query.digest));
    },
  );
};
