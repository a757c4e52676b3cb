// Images in and out as archives (`ctr images export|import`): export streams the OCI layout of
// stored images with the blobs kept from the GC by a lease while they are read; import writes an
// archive's blobs under a lease (the caller's, or one of its own that goes when the images are
// recorded — or, after a refusal, with everything it held), records the images the archive
// names and, if asked, unpacks them as a pull does.
import { Readable } from 'node:stream';
import { BerthError, errorCode } from '../../store/errors.js';
import { exportStream, planExport, type ExportOptions } from '../archive/export.js';
import { importArchive, type ImportSink } from '../archive/import.js';
import type { OpContext } from '../metadata/context.js';
import type { MetadataContentStore } from '../metadata/content.js';
import type { Image } from '../metadata/images.js';
import type { LeaseManager } from '../metadata/leases.js';
import type { UnpackResult } from '../unpack/unpacker.js';
import type { ImageService } from './images.js';
import type { UnpackService } from './unpack.js';

/** How long a lease of an export or import keeps what it holds if berth stops before deleting it. */
const leaseExpiryMs = 60 * 60 * 1000;

export interface ArchiveExport {
  /** Bytes of the archive (known before the first is sent). */
  size: number;
  stream: Readable;
}

export interface ArchiveImportOptions {
  baseName?: string;
  digests?: boolean;
  /** Unpack each image recorded into `snapshotter` (default: the server's). */
  unpack?: boolean;
  snapshotter?: string;
}

export interface ArchiveImport {
  images: Image[];
  blobs: number;
  bytes: number;
  unpacked?: Array<UnpackResult & { image: string }>;
}

export class ImageArchiveService {
  constructor(
    private readonly images: ImageService,
    private readonly content: MetadataContentStore,
    private readonly leases: LeaseManager,
    /** Absent when no snapshotter loaded: import with unpack is then not_implemented. */
    private readonly unpacker?: UnpackService,
  ) {}

  /** The archive of the images `names`; 412 naming a blob the store lacks (unless skipMissing). */
  async export(ctx: OpContext, names: string[], opts: ExportOptions = {}): Promise<ArchiveExport> {
    const images = [];
    for (const name of names) images.push(await this.images.get(ctx, name));
    const source = {
      info: (digest: string) => this.content.info(ctx, digest),
      readerAt: (digest: string) => this.content.readerAt(ctx, digest),
    };
    const plan = await planExport(source, images, opts);
    // The blobs are kept while they stream, whatever happens to the images meanwhile.
    const lease = await this.leases.create(ctx, { labels: { 'berth.io/export': names.join(',').slice(0, 256) }, expiresIn: leaseExpiryMs });
    const release = () => void this.leases.delete(ctx, lease.id).catch(() => {}); // it expires by itself otherwise
    try {
      for (const digest of plan.blobs) await this.leases.addResource(ctx, lease.id, { type: 'content', id: digest });
    } catch (err) {
      release();
      throw err;
    }
    const stream = Readable.from(exportStream(source, plan), { objectMode: false });
    stream.once('close', release);
    return { size: plan.size, stream };
  }

  async import(ctx: OpContext, body: AsyncIterable<Uint8Array>, opts: ArchiveImportOptions = {}): Promise<ArchiveImport> {
    if (opts.snapshotter !== undefined && !opts.unpack) throw new BerthError('invalid_argument', 'import: snapshotter is for unpack: true');
    if (opts.unpack && !this.unpacker) throw new BerthError('not_implemented', 'import: no snapshotter is loaded to unpack into');
    const own = ctx.lease ? undefined : await this.leases.create(ctx, { labels: { 'berth.io/import': 'archive' }, expiresIn: leaseExpiryMs });
    const leased: OpContext = { ...ctx, lease: ctx.lease ?? own!.id };
    try {
      const result = await importArchive(body, this.sink(leased), { baseName: opts.baseName || undefined, digests: opts.digests });
      const images: Image[] = [];
      for (const { name, target } of result.images) images.push(await this.record(ctx, name, target));
      const out: ArchiveImport = { images, blobs: result.blobs, bytes: result.bytes };
      if (opts.unpack) {
        out.unpacked = [];
        for (const image of images) {
          out.unpacked.push({ image: image.name, ...(await this.unpacker!.unpack(ctx, image.name, { snapshotter: opts.snapshotter })) });
        }
      }
      return out;
    } finally {
      if (own) await this.leases.delete(ctx, own.id).catch(() => {}); // it expires by itself otherwise
    }
  }

  /** Creates the image, or points an existing one of that name at the new target (as ctr import). */
  private async record(ctx: OpContext, name: string, target: Image['target']): Promise<Image> {
    try {
      return await this.images.create(ctx, { name, target });
    } catch (err) {
      if (errorCode(err) !== 'already_exists') throw err;
      return this.images.update(ctx, { name, target }, ['target']);
    }
  }

  private sink(ctx: OpContext): ImportSink {
    const content = this.content;
    return {
      writer: (ref, digest, size) => content.writer(ctx, { ref, ...(digest ? { digest } : {}), size }),
      abort: (ref) => content.abort(ctx, ref),
      info: (digest) => content.info(ctx, digest),
      readerAt: (digest) => content.readerAt(ctx, digest),
      label: async (digest, labels) => {
        await content.update(ctx, digest, labels, Object.keys(labels).map((k) => `labels.${k}`));
      },
    };
  }
}
