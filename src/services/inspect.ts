// `images inspect`: what an image is made of, read from the content store — the index (if the
// target is one), the manifest chosen for a platform, its config, the layers with their diff
// IDs, the platforms on offer, the build history and the total size. Nothing is fetched: a blob
// the store does not have is a not_found naming it.
import { BerthError, errorCode, notFound } from '../../store/errors.js';
import type { MetadataContentStore } from '../metadata/content.js';
import type { OpContext } from '../metadata/context.js';
import type { ImageStore } from '../metadata/images.js';
import { isIndex, isManifest } from '../oci/mediatypes.js';
import { defaultMatcher, onlyMatcher } from '../oci/platforms/match.js';
import { defaultPlatform } from '../oci/platforms/host.js';
import { formatPlatform, parsePlatform } from '../oci/platforms/parse.js';
import { selectManifests } from '../pull/select.js';
import { type OciPlatform } from '../oci/platforms/types.js';
import type { Descriptor } from '../oci/descriptor.js';
import { readBlob } from '../../store/copy.js';

type Json = Record<string, unknown>;

export interface InspectedLayer {
  digest: string;
  size: number;
  mediaType: string;
  /** The uncompressed layer's digest, from the config's `rootfs.diff_ids` (absent if it has none). */
  diffId?: string;
}

export interface ImageInspection {
  name: string;
  target: Descriptor;
  /** The target's JSON when it is an index (OCI index or Docker manifest list). */
  index?: Json;
  /** The descriptor of the manifest shown (the target itself, or the index's chosen child). */
  manifestDescriptor: Descriptor;
  manifest: Json;
  config: Json;
  layers: InspectedLayer[];
  /** The manifest's platform (`os/arch[/variant]`), from the index entry or the config. */
  platform?: string;
  /** Every platform the image offers: the index's entries, or the single manifest's. */
  platforms: string[];
  /** The config's `history`. */
  history: unknown[];
  /** Bytes of the index (if any), the manifest, its config and its layers. */
  totalSize: number;
}

export interface InspectOptions {
  /** Which manifest of an index to show; default: the best match for this host that is stored. */
  platform?: string;
}

/** Nested indexes followed at most (an index of indexes of ...). */
const maxDepth = 4;

export class ImageInspector {
  constructor(
    private readonly images: ImageStore,
    private readonly content: MetadataContentStore,
  ) {}

  async inspect(ctx: OpContext, name: string, opts: InspectOptions = {}): Promise<ImageInspection> {
    const image = await this.images.get(ctx, name);
    const matcher = opts.platform ? onlyMatcher(parsePlatform(opts.platform)) : defaultMatcher();
    const target: Descriptor = { ...image.target };
    let totalSize = 0;
    let index: Json | undefined;
    let platforms: string[] = [];
    let platform: string | undefined;
    let desc = target;
    for (let depth = 0; isIndex(desc.mediaType); depth++) {
      if (depth >= maxDepth) throw failed(name, `indexes nested deeper than ${maxDepth} levels`);
      const doc = await this.readJson(ctx, name, 'index', desc);
      totalSize += desc.size;
      const children = descriptors(name, doc.manifests, `index ${desc.digest}`);
      if (depth === 0) {
        index = doc;
        platforms = unique(children.filter((c) => c.platform).map((c) => formatPlatform(c.platform!)));
      }
      const child = await this.choose(ctx, name, desc, children, matcher, opts.platform);
      if (child.platform) platform = formatPlatform(child.platform);
      desc = child;
    }
    if (!isManifest(desc.mediaType)) {
      throw failed(name, `${desc === target ? 'target' : 'manifest'} ${desc.digest} has media type ${JSON.stringify(desc.mediaType)}, not an image manifest or index`);
    }
    const manifest = await this.readJson(ctx, name, 'manifest', desc);
    totalSize += desc.size;
    const [configDesc] = descriptors(name, manifest.config === undefined ? [] : [manifest.config], `manifest ${desc.digest} config`);
    if (!configDesc) throw failed(name, `manifest ${desc.digest} has no config`);
    const config = await this.readJson(ctx, name, 'config', configDesc);
    totalSize += configDesc.size;
    const diffIds = ((config.rootfs as { diff_ids?: unknown } | undefined)?.diff_ids ?? []) as unknown[];
    const layers = descriptors(name, manifest.layers ?? [], `manifest ${desc.digest} layers`).map((l, i) => {
      totalSize += l.size;
      const diffId = diffIds[i];
      return { digest: l.digest, size: l.size, mediaType: l.mediaType, ...(typeof diffId === 'string' ? { diffId } : {}) };
    });
    if (typeof config.os === 'string' && typeof config.architecture === 'string') {
      const own = formatPlatform(config as unknown as OciPlatform);
      platform ??= own;
      if (!index) platforms = [own];
    }
    return {
      name: image.name,
      target,
      ...(index ? { index } : {}),
      manifestDescriptor: { mediaType: desc.mediaType, digest: desc.digest, size: desc.size },
      manifest,
      config,
      layers,
      ...(platform ? { platform } : {}),
      platforms,
      history: Array.isArray(config.history) ? config.history : [],
      totalSize,
    };
  }

  /**
   * The child of an index to show: the best match for the platform that the store has. Without
   * a platform asked for, any stored child will do when none for this host is (an image pulled
   * for another platform).
   */
  private async choose(
    ctx: OpContext,
    name: string,
    index: Descriptor,
    children: Descriptor[],
    matcher: ReturnType<typeof defaultMatcher>,
    asked: string | undefined,
  ): Promise<Descriptor> {
    const preferred = selectManifests(children, matcher, 0, { requireMatch: false });
    for (const c of preferred) if (await this.has(ctx, c.digest)) return c;
    if (asked === undefined) {
      for (const c of children) if (await this.has(ctx, c.digest)) return c;
    }
    if (preferred.length === 0) {
      throw notFound(`image ${JSON.stringify(name)}: index ${index.digest} has no manifest for platform ${asked ?? formatPlatform(defaultPlatform())}`);
    }
    throw notFound(
      `image ${JSON.stringify(name)}: manifest ${preferred[0].digest}${preferred[0].platform ? ` (${formatPlatform(preferred[0].platform)})` : ''} is not in the content store`,
    );
  }

  private async has(ctx: OpContext, digest: string): Promise<boolean> {
    try {
      await this.content.info(ctx, digest);
      return true;
    } catch (err) {
      if (errorCode(err) === 'not_found') return false;
      throw err;
    }
  }

  private async readJson(ctx: OpContext, name: string, what: string, desc: Descriptor): Promise<Json> {
    let body: Buffer;
    try {
      body = await readBlob({ readerAt: (d) => this.content.readerAt(ctx, d) }, desc.digest);
    } catch (err) {
      if (errorCode(err) === 'not_found') {
        throw notFound(`image ${JSON.stringify(name)}: ${what} ${desc.digest} is not in the content store`, err);
      }
      throw err;
    }
    let doc: unknown;
    try {
      doc = JSON.parse(body.toString('utf8'));
    } catch (err) {
      throw failed(name, `${what} ${desc.digest} is not JSON: ${(err as Error).message}`, err);
    }
    if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw failed(name, `${what} ${desc.digest} is not a JSON object`);
    return doc as Json;
  }
}

function failed(name: string, message: string, cause?: unknown): BerthError {
  return new BerthError('failed_precondition', `image ${JSON.stringify(name)}: ${message}`, { cause });
}

/** The descriptors a document lists, checked enough to be read safely. */
function descriptors(name: string, list: unknown, where: string): Descriptor[] {
  if (!Array.isArray(list)) throw failed(name, `${where}: not a list of descriptors`);
  for (const d of list as Array<Partial<Descriptor> | null>) {
    if (!d || typeof d.digest !== 'string' || typeof d.mediaType !== 'string' || !Number.isSafeInteger(d.size)) {
      throw failed(name, `${where}: a malformed descriptor`);
    }
  }
  return list as Descriptor[];
}

function unique(list: string[]): string[] {
  return [...new Set(list)];
}
