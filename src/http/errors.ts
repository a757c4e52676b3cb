// Errors as HTTP answers: the error kind gives the status (design.md, "Errors") and every error,
// whoever raised it, gets the body `{"error": {"code", "message"}}`.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BerthError, errorCode, type ErrorCode } from '../../store/errors.js';

const httpStatusOf: Record<ErrorCode, number> = {
  not_found: 404,
  already_exists: 409,
  invalid_argument: 400,
  failed_precondition: 412,
  unavailable: 423,
  range_not_satisfiable: 416,
  not_implemented: 501,
  // A registry's 401/403 is the registry's answer, not the caller's fault: passed on as 502.
  unauthenticated: 502,
  denied: 502,
  internal: 500,
};

export function httpStatus(code: ErrorCode): number {
  return httpStatusOf[code];
}

/**
 * For fastify's `frameworkErrors` option: errors the router raises before any route runs (a
 * malformed URL, an over-long parameter) get the same body as every other error.
 */
export function frameworkErrorReply(err: Error, _req: FastifyRequest, reply: FastifyReply): void {
  void reply.code(400).send({ error: { code: 'invalid_argument', message: err.message } });
}

/** Maps what handlers throw, and URLs no route serves, to the error body. */
export function registerErrorReplies(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | BerthError, req, reply) => {
    let code: ErrorCode;
    let status: number;
    let message = err.message;
    if (err instanceof BerthError || errorCode(err) !== 'internal') {
      code = errorCode(err);
      status = httpStatus(code);
      const offset = err instanceof BerthError ? err.details.offset : undefined;
      if (offset !== undefined) reply.header('upload-offset', offset);
    } else if ((err as FastifyError).validation) {
      code = 'invalid_argument';
      status = 400;
      // ajv says "must NOT have additional properties"; say which one (a typo, usually).
      const extra = (err as FastifyError).validation!.find((v) => v.keyword === 'additionalProperties');
      const name = (extra?.params as { additionalProperty?: string } | undefined)?.additionalProperty;
      if (name !== undefined) message = `${message}: unknown property ${JSON.stringify(name)}`;
    } else if ((err as FastifyError).statusCode && (err as FastifyError).statusCode! < 500) {
      code = (err as FastifyError).statusCode === 404 ? 'not_found' : 'invalid_argument';
      status = (err as FastifyError).statusCode!;
    } else {
      code = 'internal';
      status = 500;
      req.log.error({ err }, 'internal error');
    }
    return reply.code(status).send({ error: { code, message } });
  });

  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: { code: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` } }),
  );
}
