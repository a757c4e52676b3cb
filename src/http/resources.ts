// A resource's routes served with the services they call, or, when a plugin behind those
// services did not load, served anyway — the API is the same on every server — answering 501.
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { BerthError } from '../../store/errors.js';

/**
 * Registers `routes` with what `services` returns. When that throws (a plugin skipped, failed,
 * absent), every request to the routes answers 501 naming the plugin and why, as containerd
 * answers Unimplemented for a service whose plugin failed.
 */
export async function registerResource<O extends Record<string, unknown>>(
  app: FastifyInstance,
  what: string,
  routes: FastifyPluginAsync<O>,
  services: () => O,
): Promise<void> {
  let opts: O | undefined;
  let missing: string | undefined;
  try {
    opts = services();
  } catch (err) {
    missing = (err as Error).message;
  }
  await app.register(async (scope) => {
    if (missing !== undefined) {
      const message = `${what} unavailable: ${missing}`;
      scope.addHook('onRequest', async () => {
        throw new BerthError('not_implemented', message);
      });
    }
    // Without its services no handler runs (the hook above answers first).
    await scope.register(routes, opts ?? ({} as O));
  });
}
