// Registry authentication (containerd core/remotes/docker/authorizer.go, auth/): challenges from
// `WWW-Authenticate`, basic credentials, and bearer tokens fetched from the challenge's realm and
// cached per host and scope. Credentials go only to the host they are for: a token realm on
// another host gets them only as the token flow needs, and a redirected request gets nothing.
import { BerthError, errorCode } from '../../store/errors.js';

export interface Credentials {
  username: string;
  secret: string;
}

/** Looks up the credentials for a registry host (`host[:port]`); undefined for anonymous. */
export type CredentialsFn = (host: string) => Promise<Credentials | undefined>;

export interface Challenge {
  scheme: 'bearer' | 'basic';
  params: Record<string, string>;
}

/** Parses `WWW-Authenticate` values; bearer before basic, unknown schemes dropped. */
export function parseChallenges(headers: string | string[] | undefined): Challenge[] {
  const out: Challenge[] = [];
  for (const header of [headers ?? []].flat()) {
    const re = /\s*([A-Za-z]+)\s+((?:[a-zA-Z_]+=(?:"(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?\s*)*)/g;
    for (let m = re.exec(header); m; m = re.exec(header)) {
      const scheme = m[1].toLowerCase();
      if (scheme !== 'bearer' && scheme !== 'basic') continue;
      const params: Record<string, string> = {};
      const pr = /([a-zA-Z_]+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
      for (let p = pr.exec(m[2]); p; p = pr.exec(m[2])) {
        params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3];
      }
      out.push({ scheme, params });
    }
  }
  return out.sort((a, b) => (a.scheme === b.scheme ? 0 : a.scheme === 'bearer' ? -1 : 1));
}

export interface TokenResponse {
  token: string;
  expiresAt: number;
}

/** Fetches a bearer token: `(realm, service, scopes, credentials)` → token. */
export type TokenFetcher = (
  realm: string,
  service: string | undefined,
  scopes: string[],
  creds: Credentials | undefined,
) => Promise<TokenResponse>;

interface HostAuth {
  challenge: Challenge;
  /** Tokens by space-joined sorted scopes; a promise so that concurrent requests share one fetch. */
  tokens: Map<string, Promise<TokenResponse>>;
}

const authFailed = (host: string, message: string, cause?: unknown): BerthError =>
  new BerthError('unauthenticated', `registry ${host}: ${message}: authorization failed`, { cause });

export class Authorizer {
  private readonly hosts = new Map<string, HostAuth>();

  constructor(
    private readonly credentials: CredentialsFn,
    private readonly fetchToken: TokenFetcher,
  ) {}

  /** The Authorization header for a request to `host` needing `scopes`, if this host asked for one. */
  async authorize(host: string, scopes: string[]): Promise<string | undefined> {
    const auth = this.hosts.get(host);
    if (!auth) return undefined;
    if (auth.challenge.scheme === 'basic') {
      const creds = await this.credentials(host);
      if (!creds?.username || !creds.secret) throw authFailed(host, 'no basic auth credentials');
      return `Basic ${Buffer.from(`${creds.username}:${creds.secret}`).toString('base64')}`;
    }
    const { realm, service } = auth.challenge.params;
    const all = [...new Set([...scopes, ...(auth.challenge.params.scope?.split(' ').filter(Boolean) ?? [])])].sort();
    const key = all.join(' ');
    let pending = auth.tokens.get(key);
    const now = Date.now();
    if (pending) {
      const done = await pending.catch(() => undefined);
      if (!done || done.expiresAt <= now) pending = undefined;
    }
    if (!pending) {
      pending = (async () => {
        try {
          return await this.fetchToken(realm, service, all, await this.credentials(host));
        } catch (err) {
          // Named after the registry the user asked for, not only the token service it uses.
          throw new BerthError(errorCode(err) === 'internal' ? 'unavailable' : errorCode(err), `registry ${host}: ${(err as Error).message}`, { cause: err });
        }
      })();
      auth.tokens.set(key, pending);
    }
    return `Bearer ${(await pending).token}`;
  }

  /**
   * Learns from a 401: true when a retry with (new) credentials may succeed. `repeated` is true
   * when the same request already failed after authorising — then the error is final.
   */
  async challenged(host: string, wwwAuthenticate: string | string[] | undefined, repeated: boolean): Promise<boolean> {
    const [challenge] = parseChallenges(wwwAuthenticate);
    if (!challenge) return false;
    if (challenge.scheme === 'bearer') {
      if (!challenge.params.realm) throw authFailed(host, 'no realm specified for token auth challenge');
      try {
        new URL(challenge.params.realm);
      } catch (err) {
        throw authFailed(host, `invalid token realm ${JSON.stringify(challenge.params.realm)}`, err);
      }
      if (repeated) {
        const error = challenge.params.error ? `server message: ${challenge.params.error}` : 'credentials rejected';
        throw authFailed(host, error);
      }
    } else if (repeated) {
      throw authFailed(host, 'credentials rejected');
    }
    const existing = this.hosts.get(host);
    // A new scope on the same challenge keeps cached tokens for other scopes.
    if (!existing || existing.challenge.scheme !== challenge.scheme || challenge.params.error) {
      this.hosts.set(host, { challenge, tokens: new Map() });
    } else {
      existing.challenge = challenge;
    }
    return true;
  }
}
