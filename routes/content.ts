// Committed content: list, read (with Range), info, labels, one-shot put, delete.
import type { FastifyPluginAsync } from 'fastify';
import { BerthError, invalidArgument } from '../store/errors.js';
import { routeSchema } from '../src/openapi.js';
import { opContext } from './context.js';
import type { ContentService } from '../src/services/content.js';
import { bodyStream, streamBodies } from './raw-body.js';
import type { Route } from './route-types.js';
import { infoView } from './views.js';

export const contentRoutes: FastifyPluginAsync<{ content: ContentService }> = async (app, { content }) => {
  app.get<Route<'/v1/content', 'get'>>(
    '/v1/content',
    { schema: routeSchema('get', '/v1/content') },
    async (req) => ({ items: (await content.list(opContext(req), req.query.filter ?? [])).map(infoView) }),
  );

  app.post<Route<'/v1/content/verify', 'post'>>(
    '/v1/content/verify',
    { schema: routeSchema('post', '/v1/content/verify') },
    async (req) => content.verify(req.query.repair ?? false),
  );

  app.get<Route<'/v1/content/{digest}/info', 'get'>>(
    '/v1/content/:digest/info',
    { schema: routeSchema('get', '/v1/content/{digest}/info') },
    async (req) => infoView(await content.info(opContext(req), req.params.digest)),
  );

  app.head<Route<'/v1/content/{digest}', 'head'>>(
    '/v1/content/:digest',
    { schema: routeSchema('head', '/v1/content/{digest}') },
    async (req, reply) => {
      const info = await content.info(opContext(req), req.params.digest);
      return reply
        .header('content-length', info.size)
        .header('content-type', 'application/octet-stream')
        .header('accept-ranges', 'bytes')
        .header('etag', etag(info.digest))
        .header('docker-content-digest', info.digest)
        .send();
    },
  );

  app.get<Route<'/v1/content/{digest}', 'get'>>(
    '/v1/content/:digest',
    { schema: routeSchema('get', '/v1/content/{digest}') },
    async (req, reply) => {
      const { digest } = req.params;
      if (matchesEtag(req.headers['if-none-match'], digest)) {
        await content.info(opContext(req), digest); // a 304 only for content that exists
        return reply.code(304).header('etag', etag(digest)).send();
      }
      const reader = await content.open(opContext(req), digest);
      reply.header('etag', etag(digest)).header('docker-content-digest', digest).header('accept-ranges', 'bytes');
      const range = parseRange(req.headers.range, reader.size);
      if (range === 'unsatisfiable') {
        await reader.close();
        reply.header('content-range', `bytes */${reader.size}`);
        throw new BerthError(
          'range_not_satisfiable',
          `range ${req.headers.range} is outside content ${digest} (${reader.size} bytes)`,
        );
      }
      reply.type('application/octet-stream');
      if (!range) {
        return reply.header('content-length', reader.size).send(reader.stream());
      }
      const [start, end] = range;
      return reply
        .code(206)
        .header('content-range', `bytes ${start}-${end - 1}/${reader.size}`)
        .header('content-length', end - start)
        .send(reader.stream(start, end));
    },
  );

  await app.register(async (uploads) => {
    streamBodies(uploads);
    uploads.put<Route<'/v1/content/{digest}', 'put'>>(
      '/v1/content/:digest',
      { schema: routeSchema('put', '/v1/content/{digest}') },
      async (req, reply) => {
        const labels = parseLabelsHeader(req.headers['berth-labels']);
        const length = req.headers['content-length'];
        const info = await content.put(opContext(req), req.params.digest, bodyStream(req), {
          size: length !== undefined ? Number(length) : undefined,
          labels,
        });
        return reply.code(201).send(infoView(info));
      },
    );
  });

  app.patch<Route<'/v1/content/{digest}', 'patch'>>(
    '/v1/content/:digest',
    { schema: routeSchema('patch', '/v1/content/{digest}') },
    async (req) => infoView(await content.update(opContext(req), req.params.digest, req.body.labels, req.body.fieldpaths ?? [])),
  );

  app.delete<Route<'/v1/content/{digest}', 'delete'>>(
    '/v1/content/:digest',
    { schema: routeSchema('delete', '/v1/content/{digest}') },
    async (req, reply) => {
      await content.delete(opContext(req), req.params.digest);
      return reply.code(204).send();
    },
  );
};

const etag = (digest: string): string => `"${digest}"`;

function matchesEtag(header: string | undefined, digest: string): boolean {
  if (!header) return false;
  return header.split(',').some((tag) => {
    const t = tag.trim().replace(/^W\//, '');
    return t === '*' || t === etag(digest);
  });
}

/**
 * One `bytes=` range as [start, end) within `size`; undefined to serve the whole blob (no
 * header, several ranges or a header we do not understand: RFC 9110 lets a server ignore it).
 */
export function parseRange(header: string | undefined, size: number): [number, number] | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    return [Math.max(0, size - suffix), size];
  }
  const start = Number(m[1]);
  if (start >= size) return 'unsatisfiable';
  const last = m[2] === '' ? size - 1 : Number(m[2]);
  if (last < start) return undefined;
  return [start, Math.min(last, size - 1) + 1];
}

function parseLabelsHeader(header: string | undefined): Record<string, string> | undefined {
  if (!header) return undefined;
  let labels: unknown;
  try {
    labels = JSON.parse(header);
  } catch {
    throw invalidArgument(`Berth-Labels header is not JSON: ${header}`);
  }
  if (!labels || typeof labels !== 'object' || Array.isArray(labels)) {
    throw invalidArgument('Berth-Labels header must be a JSON object of strings');
  }
  for (const [k, v] of Object.entries(labels)) {
    if (typeof v !== 'string') throw invalidArgument(`Berth-Labels: label ${JSON.stringify(k)} must be a string`);
  }
  return labels as Record<string, string>;
}
