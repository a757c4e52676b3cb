// Pull-through: one upstream fetch per blob however many clients ask for it. The first client
// starts the fetch through the pull's BlobFetcher (resumable, verified, in the store under a
// lease); every client — the first included — streams the bytes from the growing ingest through
// the store as they arrive, so the time to the first byte does not grow with the blob. A client
// that goes away does not stop the fetch. The last bytes of a blob reach a client only once the
// store has committed it, that is once its digest is verified: a corrupt blob never completes.
import { Readable } from 'node:stream';
import { errorCode } from '../../store/errors.js';
import type { MetadataContentStore } from '../metadata/content.js';
import type { OpContext } from '../metadata/context.js';
import type { LeaseManager } from '../metadata/leases.js';
import type { Descriptor } from '../oci/descriptor.js';
import { ingestRef } from '../pull/children.js';
import type { BlobFetcher } from '../pull/fetch.js';
import type { ImageReference } from '../remotes/reference.js';
import type { ByteRange } from './range.js';
import type { RegistryCounters, ServedFrom } from './stats.js';

/** How long a fetch's lease keeps what nothing else references yet (a blob asked for alone). */
const leaseExpiryMs = 60 * 60 * 1000;

export interface Flight {
  /** `pull-through` for the client that started the fetch, `follower` for the others. */
  from: ServedFrom;
  /** Settles when the blob is committed (or the fetch failed). */
  done: Promise<void>;
  /** The bytes of `range` as they arrive; the stream fails if the fetch does. */
  follow(range: ByteRange | undefined, signal: AbortSignal): Promise<Readable>;
}

interface Fetching {
  /** Resolves once the ingest is open (something to follow) or the fetch has ended. */
  followable: Promise<void>;
  done: Promise<void>;
}

export class PullThrough {
  private readonly fetching = new Map<string, Fetching>();
  /** Aborts every fetch when the listener closes. */
  private readonly closing = new AbortController();

  constructor(
    private readonly content: MetadataContentStore,
    private readonly fetcher: BlobFetcher,
    private readonly leases: LeaseManager,
    private readonly counters: RegistryCounters,
  ) {}

  /**
   * Joins the fetch of `desc` from `ref`'s registry, starting it if none runs. The fetch's lease
   * is released once the blob is committed when `referenced()` then says that something else
   * keeps it (a manifest served here lists it); otherwise it expires on its own.
   */
  join(ctx: OpContext, ref: ImageReference, desc: Descriptor, referenced: () => boolean): Flight {
    let fetching = this.fetching.get(desc.digest);
    const from: ServedFrom = fetching ? 'follower' : 'pull-through';
    if (!fetching) {
      fetching = this.start(ctx, ref, desc, referenced);
      this.fetching.set(desc.digest, fetching);
      const started = fetching;
      const forget = () => {
        if (this.fetching.get(desc.digest) === started) this.fetching.delete(desc.digest);
      };
      started.done.then(forget, forget);
    }
    const { followable, done } = fetching;
    return {
      from,
      done,
      follow: async (range, signal) => {
        await Promise.race([followable, done.then(() => {})]).then(() => signal.throwIfAborted());
        return this.followIngest(ctx, desc, done, range, signal);
      },
    };
  }

  /**
   * A fetch of `digest` this node runs anyway (a pull, or another client's pull-through) in this
   * namespace, for a peer to follow; undefined when there is none. A peer never starts a fetch
   * here: it asks only for what this node holds or is fetching (no requests loop between nodes).
   */
  download(ctx: OpContext, digest: string): { size: number; follow(range: ByteRange | undefined, signal: AbortSignal): Promise<Readable> } | undefined {
    const download = this.fetcher.downloading(digest);
    if (!download || download.ctx.namespace !== ctx.namespace) return undefined;
    const { desc, done } = download;
    // The download's own promise rejects when it stops short: the peer's stream fails with it,
    // instead of waiting on an ingest nobody writes any more.
    return { size: desc.size, follow: (range, signal) => this.followIngest(ctx, desc, done, range, signal, true) };
  }

  /** The bytes of `range` of `desc` from its ingest as they arrive, or from the blob once committed. */
  private async followIngest(
    ctx: OpContext,
    desc: Descriptor,
    done: Promise<void>,
    range: ByteRange | undefined,
    signal: AbortSignal,
    failWithDone = false,
  ): Promise<Readable> {
    const start = range?.start ?? 0;
    const end = range?.end ?? desc.size;
    let stop = signal;
    if (failWithDone) {
      const stopped = new AbortController();
      done.catch((err: unknown) => stopped.abort(err));
      stop = AbortSignal.any([signal, stopped.signal]);
    }
    let bytes: Readable;
    try {
      bytes = await this.content.follow(ctx, { ref: ingestRef(desc), digest: desc.digest, offset: start, signal: stop });
    } catch (err) {
      // Between the store's commit and the namespace's record of it there is neither an
      // ingest nor a blob to follow: the blob is there once the fetch is done.
      if (errorCode(err) !== 'not_found') throw err;
      await done;
      bytes = await this.content.follow(ctx, { digest: desc.digest, offset: start, signal });
    }
    return Readable.from(bounded(bytes, end - start, end === desc.size), { objectMode: false });
  }

  close(): void {
    this.closing.abort(new Error('the registry listener is closing'));
  }

  private start(ctx: OpContext, ref: ImageReference, desc: Descriptor, referenced: () => boolean): Fetching {
    let markFollowable!: () => void;
    const followable = new Promise<void>((resolve) => (markFollowable = resolve));
    const done = (async () => {
      const lease = await this.leases.create(ctx, {
        id: `registry-${desc.digest.slice(-12)}-${Date.now().toString(36)}`,
        labels: { 'berth.io/registry': ref.toString() },
        expiresIn: leaseExpiryMs,
      });
      await this.fetcher.fetch({
        ctx: { ...ctx, lease: lease.id },
        ref,
        desc,
        labels: {},
        progress: {
          started: () => markFollowable(),
          wrote: (n, source) => {
            if (source === 'upstream') this.counters.bytesFetchedUpstream += n;
            else this.counters.bytesFetchedFromPeers += n;
          },
        },
        signal: this.closing.signal,
      });
      if (referenced()) await this.leases.delete(ctx, lease.id).catch(() => {});
    })();
    void done.then(markFollowable, markFollowable);
    // Clients see a failure through their streams; nobody may be left to see it here.
    done.catch(() => {});
    return { followable, done };
  }
}

/**
 * At most `limit` bytes of `source`. With `holdLast`, the range's last byte is held back until the
 * source ends — which a follower of an ingest does only after the commit verified the digest —
 * so a client never receives a complete body of bytes that turned out wrong; every byte before it
 * goes out as soon as it is on disk.
 */
async function* bounded(source: Readable, limit: number, holdLast: boolean): AsyncGenerator<Buffer> {
  let sent = 0;
  let held: Buffer | undefined;
  try {
    for await (const piece of source as AsyncIterable<Buffer>) {
      const room = limit - sent;
      if (room <= 0) break;
      const chunk = piece.length > room ? piece.subarray(0, room) : piece;
      sent += chunk.length;
      if (holdLast && sent === limit) {
        if (chunk.length > 1) yield chunk.subarray(0, chunk.length - 1);
        held = chunk.subarray(chunk.length - 1);
        continue; // read on to the end of the source: its end is the commit
      }
      if (chunk.length > 0) yield chunk;
      if (!holdLast && sent >= limit) return;
    }
    if (held) yield held;
  } finally {
    source.destroy();
  }
}
