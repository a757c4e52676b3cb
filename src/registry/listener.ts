// The registry listener: the pull side of the OCI distribution API on its own address, and
// nothing else — no path of the management API is ever served here. A plain node:http server:
// every request is checked (method, token, path, name, tag, digest, range) before anything is
// looked up, and answered with the spec's headers and error codes.
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { RegistryError, toRegistryError, type RegistryObject } from './errors.js';
import { parseRoute, upstreamOf, type RegistryRoute } from './names.js';
import { parseRange } from './range.js';
import type { RegistryService } from './service.js';
import type { ServedFrom } from './stats.js';
import { peerHeader } from '../remotes/peer.js';

export interface ListenerOptions {
  host: string;
  port: number;
  /** The registry for requests without `ns`; unset: such requests are served by digest only. */
  defaultUpstream?: string;
  /** When set, every request must carry `Authorization: Bearer <token>`. */
  token?: string;
}

export interface ListenerLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface RegistryListener {
  /** `host:port` it is bound to. */
  address: string;
  close(): Promise<void>;
}

const apiVersion = { 'docker-distribution-api-version': 'registry/2.0' };

export async function startRegistryListener(service: RegistryService, opts: ListenerOptions, log: ListenerLogger): Promise<RegistryListener> {
  const expected = opts.token === undefined ? undefined : Buffer.from(opts.token);
  const server: Server = createServer((req, res) => {
    void handle(service, opts, expected, req, res, log);
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return {
    address: `${host}:${bound.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(
  service: RegistryService,
  opts: ListenerOptions,
  expectedAuth: Buffer | undefined,
  req: IncomingMessage,
  res: ServerResponse,
  log: ListenerLogger,
): Promise<void> {
  service.counters.requests++;
  const aborted = new AbortController();
  res.once('close', () => aborted.abort(new Error('the client went away')));
  let object: RegistryObject = 'name';
  try {
    if (expectedAuth && !authorised(req.headers.authorization, expectedAuth)) {
      throw new RegistryError(401, 'UNAUTHORIZED', 'authentication required', undefined, {
        'www-authenticate': 'Bearer realm="berth-registry",service="berth-registry"',
      });
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      throw new RegistryError(405, 'UNSUPPORTED', `${req.method} is not supported: this registry serves pulls only`, undefined, { allow: 'GET, HEAD' });
    }
    const target = req.url ?? '/';
    const query = target.indexOf('?');
    // The path as sent: a URL parser would resolve `.` and `..` segments into another name
    // before the name is checked; the name pattern refuses them instead.
    const route: RegistryRoute = parseRoute(query < 0 ? target : target.slice(0, query));
    const head = req.method === 'HEAD';
    // Another node of the fleet: served from this node's store and own fetches only.
    const peer = typeof req.headers[peerHeader] === 'string';
    if (peer) service.counters.peerRequests++;
    const ns = new URLSearchParams(query < 0 ? '' : target.slice(query + 1)).get('ns');
    const upstream = route.kind === 'ping' ? undefined : upstreamOf(ns, opts.defaultUpstream);
    const nsHeader: Record<string, string> = upstream ? { 'oci-namespace': upstream } : {};
    switch (route.kind) {
      case 'ping':
        return sendJson(res, 200, {}, head);
      case 'tags': {
        const tags = await service.tags(upstream, route.name);
        return sendJson(res, 200, { name: route.name, tags }, head, nsHeader);
      }
      case 'manifest': {
        object = 'manifest';
        const m = await service.manifest(upstream, route.name, route.reference, aborted.signal, peer);
        served(service, m.from, log, req, m.descriptor.digest);
        res.writeHead(200, {
          ...apiVersion,
          ...nsHeader,
          'content-type': m.descriptor.mediaType,
          'content-length': String(m.body.length),
          'docker-content-digest': m.descriptor.digest,
          etag: `"${m.descriptor.digest}"`,
          'berth-cache': m.from,
          ...(m.warning ? { warning: m.warning } : {}),
        });
        if (!head) service.counters.bytesServed += m.body.length;
        if (!head && peer) service.counters.bytesServedToPeers += m.body.length;
        res.end(head ? undefined : m.body);
        return;
      }
      case 'blob': {
        object = 'blob';
        const blob = await service.blob(upstream, route.name, route.digest, aborted.signal, peer);
        const range = parseRange(req.headers.range, blob.size);
        const length = range ? range.end - range.start : blob.size;
        const headers: Record<string, string> = {
          ...apiVersion,
          ...nsHeader,
          'content-type': 'application/octet-stream',
          'content-length': String(length),
          'docker-content-digest': blob.digest,
          'accept-ranges': 'bytes',
          etag: `"${blob.digest}"`,
          ...(range ? { 'content-range': `bytes ${range.start}-${range.end - 1}/${blob.size}` } : {}),
        };
        if (head) {
          // A HEAD fetches nothing: it says `hit` only for what the store holds.
          res.writeHead(range ? 206 : 200, { ...headers, ...(blob.from ? { 'berth-cache': blob.from } : {}) });
          res.end();
          return;
        }
        const { from, stream } = await blob.open(range, aborted.signal);
        served(service, from, log, req, blob.digest);
        res.writeHead(range ? 206 : 200, { ...headers, 'berth-cache': from });
        stream.on('data', (chunk: Buffer) => {
          service.counters.bytesServed += chunk.length;
          if (peer) service.counters.bytesServedToPeers += chunk.length;
        });
        try {
          await pipeline(stream, res);
        } catch (err) {
          // Headers are gone: the only way left to say "this body is not complete" is to cut it.
          if (!aborted.signal.aborted) log.warn({ digest: blob.digest, err: (err as Error).message }, 'registry: blob stream failed; connection reset');
          res.destroy();
        }
        return;
      }
    }
  } catch (err) {
    if (aborted.signal.aborted) {
      // The client hung up (a peer that switched to another source, a cancelled pull): nothing failed here.
      log.info({ url: req.url, peer: req.headers[peerHeader] }, 'registry: the client went away');
      res.destroy();
      return;
    }
    const e = toRegistryError(err, object);
    if (e.status >= 500) log.warn({ url: req.url, err: (err as Error).message }, 'registry: request failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = e.body();
    res.writeHead(e.status, {
      ...apiVersion,
      ...e.headers,
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }
}

function served(service: RegistryService, from: ServedFrom, log: ListenerLogger, req: IncomingMessage, digest: string): void {
  service.counters.count(from);
  log.info({ method: req.method, url: req.url, digest, served: from }, 'registry: served');
}

/** `Authorization: Bearer <token>` (the scheme in any case, RFC 9110 §11.1), compared in constant time. */
function authorised(header: string | undefined, token: Buffer): boolean {
  const m = /^bearer +(.+)$/i.exec(header ?? '');
  if (!m) return false;
  const got = Buffer.from(m[1].trim());
  return got.length === token.length && timingSafeEqual(got, token);
}

function sendJson(res: ServerResponse, status: number, value: unknown, head: boolean, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { ...apiVersion, ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
  res.end(head ? undefined : body);
}
