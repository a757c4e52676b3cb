// Bearer tokens from a registry's token service (containerd auth/fetch.go): the OAuth2 POST when
// there is a secret (falling back to GET as containerd does), the anonymous GET otherwise.
import { BerthError } from '../../store/errors.js';
import type { Credentials, TokenResponse } from './auth.js';
import { loadUndici } from './client.js';

/** Tokens without `expires_in` live 60 s (the distribution spec's default). */
const defaultLifetimeS = 60;

export async function fetchToken(
  realm: string,
  service: string | undefined,
  scopes: string[],
  creds: Credentials | undefined,
  userAgent = 'berth/0.1',
): Promise<TokenResponse> {
  const realmHost = new URL(realm).host;
  const { request } = await loadUndici();
  if (creds?.secret) {
    const form = new URLSearchParams();
    if (scopes.length > 0) form.set('scope', scopes.join(' '));
    if (service) form.set('service', service);
    form.set('client_id', 'berth-client');
    if (creds.username) {
      form.set('grant_type', 'password');
      form.set('username', creds.username);
      form.set('password', creds.secret);
    } else {
      form.set('grant_type', 'refresh_token');
      form.set('refresh_token', creds.secret);
    }
    const res = await request(realm, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8', 'user-agent': userAgent },
      body: form.toString(),
    });
    const fallBack = [404, 401, 400].includes(res.statusCode) || (res.statusCode === 405 && creds.username);
    if (!fallBack) {
      if (res.statusCode >= 200 && res.statusCode < 400) return parse(realmHost, await res.body.json());
      throw new BerthError('unauthenticated', `token service ${realmHost}: POST ${realm}: ${res.statusCode} ${await res.body.text()}`);
    }
    await res.body.dump();
  }
  const url = new URL(realm);
  if (service) url.searchParams.set('service', service);
  for (const s of scopes) url.searchParams.append('scope', s);
  const headers: Record<string, string> = { 'user-agent': userAgent };
  if (creds?.secret) headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.secret}`).toString('base64')}`;
  const res = await request(url, { headers });
  if (res.statusCode < 200 || res.statusCode >= 400) {
    const text = await res.body.text();
    throw new BerthError(
      res.statusCode === 401 || res.statusCode === 403 ? 'unauthenticated' : 'unavailable',
      `token service ${realmHost}: GET ${url.origin}${url.pathname}: ${res.statusCode} ${text.slice(0, 200)}`,
    );
  }
  return parse(realmHost, await res.body.json());
}

function parse(host: string, body: unknown): TokenResponse {
  const b = body as { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
  const token = b.access_token || b.token;
  if (!token) throw new BerthError('unauthenticated', `token service ${host}: authorization server did not include a token in the response`);
  const issued = b.issued_at ? Date.parse(b.issued_at) : Date.now();
  const lifetime = (b.expires_in && b.expires_in > 0 ? b.expires_in : defaultLifetimeS) * 1000;
  // Renewed a little early, so a token never expires in flight.
  return { token, expiresAt: (Number.isNaN(issued) ? Date.now() : issued) + lifetime * 0.9 };
}
