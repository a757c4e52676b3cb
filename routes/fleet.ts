// The fleet as this node sees it (issue 12): its members and who holds a blob. Both answers are
// read from the node's watch of etcd, in memory: asking costs etcd nothing.
import type { FastifyPluginAsync } from 'fastify';
import { parseDigest } from '../store/digest.js';
import type { FleetReader } from '../src/fleet/fleet.js';
import { routeSchema } from '../src/openapi.js';
import type { Route } from './route-types.js';
import { fleetBlobView, fleetNodeView } from './views.js';

export const fleetRoutes: FastifyPluginAsync<{ fleet: FleetReader }> = async (app, { fleet }) => {
  app.get<Route<'/v1/fleet/nodes', 'get'>>(
    '/v1/fleet/nodes',
    { schema: routeSchema('get', '/v1/fleet/nodes') },
    async () => ({ items: fleet.nodes().map(fleetNodeView) }),
  );

  app.get<Route<'/v1/fleet/blobs/{digest}', 'get'>>(
    '/v1/fleet/blobs/:digest',
    { schema: routeSchema('get', '/v1/fleet/blobs/{digest}') },
    async (req) => {
      const { digest } = req.params;
      parseDigest(digest); // invalid_argument naming it
      return fleetBlobView(digest, fleet.holders(digest), fleet.claimOf(digest));
    },
  );
};
