// Pulls as resources (containerd's client Pull, done as berth's users asked): resolve, fetch the
// index/manifest/config/layers into the content store under a lease — several layers at once,
// each resumable — label parents so the GC keeps the image whole, and record the image once all
// of it is present. A pull that fails or is cancelled keeps its lease (with an expiry), so the
// next pull of the image resumes every partial blob, across restarts too.
//
// Pulls are durable (with a record store): each is recorded at its changes of state and, while
// it downloads, at a bounded rate (records.ts). After a restart, ended pulls answer again; one
// that was running is `interrupted`, and is resumed under its id: its walk starts again, blobs
// committed before are `exists` to the fetcher and partial ones resume from their offset. Ended
// pulls are pruned by age and count.
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { context, isSpanContextValid, trace } from '@opentelemetry/api';
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
import type { PullRecord, PullStore, StoredPull } from '../metadata/pulls.js';
import { formatTimestamp, parseTimestamp } from '../oci/time.js';
import { PullJournal, type RecordWriter } from './records.js';

/** `interrupted`: it was running when the server stopped, and has not been resumed. */
export type PullState = 'running' | 'interrupted' | 'done' | 'failed' | 'cancelled';
export type BlobState = 'waiting' | 'downloading' | 'done' | 'exists' | 'failed';

/** States in which a pull has ended for good (`interrupted` may yet be resumed). */
const endedStates: ReadonlySet<PullState> = new Set<PullState>(['done', 'failed', 'cancelled']);

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
  /** When the server last resumed it after a restart had interrupted it. */
  resumedAt?: Date;
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
  /** Where pulls are recorded, to answer and resume after a restart (none: in memory only). */
  records?: PullStore;
  /** A running pull's progress is recorded at most this often (ms). */
  progressIntervalMs?: number;
  /** Ended pulls (and interrupted ones not resumed) are forgotten this long after they stopped (ms). */
  keepEndedMs?: number;
  /** At most this many ended pulls are kept (the newest). */
  keepEndedMax?: number;
  /** Told when a pull record cannot be written; the pull goes on. */
  onRecordError?: (err: unknown, pull: string) => void;
}

/** What `restore` found. */
export interface RestoreResult {
  /** Pulls that were running when the server stopped, now running again under their ids. */
  resumed: PullView[];
  /** Pulls that were running when the server stopped, left `interrupted`. */
  interrupted: PullView[];
  /** Stored values that are not pull records (left alone). */
  invalid: Array<{ key: string; reason: string }>;
  /** Ended pulls pruned. */
  pruned: number;
}

const newPullId = (): string => `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const timeOf = (s: string | undefined): Date | undefined => (s === undefined ? undefined : parseTimestamp(s));

class Pull {
  readonly events = new EventEmitter();
  controller = new AbortController();
  readonly blobs = new Map<string, BlobProgress>();
  state: PullState = 'running';
  error?: { code: string; message: string };
  image?: string;
  bytesFetched = 0;
  bytesFromPeers = 0;
  unpacks: UnpackResult[] = [];
  finishedAt?: Date;
  resumedAt?: Date;
  /** Settles when the pull stops running (at once for one restored as ended or interrupted). */
  done: Promise<void> = Promise.resolve();
  /** Writes its record (none without a record store). */
  writer?: RecordWriter;
  /** Blobs it fetched before a restart interrupted it. */
  fetchedBefore: ReadonlySet<string> = new Set();

  constructor(
    readonly ctx: OpContext,
    readonly request: PullRequest,
    readonly lease: string,
    readonly id = newPullId(),
    readonly startedAt = new Date(),
  ) {
    this.events.setMaxListeners(0);
  }

  /** A pull as its record left it (in the state the record has). */
  static fromRecord({ namespace, id, record: r }: StoredPull): Pull {
    const pull = new Pull({ namespace }, { ...r.request }, r.lease, id, timeOf(r.startedAt));
    pull.state = r.state;
    if (r.error) pull.error = { ...r.error };
    if (r.image) pull.image = r.image;
    pull.bytesFetched = r.bytesFetched;
    pull.bytesFromPeers = r.bytesFromPeers;
    for (const b of r.blobs) pull.blobs.set(b.digest, { ...b, sources: { ...b.sources } });
    pull.unpacks = r.unpacks.map((u) => ({ ...u }));
    pull.finishedAt = timeOf(r.finishedAt);
    pull.resumedAt = timeOf(r.resumedAt);
    return pull;
  }

  record(): PullRecord {
    return {
      request: { ...this.request },
      state: this.state,
      ...(this.error ? { error: { ...this.error } } : {}),
      lease: this.lease,
      ...(this.image ? { image: this.image } : {}),
      bytesFetched: this.bytesFetched,
      bytesFromPeers: this.bytesFromPeers,
      blobs: [...this.blobs.values()].map((b) => ({ ...b, sources: { ...b.sources } })),
      unpacks: this.unpacks.map((u) => ({ ...u })),
      startedAt: formatTimestamp(this.startedAt),
      ...(this.finishedAt ? { finishedAt: formatTimestamp(this.finishedAt) } : {}),
      ...(this.resumedAt ? { resumedAt: formatTimestamp(this.resumedAt) } : {}),
      updatedAt: formatTimestamp(new Date()),
    };
  }

  /** Records a change of the pull's state (on disk before it resolves). */
  saveState(): Promise<void> {
    return this.writer?.now(true) ?? Promise.resolve();
  }

  /** Records a blob's change of state, soon after the writes before it. */
  saveBlobs(): void {
    void this.writer?.now();
  }

  /** Records download progress within the journal's interval. */
  saveProgress(): void {
    this.writer?.soon();
  }

  /** When it stopped running (for pruning): when it ended, or when a start found it interrupted. */
  stoppedAt(): number {
    return (this.finishedAt ?? this.startedAt).getTime();
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
      ...(this.resumedAt ? { resumedAt: this.resumedAt } : {}),
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
  private readonly keepEndedMs: number;
  private readonly keepEndedMax: number;
  private readonly unpacker: Unpacker | undefined;
  private readonly journal: PullJournal | undefined;
  private pruneTimer?: NodeJS.Timeout;
  private pruning?: Promise<number>;
  private pruneAgain = false;
  /** Set by close(): pulls stopped by the shutdown are `interrupted`, to be resumed at the next start. */
  private closing = false;

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
    this.keepEndedMs = opts.keepEndedMs ?? 7 * 24 * 60 * 60 * 1000;
    this.keepEndedMax = opts.keepEndedMax ?? 1000;
    this.unpacker = opts.unpacker;
    if (opts.records) {
      const onError = opts.onRecordError;
      this.journal = new PullJournal(opts.records, {
        progressIntervalMs: opts.progressIntervalMs,
        ...(onError ? { onError: (err: unknown, _ns: string, id: string) => onError(err, id) } : {}),
      });
    }
  }

  /** Starts a pull; a malformed reference or platform is refused at once. */
  async start(ctx: OpContext, request: PullRequest): Promise<PullView> {
    const { ref } = this.plan(request);
    // The pull's lease: everything it writes is kept until the image record holds it. It expires
    // on its own, so that a pull that never finishes does not keep its blobs forever.
    const lease = await this.leases.create(ctx, {
      id: `pull-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`,
      labels: { 'berth.io/pull': ref.toString() },
      expiresIn: this.keepFailedMs,
    });
    const pull = this.hold(new Pull(ctx, request, lease.id));
    // Recorded before it is answered: a restart right after the 202 finds it, and resumes it.
    await pull.saveState();
    pull.done = this.run(pull);
    return pull.view();
  }

  /**
   * Loads the pulls recorded before this start (once, before any is started): ended ones answer
   * again; those that were running are `interrupted`, and, with `resume`, running again under
   * their ids. Then prunes, and from now on prunes by itself as time passes.
   */
  async restore(opts: { resume: boolean }): Promise<RestoreResult> {
    const result: RestoreResult = { resumed: [], interrupted: [], invalid: [], pruned: 0 };
    if (!this.journal) return result;
    const { pulls, invalid } = await this.journal.store.load();
    result.invalid = invalid;
    for (const stored of pulls.sort((a, b) => a.record.startedAt.localeCompare(b.record.startedAt))) {
      const pull = this.hold(Pull.fromRecord(stored));
      if (pull.state !== 'running' && pull.state !== 'interrupted') continue;
      if (pull.state === 'running') {
        // It stopped with the server. When that was is not known (a stalled pull writes nothing):
        // it counts as stopped from now, the start that found it.
        pull.state = 'interrupted';
        pull.finishedAt = new Date();
        for (const b of pull.blobs.values()) if (b.state === 'downloading') b.state = 'waiting';
      }
      if (opts.resume) {
        this.resume(pull);
        result.resumed.push(pull.view());
      } else {
        pull.error = {
          code: 'unavailable',
          message: `pull ${pull.id} of ${pull.request.ref} was interrupted by a restart of the server and not resumed (resume_interrupted = false): cancel it, or pull again`,
        };
        await pull.saveState();
        result.interrupted.push(pull.view());
      }
    }
    result.pruned = await this.prune();
    const every = Math.max(1000, Math.min(this.keepEndedMs, 60 * 60 * 1000));
    this.pruneTimer = setInterval(() => void this.prune(), every);
    this.pruneTimer.unref();
    return result;
  }

  /**
   * Forgets ended pulls (records too) that ended more than `keepEndedMs` ago, and the oldest ones
   * beyond the newest `keepEndedMax`; an interrupted pull that was not resumed goes by age only.
   * Running pulls, and everything a pull made (blobs, images, snapshots, leases), stay. Asked for
   * while it runs, it goes round once more.
   */
  prune(): Promise<number> {
    this.pruneAgain = true;
    this.pruning ??= (async () => {
      let pruned = 0;
      while (this.pruneAgain) {
        this.pruneAgain = false;
        pruned += await this.pruneOnce(Date.now());
      }
      return pruned;
    })().finally(() => (this.pruning = undefined));
    return this.pruning;
  }

  private async pruneOnce(now: number): Promise<number> {
    const stopped = [...this.pulls.values()].filter((p) => endedStates.has(p.state) || p.state === 'interrupted');
    const old = new Set(stopped.filter((p) => now - p.stoppedAt() > this.keepEndedMs));
    const ended = stopped.filter((p) => endedStates.has(p.state) && !old.has(p)).sort((a, b) => b.stoppedAt() - a.stoppedAt());
    for (const p of ended.slice(this.keepEndedMax)) old.add(p);
    for (const p of old) {
      this.pulls.delete(p.id);
      if (p.writer) await this.journal!.remove(p.writer);
    }
    return old.size;
  }

  /**
   * At shutdown: running pulls stop, recorded `interrupted` with their last progress, so that the
   * next start resumes them; then no more records are written.
   */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.pruneTimer);
    const running = [...this.pulls.values()].filter((p) => p.state === 'running');
    for (const p of running) p.controller.abort(new BerthError('unavailable', `pull ${p.id}: the server is shutting down`));
    // A pull stops at its next read or write; none is waited for long.
    await Promise.race([Promise.allSettled(running.map((p) => p.done)), new Promise((r) => setTimeout(r, 5000).unref())]);
    await this.journal?.close();
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

  /**
   * Cancels a running or interrupted pull: what it fetched so far stays, for the next pull to
   * resume. An ended pull is left as it is.
   */
  async cancel(id: string): Promise<PullView> {
    const pull = this.find(id);
    const why = new BerthError('failed_precondition', `pull ${id} cancelled`);
    if (pull.state === 'running') pull.controller.abort(why);
    else if (pull.state === 'interrupted') {
      pull.state = 'cancelled';
      pull.error = { code: errorCode(why), message: why.message };
      await this.finished(pull);
    }
    await pull.done;
    return pull.view();
  }

  /** Holds a pull in the list, with the writer of its record. */
  private hold(pull: Pull): Pull {
    this.pulls.set(pull.id, pull);
    pull.writer = this.journal?.writer(pull.ctx.namespace, pull.id, () => pull.record());
    return pull;
  }

  /** What a request pulls: its reference and platform matcher (refused when malformed). */
  private plan(request: PullRequest): { ref: ImageReference; matcher: ReturnType<typeof onlyMatcher> } {
    const ref = parseDockerRef(request.ref);
    if (request.unpack && !this.unpacker) {
      throw new BerthError('not_implemented', `pull ${JSON.stringify(request.ref)}: unpacking is not available on this server`);
    }
    const matcher = request.allPlatforms ? allMatcher : onlyMatcher(request.platform ? parsePlatform(request.platform) : defaultPlatform());
    return { ref, matcher };
  }

  /** Runs an interrupted pull again under its id: the walk starts over, resuming each blob. */
  private resume(pull: Pull): void {
    pull.state = 'running';
    pull.error = undefined;
    pull.finishedAt = undefined;
    pull.resumedAt = new Date();
    pull.controller = new AbortController();
    // Found again by the walk, which records each manifest's unpacking once more.
    pull.unpacks = [];
    pull.fetchedBefore = new Set([...pull.blobs.values()].filter((b) => b.state === 'done').map((b) => b.digest));
    pull.done = (async () => {
      await pull.saveState();
      await this.run(pull, { resumed: true });
    })();
  }

  private find(id: string): Pull {
    const pull = this.pulls.get(id);
    if (!pull) throw new BerthError('not_found', `pull ${JSON.stringify(id)}: not found`);
    return pull;
  }

  private async run(pull: Pull, opts: { resumed?: boolean } = {}): Promise<void> {
    const ctx: OpContext = { namespace: pull.ctx.namespace, lease: pull.lease };
    // Stopped by a cancel, or by the first blob that fails: the other downloads end too.
    const failed = new AbortController();
    const signal = AbortSignal.any([pull.controller.signal, failed.signal]);
    try {
      const { ref, matcher } = this.plan(pull.request);
      // A resumed pull's lease may be gone (expired, or released by a later pull of the image).
      if (opts.resumed) await this.ensureLease(pull, ref);
      // A pull is a trace of its own: it runs on long after the request that started it was
      // answered (202), and a resumed one has no request. That request's span is linked from it.
      const requestSpan = trace.getSpanContext(context.active());
      await context.with(trace.deleteSpan(context.active()), () => withSpan('pull', { 'berth.ref': ref.toString(), 'berth.pull': pull.id }, async (span) => {
        if (requestSpan && isSpanContextValid(requestSpan)) span.addLink({ context: requestSpan });
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
      }));
      // The image holds everything now: this pull's lease can go, and so can those of earlier
      // failed or cancelled pulls of the same image (their partial blobs are committed now).
      await this.releaseLeases(pull, ref);
      pull.state = 'done';
    } catch (err) {
      if (this.closing) {
        // Stopped by the shutdown: recorded `interrupted` (with its last progress), and resumed at
        // the next start. Nobody is told it ended, for it has not: its event streams close with
        // the server, and `berth pull` re-attaches once the server is back.
        pull.state = 'interrupted';
        pull.finishedAt = new Date();
        await pull.saveState();
        return;
      }
      const cancelled = pull.controller.signal.aborted;
      pull.state = cancelled ? 'cancelled' : 'failed';
      const cause = cancelled ? pull.controller.signal.reason : err;
      pull.error = { code: errorCode(cause), message: (cause as Error).message };
    }
    await this.finished(pull);
  }

  /** A pull has ended: recorded, told to its followers and on the event bus; old pulls pruned. */
  private async finished(pull: Pull): Promise<void> {
    pull.finishedAt = new Date();
    await pull.saveState();
    pull.emit(pull.state, { ...(pull.error ? { error: pull.error } : {}), ...(pull.image ? { image: pull.image } : {}) });
    this.bus.publish(pull.ctx.namespace, `/pulls/${pull.state === 'done' ? 'done' : 'failed'}`, {
      id: pull.id,
      ref: pull.request.ref,
      ...(pull.error ? { error: pull.error.message } : {}),
    });
    await this.prune();
  }

  /** Makes the pull's lease again if it is gone, under the same id. */
  private async ensureLease(pull: Pull, ref: ImageReference): Promise<void> {
    try {
      await this.leases.create(pull.ctx, { id: pull.lease, labels: { 'berth.io/pull': ref.toString() }, expiresIn: this.keepFailedMs });
    } catch (err) {
      if (errorCode(err) !== 'already_exists') throw err;
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
    pull.saveBlobs();
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
            pull.saveBlobs();
            pull.emit('downloading', { digest: desc.digest, offset, size: desc.size, source: from });
          },
          wrote: (n, from) => {
            blob.offset += n;
            blob.sources[from] = (blob.sources[from] ?? 0) + n;
            pull.bytesFetched += n;
            if (from !== 'upstream') pull.bytesFromPeers += n;
            pull.saveProgress();
            pull.emit('progress', { digest: desc.digest, offset: blob.offset, size: desc.size });
          },
        },
        signal,
      });
      // A blob this pull fetched before a restart is found stored when it resumes: still `done`.
      blob.state = outcome === 'fetched' || pull.fetchedBefore.has(desc.digest) ? 'done' : 'exists';
      blob.offset = desc.size;
      feed?.ready();
      pull.saveBlobs();
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
