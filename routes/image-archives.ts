// Image archives: export (one image by name, several by a list) streams a tar; import takes one
// as the request body, streamed.
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { routeSchema } from '../src/openapi.js';
import type { ArchiveExport, ImageArchiveService } from '../src/services/image-archives.js';
import { opContext } from './context.js';
import { bodyStream, streamBodies } from './raw-body.js';
import type { Route } from './route-types.js';
import { imageView, unpackResultView } from './views.js';

export const imageArchiveRoutes: FastifyPluginAsync<{ archives: ImageArchiveService }> = async (app, { archives }) => {
  app.get<Route<'/v1/images/{name}/export', 'get'>>(
    '/v1/images/:name/export',
    { schema: routeSchema('get', '/v1/images/{name}/export') },
    async (req, reply) => {
      const { platform, allPlatforms, skipMissing } = req.query;
      return sendArchive(reply, await archives.export(opContext(req), [req.params.name], { platform: platform || undefined, allPlatforms, skipMissing }));
    },
  );

  app.post<Route<'/v1/images/export', 'post'>>(
    '/v1/images/export',
    { schema: routeSchema('post', '/v1/images/export') },
    async (req, reply) => {
      const { names, platform, allPlatforms, skipMissing } = req.body;
      return sendArchive(reply, await archives.export(opContext(req), names, { platform: platform || undefined, allPlatforms, skipMissing }));
    },
  );

  await app.register(async (uploads) => {
    streamBodies(uploads);
    uploads.post<Route<'/v1/images/import', 'post'>>(
      '/v1/images/import',
      { schema: routeSchema('post', '/v1/images/import') },
      async (req) => {
        const { baseName, digests, unpack, snapshotter } = req.query;
        const result = await archives.import(opContext(req), bodyStream(req), { baseName, digests, unpack, snapshotter });
        return {
          images: result.images.map(imageView),
          blobs: result.blobs,
          bytes: result.bytes,
          ...(result.unpacked ? { unpacked: result.unpacked.map((u) => ({ image: u.image, ...unpackResultView(u) })) } : {}),
        };
      },
    );
  });
};

function sendArchive(reply: FastifyReply, archive: ArchiveExport): FastifyReply {
  return reply.type('application/x-tar').header('content-length', archive.size).send(archive.stream);
}
