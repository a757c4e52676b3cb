// Pushes as resources (containerd's client Push / `ctr images push`): the image named by the
// push (by default the reference itself) is sent to the reference's registry — its blobs first,
// each only if the registry lacks it (HEAD, else a cross-repository mount from a repository its
// distribution source labels name on that registry, else a chunked upload that resumes after a
// cut), then the manifests, children before the index that lists them, the root last under the
// reference's tag. The image is held by a lease while it is pushed, so a GC cannot take its
// blobs from under the upload. Pushes live in memory: a push is short, and an interrupted one is
// repeated cheaply (the blobs that arrived are `exists` the second time).
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { BerthError, errorCode, failedPrecondition, isNotFound } from '../../store/errors.js';
import { readBlob } from '../../store/copy.js';
import type { EventBus } from '../events/bus.js';
import type { MetadataContentStore } from '../metadata/content.js';
import type { OpContext } from '../metadata/context.js';
import type { ImageStore } from '../metadata/images.js';
import type { LeaseManager } from '../metadata/leases.js';
import { childrenOf } from '../oci/children.js';
import type { Descriptor } from '../oci/descriptor.js';
import { isIndex, isManifest } from '../oci/mediatypes.js';
import { onlyMatcher } from '../oci/platforms/match.js';
import { parsePlatform } from '../oci/platforms/parse.js';
import type { RegistryClient } from '../remotes/client.js';
import { BlobUploader, type UploadOutcome } from '../remotes/blob-upload.js';
import { manifestExists, putManifest } from '../remotes/manifest-put.js';
import { pushTarget, type PushTarget } from '../remotes/push-target.js';
import { parseDockerRef, type ImageReference } from '../remotes/reference.js';
import { selectManifests } from '../pull/select.js';
import { sourceLabel, sourceRepositories, withSource } from './sources.js';

export type PushState = 'running' | 'done' | 'failed' | 'cancelled';
/** `exists`: the registry had it; `mounted`: from another repository of the registry; `uploaded`: sent. */
export type PushBlobState = 'waiting' | 'uploading' | UploadOutcome | 'failed';

export interface PushBlobProgress {
  digest: string;
  mediaType: string;
  size: number;
  /** Bytes the registry has confirmed (the whole size once it holds the blob). */
  offset: number;
  state: PushBlobState;
  /** Bytes handed to the connection, resent ones counted again. */
  bytesSent: number;
}

export interface PushRequest {
  /** Where to: `registry/repository:tag`. */
  ref: string;
  /** The image to push (default: the image named `ref`). */
  image?: string;
  /** Push only this platform's manifest of an index (it then goes under the tag itself). */
  platform?: string;
}

export interface PushView {
  id: string;
  ref: string;
  image: string;
  namespace: string;
  state: PushState;
  error?: { code: string; message: string };
  /** The manifest or index the tag now names in the registry (once known). */
  digest?: string;
  lease: string;
  bytesSent: number;
  startedAt: Date;
  finishedAt?: Date;
  blobs: PushBlobProgress[];
}

export interface PushManagerOptions {
  /** Blobs uploaded at once per push. */
  concurrency?: number;
  /** Bytes per PATCH of a chunked upload. */
  chunkSize?: number;
  /** Where `hosts.toml` folders are (containerd's hosts directory). */
  hostsDir?: string;
  /** Ended pushes kept (the newest). */
  keepEndedMax?: number;
}

const newPushId = (): string => `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

class Push {
  readonly events = new EventEmitter();
  readonly controller = new AbortController();
  readonly blobs = new Map<string, PushBlobProgress>();
  readonly id = newPushId();
  readonly startedAt = new Date();
  state: PushState = 'running';
  error?: { code: string; message: string };
  digest?: string;
  bytesSent = 0;
  finishedAt?: Date;
  done: Promise<void> = Promise.resolve();

  constructor(
    readonly ctx: OpContext,
    readonly ref: ImageReference,
    readonly image: string,
    readonly lease: string,
  ) {
    this.events.setMaxListeners(0);
  }

  view(): PushView {
    return {
      id: this.id,
      ref: this.ref.toString(),
      image: this.image,
      namespace: this.ctx.namespace,
      state: this.state,
      ...(this.error ? { error: this.error } : {}),
      ...(this.digest ? { digest: this.digest } : {}),
      lease: this.lease,
      bytesSent: this.bytesSent,
      startedAt: this.startedAt,
      ...(this.finishedAt ? { finishedAt: this.finishedAt } : {}),
      blobs: [...this.blobs.values()].map((b) => ({ ...b })),
    };
  }

  blob(desc: Descriptor): PushBlobProgress {
    let b = this.blobs.get(desc.digest);
    if (!b) this.blobs.set(desc.digest, (b = { digest: desc.digest, mediaType: desc.mediaType, size: desc.size, offset: 0, state: 'waiting', bytesSent: 0 }));
    return b;
  }

  emit(type: string, data: object): void {
    this.events.emit('event', { type, ...data });
  }
}

/** What a push sends: the blobs (config and layers), then the manifests in the order they go. */
interface Plan {
  root: Descriptor;
  blobs: Descriptor[];
  /** Children before their parents; the root last. */
  manifests: Descriptor[];
}

export class PushManager {
  private readonly pushes = new Map<string, Push>();
  private readonly uploader: BlobUploader;
  private readonly concurrency: number;
  private readonly keepEndedMax: number;
  private closing = false;

  constructor(
    private readonly content: MetadataContentStore,
    private readonly images: ImageStore,
    private readonly leases: LeaseManager,
    private readonly client: RegistryClient,
    private readonly bus: EventBus,
    private readonly opts: PushManagerOptions = {},
  ) {
    this.uploader = new BlobUploader(client, { chunkSize: opts.chunkSize });
    this.concurrency = opts.concurrency ?? 4;
    this.keepEndedMax = opts.keepEndedMax ?? 100;
  }

  /** Starts a push; a malformed reference or platform, or an image not here, is refused at once. */
  async start(ctx: OpContext, request: PushRequest): Promise<PushView> {
    const ref = parseDockerRef(request.ref);
    if (request.platform !== undefined) parsePlatform(request.platform);
    const name = request.image ?? ref.toString();
    const image = await this.images.get(ctx, name); // not_found naming the image
    // The image's content is the lease's: deleting the image meanwhile leaves its blobs to the push.
    const lease = await this.leases.create(ctx, {
      id: `push-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`,
      labels: { 'berth.io/push': ref.toString() },
      expiresIn: 24 * 60 * 60 * 1000,
    });
    await this.leases.addResource(ctx, lease.id, { type: 'content', id: image.target.digest });
    const push = new Push(ctx, ref, name, lease.id);
    this.pushes.set(push.id, push);
    push.done = this.run(push, image.target, request.platform);
    return push.view();
  }

  get(id: string): PushView {
    return this.find(id).view();
  }

  list(namespace?: string): PushView[] {
    return [...this.pushes.values()].filter((p) => !namespace || p.ctx.namespace === namespace).map((p) => p.view());
  }

  async wait(id: string): Promise<PushView> {
    const push = this.find(id);
    await push.done;
    return push.view();
  }

  /** Listens to a push's progress; returns the unsubscribe function. */
  subscribe(id: string, fn: (event: { type: string }) => void): () => void {
    const push = this.find(id);
    push.events.on('event', fn);
    return () => push.events.off('event', fn);
  }

  /** Cancels a running push (an ended one is left as it is); its final view. */
  async cancel(id: string): Promise<PushView> {
    const push = this.find(id);
    if (push.state === 'running') push.controller.abort(new BerthError('failed_precondition', `push ${id} cancelled`));
    await push.done;
    return push.view();
  }

  /** At shutdown: running pushes stop (failed, naming the shutdown). */
  async close(): Promise<void> {
    this.closing = true;
    const running = [...this.pushes.values()].filter((p) => p.state === 'running');
    for (const p of running) p.controller.abort(new BerthError('unavailable', `push ${p.id}: the server is shutting down`));
    await Promise.allSettled(running.map((p) => p.done));
  }

  private find(id: string): Push {
    const push = this.pushes.get(id);
    if (!push) throw new BerthError('not_found', `push ${JSON.stringify(id)}: not found`);
    return push;
  }

  private async run(push: Push, root: Descriptor, platform: string | undefined): Promise<void> {
    const ctx: OpContext = { namespace: push.ctx.namespace, lease: push.lease };
    const failed = new AbortController();
    const signal = AbortSignal.any([push.controller.signal, failed.signal]);
    try {
      const plan = await this.plan(ctx, root, platform);
      const target = await pushTarget(push.ref, this.opts.hostsDir);
      push.digest = plan.root.digest;
      for (const d of [...plan.blobs, ...plan.manifests]) push.blob(d);
      push.emit('pushing', { ref: push.ref.toString(), digest: plan.root.digest, mediaType: plan.root.mediaType, size: plan.root.size });
      await this.limited(plan.blobs, (d) => this.pushBlob(push, ctx, target, d, signal)).catch((err) => {
        failed.abort(err);
        throw err;
      });
      for (const m of plan.manifests) await this.pushManifest(push, ctx, target, m, m === plan.root, signal);
      push.state = 'done';
    } catch (err) {
      const cancelled = push.controller.signal.aborted;
      push.state = cancelled && !this.closing ? 'cancelled' : 'failed';
      const cause = cancelled ? push.controller.signal.reason : err;
      push.error = { code: errorCode(cause), message: (cause as Error).message };
    }
    // The lease goes: the image holds its content again (or, deleted meanwhile, lets it go).
    await this.leases.delete(push.ctx, push.lease).catch(() => {});
    push.finishedAt = new Date();
    // The final event names no `digest` (a blob's events do): the manifest the tag names is `target`.
    push.emit(push.state, { ...(push.error ? { error: push.error } : {}), image: push.image, ...(push.digest ? { target: push.digest } : {}) });
    this.bus.publish(push.ctx.namespace, `/pushes/${push.state === 'done' ? 'done' : 'failed'}`, {
      id: push.id,
      ref: push.ref.toString(),
      ...(push.error ? { error: push.error.message } : {}),
    });
    this.prune();
  }

  /**
   * The image's blobs and manifests, all held here (a missing one is a 412 naming it: a platform
   * that was not pulled wants --platform). With a platform, an index gives only its manifest.
   */
  private async plan(ctx: OpContext, root: Descriptor, platform: string | undefined): Promise<Plan> {
    const plan: Plan = { root, blobs: [], manifests: [] };
    if (platform !== undefined && isIndex(root.mediaType)) {
      const children = childrenOf(root, await this.read(ctx, root));
      const [chosen] = selectManifests(children.filter((c) => isManifest(c.mediaType)), onlyMatcher(parsePlatform(platform)), 1, { index: root.digest });
      plan.root = chosen;
    }
    const seen = new Set<string>();
    const visit = async (desc: Descriptor): Promise<void> => {
      if (seen.has(desc.digest)) return;
      seen.add(desc.digest);
      if (!isIndex(desc.mediaType) && !isManifest(desc.mediaType)) {
        await this.stored(ctx, desc);
        plan.blobs.push(desc);
        return;
      }
      for (const child of childrenOf(desc, await this.read(ctx, desc))) await visit(child);
      plan.manifests.push(desc);
    };
    await visit(plan.root);
    return plan;
  }

  private async read(ctx: OpContext, desc: Descriptor): Promise<Buffer> {
    await this.stored(ctx, desc);
    return readBlob({ readerAt: (d) => this.content.readerAt(ctx, d) }, desc.digest);
  }

  private async stored(ctx: OpContext, desc: Descriptor): Promise<void> {
    try {
      await this.content.info(ctx, desc.digest);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      throw failedPrecondition(
        `content ${desc.digest} (${desc.mediaType}) is not in the store: it was not pulled (push one platform with --platform, or pull the others)`,
        err,
      );
    }
  }

  private async pushBlob(push: Push, ctx: OpContext, target: PushTarget, desc: Descriptor, signal: AbortSignal): Promise<void> {
    const blob = push.blob(desc);
    try {
      const info = await this.content.info(ctx, desc.digest);
      blob.state = 'uploading';
      push.emit('uploading', { digest: desc.digest, offset: 0, size: desc.size });
      const outcome = await this.uploader.upload({
        target,
        desc,
        mountFrom: sourceRepositories(info.labels, push.ref.domain),
        open: async (start, end) => (await this.content.readerAt(ctx, desc.digest)).stream(start, end),
        progress: (offset) => {
          blob.offset = offset;
          push.emit('progress', { digest: desc.digest, offset, size: desc.size });
        },
        sent: (n) => {
          blob.bytesSent += n;
          push.bytesSent += n;
        },
        signal,
      });
      blob.state = outcome;
      blob.offset = desc.size;
      push.emit(outcome, { digest: desc.digest, size: desc.size });
      // Remembered, as containerd does: a later push to another repository of the registry mounts it.
      const labels = withSource(info.labels, push.ref.domain, target.repository);
      if (labels) await this.content.update(ctx, desc.digest, labels, [`labels.${sourceLabel(push.ref.domain)}`]);
    } catch (err) {
      blob.state = 'failed';
      throw err;
    }
  }

  private async pushManifest(push: Push, ctx: OpContext, target: PushTarget, desc: Descriptor, root: boolean, signal: AbortSignal): Promise<void> {
    const blob = push.blob(desc);
    blob.state = 'uploading';
    push.emit('uploading', { digest: desc.digest, offset: 0, size: desc.size });
    // A child manifest the registry holds is not sent again; the root always is (the tag moves).
    if (!root && (await manifestExists(this.client, target, desc, signal))) {
      blob.state = 'exists';
    } else {
      const reference = root ? (push.ref.tag ?? desc.digest) : desc.digest;
      await putManifest(this.client, target, desc, reference, async () => (await this.content.readerAt(ctx, desc.digest)).stream(), signal);
      blob.state = 'uploaded';
      blob.bytesSent += desc.size;
      push.bytesSent += desc.size;
    }
    blob.offset = desc.size;
    push.emit(blob.state, { digest: desc.digest, size: desc.size });
  }

  /** Runs `fn` over `items`, at most `concurrency` at a time; the first error stops the rest. */
  private async limited<T>(items: T[], fn: (item: T) => Promise<void>): Promise<void> {
    let next = 0;
    let failed = false;
    const workers = Array.from({ length: Math.min(this.concurrency, items.length) }, async () => {
      while (next < items.length && !failed) {
        await fn(items[next++]).catch((err) => {
          failed = true;
          throw err;
        });
      }
    });
    await Promise.all(workers);
  }

  /** Forgets the oldest ended pushes beyond `keepEndedMax`. */
  private prune(): void {
    const ended = [...this.pushes.values()].filter((p) => p.state !== 'running').sort((a, b) => b.startedAt.getTime() - a.startedAt.getTime());
    for (const p of ended.slice(this.keepEndedMax)) this.pushes.delete(p.id);
  }
}
