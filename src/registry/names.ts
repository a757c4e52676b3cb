// What a registry request names, checked against the distribution spec's patterns before anything
// is looked up, so that no name, tag or digest ever reaches a path or a query unchecked; and the
// berth image it stands for: `ns` (containerd adds it when it uses a mirror) names the upstream
// registry, else the configured default upstream.
import { parseDigest } from '../../store/digest.js';
import { parseDockerRef, type ImageReference } from '../remotes/reference.js';
import { RegistryError } from './errors.js';

/** distribution-spec: `<name>` */
const namePattern = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
/** distribution-spec: a tag */
const tagPattern = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/** A registry host as `ns` names it: a domain or an IPv4/IPv6 address, with an optional port. */
const hostPattern = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?$/;

export type RegistryRoute =
  | { kind: 'ping' }
  | { kind: 'manifest'; name: string; reference: string }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'tags'; name: string };

/** The route a request path names; RegistryError 404 for anything that is not the pull API. */
export function parseRoute(path: string): RegistryRoute {
  if (path === '/v2/' || path === '/v2') return { kind: 'ping' };
  const m = /^\/v2\/(.+)\/(manifests|blobs|tags)\/([^/]+)$/.exec(path);
  if (!m) throw new RegistryError(404, 'NAME_UNKNOWN', `${JSON.stringify(path)} is not a path of the registry API`);
  const [, name, kind, last] = m;
  checkName(name);
  if (kind === 'tags') {
    if (last !== 'list') throw new RegistryError(404, 'NAME_UNKNOWN', `${JSON.stringify(path)} is not a path of the registry API`);
    return { kind: 'tags', name };
  }
  if (kind === 'blobs') {
    checkDigest(last);
    return { kind: 'blob', name, digest: last };
  }
  if (last.includes(':')) checkDigest(last);
  else if (!tagPattern.test(last)) throw new RegistryError(400, 'NAME_INVALID', `invalid tag ${JSON.stringify(last)}`);
  return { kind: 'manifest', name, reference: last };
}

function checkName(name: string): void {
  if (name.length > 255 || !namePattern.test(name)) {
    throw new RegistryError(400, 'NAME_INVALID', `invalid repository name ${JSON.stringify(name)}`);
  }
}

function checkDigest(digest: string): void {
  try {
    parseDigest(digest);
  } catch (err) {
    throw new RegistryError(400, 'DIGEST_INVALID', (err as Error).message);
  }
}

/** The upstream registry a request is for: its `ns`, else the default; undefined when neither. */
export function upstreamOf(ns: string | null, defaultUpstream: string | undefined): string | undefined {
  if (ns === null || ns === '') return defaultUpstream;
  if (!hostPattern.test(ns)) throw new RegistryError(400, 'NAME_INVALID', `invalid ns ${JSON.stringify(ns)}: not a registry host`);
  return ns;
}

/** The image `<upstream>/<name>[:tag|@digest]`, normalised as a pull normalises it. */
export function imageReference(upstream: string, name: string, reference?: string): ImageReference {
  const suffix = reference === undefined ? '' : reference.includes(':') ? `@${reference}` : `:${reference}`;
  try {
    return parseDockerRef(`${upstream}/${name}${suffix}`);
  } catch (err) {
    throw new RegistryError(400, 'NAME_INVALID', (err as Error).message);
  }
}
