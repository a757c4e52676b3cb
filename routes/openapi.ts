// The API describes itself: openapi.yaml, the document the routes take their schemas from, served
// as JSON and YAML with the server's own URL in `servers` (GET /docs renders it: src/http/docs.ts).
import type { FastifyPluginAsync } from 'fastify';
import { stringify } from 'yaml';
import { requestOrigin, routeSchema, servedDocument } from '../src/openapi.js';
import type { Route } from './route-types.js';

export const openApiRoutes: FastifyPluginAsync = async (app) => {
  const url = () => app.listeningOrigin;
  app.get<Route<'/openapi.json', 'get'>>('/openapi.json', { schema: routeSchema('get', '/openapi.json') }, async (req) =>
    servedDocument(requestOrigin(req, url())) as never,
  );
  app.get<Route<'/openapi.yaml', 'get'>>('/openapi.yaml', { schema: routeSchema('get', '/openapi.yaml') }, async (req, reply) =>
    reply.type('application/yaml; charset=utf-8').send(stringify(servedDocument(requestOrigin(req, url())))),
  );
};
