// Images: a name pointing at a target descriptor, with labels, in the request's namespace.
// Names contain `/` and `:` and travel URL-encoded in one path segment.
import type { FastifyPluginAsync } from 'fastify';
import { BerthError, invalidArgument } from '../store/errors.js';
import type { Descriptor } from '../src/oci/descriptor.js';
import { routeSchema } from '../src/openapi.js';
import type { ImageService } from '../src/services/images.js';
import type { UnpackService } from '../src/services/unpack.js';
import { parseDigest } from '../store/digest.js';
import { opContext } from './context.js';
import type { Route } from './route-types.js';
import { imageView, inspectionView, unpackResultView } from './views.js';

export const imageRoutes: FastifyPluginAsync<{ images: ImageService; unpack?: UnpackService }> = async (app, { images, unpack }) => {
  app.get<Route<'/v1/images', 'get'>>(
    '/v1/images',
    { schema: routeSchema('get', '/v1/images') },
    async (req) => ({ items: (await images.list(opContext(req), req.query.filter ?? [])).map(imageView) }),
  );

  app.post<Route<'/v1/images', 'post'>>(
    '/v1/images',
    { schema: routeSchema('post', '/v1/images') },
    async (req, reply) => reply.code(201).send(imageView(await images.create(opContext(req), req.body))),
  );

  app.get<Route<'/v1/images/{name}', 'get'>>(
    '/v1/images/:name',
    { schema: routeSchema('get', '/v1/images/{name}') },
    async (req) => imageView(await images.get(opContext(req), req.params.name)),
  );

  app.post<Route<'/v1/images/{name}/unpack', 'post'>>(
    '/v1/images/:name/unpack',
    {
      schema: routeSchema('post', '/v1/images/{name}/unpack'),
      // The body is optional: none means the defaults.
      preValidation: async (req) => {
        req.body ??= {};
      },
    },
    async (req) => {
      if (!unpack) throw new BerthError('not_implemented', 'unpack unavailable: the pulls plugin (which holds the unpacker) did not load');
      return unpackResultView(await unpack.unpack(opContext(req), req.params.name, req.body));
    },
  );

  app.get<Route<'/v1/images/{name}/inspect', 'get'>>(
    '/v1/images/:name/inspect',
    { schema: routeSchema('get', '/v1/images/{name}/inspect') },
    async (req) => inspectionView(await images.inspect(opContext(req), req.params.name, { platform: req.query.platform || undefined })),
  );

  app.patch<Route<'/v1/images/{name}', 'patch'>>(
    '/v1/images/:name',
    { schema: routeSchema('patch', '/v1/images/{name}') },
    async (req) => {
      const { target, labels, fieldpaths } = req.body;
      // Without field paths a PATCH replaces what the body has and keeps the rest (containerd's
      // "no field paths" would replace the target and the labels both).
      const paths = fieldpaths?.length ? fieldpaths : [...(target ? ['target'] : []), ...(labels ? ['labels'] : [])];
      if (paths.length === 0) throw invalidArgument(`image "${req.params.name}": nothing to update: give target or labels`);
      // A target may come in part (DescriptorUpdate: `annotations.<key>` paths need only its
      // annotations); the store fills it in from the stored target and validates the result.
      const updated = await images.update(opContext(req), { name: req.params.name, target: target as Descriptor | undefined, labels }, paths);
      return imageView(updated);
    },
  );

  app.delete<Route<'/v1/images/{name}', 'delete'>>(
    '/v1/images/:name',
    { schema: routeSchema('delete', '/v1/images/{name}') },
    async (req, reply) => {
      const { sync = false, target } = req.query;
      if (target) checkDigest(target, 'target');
      await images.delete(opContext(req), req.params.name, { sync, target: target || undefined });
      return reply.code(204).send();
    },
  );
};

function checkDigest(digest: string, what: string): void {
  try {
    parseDigest(digest);
  } catch (err) {
    throw invalidArgument(`${what}: ${(err as Error).message}`, err);
  }
}
