// Resumable uploads into ingests (tus-style PATCH), their status, commit and abort.
import type { FastifyPluginAsync } from 'fastify';
import { routeSchema } from '../src/openapi.js';
import { opContext } from './context.js';
import type { ContentService } from '../src/services/content.js';
import { bodyStream, streamBodies } from './raw-body.js';
import type { Route } from './route-types.js';
import { infoView, statusView } from './views.js';

export const ingestRoutes: FastifyPluginAsync<{ content: ContentService }> = async (app, { content }) => {
  app.get<Route<'/v1/ingests', 'get'>>(
    '/v1/ingests',
    { schema: routeSchema('get', '/v1/ingests') },
    async (req) => ({ items: (await content.listIngests(opContext(req), req.query.filter ?? [])).map(statusView) }),
  );

  app.get<Route<'/v1/ingests/{ref}', 'get'>>(
    '/v1/ingests/:ref',
    { schema: routeSchema('get', '/v1/ingests/{ref}') },
    async (req) => statusView(await content.ingestStatus(opContext(req), req.params.ref)),
  );

  await app.register(async (uploads) => {
    streamBodies(uploads);
    uploads.patch<Route<'/v1/ingests/{ref}', 'patch'>>('/v1/ingests/:ref', { schema: routeSchema('patch', '/v1/ingests/{ref}') }, async (req, reply) => {
      const status = await content.append(
        opContext(req),
        req.params.ref,
        {
          offset: req.headers['upload-offset'],
          total: req.headers['upload-length'] || undefined,
          expected: req.headers['upload-digest'] || undefined,
          length: contentLength(req.headers['content-length']),
        },
        bodyStream(req),
      );
      reply.header('upload-offset', status.offset);
      return statusView(status);
    });
  });

  app.post<Route<'/v1/ingests/{ref}/commit', 'post'>>(
    '/v1/ingests/:ref/commit',
    { schema: routeSchema('post', '/v1/ingests/{ref}/commit') },
    async (req, reply) => {
      const { size = 0, digest, labels } = req.body;
      const info = await content.commit(opContext(req), req.params.ref, size, digest || undefined, labels);
      return reply.code(201).send(infoView(info));
    },
  );

  app.delete<Route<'/v1/ingests/{ref}', 'delete'>>(
    '/v1/ingests/:ref',
    { schema: routeSchema('delete', '/v1/ingests/{ref}') },
    async (req, reply) => {
      await content.abort(opContext(req), req.params.ref);
      return reply.code(204).send();
    },
  );
};

/** The body's length when the request states it (a chunked body has none). */
function contentLength(header: string | undefined): number | undefined {
  return header !== undefined && /^\d+$/.test(header) ? Number(header) : undefined;
}
