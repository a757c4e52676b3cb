// Where a push goes and how its requests are sent: the first host of the reference's registry
// with the `push` capability (hosts.toml, containerd's pusher), the repository, and the token
// scopes a push needs (`pull,push` on the target, `pull` on a repository it mounts from). A
// registry that refuses (401, 403, `DENIED`) fails naming the registry and the scope.
import { BerthError, errorCode, failedPrecondition, type ErrorCode } from '../../store/errors.js';
import type { RegistryClient, RegistryRequest, RegistryResponse } from './client.js';
import { registryHosts, type RegistryHost } from './hosts.js';
import { repository, type ImageReference } from './reference.js';

export interface PushTarget {
  host: RegistryHost;
  /** The repository pushed to, e.g. `library/alpine`. */
  repository: string;
  /** The reference's own registry (a mirror host is told it with `?ns=`). */
  ns: string;
}

/** The push scope of a repository, as token requests name it. */
export const pushScope = (repo: string): string => `repository:${repo}:pull,push`;

/** Where `ref` is pushed: the first of its hosts (hosts.toml order) that has the `push` capability. */
export async function pushTarget(ref: ImageReference, hostsDir?: string): Promise<PushTarget> {
  const hosts = await registryHosts(ref.domain, hostsDir);
  const host = hosts.find((h) => h.capabilities.has('push'));
  if (!host) throw failedPrecondition(`push ${ref}: no host of ${ref.domain} has the push capability (hosts.toml capabilities)`);
  return { host, repository: repository(ref), ns: ref.domain };
}

/** Sends a push request to `target`: with the push scope (plus `scopes`), refusals named. */
export async function sendPush(
  client: RegistryClient,
  target: PushTarget,
  req: Omit<RegistryRequest, 'host' | 'scopes' | 'ns'> & { scopes?: string[] },
): Promise<RegistryResponse> {
  const scopes = [pushScope(target.repository), ...(req.scopes ?? [])];
  let res: RegistryResponse;
  try {
    res = await client.send({ ...req, host: target.host, ns: target.ns, scopes });
  } catch (err) {
    const code = errorCode(err);
    if (code === 'unauthenticated' || code === 'denied') throw refused(target, scopes, code, (err as Error).message, err);
    throw err;
  }
  if (res.status === 401 || res.status === 403) {
    throw refused(target, scopes, res.status === 401 ? 'unauthenticated' : 'denied', await registryErrors(res, req.method));
  }
  return res;
}

function refused(target: PushTarget, scopes: string[], code: ErrorCode, detail: string, cause?: unknown): BerthError {
  return new BerthError(code, `registry ${target.host.host} refused the push to ${target.repository} (scope ${scopes.join(' ')}): ${detail}`, { cause });
}

/** The registry's own words for an error answer (its `errors` list), the status when it gave none. */
export async function registryErrors(res: RegistryResponse, method: string): Promise<string> {
  const text = method === 'HEAD' ? '' : await res.body.text().catch(() => '');
  if (method === 'HEAD') await res.body.dump();
  try {
    const errors = (JSON.parse(text) as { errors?: Array<{ code: string; message: string }> }).errors ?? [];
    if (errors.length > 0) return `${res.status} ${errors.map((e) => `${e.code}: ${e.message}`).join('; ')}`;
  } catch {
    // not the registry's JSON: its first words below
  }
  return text ? `${res.status} ${text.slice(0, 200)}` : String(res.status);
}

/** An answer the push did not expect, as an error naming the request and the registry's words. */
export async function unexpected(res: RegistryResponse, method: string, what: string): Promise<BerthError> {
  const detail = await registryErrors(res, method);
  const code: ErrorCode = res.status === 404 ? 'not_found' : res.status >= 400 && res.status < 500 ? 'failed_precondition' : 'unavailable';
  return new BerthError(code, `registry ${new URL(res.url).host}: ${method} ${what}: ${detail}`);
}
