// The registry service: what the listener serves, found in berth's namespace or fetched from the
// upstream through the pull machinery. Tags are resolved upstream whenever it answers (a retag is
// seen by the next client) and from berth's image record only when it does not; manifests and
// blobs by digest are immutable and served from the store whenever it holds them.
import type { Readable } from 'node:stream';
import { readBlob } from '../../store/copy.js';
import { errorCode } from '../../store/errors.js';
import type { MetadataContentStore } from '../metadata/content.js';
import type { OpContext } from '../metadata/context.js';
import type { ImageStore } from '../metadata/images.js';
import { childrenOf } from '../oci/children.js';
import type { Descriptor } from '../oci/descriptor.js';
import { documentMediaType, isManifestType } from '../oci/mediatypes.js';
import { childGcLabels } from '../pull/children.js';
import type { ImageReference } from '../remotes/reference.js';
import type { Resolver } from '../remotes/resolver.js';
import { RegistryError, toRegistryError } from './errors.js';
import { imageReference } from './names.js';
import type { PullThrough } from './pull-through.js';
import type { ByteRange } from './range.js';
import type { RegistryCounters, ServedFrom } from './stats.js';

export interface RegistryServiceOptions {
  /** The berth namespace whose images and content are served and filled. */
  namespace: string;
  /** Fetch what is missing from the upstream (false: serve only what is held). */
  pullThrough: boolean;
}

export interface ServedManifest {
  descriptor: Descriptor;
  /** Manifests are small (a pull caps them at 4 MiB): held whole, as a pull holds them. */
  body: Buffer;
  from: ServedFrom;
  /** A `Warning` header value when the answer is not the upstream's current one. */
  warning?: string;
}

export interface ServedBlob {
  digest: string;
  size: number;
  /** `hit` when the store holds it; undefined until `open` says how it is served. */
  from?: ServedFrom;
  /**
   * The bytes of `range` (default all), and how they are served. Only this starts an upstream
   * fetch (a HEAD does not); a blob still arriving streams as it arrives.
   */
  open(range: ByteRange | undefined, signal: AbortSignal): Promise<{ from: ServedFrom; stream: Readable }>;
}

/** The most manifests' children remembered for blob requests that follow them. */
const rememberedMax = 100_000;

export class RegistryService {
  readonly ctx: OpContext;
  /** Descriptors listed by manifests served lately, by digest: a blob request finds its size here. */
  private readonly listed = new Map<string, Descriptor>();

  constructor(
    private readonly content: MetadataContentStore,
    private readonly images: ImageStore,
    private readonly resolver: Resolver,
    private readonly pullThrough: PullThrough,
    readonly counters: RegistryCounters,
    readonly opts: RegistryServiceOptions,
  ) {
    this.ctx = { namespace: opts.namespace };
  }

  /**
   * A manifest (or index) by tag or digest of `name` in `upstream`. For a `peer` (another node of
   * the fleet), only what this node holds: a tag as its image records have it, a digest if stored.
   */
  async manifest(upstream: string | undefined, name: string, reference: string, signal: AbortSignal, peer = false): Promise<ServedManifest> {
    if (reference.includes(':')) return this.manifestByDigest(upstream, name, reference, signal, peer);
    if (!upstream) {
      throw new RegistryError(404, 'MANIFEST_UNKNOWN', `${name}:${reference}: no upstream registry to resolve the tag in (send ns, or set default_upstream)`);
    }
    const ref = imageReference(upstream, name, reference);
    const image = ref.toString();
    let target: Descriptor;
    let warning: string | undefined;
    if (!this.opts.pullThrough || peer) {
      target = (await this.images.get(this.ctx, image).catch((err) => this.fail(err, 'manifest'))).target;
      if (peer && (await this.heldSize(target.digest)) === undefined) throw new RegistryError(404, 'MANIFEST_UNKNOWN', `${image}: manifest ${target.digest} not held`);
    } else {
      try {
        target = await this.resolver.resolve(ref, signal);
      } catch (err) {
        const kind = errorCode(err);
        if (kind === 'not_found' || kind === 'invalid_argument' || kind === 'unauthenticated' || kind === 'denied') this.fail(err, 'manifest');
        // Unreachable (refused, timed out, 5xx): the tag as berth last recorded it, said so.
        const held = await this.images.get(this.ctx, image).catch(() => undefined);
        if (!held) this.fail(err, 'manifest');
        target = held.target;
        warning = `299 - "served from cache: ${upstream} unreachable"`;
      }
    }
    const served = await this.manifestBody(ref, target, signal);
    if (this.opts.pullThrough && !peer && !warning) await this.record(image, target);
    return { ...served, warning };
  }

  private async manifestByDigest(upstream: string | undefined, name: string, digest: string, signal: AbortSignal, peer: boolean): Promise<ServedManifest> {
    const held = await this.heldSize(digest);
    if (held !== undefined) {
      const body = await readBlob({ readerAt: (d) => this.content.readerAt(this.ctx, d) }, digest);
      const mediaType = this.listed.get(digest)?.mediaType ?? documentMediaType(body);
      if (!mediaType || !isManifestType(mediaType)) throw new RegistryError(404, 'MANIFEST_UNKNOWN', `${digest} is not a manifest`);
      return { descriptor: { mediaType, digest, size: held }, body, from: 'hit' };
    }
    if (!this.opts.pullThrough || !upstream || peer) throw new RegistryError(404, 'MANIFEST_UNKNOWN', `manifest ${digest}: not held`);
    const ref = imageReference(upstream, name, digest);
    const desc = this.listed.get(digest) ?? (await this.resolver.resolve(ref, signal).catch((err) => this.fail(err, 'manifest')));
    const served = await this.manifestBody(ref, desc, signal);
    // A manifest asked for by digest that no manifest served here lists is an image of its own.
    if (!this.listed.has(digest)) await this.record(ref.toString(), desc);
    return served;
  }

  /** The bytes of a manifest, fetched first when missing; its children get GC labels and are remembered. */
  private async manifestBody(ref: ImageReference, desc: Descriptor, signal: AbortSignal): Promise<Omit<ServedManifest, 'warning'>> {
    let from: ServedFrom = 'hit';
    if ((await this.heldSize(desc.digest)) === undefined) {
      const flight = this.pullThrough.join(this.ctx, ref, desc, () => this.listed.has(desc.digest));
      from = flight.from;
      await waitOrAbort(flight.done, signal);
    }
    const body = await readBlob({ readerAt: (d) => this.content.readerAt(this.ctx, d) }, desc.digest);
    const children = childrenOf(desc, body);
    // GC labels once, when the manifest arrives (a manifest held already has them): a tag served
    // from the store costs no metadata write. Its children are remembered on every serve, as the
    // map starts empty at each start of the server.
    if (children.length > 0 && from !== 'hit') {
      const labels = childGcLabels(children);
      await this.content.update(this.ctx, desc.digest, labels, Object.keys(labels).map((k) => `labels.${k}`));
    }
    for (const child of children) this.remember(child);
    return { descriptor: { mediaType: desc.mediaType, digest: desc.digest, size: desc.size }, body, from };
  }

  /**
   * A blob of `name` in `upstream`: held, being fetched, or fetched now. For a `peer`, held or
   * being fetched by this node only.
   */
  async blob(upstream: string | undefined, name: string, digest: string, signal: AbortSignal, peer = false): Promise<ServedBlob> {
    const held = await this.heldSize(digest);
    if (held !== undefined) {
      return {
        digest,
        size: held,
        from: 'hit',
        open: async (range) => {
          const reader = await this.content.readerAt(this.ctx, digest);
          return { from: 'hit', stream: reader.stream(range?.start ?? 0, range?.end ?? reader.size) };
        },
      };
    }
    if (peer) {
      const download = this.pullThrough.download(this.ctx, digest);
      if (!download) throw new RegistryError(404, 'BLOB_UNKNOWN', `blob ${digest}: neither held nor being fetched by this node`);
      return {
        digest,
        size: download.size,
        open: async (range, sig) => ({ from: 'follower', stream: await download.follow(range, sig) }),
      };
    }
    if (!this.opts.pullThrough || !upstream) throw new RegistryError(404, 'BLOB_UNKNOWN', `blob ${digest}: not held`);
    const ref = imageReference(upstream, name);
    const desc = this.listed.get(digest) ?? {
      mediaType: 'application/octet-stream',
      digest,
      size: await this.resolver.statBlob(ref, digest, signal).catch((err) => this.fail(err, 'blob')),
    };
    return {
      digest,
      size: desc.size,
      open: async (range, sig) => {
        const flight = this.pullThrough.join(this.ctx, ref, desc, () => this.listed.has(digest));
        return { from: flight.from, stream: await flight.follow(range, sig) };
      },
    };
  }

  /** Tags of `name` in `upstream` that berth holds images for. */
  async tags(upstream: string | undefined, name: string): Promise<string[]> {
    if (!upstream) return [];
    const prefix = `${imageReference(upstream, name).name}:`;
    const images = await this.images.list(this.ctx);
    return images.filter((i) => i.name.startsWith(prefix)).map((i) => i.name.slice(prefix.length)).sort();
  }

  private async heldSize(digest: string): Promise<number | undefined> {
    try {
      return (await this.content.info(this.ctx, digest)).size;
    } catch (err) {
      if (errorCode(err) === 'not_found') return undefined;
      throw err;
    }
  }

  /** Creates the image record, or points it at the new target; the GC then keeps what it lists. */
  private async record(name: string, target: Descriptor): Promise<void> {
    const t = { mediaType: target.mediaType, digest: target.digest, size: target.size };
    try {
      const current = await this.images.get(this.ctx, name);
      if (current.target.digest !== t.digest) await this.images.update(this.ctx, { name, target: t }, ['target']);
    } catch (err) {
      if (errorCode(err) !== 'not_found') throw err;
      await this.images.create(this.ctx, { name, target: t }).catch((e) => {
        if (errorCode(e) !== 'already_exists') throw e; // another client recorded it first
      });
    }
  }

  private remember(desc: Descriptor): void {
    if (this.listed.size >= rememberedMax) this.listed.delete(this.listed.keys().next().value as string);
    this.listed.set(desc.digest, { mediaType: desc.mediaType, digest: desc.digest, size: desc.size });
  }

  private fail(err: unknown, object: 'manifest' | 'blob'): never {
    throw toRegistryError(err, object);
  }
}

/** Resolves with `p`, or rejects as soon as `signal` aborts (the fetch itself goes on). */
function waitOrAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
