// Errors as HTTP answers: the error kind gives the status (design.md, "Errors") and every error,
// whoever raised it — a handler, the schema validation, fastify's body parsers and router, Node's
// HTTP parser — gets the body `{"error": {"code", "message"}}`, its message naming what was wrong
// and cut where it echoes a long input.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
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

/** Longest run of non-space characters an error message repeats from its input. */
const echoMax = 200;
/** Longest error message, whatever it holds. */
const messageMax = 2000;

/**
 * Cuts what a message echoes from its input (a 10,000-character name, a filter, a URL) to
 * `echoMax` characters + "…": every run of non-space characters longer than that, so the words
 * around it — what is wrong with it — stay whole; and the whole message to `messageMax`.
 */
export function cutEchoes(message: string): string {
  const cut = message.replace(new RegExp(`\\S{${echoMax + 1},}`, 'gu'), (run) => `${[...run].slice(0, echoMax).join('')}…`);
  return cut.length > messageMax ? `${cut.slice(0, messageMax)}…` : cut;
}

/** `"value"` as JSON quotes it, cut to 64 characters: for messages that name a refused value. */
function quoted(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
  return [...text].length > 64 ? `${JSON.stringify([...text].slice(0, 64).join(''))}…` : JSON.stringify(text);
}

function send(reply: FastifyReply, status: number, code: ErrorCode, message: string): FastifyReply {
  return reply.code(status).send({ error: { code, message: cutEchoes(message) } });
}

/**
 * For fastify's `frameworkErrors` option: errors the router raises before any route runs (a
 * malformed URL, an over-long parameter) get the same body as every other error.
 */
export function frameworkErrorReply(err: Error, _req: FastifyRequest, reply: FastifyReply): void {
  void send(reply, 400, 'invalid_argument', err.message);
}

/**
 * For fastify's `clientErrorHandler` option: a request Node's HTTP parser refuses (a malformed
 * request line or header, headers too large, a timeout) never reaches fastify; it gets the same
 * body as every other error, naming what the parser found, and the connection is closed.
 */
export function clientErrorReply(err: NodeJS.ErrnoException & { reason?: string }, socket: Socket): void {
  // A connection reset: nobody to answer.
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  let status = 400;
  let message: string;
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    status = 408;
    message = 'request timed out before it was complete';
  } else if (err.code === 'HPE_HEADER_OVERFLOW') {
    status = 431;
    message = 'request headers are larger than the server accepts';
  } else {
    // llhttp: code HPE_INVALID_HEADER_TOKEN, reason "Invalid header token".
    message = `malformed HTTP request: ${err.reason ?? err.message}${err.code ? ` (${err.code})` : ''}`;
  }
  const body = JSON.stringify({ error: { code: 'invalid_argument', message: cutEchoes(message) } });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `Content-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/** Error codes of a request stream cut by its client. */
const hangUpCodes = new Set(['ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE', 'ABORT_ERR']);

/**
 * True when the client went away mid-request: its connection is gone and the error says so
 * (Node's "aborted", a premature close), anywhere on the cause chain.
 */
function clientHungUp(err: unknown, req: FastifyRequest): boolean {
  if (!req.raw.destroyed && !req.raw.socket?.destroyed) return false;
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const code = (e as NodeJS.ErrnoException).code;
    if ((code !== undefined && hangUpCodes.has(code)) || e.message === 'aborted') return true;
  }
  return false;
}

/** The message of a schema validation error: the field, and what was wrong with it. */
function validationMessage(err: FastifyError, req: FastifyRequest): string {
  const errors = err.validation ?? [];
  const context = err.validationContext ?? 'request';
  const first = errors[0] as (typeof errors)[number] & { data?: unknown; propertyName?: string } | undefined;
  if (!first) return err.message;
  const field = `${context}${first.instancePath}`;
  // A label key over the limit: `body/labels key "xxx…" must NOT have more than 4096 characters`.
  if (first.propertyName !== undefined) return `${field} key ${quoted(first.propertyName)} ${first.message}`;
  // ajv says "must NOT have additional properties"; say which one (a typo, usually).
  if (first.keyword === 'additionalProperties') {
    const name = (first.params as { additionalProperty?: string }).additionalProperty;
    return `${err.message}: unknown property ${quoted(name)}`;
  }
  // A text body where JSON belongs (`text/plain` is parsed as a string), or none at all.
  if (context === 'body' && first.instancePath === '' && first.keyword === 'type') {
    const type = req.headers['content-type'];
    return `request body must be a JSON ${String((first.params as { type?: string }).type)} sent as Content-Type application/json${type ? `, not ${quoted(type)}` : ' (it had no Content-Type)'}`;
  }
  // Too long, a bad pattern or format: show (the start of) the value refused.
  if (['maxLength', 'minLength', 'pattern', 'format', 'enum'].includes(first.keyword) && first.data !== undefined) {
    return `${field} ${quoted(first.data)} ${first.message}`;
  }
  return err.message;
}

/** Messages for what fastify's body parsers refuse, naming the body and what was wrong with it. */
function parserMessage(err: FastifyError, req: FastifyRequest): string | undefined {
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return `request body is not valid JSON (Content-Type ${quoted(req.headers['content-type'] ?? '')})`;
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return 'request body is empty, but its Content-Type says application/json';
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return `request body has Content-Type ${quoted(req.headers['content-type'] ?? '')}; this route takes application/json`;
    case 'FST_ERR_CTP_BODY_TOO_LARGE': {
      const limit = req.routeOptions.bodyLimit;
      return `request body is larger than this route takes${limit ? ` (${limit} bytes)` : ''}`;
    }
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return 'request body length differs from its Content-Length';
    default:
      return undefined;
  }
}

/** Maps what handlers throw, and URLs no route serves, to the error body. */
export function registerErrorReplies(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | BerthError, req, reply) => {
    // Refused before its body was read through (an upload stopped at a bad entry): the rest is
    // read and dropped, as Node does for a body no handler touched. Left paused, it would hold
    // the connection, the client blocked sending it and any next request unread behind it. The
    // abandoned reader's listeners go first (while a `readable` one is there, resume() does
    // nothing; a `data` one would be fed the rest). Like Node's, the drain has no limit of its own:
    // the server's request timeout ends a client that sends forever.
    if (!req.raw.readableEnded && !req.raw.destroyed) req.raw.removeAllListeners('readable').removeAllListeners('data').resume();
    if (clientHungUp(err, req)) {
      // Nobody is listening for the answer; not a fault of the server's either.
      req.log.info({ reason: err.message }, 'client went away before the answer');
      return send(reply, 400, 'invalid_argument', `client went away: ${err.message}`);
    }
    if (err instanceof BerthError || errorCode(err) !== 'internal') {
      const code = errorCode(err);
      const offset = err instanceof BerthError ? err.details.offset : undefined;
      if (offset !== undefined) reply.header('upload-offset', offset);
      return send(reply, httpStatus(code), code, err.message);
    }
    const fastifyError = err as FastifyError;
    if (fastifyError.validation) return send(reply, 400, 'invalid_argument', validationMessage(fastifyError, req));
    const status = fastifyError.statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      return send(reply, status, status === 404 ? 'not_found' : 'invalid_argument', parserMessage(fastifyError, req) ?? err.message);
    }
    req.log.error({ err }, 'internal error');
    return send(reply, 500, 'internal', err.message);
  });

  app.setNotFoundHandler((req, reply) => send(reply, 404, 'not_found', `no route ${req.method} ${req.url.split('?')[0]}`));
}
