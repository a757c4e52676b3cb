// Fetching one blob into the content store: resumed from whatever its ingest already holds
// (`Range: bytes=N-`), retried from the new offset when the connection is cut, verified at
// commit — and fetched once however many pulls want it at the same time (single flight: the
// others wait for that download, then adopt the blob; no lock polling).
import { BerthError, errorCode } from '../../store/errors.js';
import type { MetadataContentStore } from '../metadata/content.js';
import type { OpContext } from '../metadata/context.js';
import type { Descriptor } from '../oci/descriptor.js';
import type { Resolver } from '../remotes/resolver.js';
import type { ImageReference } from '../remotes/reference.js';
import { withSpan } from '../../store/telemetry.js';
import { writeStream } from '../../store/copy.js';
import { ingestRef } from './children.js';

export interface FetchProgress {
  /**
   * An attempt at the blob started at `offset`; its ingest is open for writing, so it can be
   * followed through the content store.
   */
  started(offset: number): void;
  /** `bytes` more arrived and are on disk. */
  wrote(bytes: number): void;
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

export class BlobFetcher {
  /** Downloads in flight, by digest: shared by every pull in this server. */
  private readonly flights = new Map<string, Promise<void>>();
  private readonly attempts: number;

  constructor(
    private readonly content: MetadataContentStore,
    private readonly resolver: Resolver,
    opts: BlobFetcherOptions = {},
  ) {
    this.attempts = opts.attempts ?? 5;
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
      await waitUnlessAborted(flight.catch(() => {}), signal);
    }
    let outcome: FetchOutcome = 'exists';
    const flight = this.download(req).then((o) => {
      outcome = o;
    });
    this.flights.set(desc.digest, flight);
    try {
      await flight;
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
      try {
        const resumedFrom = writer.status().offset;
        span.setAttribute('berth.resumed_offset', resumedFrom);
        let fetched = false;
        for (let attempt = 1; writer.status().offset < desc.size; attempt++) {
          const offset = writer.status().offset;
          progress.started(offset);
          fetched = true;
          try {
            const body = await this.resolver.fetch(ref, desc, offset, signal);
            await writeStream(writer, body, (n) => progress.wrote(n));
          } catch (err) {
            signal?.throwIfAborted();
            const advanced = writer.status().offset > offset;
            if (attempt >= this.attempts && !advanced) throw err;
            if (errorCode(err) !== 'internal' && errorCode(err) !== 'unavailable') throw err;
            // Cut mid-blob: go on from what arrived.
          }
          if (writer.status().offset === offset && attempt >= this.attempts) {
            throw new BerthError('unavailable', `blob ${desc.digest}: no progress after ${attempt} attempts at offset ${offset}`);
          }
        }
        try {
          await writer.commit(desc.size, desc.digest, { labels });
        } catch (err) {
          if (errorCode(err) === 'already_exists') return 'exists';
          if (errorCode(err) === 'failed_precondition') {
            // Corrupt bytes: start this blob over next time rather than resume into them.
            await this.content.abort(ctx, ingestRef(desc)).catch(() => {});
            throw new BerthError('failed_precondition', `blob ${desc.digest} (${desc.mediaType}): ${(err as Error).message}`, { cause: err });
          }
          throw err;
        }
        return fetched || resumedFrom < desc.size ? 'fetched' : 'exists';
      } finally {
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
