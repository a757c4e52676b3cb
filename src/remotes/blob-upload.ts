// Uploading a blob to a registry (OCI distribution spec, "Pushing blobs"; containerd's pusher):
// HEAD first (the repository has it: nothing to send), a cross-repository mount when another
// repository of the same registry has it (`POST /blobs/uploads/?mount=&from=`: 201 = mounted,
// 202 = the registry started an upload instead), else a chunked upload — PATCHes with
// `Content-Range`, each streamed from the content store, then the closing `PUT ?digest=`. A
// PATCH cut off is resumed where the registry says its upload session got to (GET of the
// session: `Range: 0-<last byte>`); a session the registry no longer knows starts again.
import { Readable } from 'node:stream';
import { BerthError, errorCode } from '../../store/errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import type { RegistryClient, RegistryResponse } from './client.js';
import { sendPush, unexpected, type PushTarget } from './push-target.js';

export interface UploadOptions {
  /** Bytes per PATCH: what a cut connection can cost at most when the registry keeps no partial chunk. */
  chunkSize?: number;
  /** Resumes in a row without progress before the upload fails. */
  maxResumes?: number;
}

/** What became of a blob: the registry had it, mounted it, or received its bytes. */
export type UploadOutcome = 'exists' | 'mounted' | 'uploaded';

export interface BlobUpload {
  target: PushTarget;
  desc: Descriptor;
  /** Repositories of the same registry known to hold the blob (its distribution source labels). */
  mountFrom: string[];
  /** The blob's bytes [start, end) from the content store. */
  open: (start: number, end: number) => Promise<Readable>;
  /** Told the offset the registry has confirmed, after each chunk (and after a resume). */
  progress?: (offset: number) => void;
  /** Told each time bytes are handed to the connection. */
  sent?: (bytes: number) => void;
  signal?: AbortSignal;
}

export class BlobUploader {
  private readonly chunkSize: number;
  private readonly maxResumes: number;

  constructor(
    private readonly client: RegistryClient,
    opts: UploadOptions = {},
  ) {
    this.chunkSize = opts.chunkSize ?? 32 << 20;
    this.maxResumes = opts.maxResumes ?? 5;
  }

  /** True when the target repository holds the blob. */
  async exists(target: PushTarget, digest: string, signal?: AbortSignal): Promise<boolean> {
    const res = await sendPush(this.client, target, { method: 'HEAD', path: `${target.repository}/blobs/${digest}`, signal });
    await res.body.dump();
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw await unexpected(res, 'HEAD', `blob ${digest} in ${target.repository}`);
  }

  /** Puts the blob into the target repository, sending only what the registry lacks. */
  async upload(u: BlobUpload): Promise<UploadOutcome> {
    const { target, desc, signal } = u;
    if (await this.exists(target, desc.digest, signal)) return 'exists';
    let location: URL | undefined;
    for (const from of u.mountFrom.filter((r) => r !== target.repository)) {
      const res = await sendPush(this.client, target, {
        method: 'POST',
        path: `${target.repository}/blobs/uploads/?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(from)}`,
        scopes: [`repository:${from}:pull`],
        headers: { 'content-length': '0' },
        signal,
      });
      await res.body.dump();
      if (res.status === 201) return 'mounted';
      if (res.status !== 202) continue; // this source refused: the next, or an upload
      location = locationOf(res);
      break;
    }
    location ??= await this.start(target, signal);
    await this.send(u, location);
    return 'uploaded';
  }

  /** Opens an upload session: its location. */
  private async start(target: PushTarget, signal?: AbortSignal): Promise<URL> {
    const res = await sendPush(this.client, target, {
      method: 'POST',
      path: `${target.repository}/blobs/uploads/`,
      headers: { 'content-length': '0' },
      signal,
    });
    if (res.status !== 202) throw await unexpected(res, 'POST', `upload to ${target.repository}`);
    await res.body.dump();
    return locationOf(res);
  }

  /** The chunks from offset 0 (or where a resume finds the session), then the closing PUT. */
  private async send(u: BlobUpload, first: URL): Promise<void> {
    const { target, desc, signal } = u;
    let location = first;
    let offset = 0;
    let resumes = 0;
    while (offset < desc.size) {
      const end = Math.min(desc.size, offset + this.chunkSize);
      try {
        const res = await sendPush(this.client, target, {
          method: 'PATCH',
          path: '',
          url: location,
          headers: {
            'content-type': 'application/octet-stream',
            'content-range': `${offset}-${end - 1}`,
            'content-length': String(end - offset),
          },
          body: () => Readable.from(counted(u, offset, end), { objectMode: false }),
          once: true,
          signal,
        });
        if (res.status === 416) {
          // The session holds other bytes than this client thinks: ask it (below).
          await res.body.dump();
          throw new BerthError('unavailable', `registry ${target.host.host}: upload of ${desc.digest}: 416 at offset ${offset}`);
        }
        if (res.status !== 202) throw await unexpected(res, 'PATCH', `upload of ${desc.digest} to ${target.repository}`);
        await res.body.dump();
        location = locationOf(res);
        offset = end;
        resumes = 0;
        u.progress?.(offset);
      } catch (err) {
        signal?.throwIfAborted();
        // Cut, a 5xx, or the session unknown (404): the session is asked; other refusals are final.
        const code = errorCode(err);
        if ((code !== 'unavailable' && code !== 'not_found') || ++resumes > this.maxResumes) throw err;
        ({ location, offset } = await this.resumeAt(target, location, desc, signal));
        u.progress?.(offset);
      }
    }
    const put = new URL(location);
    put.searchParams.set('digest', desc.digest);
    const res = await sendPush(this.client, target, { method: 'PUT', path: '', url: put, headers: { 'content-length': '0' }, signal });
    if (res.status !== 201 && res.status !== 204) throw await unexpected(res, 'PUT', `upload of ${desc.digest} to ${target.repository}`);
    await res.body.dump();
  }

  /** Where the session got to after a failed chunk; a session the registry lost starts again at 0. */
  private async resumeAt(target: PushTarget, location: URL, desc: Descriptor, signal?: AbortSignal): Promise<{ location: URL; offset: number }> {
    const res = await sendPush(this.client, target, { method: 'GET', path: '', url: location, signal });
    await res.body.dump();
    if (res.status === 204 || res.status === 202) {
      const offset = confirmed(res);
      if (offset !== undefined && offset <= desc.size) return { location: res.headers.location ? locationOf(res) : location, offset };
    }
    return { location: await this.start(target, signal), offset: 0 };
  }
}

/** The bytes [start, end) of the blob, each chunk counted as it is handed to the connection. */
async function* counted(u: BlobUpload, start: number, end: number): AsyncGenerator<Buffer> {
  for await (const chunk of await u.open(start, end)) {
    u.sent?.((chunk as Buffer).length);
    yield chunk as Buffer;
  }
}

/** The upload location a response gives (relative to the URL that answered). */
function locationOf(res: RegistryResponse): URL {
  const location = res.headers.location;
  if (typeof location !== 'string' || !location) {
    throw new BerthError('unavailable', `registry ${new URL(res.url).host}: ${res.status} without the upload's Location`);
  }
  return new URL(location, res.url);
}

/**
 * The offset after the bytes the registry holds, from `Range: 0-<last>`. distribution answers
 * `0-0` for an empty session too: taken as 0 (a registry holding one byte then refuses the next
 * PATCH with 416, and the resume asks again).
 */
function confirmed(res: RegistryResponse): number | undefined {
  const range = res.headers.range;
  const m = typeof range === 'string' ? /^(?:bytes=)?0-(\d+)$/.exec(range.trim()) : null;
  if (!m) return undefined;
  const last = Number(m[1]);
  return last === 0 ? 0 : last + 1;
}
