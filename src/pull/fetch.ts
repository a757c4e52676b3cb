// Fetching one blob into the content store: resumed from whatever its ingest already holds
// (`Range: bytes=N-`), retried from the new offset when the connection is cut, verified at
// commit — and fetched once however many pulls want it at the same time (single flight: the
// others wait for that download, then adopt the blob; no lock polling). Where the bytes come from
// — the upstream, or peers in a fleet — is sources.ts's choice, made again at every resume; a
// download in the fleet's namespace is advertised to the fleet from its start, so peers can
// follow it, and withdrawn if it stops short.
import { BerthError, errorCode } from '../../store/errors.js';
import type { MetadataContentStore } from '../metadata/content.js';
import type { OpContext } from '../metadata/context.js';
import type { Descriptor } from '../oci/descriptor.js';
import type { Resolver } from '../remotes/resolver.js';
import type { ImageReference } from '../remotes/reference.js';
import { withSpan } from '../../store/telemetry.js';
import { writeStream } from '../../store/copy.js';
import { ingestRef } from './children.js';
import { BlobSources, SourceChoice, type Peers, type SourceName } from './sources.js';

export interface FetchProgress {
  /**
   * An attempt at the blob started at `offset`, from `source`; its ingest is open for writing,
   * so it can be followed through the content store.
   */
  started(offset: number, source: SourceName): void;
  /** `bytes` more arrived from `source` and are on disk. */
  wrote(bytes: number, source: SourceName): void;
}

/** One blob to make present in the context's namespace (and lease), and who hears how it goes. */
export interface FetchRequest {
  ctx: OpContext;
  ref: ImageReference;
  desc: Descriptor;
  /** Labels for the committed blob. */
  labels: Record<string, string>;
  progress: FetchProgress;
  signal?: AbortSignal;
}

export type FetchOutcome = 'fetched' | 'exists';

export interface BlobFetcherOptions {
  /** Attempts per blob when the connection is cut (each resumes where the last stopped). */
  attempts?: number;
}

/** A download in progress on this node: what a peer asking for the blob follows. */
export interface Download {
  ctx: OpContext;
  desc: Descriptor;
  /** Settles when the download ends: committed (resolves) or stopped short (rejects). */
  done: Promise<void>;
}

export class BlobFetcher {
  /** Downloads in flight, by digest: shared by every pull in this server. */
  private readonly flights = new Map<string, Download>();
  private readonly attempts: number;
  private readonly sources: BlobSources;

  constructor(
    private readonly content: MetadataContentStore,
    resolver: Resolver,
    opts: BlobFetcherOptions = {},
  ) {
    this.attempts = opts.attempts ?? 5;
    this.sources = new BlobSources(resolver);
  }

  /** The fleet joins (or, with undefined, leaves): downloads then use and tell peers. */
  usePeers(peers: Peers | undefined): void {
    this.sources.usePeers(peers);
  }

  /** What `ref`'s tag names according to the peers (for when the upstream does not answer). */
  resolveFromPeers(ref: ImageReference, signal?: AbortSignal): Promise<Descriptor | undefined> {
    return this.sources.resolveFromPeers(ref, signal);
  }

  /** The download of `digest` running on this node, if any. */
  downloading(digest: string): Download | undefined {
    return this.flights.get(digest);
  }

  /** Makes the blob present: fetched, or already there. */
  async fetch(req: FetchRequest): Promise<FetchOutcome> {
    const { desc, signal } = req;
    if (desc.size <= 0) {
      throw new BerthError('invalid_argument', `unable to fetch descriptor (${desc.digest}) which reports content size of zero`);
    }
    for (;;) {
      const flight = this.flights.get(desc.digest);
      if (!flight) break;
      // Someone is downloading it: wait (or give up when cancelled), then adopt what they
      // committed — or try ourselves.
      await waitUnlessAborted(flight.done.catch(() => {}), signal);
    }
    let outcome: FetchOutcome = 'exists';
    const done = this.download(req).then((o) => {
      outcome = o;
    });
    this.flights.set(desc.digest, { ctx: req.ctx, desc, done });
    try {
      await done;
    } finally {
      this.flights.delete(desc.digest);
    }
    return outcome;
  }

  private download({ ctx, ref, desc, labels, progress, signal }: FetchRequest): Promise<FetchOutcome> {
    return withSpan('pull.fetch', { 'berth.digest': desc.digest, 'berth.size': desc.size }, async (span) => {
      let writer;
      try {
        writer = await this.content.writer(ctx, { ref: ingestRef(desc), size: desc.size, digest: desc.digest });
      } catch (err) {
        if (errorCode(err) === 'already_exists') return 'exists';
        throw err;
      }
      const fleet = this.sources.shares(ctx);
      const choice = new SourceChoice(ctx, ref, desc, signal);
      let committed = false;
      try {
        const resumedFrom = writer.status().offset;
        span.setAttribute('berth.resumed_offset', resumedFrom);
        let fetched = false;
        // Failed attempts in a row that brought nothing.
        let fruitless = 0;
        while (writer.status().offset < desc.size) {
          const offset = writer.status().offset;
          fleet?.advertise(desc.digest, desc.size, offset, false);
          let source: SourceName = 'upstream';
          let failure: unknown;
          try {
            const opened = await this.sources.open(choice, offset);
            source = opened.source;
            progress.started(offset, source);
            fetched = true;
            await writeStream(writer, opened.body, (n) => {
              progress.wrote(n, source);
              fleet?.advertise(desc.digest, desc.size, writer.status().offset, false);
            });
          } catch (err) {
            signal?.throwIfAborted();
            if (errorCode(err) !== 'internal' && errorCode(err) !== 'unavailable') throw err;
            failure = err;
          }
          if (writer.status().offset >= desc.size) break;
          // Cut mid-blob (or a body that ended short): go on from what arrived, from another
          // source if a peer failed — unless attempts in a row brought nothing.
          if (source !== 'upstream') choice.failed.add(source.slice('peer '.length));
          fruitless = writer.status().offset > offset ? 0 : fruitless + 1;
          if (fruitless >= this.attempts) {
            throw failure ?? new BerthError('unavailable', `blob ${desc.digest}: no progress after ${fruitless} attempts at offset ${offset}`);
          }
        }
        try {
          await writer.commit(desc.size, desc.digest, { labels });
        } catch (err) {
          if (errorCode(err) === 'already_exists') {
            committed = true; // by another writer: the blob is here all the same
            return 'exists';
          }
          if (errorCode(err) === 'failed_precondition') {
            // Corrupt bytes: start this blob over next time rather than resume into them.
            await this.content.abort(ctx, ingestRef(desc)).catch(() => {});
            throw new BerthError('failed_precondition', `blob ${desc.digest} (${desc.mediaType}): ${(err as Error).message}`, { cause: err });
          }
          throw err;
        }
        committed = true;
        return fetched || resumedFrom < desc.size ? 'fetched' : 'exists';
      } finally {
        await choice.release();
        if (fleet) {
          // Complete: advertised as such (the blob is served from the store now). Stopped short:
          // the partial ingest is not being written, so peers must not wait on it.
          if (committed) fleet.advertise(desc.digest, desc.size, desc.size, true);
          else await fleet.withdraw(desc.digest).catch(() => {});
        }
        await writer.close();
      }
    });
  }
}

/** Resolves with `p`, or rejects with the signal's reason as soon as it aborts. */
export function waitUnlessAborted(p: Promise<void>, signal?: AbortSignal): Promise<void> {
  if (!signal) return p;
  signal.throwIfAborted();
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
