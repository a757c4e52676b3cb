// Requests to a registry (containerd's request.doWithRetries, done better where its users asked):
// connection reuse through undici pools, authorisation on challenge, redirects followed without
// the registry's credentials when they lead to another host (blob storage), and retries with
// backoff on resets, 5xx and 429 — honouring `Retry-After`. A push's requests carry bodies, made
// anew for each attempt; an upload's chunk is sent `once` (its caller resumes it).
import type { Readable } from 'node:stream';
import type { Agent, Dispatcher } from 'undici';
import { BerthError } from '../../store/errors.js';
import type { Authorizer } from './auth.js';
import type { RegistryHost } from './hosts.js';

export interface RegistryRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH';
  host: RegistryHost;
  /** `/v2/<repository>/manifests/<ref>` relative to the host's API root: `repository/manifests/ref`. */
  path: string;
  headers?: Record<string, string>;
  /** Token scopes the request needs, e.g. `repository:library/alpine:pull`. */
  scopes: string[];
  /** The reference's own domain: a mirror is told it with `?ns=` (containerd). */
  ns?: string;
  signal?: AbortSignal;
  /** The request body, made again for each attempt (a stream is read once): a push's upload. */
  body?: () => Readable | Buffer | string | Promise<Readable>;
  /**
   * No retry after a transport error, 5xx or 429: for an upload, whose bytes may have partly
   * arrived — its caller asks the registry where it got to and resumes from there.
   */
  once?: boolean;
  /** An absolute URL the registry gave (an upload's `Location`) instead of `path`. */
  url?: URL;
}

export interface RegistryResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
  /** The URL that answered (after redirects). */
  url: string;
}

export interface ClientOptions {
  userAgent?: string;
  /** Attempts per request, all causes together (containerd: 5). */
  maxAttempts?: number;
  /** First backoff; doubles per attempt (with jitter). */
  backoffMs?: number;
  /** Longest `Retry-After` honoured; longer answers fail at once. */
  maxRetryAfterMs?: number;
  connections?: number;
}

/**
 * undici, loaded on the first registry request: it costs about 20 MB of resident memory (its
 * HTTP parser), which a server that never pulls should not carry.
 */
let undiciModule: Promise<typeof import('undici')> | undefined;
export const loadUndici = (): Promise<typeof import('undici')> => (undiciModule ??= import('undici'));

const retryStatus = new Set([408, 429, 500, 502, 503, 504]);
const transient = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED']);

export class RegistryClient {
  private readonly agents = new Map<string, Agent>();
  private readonly opts: Required<ClientOptions>;

  constructor(
    private readonly authorizer: Authorizer,
    opts: ClientOptions = {},
  ) {
    this.opts = {
      userAgent: opts.userAgent ?? 'berth/0.1',
      maxAttempts: opts.maxAttempts ?? 5,
      backoffMs: opts.backoffMs ?? 100,
      maxRetryAfterMs: opts.maxRetryAfterMs ?? 60_000,
      connections: opts.connections ?? 16,
    };
  }

  url(req: Pick<RegistryRequest, 'host' | 'path' | 'ns'>): URL {
    const { host } = req;
    const url = new URL(`${host.scheme}://${host.host}${host.path}/${req.path}`);
    if (req.ns && req.ns !== host.host && !(req.ns === 'docker.io' && host.host === 'registry-1.docker.io')) {
      url.searchParams.set('ns', req.ns);
    }
    return url;
  }

  /** Sends `req`, retrying as described above; the caller reads or dumps the body. */
  async send(req: RegistryRequest): Promise<RegistryResponse> {
    const start = req.url ?? this.url(req);
    let lastError: unknown;
    let challengedFor = '';
    let lastStatus = 0;
    for (let attempt = 1; attempt <= this.opts.maxAttempts; attempt++) {
      req.signal?.throwIfAborted();
      let res: RegistryResponse;
      try {
        res = await this.follow(req, start);
      } catch (err) {
        if (err instanceof BerthError || !isTransient(err) || req.once || attempt === this.opts.maxAttempts) throw wrapTransport(start, err);
        lastError = err;
        await sleep(this.backoff(attempt), req.signal);
        continue;
      }
      if (res.status === 401 && new URL(res.url).host === req.host.host) {
        await res.body.dump();
        const key = `${req.method} ${res.url}`;
        if (!(await this.authorizer.challenged(req.host.host, res.headers['www-authenticate'], challengedFor === key))) {
          throw new BerthError('unauthenticated', `registry ${req.host.host}: ${req.method} ${res.url}: 401 without a usable challenge`);
        }
        challengedFor = key;
        continue;
      }
      if (retryStatus.has(res.status) && !req.once && attempt < this.opts.maxAttempts && !(res.status >= 500 && res.status === lastStatus && attempt > 2)) {
        lastStatus = res.status;
        const wait = retryAfter(res.headers['retry-after']) ?? this.backoff(attempt);
        if (wait > this.opts.maxRetryAfterMs) return res;
        await res.body.dump();
        await sleep(wait, req.signal);
        continue;
      }
      return res;
    }
    throw wrapTransport(start, lastError ?? new Error(`gave up after ${this.opts.maxAttempts} attempts`));
  }

  /** One attempt, following redirects; credentials only for the registry host itself. */
  private async follow(req: RegistryRequest, url: URL): Promise<RegistryResponse> {
    for (let hops = 0; hops <= 10; hops++) {
      const headers: Record<string, string> = { 'user-agent': this.opts.userAgent };
      for (const [k, v] of Object.entries(req.host.headers)) headers[k] = v.join(', ');
      Object.assign(headers, req.headers);
      const sameHost = url.host === req.host.host;
      if (sameHost) {
        const authorization = await this.authorizer.authorize(req.host.host, req.scopes);
        if (authorization) headers.authorization = authorization;
      }
      const { request } = await loadUndici();
      const res = await request(url, {
        method: req.method,
        headers,
        ...(req.body ? { body: await req.body() } : {}),
        dispatcher: await this.agentFor(sameHost ? req.host : undefined),
        signal: req.signal,
      });
      const location = res.headers.location;
      if (res.statusCode >= 300 && res.statusCode < 400 && typeof location === 'string') {
        await res.body.dump();
        url = new URL(location, url);
        continue;
      }
      return { status: res.statusCode, headers: res.headers, body: res.body, url: url.toString() };
    }
    throw new BerthError('unavailable', `${req.method} ${this.url(req)}: stopped after 10 redirects`);
  }

  private async agentFor(host: RegistryHost | undefined): Promise<Agent> {
    const key = host ? `${host.skipVerify}|${host.ca.join('')}` : 'default';
    let agent = this.agents.get(key);
    if (!agent) {
      const { Agent } = await loadUndici();
      agent = new Agent({
        connections: this.opts.connections,
        connect: host ? { rejectUnauthorized: !host.skipVerify, ...(host.ca.length ? { ca: host.ca } : {}) } : undefined,
      });
      this.agents.set(key, agent);
    }
    return agent;
  }

  private backoff(attempt: number): number {
    const base = this.opts.backoffMs * 2 ** (attempt - 1);
    return base / 2 + Math.random() * base;
  }

  async close(): Promise<void> {
    await Promise.all([...this.agents.values()].map((a) => a.close()));
  }
}

/** `Retry-After` as seconds or an HTTP date, in ms; undefined when absent or unreadable. */
export function retryAfter(header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function isTransient(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code !== undefined && transient.has(code);
}

function wrapTransport(url: URL, err: unknown): unknown {
  if (err instanceof BerthError) return err;
  if ((err as Error).name === 'AbortError') return err;
  return new BerthError('unavailable', `registry ${url.host}: ${url.pathname}: ${(err as Error).message}`, { cause: err });
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}
