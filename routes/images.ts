// Images: a name pointing at a target descriptor, with labels, in the request's namespace.
// Names contain `/` and `:` and travel URL-encoded in one path segment.
import type { FastifyPluginAsync } from 'fastify';
import { BerthError, invalidArgument } from '../store/errors.js';
import type { Descriptor } from '../src/oci/descriptor.js';
import { routeSchema } from '../src/openapi.js';
import type { ImageService } from '../src/services/images.js';
import type { UnpackService } from '../src/services/unpack.js';
import { parseDigest } from '../store/digest.js';
import type { Labels } from '../src/oci/labels.js';
import { opContext } from './context.js';
import { imageView } from './views.js';

interface NameParams {
  name: string;
}

export const imageRoutes: FastifyPluginAsync<{ images: ImageService; unpack?: UnpackService }> = async (app, { images, unpack }) => {
  app.get<{ Querystring: { filter?: string[] } }>(
    '/v1/images',
    { schema: routeSchema('get', '/v1/images') },
    async (req) => ({ items: (await images.list(opContext(req), req.query.filter ?? [])).map(imageView) }),
  );

  app.post<{ Body: { name: string; target: Descriptor; labels?: Labels } }>(
    '/v1/images',
    { schema: routeSchema('post', '/v1/images') },
    async (req, reply) => reply.code(201).send(imageView(await images.create(opContext(req), req.body))),
  );

  app.get<{ Params: NameParams }>(
    '/v1/images/:name',
    { schema: routeSchema('get', '/v1/images/{name}') },
    async (req) => imageView(await images.get(opContext(req), req.params.name)),
  );

  app.post<{ Params: NameParams; Body: { snapshotter?: string; platform?: string } }>(
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
      const r = await unpack.unpack(opContext(req), req.params.name, req.body);
      return { snapshotter: r.snapshotter, chainId: r.chainId, unpacked: r.unpacked, existing: r.existing };
    },
  );

  app.get<{ Params: NameParams; Querystring: { platform?: string } }>(
    '/v1/images/:name/inspect',
    { schema: routeSchema('get', '/v1/images/{name}/inspect') },
    async (req) => images.inspect(opContext(req), req.params.name, { platform: req.query.platform || undefined }),
  );

  app.patch<{ Params: NameParams; Body: { target?: Descriptor; labels?: Labels; fieldpaths?: string[] } }>(
    '/v1/images/:name',
    { schema: routeSchema('patch', '/v1/images/{name}') },
    async (req) => {
      const { target, labels, fieldpaths } = req.body;
      // Without field paths a PATCH replaces what the body has and keeps the rest (containerd's
      // "no field paths" would replace the target and the labels both).
      const paths = fieldpaths?.length ? fieldpaths : [...(target ? ['target'] : []), ...(labels ? ['labels'] : [])];
      if (paths.length === 0) throw invalidArgument(`image "${req.params.name}": nothing to update: give target or labels`);
      const updated = await images.update(opContext(req), { name: req.params.name, target, labels }, paths);
      return imageView(updated);
    },
  );

  app.delete<{ Params: NameParams; Querystring: { sync?: boolean; target?: string } }>(
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
