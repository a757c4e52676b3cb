// Putting a manifest or an index into a registry (OCI distribution spec, "Pushing manifests"):
// `PUT /manifests/<tag or digest>` with the manifest's media type, its bytes exactly as stored
// (the digest the registry computes must be the one the image names). The registry's
// `Docker-Content-Digest`, when it sends one, is checked against it.
import type { Readable } from 'node:stream';
import { BerthError } from '../../store/errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import type { RegistryClient } from './client.js';
import { sendPush, unexpected, type PushTarget } from './push-target.js';

/** True when the target repository holds the manifest `digest`. */
export async function manifestExists(client: RegistryClient, target: PushTarget, desc: Descriptor, signal?: AbortSignal): Promise<boolean> {
  const res = await sendPush(client, target, {
    method: 'HEAD',
    path: `${target.repository}/manifests/${desc.digest}`,
    headers: { accept: desc.mediaType },
    signal,
  });
  await res.body.dump();
  if (res.status === 200) return true;
  if (res.status === 404) return false;
  throw await unexpected(res, 'HEAD', `manifest ${desc.digest} in ${target.repository}`);
}

/** PUTs the manifest `desc` under `reference` (a tag, or its digest); `open` streams its stored bytes. */
export async function putManifest(
  client: RegistryClient,
  target: PushTarget,
  desc: Descriptor,
  reference: string,
  open: () => Promise<Readable>,
  signal?: AbortSignal,
): Promise<void> {
  const res = await sendPush(client, target, {
    method: 'PUT',
    path: `${target.repository}/manifests/${reference}`,
    headers: { 'content-type': desc.mediaType, 'content-length': String(desc.size) },
    body: open,
    signal,
  });
  if (res.status !== 201 && res.status !== 200 && res.status !== 204) {
    throw await unexpected(res, 'PUT', `manifest ${desc.digest} as ${target.repository}:${reference}`);
  }
  await res.body.dump();
  const digest = res.headers['docker-content-digest'];
  if (typeof digest === 'string' && digest && digest !== desc.digest) {
    throw new BerthError('unavailable', `registry ${target.host.host}: manifest ${desc.digest} was stored as ${digest}`);
  }
}
