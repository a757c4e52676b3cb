// The docs page, GET /docs: Swagger UI (@fastify/swagger-ui) rendering openapi.yaml with the
// server's own URL in `servers`, so that "Try it out" calls this server. Its scripts and styles
// are served by berth from the package (no CDN: the page works on a machine with no internet).
// The management API has no token (anyone who reaches the listener may use it), so neither has
// the page; the listener is loopback unless configured otherwise.
import type { FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { loadOpenApi, requestOrigin, servedDocument } from '../openapi.js';

export async function registerDocs(app: FastifyInstance): Promise<void> {
  // In a scope of its own: the plugins' decorators and routes stay out of the API's.
  await app.register(async (scope) => {
    await scope.register(swagger, { mode: 'static', specification: { document: loadOpenApi() as never } });
    await scope.register(swaggerUi, {
      routePrefix: '/docs',
      // The document as /openapi.json serves it (the page fetches it from /docs/json).
      transformSpecification: (_doc, req) => servedDocument(requestOrigin(req, app.listeningOrigin)),
      transformSpecificationClone: false,
      uiConfig: { deepLinking: true, displayOperationId: true, tryItOutEnabled: false },
      validatorUrl: false, // no badge fetched from validator.swagger.io
    });
  });
}
