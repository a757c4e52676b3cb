// Resolving a reference to a descriptor and fetching content from a registry (containerd's
// dockerResolver and fetcher): HEAD then GET of the manifest with the Accept list of OCI and
// Docker media types, digests verified, manifests capped at 4 MiB, blobs fetched from any
// offset (with `Range`, or by skipping when a server ignores it).
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { BerthError, notFound } from '../../store/errors.js';
import { parseDigest } from '../../store/digest.js';
import type { RegistryClient, RegistryResponse } from './client.js';
import { registryHosts, type Capability, type RegistryHost } from './hosts.js';
import { repository, type ImageReference } from './reference.js';
import type { Descriptor } from '../oci/descriptor.js';
import { isManifestType, mediaTypes } from '../oci/mediatypes.js';

/** containerd's Accept list, in its order. */
export const manifestAccept = [
  mediaTypes.dockerManifest,
  mediaTypes.dockerManifestList,
  mediaTypes.ociManifest,
  mediaTypes.ociIndex,
  '*/*',
].join(', ');

export const maxManifestSize = 4 << 20;

export interface ResolverOptions {
  /** containerd's hosts directory (`<dir>/<host>/hosts.toml`). */
  hostsDir?: string;
}

export class Resolver {
  constructor(
    private readonly client: RegistryClient,
    private readonly opts: ResolverOptions = {},
  ) {}

  private async hosts(ref: ImageReference, caps: Capability[]): Promise<RegistryHost[]> {
    return (await registryHosts(ref.domain, this.opts.hostsDir)).filter((h) => caps.every((c) => h.capabilities.has(c)));
  }

  /** The descriptor a reference names: its digest, or what its tag points to now. */
  async resolve(ref: ImageReference, signal?: AbortSignal): Promise<Descriptor> {
    const object = ref.digest ?? ref.tag;
    if (!object) throw new BerthError('invalid_argument', `reference ${ref}: object required`);
    if (ref.digest) parseDigest(ref.digest);
    const hosts = await this.hosts(ref, ref.digest ? ['pull'] : ['pull', 'resolve']);
    if (hosts.length === 0) throw notFound(`reference ${ref}: no resolve hosts`);
    const scopes = [`repository:${repository(ref)}:pull`];
    let best: { priority: number; error: Error } | undefined;
    const record = (priority: number, error: Error) => {
      if (!best || priority > best.priority) best = { priority, error };
    };
    for (const host of hosts) {
      const path = `${repository(ref)}/manifests/${object}`;
      let res: RegistryResponse;
      try {
        res = await this.client.send({ method: 'HEAD', host, path, scopes, ns: ref.domain, headers: { accept: manifestAccept }, signal });
        if (res.status === 405) {
          await res.body.dump();
          res = await this.client.send({ method: 'GET', host, path, scopes, ns: ref.domain, headers: { accept: manifestAccept }, signal });
        }
      } catch (err) {
        record(1, err as Error);
        continue;
      }
      if (res.status === 404) {
        await res.body.dump();
        record(2, notFound(`${ref}: not found`));
        continue;
      }
      if (res.status >= 400) {
        record(3, await statusError(res, 'HEAD', ref));
        continue;
      }
      const mediaType = String(res.headers['content-type'] ?? '').split(';')[0].trim();
      let size = Number(res.headers['content-length'] ?? -1);
      const header = res.headers['docker-content-digest'];
      let digest = ref.digest ?? (typeof header === 'string' && size >= 0 ? header : undefined);
      if (digest && !ref.digest) {
        try {
          parseDigest(digest);
        } catch (err) {
          throw new BerthError('unavailable', `registry ${host.host}: ${JSON.stringify(digest)} in header not a valid digest`, { cause: err });
        }
      }
      if (size > maxManifestSize) {
        await res.body.dump();
        record(4, notFound(`rejecting ${size} byte manifest for ${ref}`));
        continue;
      }
      if (res.body) await res.body.dump();
      if (!digest || size < 0) {
        // Not told: read the manifest and hash it (bounded), as containerd does.
        const got = await this.client.send({ method: 'GET', host, path, scopes, ns: ref.domain, headers: { accept: manifestAccept }, signal });
        if (got.status >= 400) {
          record(3, await statusError(got, 'GET', ref));
          continue;
        }
        const hash = createHash('sha256');
        size = 0;
        for await (const chunk of got.body) {
          size += (chunk as Buffer).length;
          if (size > maxManifestSize) {
            got.body.destroy();
            throw notFound(`rejecting manifest of more than ${maxManifestSize} bytes for ${ref}`);
          }
          hash.update(chunk as Buffer);
        }
        const computed = `sha256:${hash.digest('hex')}`;
        if (ref.digest && ref.digest.startsWith('sha256:') && ref.digest !== computed) {
          throw new BerthError('failed_precondition', `manifest of ${ref} has digest ${computed}, not the ${ref.digest} asked for`);
        }
        digest ??= computed;
      }
      if (mediaType === 'text/plain' || mediaType === mediaTypes.dockerManifestSchema1Signed) {
        throw new BerthError('invalid_argument', `${ref}: Docker schema 1 manifests are not supported`);
      }
      return { mediaType, digest, size };
    }
    throw best?.error ?? notFound(`${ref}: not found`);
  }

  /**
   * The size of blob `digest` in `ref`'s repository, from a HEAD of `/blobs/<digest>` on the
   * first pull host that has it (a mirror asked for a blob it has not seen a manifest list).
   */
  async statBlob(ref: ImageReference, digest: string, signal?: AbortSignal): Promise<number> {
    parseDigest(digest);
    const hosts = await this.hosts(ref, ['pull']);
    if (hosts.length === 0) throw notFound(`reference ${ref}: no pull hosts`);
    const scopes = [`repository:${repository(ref)}:pull`];
    let first: Error | undefined;
    for (const host of hosts) {
      let res: RegistryResponse;
      try {
        res = await this.client.send({ method: 'HEAD', host, path: `${repository(ref)}/blobs/${digest}`, scopes, ns: ref.domain, signal });
      } catch (err) {
        first ??= err as Error;
        continue;
      }
      await res.body.dump();
      const size = Number(res.headers['content-length'] ?? -1);
      if (res.status === 404) first ??= notFound(`content ${digest} in ${repository(ref)}: not found on ${host.host}`);
      else if (res.status >= 300) first ??= await statusError(res, 'HEAD', ref);
      else if (Number.isSafeInteger(size) && size > 0) return size;
      else first ??= new BerthError('unavailable', `registry ${host.host}: HEAD of ${digest} gave no Content-Length`);
    }
    throw first ?? notFound(`content ${digest} in ${repository(ref)}: not found`);
  }

  /**
   * A stream of `desc`'s bytes from `offset` on. Asks with `Range`; a server that ignores it
   * sends the whole blob, whose first `offset` bytes are skipped here.
   */
  async fetch(ref: ImageReference, desc: Descriptor, offset = 0, signal?: AbortSignal): Promise<Readable> {
    if (offset >= desc.size && desc.size > 0) return Readable.from([]);
    const hosts = await this.hosts(ref, ['pull']);
    if (hosts.length === 0) throw notFound(`reference ${ref}: no pull hosts`);
    const kind = isManifestType(desc.mediaType) ? 'manifests' : 'blobs';
    const scopes = [`repository:${repository(ref)}:pull`];
    let first: Error | undefined;
    for (const host of hosts) {
      const headers: Record<string, string> = { accept: desc.mediaType ? `${desc.mediaType}, */*` : '*/*' };
      if (offset > 0) headers.range = `bytes=${offset}-`;
      let res: RegistryResponse;
      try {
        res = await this.client.send({ method: 'GET', host, path: `${repository(ref)}/${kind}/${desc.digest}`, scopes, ns: ref.domain, headers, signal });
      } catch (err) {
        first ??= err as Error;
        continue;
      }
      if (res.status === 404) {
        await res.body.dump();
        first ??= notFound(`could not fetch content ${desc.digest} (${desc.mediaType}) from ${host.host}: not found`);
        continue;
      }
      if (res.status >= 300) {
        first ??= await statusError(res, 'GET', ref);
        continue;
      }
      if (offset === 0 || res.status === 206) {
        if (res.status === 206) checkContentRange(res, offset);
        return res.body as unknown as Readable;
      }
      const range = res.headers['content-range'];
      if (range) {
        checkContentRange(res, offset);
        return res.body as unknown as Readable;
      }
      return skip(res.body as unknown as Readable, offset, desc.digest);
    }
    throw first ?? notFound(`could not fetch content ${desc.digest} (${desc.mediaType}) from remote`);
  }
}

function checkContentRange(res: RegistryResponse, offset: number): void {
  const range = res.headers['content-range'];
  if (typeof range === 'string' && !range.startsWith(`bytes ${offset}-`)) {
    res.body.destroy();
    throw new BerthError('unavailable', `unhandled content range in response: ${range}`);
  }
}

/** The body without its first `n` bytes: for servers that answer a Range with the whole blob. */
async function* skipBytes(body: AsyncIterable<Buffer>, n: number, digest: string): AsyncGenerator<Buffer> {
  let left = n;
  for await (const chunk of body) {
    if (left >= chunk.length) {
      left -= chunk.length;
      continue;
    }
    yield left > 0 ? chunk.subarray(left) : chunk;
    left = 0;
  }
  if (left > 0) throw new BerthError('unavailable', `unable to discard to offset ${n} of ${digest}: the body ended first`);
}

function skip(body: Readable, n: number, digest: string): Readable {
  return Readable.from(skipBytes(body, n, digest), { objectMode: false });
}

/** A registry error answer as an error naming the URL, status and the registry's own words. */
async function statusError(res: RegistryResponse, method: string, ref: ImageReference): Promise<Error> {
  const text = method === 'HEAD' ? '' : await res.body.text().catch(() => '');
  if (method === 'HEAD') await res.body.dump();
  let detail = '';
  try {
    const errors = (JSON.parse(text) as { errors?: Array<{ code: string; message: string }> }).errors ?? [];
    detail = errors.map((e) => `${e.code}: ${e.message}`).join('; ');
  } catch {
    detail = text.slice(0, 200);
  }
  const code = res.status === 401 ? 'unauthenticated' : res.status === 403 ? 'denied' : 'unavailable';
  const msg = res.status === 401 || res.status === 403
    ? `pull access denied for ${ref}, repository does not exist or may require authorization`
    : `unexpected status from ${method} request to ${res.url}: ${res.status}`;
  return new BerthError(code, detail ? `${msg}: ${detail}` : msg);
}
