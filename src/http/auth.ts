// The management API's bearer token (`auth_token_file`, `serve --auth-token-file`): every request
// but the liveness probe and the docs page's own HTML and assets must carry
// `Authorization: Bearer <token>`; otherwise 401 `unauthenticated`, with the challenge
// `WWW-Authenticate: Bearer realm="berth"` (RFC 6750). The docs page is open so that it can ask
// the browser's user for the token; the document it renders (/docs/json, /openapi.json) is not.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createHash, timingSafeEqual } from 'node:crypto';

/** Routes (as the router matched them) anyone may reach: liveness, and the docs page with its scripts and styles. */
export function isOpenRoute(route: string | undefined): boolean {
  return route === '/healthz' || route === '/docs' || route === '/docs/' || (route?.startsWith('/docs/static/') ?? false);
}

const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

/**
 * Whether `header` is `Bearer <token>` (the scheme in any case, RFC 9110 §11.1). The tokens are
 * compared as SHA-256 digests with timingSafeEqual: in constant time, whatever their lengths.
 */
function check(header: string | undefined, expected: Buffer): 'ok' | 'missing' | 'wrong' {
  if (header === undefined || header === '') return 'missing';
  const m = /^bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  if (!m) return 'wrong';
  return timingSafeEqual(digest(m[1]), expected) ? 'ok' : 'wrong';
}

function refuse(reply: FastifyReply, challenge: string, message: string): FastifyReply {
  return reply
    .code(401)
    .header('www-authenticate', challenge)
    .send({ error: { code: 'unauthenticated', message } });
}

/**
 * Requires the token on every route but the open ones (and on URLs no route serves, so that
 * nobody learns which exist). Register it before the routes: a hook applies to the scopes
 * registered after it.
 */
export function registerAuth(app: FastifyInstance, token: string): void {
  const expected = digest(token);
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    if (isOpenRoute(req.routeOptions.url)) return;
    switch (check(req.headers.authorization, expected)) {
      case 'ok':
        return;
      case 'missing':
        return refuse(
          reply,
          'Bearer realm="berth"',
          'this berth server requires its API token (the server\'s auth_token_file): send Authorization: Bearer <token>',
        );
      case 'wrong':
        return refuse(
          reply,
          'Bearer realm="berth", error="invalid_token"',
          'the API token sent is not this server\'s (its auth_token_file): send Authorization: Bearer <token>',
        );
    }
  });
}
