// berth's API client: HTTP/1.1 to a berth server over TCP or a unix socket, in a namespace and
// optionally a lease. The CLI and the proxy snapshotter speak to servers through it.
import { Agent, request, type IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { defaultAddress, parseAddress } from '../config.js';
import type { ErrorBody } from './types.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The ApiError of an error answer: the server's `{error: {code, message}}`, or its text. */
export function apiErrorOf(status: number, text: string): ApiError {
  let code = 'internal';
  let message = text || `HTTP ${status}`;
  try {
    const parsed = JSON.parse(text) as Partial<ErrorBody>;
    if (parsed.error) ({ code, message } = parsed.error);
  } catch {
    // not JSON: keep the text
  }
  return new ApiError(status, code, message);
}

export interface RequestOptions {
  query?: Record<string, string | string[] | undefined>;
  headers?: Record<string, string>;
  /**
   * A JSON body. As JSON.stringify, it leaves out properties whose value is undefined: an optional
   * field is written `field: value || undefined`, so that `satisfies` checks its name too.
   */
  json?: unknown;
  body?: Readable | Buffer;
  /** Most time allowed between two pieces of the response body (ms; default 300 s; 0: none). */
  bodyTimeout?: number;
  signal?: AbortSignal;
}

export interface ClientOptions {
  /** Sent as `Berth-Namespace` on every request; the server's default (`default`) when unset. */
  namespace?: string;
  /** Sent as `Berth-Lease` on every request: what the requests write belongs to that lease. */
  lease?: string;
  /** The server's API token (its `auth_token_file`), sent as `Authorization: Bearer <token>`. */
  token?: string;
}

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** A response body: the stream itself, plus whole-body readers. */
export type ResponseBody = IncomingMessage & {
  text(): Promise<string>;
  json(): Promise<unknown>;
  /** Reads and discards the rest (so the connection can be reused). */
  dump(): Promise<void>;
};

export interface ResponseData {
  statusCode: number;
  headers: IncomingMessage['headers'];
  body: ResponseBody;
}

/** What undici waits at most between two pieces of a body by default: the same here. */
const defaultBodyTimeout = 300_000;

async function readAll(body: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function withReaders(res: IncomingMessage): ResponseBody {
  return Object.assign(res, {
    text: async () => (await readAll(res)).toString('utf8'),
    json: async () => JSON.parse((await readAll(res)).toString('utf8')) as unknown,
    dump: async () => {
      for await (const _ of res);
    },
  });
}

/**
 * The client speaks HTTP/1.1 with node's own `http` module: a CLI command starts a new process
 * each time, and loading undici costs about 180 ms of start-up here (node:http is already in).
 */
export class BerthClient {
  private readonly target: { host: string; port: number } | { socketPath: string };
  private readonly agent = new Agent({ keepAlive: true });
  readonly namespace: string | undefined;
  readonly lease: string | undefined;
  readonly token: string | undefined;

  constructor(readonly address: string = process.env.BERTH_ADDRESS || defaultAddress, opts: ClientOptions = {}) {
    this.namespace = opts.namespace || undefined;
    this.lease = opts.lease || undefined;
    this.token = opts.token || undefined;
    const parsed = parseAddress(address);
    this.target = parsed.kind === 'unix' ? { socketPath: parsed.path } : { host: parsed.host, port: parsed.port };
  }

  /** Sends a request; a non-2xx answer becomes an ApiError carrying the server's message. */
  async send(method: HttpMethod, path: string, opts: RequestOptions = {}): Promise<ResponseData> {
    const url = new URL(path, 'http://localhost');
    for (const [k, v] of Object.entries(opts.query ?? {})) {
      for (const item of Array.isArray(v) ? v : v === undefined ? [] : [v]) url.searchParams.append(k, item);
    }
    const headers: Record<string, string> = {
      ...(this.namespace ? { 'berth-namespace': this.namespace } : {}),
      ...(this.lease ? { 'berth-lease': this.lease } : {}),
      ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
      ...opts.headers,
    };
    let body: Readable | Buffer | string | undefined = opts.body;
    if (opts.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.json);
    }
    if (typeof body === 'string' || Buffer.isBuffer(body)) headers['content-length'] = String(Buffer.byteLength(body));
    let res: IncomingMessage;
    try {
      res = await new Promise<IncomingMessage>((resolve, reject) => {
        const req = request({
          ...this.target,
          agent: this.agent,
          method,
          path: `${url.pathname}${url.search}`,
          headers,
          ...(opts.signal ? { signal: opts.signal } : {}),
        });
        req.once('response', resolve);
        req.once('error', reject);
        if (body === undefined) req.end();
        else if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
        else body.once('error', (err) => req.destroy(err)).pipe(req);
      });
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      throw new ApiError(0, 'unavailable', `cannot reach berth at ${this.address}: ${(err as Error).message}`);
    }
    const bodyTimeout = opts.bodyTimeout ?? defaultBodyTimeout;
    if (bodyTimeout > 0) {
      res.setTimeout(bodyTimeout, () => res.destroy(new Error(`no data from berth at ${this.address} for ${bodyTimeout / 1000} s`)));
    }
    if (res.statusCode! >= 400) throw apiErrorOf(res.statusCode!, (await readAll(res)).toString('utf8'));
    return { statusCode: res.statusCode!, headers: res.headers, body: withReaders(res) };
  }

  async json<T>(method: HttpMethod, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.send(method, path, opts);
    if (res.statusCode === 204) {
      await res.body.dump();
      return undefined as T;
    }
    return (await res.body.json()) as T;
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }
}

/** A path segment for a ref or digest: everything, `/` included, encoded. */
export const seg = (s: string): string => encodeURIComponent(s);
