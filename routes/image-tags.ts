// Tags: a second image record for an image's target.
import type { FastifyPluginAsync } from 'fastify';
import { routeSchema } from '../src/openapi.js';
import type { ImageTagService } from '../src/services/image-tags.js';
import { opContext } from './context.js';
import type { Route } from './route-types.js';
import { imageView } from './views.js';

export const imageTagRoutes: FastifyPluginAsync<{ tags: ImageTagService }> = async (app, { tags }) => {
  app.post<Route<'/v1/images/{name}/tag', 'post'>>(
    '/v1/images/:name/tag',
    { schema: routeSchema('post', '/v1/images/{name}/tag') },
    async (req, reply) => {
      const image = await tags.tag(opContext(req), req.params.name, req.body.target, { force: req.body.force });
      return reply.code(201).send(imageView(image));
    },
  );
};
