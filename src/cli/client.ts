// The CLI's HTTP client for a berth server, over TCP or a unix socket (undici).
import { Agent, request, type Dispatcher } from 'undici';
import type { Readable } from 'node:stream';
import { defaultAddress, parseAddress } from '../config.js';

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

export interface RequestOptions {
  query?: Record<string, string | string[] | undefined>;
  headers?: Record<string, string>;
  json?: unknown;
  body?: Readable | Buffer;
  /** Most time allowed between two pieces of the response body (ms; undici's default 300 s). */
  bodyTimeout?: number;
  signal?: AbortSignal;
}

export interface ClientOptions {
  /** Sent as `Berth-Namespace` on every request; the server's default (`default`) when unset. */
  namespace?: string;
  /** Sent as `Berth-Lease` on every request: what the requests write belongs to that lease. */
  lease?: string;
}

export class BerthClient {
  private readonly origin: string;
  private readonly dispatcher: Dispatcher;
  readonly namespace: string | undefined;
  readonly lease: string | undefined;

  constructor(readonly address: string = process.env.BERTH_ADDRESS || defaultAddress, opts: ClientOptions = {}) {
    this.namespace = opts.namespace || undefined;
    this.lease = opts.lease || undefined;
    const parsed = parseAddress(address);
    if (parsed.kind === 'unix') {
      this.origin = 'http://localhost';
      this.dispatcher = new Agent({ connect: { socketPath: parsed.path } });
    } else {
      this.origin = `http://${parsed.host.includes(':') ? `[${parsed.host}]` : parsed.host}:${parsed.port}`;
      this.dispatcher = new Agent();
    }
  }

  /** Sends a request; a non-2xx answer becomes an ApiError carrying the server's message. */
  async send(method: Dispatcher.HttpMethod, path: string, opts: RequestOptions = {}): Promise<Dispatcher.ResponseData> {
    const url = new URL(path, this.origin);
    for (const [k, v] of Object.entries(opts.query ?? {})) {
      for (const item of Array.isArray(v) ? v : v === undefined ? [] : [v]) url.searchParams.append(k, item);
    }
    const headers: Record<string, string> = {
      ...(this.namespace ? { 'berth-namespace': this.namespace } : {}),
      ...(this.lease ? { 'berth-lease': this.lease } : {}),
      ...opts.headers,
    };
    let body: Readable | Buffer | string | undefined = opts.body;
    if (opts.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.json);
    }
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        method,
        headers,
        body,
        dispatcher: this.dispatcher,
        ...(opts.bodyTimeout !== undefined ? { bodyTimeout: opts.bodyTimeout } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
    } catch (err) {
      throw new ApiError(0, 'unavailable', `cannot reach berth at ${this.address}: ${(err as Error).message}`);
    }
    if (res.statusCode >= 400) {
      const text = await res.body.text();
      let code = 'internal';
      let message = text || `HTTP ${res.statusCode}`;
      try {
        const parsed = JSON.parse(text) as { error?: { code: string; message: string } };
        if (parsed.error) ({ code, message } = parsed.error);
      } catch {
        // not JSON: keep the text
      }
      throw new ApiError(res.statusCode, code, message);
    }
    return res;
  }

  async json<T>(method: Dispatcher.HttpMethod, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.send(method, path, opts);
    if (res.statusCode === 204) {
      await res.body.dump();
      return undefined as T;
    }
    return (await res.body.json()) as T;
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}

/** A path segment for a ref or digest: everything, `/` included, encoded. */
export const seg = (s: string): string => encodeURIComponent(s);
