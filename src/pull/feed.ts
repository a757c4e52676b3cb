// A blob's bytes from its first byte while it is still downloading, for the unpacker: once the
// download has its ingest open (or the blob is present), the feed follows the ingest through the
// content store, which reads behind the writer (from the page cache, not the network), waits
// when it catches up, and ends only once the blob is committed — until then the layer must not be
// committed on top of it. A download that resumed a partial ingest is read from 0 all the same.
// A pull that gives up on the blob fails the feed's readers: the ingest would wait for a writer
// that is not coming.
import { BerthError } from '../../store/errors.js';
import type { MetadataContentStore } from '../metadata/content.js';
import type { OpContext } from '../metadata/context.js';
import type { Descriptor } from '../oci/descriptor.js';
import { ingestRef } from './children.js';
import { waitUnlessAborted } from './fetch.js';

export class BlobFeed {
  /** Resolves once there is something to follow. */
  private readonly followable: Promise<void>;
  private markFollowable!: () => void;
  private readonly failure = new AbortController();

  constructor(
    private readonly content: MetadataContentStore,
    private readonly ctx: OpContext,
    readonly desc: Descriptor,
  ) {
    this.followable = new Promise((resolve) => (this.markFollowable = resolve));
  }

  /** The download has the blob's ingest open, or the blob is present. */
  ready(): void {
    this.markFollowable();
  }

  /** The pull gave up on the blob. */
  failed(err: unknown): void {
    this.failure.abort(
      new BerthError('unavailable', `layer ${this.desc.digest}: the download failed: ${(err as Error)?.message ?? 'unknown error'}`, {
        cause: err,
      }),
    );
  }

  /** The blob's bytes in order; the last arrive once the blob is committed. */
  async *bytes(signal: AbortSignal): AsyncGenerator<Uint8Array> {
    const stop = AbortSignal.any([signal, this.failure.signal]);
    await waitUnlessAborted(this.followable, stop);
    yield* await this.content.follow(this.ctx, { ref: ingestRef(this.desc), digest: this.desc.digest, signal: stop });
  }
}
