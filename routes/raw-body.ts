// Upload routes take their body as a stream, whatever its Content-Type says: bytes go to the
// store as they arrive and are never parsed or buffered.
import type { FastifyInstance } from 'fastify';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';

/** Call inside an encapsulated plugin holding only upload routes. */
export function streamBodies(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req: unknown, payload: IncomingMessage, done: (err: null, body: Readable) => void) =>
    done(null, payload),
  );
}

/** The request body as a stream (fastify leaves it unset when the request had none). */
export function bodyStream(req: { body?: unknown; raw: IncomingMessage }): Readable {
  return (req.body as Readable | undefined) ?? req.raw;
}
