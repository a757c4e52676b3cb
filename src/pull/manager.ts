// Pulls as resources (containerd's client Pull, done as berth's users asked): resolve, fetch the
// index/manifest/config/layers into the content store under a lease — several layers at once,
// each resumable — label parents so the GC keeps the image whole, and record the image once all
// of it is present. A pull that fails or is cancelled keeps its lease (with an expiry), so the
// next pull of the image resumes every partial blob, across restarts too.
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { BerthError, errorCode } from '../../store/errors.js';
import type { EventBus } from '../events/bus.js';
import type { MetadataContentStore } from '../metadata/content.js';
import type { OpContext } from '../metadata/context.js';
import type { ImageStore } from '../metadata/images.js';
import type { LeaseManager } from '../metadata/leases.js';
import { allMatcher, onlyMatcher } from '../oci/platforms/match.js';
import { defaultPlatform } from '../oci/platforms/host.js';
import { parsePlatform } from '../oci/platforms/parse.js';
import { selectManifests } from './select.js';
import { parseDockerRef, type ImageReference } from '../remotes/reference.js';
import type { Descriptor } from '../oci/descriptor.js';
import type { Resolver } from '../remotes/resolver.js';
import { withSpan } from '../../store/telemetry.js';
import { readBlob } from '../../store/copy.js';
import { isIndex, isLayerType, isManifest } from '../oci/mediatypes.js';
import type { Unpacker, UnpackResult } from '../unpack/unpacker.js';
import { childGcLabels } from './children.js';
import { childrenOf } from '../oci/children.js';
import { BlobFeed } from './feed.js';
import type { BlobFetcher } from './fetch.js';

export type PullState = 'running' | 'done' | 'failed' | 'cancelled';
export type BlobState = 'waiting' | 'downloading' | 'done' | 'exists' | 'failed';

export interface BlobProgress {
  digest: string;
  mediaType: string;
  size: number;
  offset: number;
  state: BlobState;
  /** Bytes by where they came from: `upstream`, or `peer <node>` (none: the blob was here already). */
  sources: Record<string, number>;
}

export interface PullRequest {
  ref: string;
  platform?: string;
  allPlatforms?: boolean;
  /** Unpack each manifest's layers into this snapshotter while they download. */
  unpack?: { snapshotter: string };
}

export interface PullView {
  id: string;
  ref: string;
  namespace: string;
  state: PullState;
  error?: { code: string; message: string };
  image?: string;
  lease: string;
  bytesFetched: number;
  /** Of `bytesFetched`, what came from the upstream and what from peers in the fleet. */
  bytesFromUpstream: number;
  bytesFromPeers: number;
  startedAt: Date;
  finishedAt?: Date;
  blobs: BlobProgress[];
  /** What was unpacked, per manifest (with `unpack`). */
  unpacks: UnpackResult[];
}

export interface PullManagerOptions {
  /** Unpacks pulls that ask for it (none: such pulls are refused). */
  unpacker?: Unpacker;
  /** Blobs fetched at once per pull. */
  concurrency?: number;
  /** How long a failed or cancelled pull's lease (and so its partial blobs) is kept (ms). */
  keepFailedMs?: number;
}

class Pull {
  readonly id = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  readonly events = new EventEmitter();
  readonly controller = new AbortController();
  readonly blobs = new Map<string, BlobProgress>();
  state: PullState = 'running';
  error?: { code: string; message: string };
  image?: string;
  bytesFetched = 0;
  bytesFromPeers = 0;
  readonly unpacks: UnpackResult[] = [];
  readonly startedAt = new Date();
  finishedAt?: Date;
  done!: Promise<void>;

  constructor(
    readonly ctx: OpContext,
    readonly request: PullRequest,
    readonly lease: string,
  ) {
    this.events.setMaxListeners(0);
  }

  view(): PullView {
    return {
      id: this.id,
      ref: this.request.ref,
      namespace: this.ctx.namespace,
      state: this.state,
      ...(this.error ? { error: this.error } : {}),
      ...(this.image ? { image: this.image } : {}),
      lease: this.lease,
      bytesFetched: this.bytesFetched,
      bytesFromUpstream: this.bytesFetched - this.bytesFromPeers,
      bytesFromPeers: this.bytesFromPeers,
      startedAt: this.startedAt,
      ...(this.finishedAt ? { finishedAt: this.finishedAt } : {}),
      blobs: [...this.blobs.values()].map((b) => ({ ...b, sources: { ...b.sources } })),
      unpacks: this.unpacks.map((u) => ({ ...u })),
    };
  }

  blob(desc: Descriptor): BlobProgress {
    let b = this.blobs.get(desc.digest);
    if (!b) this.blobs.set(desc.digest, (b = { digest: desc.digest, mediaType: desc.mediaType, size: desc.size, offset: 0, state: 'waiting', sources: {} }));
    return b;
  }

  emit(type: string, data: object): void {
    this.events.emit('event', { type, ...data });
  }
}

export class PullManager {
  private readonly pulls = new Map<string, Pull>();
  private readonly concurrency: number;
  private readonly keepFailedMs: number;
  private readonly unpacker: Unpacker | undefined;

  constructor(
    private readonly content: MetadataContentStore,
    private readonly images: ImageStore,
    private readonly leases: LeaseManager,
    private readonly resolver: Resolver,
    private readonly fetcher: BlobFetcher,
    private readonly bus: EventBus,
    opts: PullManagerOptions = {},
  ) {
    this.concurrency = opts.concurrency ?? 4;
    this.keepFailedMs = opts.keepFailedMs ?? 24 * 60 * 60 * 1000;
    this.unpacker = opts.unpacker;
  }

  /** Starts a pull; a malformed reference or platform is refused at once. */
  async start(ctx: OpContext, request: PullRequest): Promise<PullView> {
    const ref = parseDockerRef(request.ref);
    if (request.unpack && !this.unpacker) {
      throw new BerthError('not_implemented', `pull ${JSON.stringify(request.ref)}: unpacking is not available on this server`);
    }
    const matcher = request.allPlatforms ? allMatcher : onlyMatcher(request.platform ? parsePlatform(request.platform) : defaultPlatform());
    // The pull's lease: everything it writes is kept until the image record holds it. It expires
    // on its own, so that a pull that never finishes does not keep its blobs forever.
    const lease = await this.leases.create(ctx, {
      id: `pull-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`,
      labels: { 'berth.io/pull': ref.toString() },
      expiresIn: this.keepFailedMs,
    });
    const pull = new Pull(ctx, request, lease.id);
    this.pulls.set(pull.id, pull);
    pull.done = this.run(pull, ref, matcher);
    return pull.view();
  }

  get(id: string): PullView {
    return this.find(id).view();
  }

  list(namespace?: string): PullView[] {
    return [...this.pulls.values()].filter((p) => !namespace || p.ctx.namespace === namespace).map((p) => p.view());
  }

  /** Resolves when the pull has ended (done, failed or cancelled). */
  async wait(id: string): Promise<PullView> {
    const pull = this.find(id);
    await pull.done;
    return pull.view();
  }

  /** Listens to a pull's progress; returns the unsubscribe function. */
  subscribe(id: string, fn: (event: { type: string }) => void): () => void {
    const pull = this.find(id);
    pull.events.on('event', fn);
    return () => pull.events.off('event', fn);
  }

  /** Cancels a running pull: what it fetched so far stays, for the next pull to resume. */
  async cancel(id: string): Promise<PullView> {
    const pull = this.find(id);
    if (pull.state === 'running') pull.controller.abort(new BerthError('failed_precondition', `pull ${id} cancelled`));
    await pull.done;
    return pull.view();
  }

  private find(id: string): Pull {
    const pull = this.pulls.get(id);
    if (!pull) throw new BerthError('not_found', `pull ${JSON.stringify(id)}: not found`);
    return pull;
  }

  private async run(pull: Pull, ref: ImageReference, matcher: ReturnType<typeof onlyMatcher>): Promise<void> {
    const ctx: OpContext = { namespace: pull.ctx.namespace, lease: pull.lease };
    // Stopped by a cancel, or by the first blob that fails: the other downloads end too.
    const failed = new AbortController();
    const signal = AbortSignal.any([pull.controller.signal, failed.signal]);
    try {
      await withSpan('pull', { 'berth.ref': ref.toString(), 'berth.pull': pull.id }, async () => {
        pull.emit('resolving', { ref: ref.toString() });
        const target = await withSpan('pull.resolve', { 'berth.ref': ref.toString() }, () => this.resolve(ref, signal));
        pull.emit('resolved', { digest: target.digest, mediaType: target.mediaType, size: target.size });
        await this.walk(pull, ctx, ref, target, matcher, signal).catch((err) => {
          failed.abort(err);
          throw err;
        });
        const name = ref.toString();
        await withSpan('pull.commit', { 'berth.image': name }, () => this.record(ctx, name, target));
        pull.image = name;
      });
      // The image holds everything now: this pull's lease can go, and so can those of earlier
      // failed or cancelled pulls of the same image (their partial blobs are committed now).
      await this.releaseLeases(pull, ref);
      pull.state = 'done';
    } catch (err) {
      const cancelled = pull.controller.signal.aborted;
      pull.state = cancelled ? 'cancelled' : 'failed';
      const cause = cancelled ? pull.controller.signal.reason : err;
      pull.error = { code: errorCode(cause), message: (cause as Error).message };
    } finally {
      pull.finishedAt = new Date();
      pull.emit(pull.state, { ...(pull.error ? { error: pull.error } : {}), ...(pull.image ? { image: pull.image } : {}) });
      this.bus.publish(pull.ctx.namespace, `/pulls/${pull.state === 'done' ? 'done' : 'failed'}`, {
        id: pull.id,
        ref: pull.request.ref,
        ...(pull.error ? { error: pull.error.message } : {}),
      });
    }
  }

  /**
   * What `ref` names: at the upstream whenever it answers (a retag is seen at once); when it does
   * not, what a peer in the fleet has recorded for the tag.
   */
  private async resolve(ref: ImageReference, signal: AbortSignal): Promise<Descriptor> {
    try {
      return await this.resolver.resolve(ref, signal);
    } catch (err) {
      signal.throwIfAborted();
      if (errorCode(err) !== 'unavailable') throw err;
      const fromPeers = await this.fetcher.resolveFromPeers(ref, signal);
      if (!fromPeers) throw err;
      return fromPeers;
    }
  }

  private async releaseLeases(pull: Pull, ref: ImageReference): Promise<void> {
    const running = new Set([...this.pulls.values()].filter((p) => p !== pull && p.state === 'running').map((p) => p.lease));
    const earlier = await this.leases.list(pull.ctx, [`labels."berth.io/pull"==${JSON.stringify(ref.toString())}`]);
    for (const lease of earlier) {
      if (running.has(lease.id)) continue;
      await this.leases.delete(pull.ctx, lease.id).catch(() => {}); // gone already: fine
    }
  }

  /** Fetches `desc` and, for an index or manifest, its children; labels parents for the GC. */
  private async walk(
    pull: Pull,
    ctx: OpContext,
    ref: ImageReference,
    desc: Descriptor,
    matcher: ReturnType<typeof onlyMatcher>,
    signal: AbortSignal,
  ): Promise<void> {
    await this.fetchOne(pull, ctx, ref, desc, signal);
    if (!isIndex(desc.mediaType) && !isManifest(desc.mediaType)) return;
    const body = await readBlob({ readerAt: (d) => this.content.readerAt(ctx, d) }, desc.digest);
    let children = childrenOf(desc, body);
    if (children.length === 0) return;
    // Labels for every child before platform filtering, as containerd writes them.
    const labels = childGcLabels(children);
    await this.content.update(ctx, desc.digest, labels, Object.keys(labels).map((k) => `labels.${k}`));
    if (isIndex(desc.mediaType)) {
      children = selectManifests(children, matcher, matcher === allMatcher ? 0 : 1, { index: desc.digest });
    }
    if (pull.request.unpack && isManifest(desc.mediaType)) {
      await this.fetchAndUnpack(pull, ctx, ref, desc, body, children, matcher, signal);
      return;
    }
    await this.limited(children, (child) => this.walk(pull, ctx, ref, child, matcher, signal));
  }

  /**
   * A manifest's children with unpacking: the config first (it names the diffIDs), then the
   * layers download while the unpacker extracts each from the bytes already on disk.
   */
  private async fetchAndUnpack(
    pull: Pull,
    ctx: OpContext,
    ref: ImageReference,
    manifestDesc: Descriptor,
    manifestBody: Buffer,
    children: Descriptor[],
    matcher: ReturnType<typeof onlyMatcher>,
    signal: AbortSignal,
  ): Promise<void> {
    const manifest = JSON.parse(manifestBody.toString('utf8')) as { config?: Descriptor; layers?: Descriptor[] };
    const config = manifest.config;
    if (!config) throw new BerthError('invalid_argument', `manifest ${manifestDesc.digest} has no config`);
    await this.walk(pull, ctx, ref, config, matcher, signal);
    const configJson = JSON.parse((await readBlob({ readerAt: (d) => this.content.readerAt(ctx, d) }, config.digest)).toString('utf8')) as {
      rootfs?: { type?: string; diff_ids?: string[] };
    };
    const layers = (manifest.layers ?? []).filter((l) => isLayerType(l.mediaType));
    const rest = children.filter((c) => c.digest !== config.digest && !layers.some((l) => l.digest === c.digest));
    const feeds = new Map(layers.map((l) => [l.digest, new BlobFeed(this.content, ctx, l)]));
    const stop = new AbortController();
    const unpackSignal = AbortSignal.any([signal, stop.signal]);
    const unpacking = this.unpacker!.unpack(ctx, {
      config,
      layers,
      diffIds: configJson.rootfs?.diff_ids ?? [],
      snapshotter: pull.request.unpack!.snapshotter,
      signal: unpackSignal,
      source: (desc, s) => feeds.get(desc.digest)!.bytes(s),
      onLayer: (e) => pull.emit('unpack', e),
    });
    // A failed unpack fails the pull: the downloads stop too (what they fetched stays, resumable).
    const unpackFailed = new AbortController();
    unpacking.catch((err) => unpackFailed.abort(err));
    const fetchSignal = AbortSignal.any([signal, unpackFailed.signal]);
    const fetching = this.limited([...layers, ...rest], (child) =>
      this.fetchOne(pull, ctx, ref, child, fetchSignal, feeds.get(child.digest)).catch((err) => {
        feeds.get(child.digest)?.failed(err);
        throw err;
      }),
    ).catch((err) => {
      stop.abort(err);
      throw err;
    });
    const [fetched, unpacked] = await Promise.allSettled([fetching, unpacking]);
    if (fetched.status === 'rejected') throw fetched.reason;
    if (unpacked.status === 'rejected') throw unpacked.reason;
    pull.unpacks.push(unpacked.value);
  }

  private async fetchOne(pull: Pull, ctx: OpContext, ref: ImageReference, desc: Descriptor, signal: AbortSignal, feed?: BlobFeed): Promise<void> {
    const blob = pull.blob(desc);
    const source = { [`containerd.io/distribution.source.${ref.domain}`]: ref.path };
    try {
      const outcome = await this.fetcher.fetch({
        ctx,
        ref,
        desc,
        labels: source,
        progress: {
          started: (offset, from) => {
            feed?.ready();
            blob.state = 'downloading';
            blob.offset = offset;
            pull.emit('downloading', { digest: desc.digest, offset, size: desc.size, source: from });
          },
          wrote: (n, from) => {
            blob.offset += n;
            blob.sources[from] = (blob.sources[from] ?? 0) + n;
            pull.bytesFetched += n;
            if (from !== 'upstream') pull.bytesFromPeers += n;
            pull.emit('progress', { digest: desc.digest, offset: blob.offset, size: desc.size });
          },
        },
        signal,
      });
      blob.state = outcome === 'fetched' ? 'done' : 'exists';
      blob.offset = desc.size;
      feed?.ready();
      pull.emit(blob.state, { digest: desc.digest, size: desc.size });
    } catch (err) {
      blob.state = 'failed';
      throw err;
    }
  }

  /** Runs `fn` over `items`, at most `concurrency` at a time; the first error stops the rest. */
  private async limited<T>(items: T[], fn: (item: T) => Promise<void>): Promise<void> {
    let next = 0;
    const workers = Array.from({ length: Math.min(this.concurrency, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]);
    });
    await Promise.all(workers);
  }

  /** Creates the image record, or points an existing one at the new target. */
  private async record(ctx: OpContext, name: string, target: Descriptor): Promise<void> {
    const t = { mediaType: target.mediaType, digest: target.digest, size: target.size };
    try {
      await this.images.create(ctx, { name, target: t });
    } catch (err) {
      if (errorCode(err) !== 'already_exists') throw err;
      await this.images.update(ctx, { name, target: t }, ['target']);
    }
  }
}
