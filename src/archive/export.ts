// Export (containerd core/images/archive/exporter.go): the blobs of one or more images, an
// `index.json` naming them, `oci-layout`, and Docker's `manifest.json` so `docker load` takes
// the archive too. Planned first — every blob looked up, the small documents read — so that a
// missing blob is refused before a byte is sent; then streamed entry by entry, each blob piped
// from the store.
import { BerthError, errorCode, failedPrecondition, invalidArgument, notFound } from '../../store/errors.js';
import { readBlob } from '../../store/copy.js';
import type { ReaderAt } from '../../store/types.js';
import type { Descriptor } from '../oci/descriptor.js';
import { childrenOf } from '../oci/children.js';
import { isIndex, isManifest } from '../oci/mediatypes.js';
import { defaultMatcher, onlyMatcher } from '../oci/platforms/match.js';
import { formatPlatform, parsePlatform } from '../oci/platforms/parse.js';
import type { PlatformMatcher } from '../oci/platforms/types.js';
import { selectManifests } from '../pull/select.js';
import { dockerManifestJson, type DockerManifestEntry } from './docker-manifest.js';
import { kindOf } from './kind.js';
import { blobEntryName, dockerManifestFile, documentLimit, indexFile, layoutFile, layoutVersion, nameAnnotations } from './layout.js';
import { ociReferenceName } from './names.js';
import { endOfArchive, entryHeader, padding, type TarEntryHeader } from './tar-writer.js';

/** What export reads of the content store. */
export interface ExportSource {
  /** The stored size and labels of a blob; not_found when the store lacks it. */
  info(digest: string): Promise<{ size: number; labels: Record<string, string> }>;
  readerAt(digest: string): Promise<ReaderAt>;
}

export interface ExportImage {
  name: string;
  target: Descriptor;
}

export interface ExportOptions {
  /** `os/arch[/variant]`: the manifests of an index to export (default: this host's). */
  platform?: string;
  /** Every manifest of an index. */
  allPlatforms?: boolean;
  /** Leave out what the store lacks (containerd's WithSkipMissing) instead of failing. */
  skipMissing?: boolean;
}

interface Entry extends TarEntryHeader {
  /** A blob streamed from the store, or a small document written as it is. */
  digest?: string;
  bytes?: Buffer;
}

export interface ExportPlan {
  /** The digests of the blobs the archive holds (the caller keeps them from the GC meanwhile). */
  blobs: string[];
  /** Bytes of the whole archive. */
  size: number;
  entries: Entry[];
}

const distributionSourcePrefix = 'containerd.io/distribution.source.';

export async function planExport(source: ExportSource, images: ExportImage[], opts: ExportOptions = {}): Promise<ExportPlan> {
  if (images.length === 0) throw invalidArgument('export: name at least one image');
  if (opts.platform !== undefined && opts.allPlatforms) throw invalidArgument('export: give platform or allPlatforms, not both');
  const planner = new Planner(source, opts);
  const manifests: Descriptor[] = [];
  for (const image of images) manifests.push(await planner.image(image));
  const documents: Entry[] = [
    json(layoutFile, 0o444, { imageLayoutVersion: layoutVersion }),
    json(indexFile, 0o644, { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }),
  ];
  const docker = planner.dockerEntries();
  if (docker.length > 0) documents.push(json(dockerManifestFile, 0o644, docker));
  const blobs = [...planner.blobs.values()];
  const entries: Entry[] = [
    ...directories(blobs),
    ...blobs.map((d): Entry => ({ name: blobEntryName(d.digest), type: 'file', mode: 0o444, size: d.size, digest: d.digest })),
    ...documents,
  ].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let size = 1024;
  for (const e of entries) size += entryHeader(e).length + e.size + padding(e.size).length;
  return { blobs: blobs.map((d) => d.digest), size, entries };
}

/** The archive's bytes: each entry's header, its data from the store or the plan, its padding. */
export async function* exportStream(source: ExportSource, plan: ExportPlan): AsyncGenerator<Buffer> {
  for (const e of plan.entries) {
    yield entryHeader(e);
    if (e.bytes) yield e.bytes;
    else if (e.digest) {
      const reader = await source.readerAt(e.digest);
      // Verified when committed: streamed as it is (`content verify` is what finds rot).
      if (reader.size !== e.size) {
        await reader.close();
        throw new BerthError('failed_precondition', `export: blob ${e.digest} has ${reader.size} bytes, its descriptor says ${e.size}`);
      }
      yield* reader.stream() as AsyncIterable<Buffer>;
    }
    if (e.size > 0) yield padding(e.size);
  }
  yield endOfArchive();
}

function json(name: string, mode: number, doc: unknown): Entry {
  const bytes = Buffer.from(JSON.stringify(doc));
  return { name, type: 'file', mode, size: bytes.length, bytes };
}

function directories(blobs: Descriptor[]): Entry[] {
  if (blobs.length === 0) return [];
  const algorithms = new Set(blobs.map((d) => d.digest.slice(0, d.digest.indexOf(':'))));
  return [
    { name: 'blobs/', type: 'dir', mode: 0o755, size: 0 },
    ...[...algorithms].map((a): Entry => ({ name: `blobs/${a}/`, type: 'dir', mode: 0o755, size: 0 })),
  ];
}

class Planner {
  readonly blobs = new Map<string, Descriptor>();
  /** The platform's manifests of an index (all of them with allPlatforms), best first: Docker gets the first. */
  private readonly matcher: PlatformMatcher;
  /** Docker's manifest.json: one entry per manifest, with the names it goes by. */
  private readonly docker = new Map<string, { manifest: Descriptor; names: string[] }>();
  private readonly documents = new Map<string, Buffer>();
  /** Manifests exported without (all of) their children: skipped in manifest.json. */
  private readonly partial = new Set<string>();

  constructor(
    private readonly source: ExportSource,
    private readonly opts: ExportOptions,
  ) {
    this.matcher = opts.platform !== undefined ? onlyMatcher(parsePlatform(opts.platform)) : defaultMatcher();
  }

  /** Plans one image; its target with the name annotations, for index.json. */
  async image(image: ExportImage): Promise<Descriptor> {
    const { name } = image;
    const labels = (await this.info(image.target, name, 'target'))?.labels ?? {};
    const annotations: Record<string, string> = { ...image.target.annotations };
    // As containerd: where the image came from goes along (a later push can mount from there).
    for (const [k, v] of Object.entries(labels)) if (k.startsWith(distributionSourcePrefix)) annotations[k] = v;
    annotations[nameAnnotations.image] = name;
    annotations[nameAnnotations.ref] = ociReferenceName(name);
    const target: Descriptor = { mediaType: image.target.mediaType, digest: image.target.digest, size: image.target.size, annotations };
    if (isManifest(target.mediaType)) {
      await this.walk(target, name, 'manifest');
      this.dockerName(target, name);
    } else if (isIndex(target.mediaType)) {
      const chosen = await this.index(target, name);
      if (chosen) this.dockerName(chosen, name);
    } else {
      throw invalidArgument(`export: image ${JSON.stringify(name)} has a target of media type ${JSON.stringify(target.mediaType)}: only manifests and indexes can be exported`);
    }
    return target;
  }

  dockerEntries(): DockerManifestEntry[] {
    const out: DockerManifestEntry[] = [];
    for (const { manifest, names } of this.docker.values()) {
      if (this.partial.has(manifest.digest) || !this.blobs.has(manifest.digest)) continue;
      out.push(dockerManifestJson(JSON.parse(this.documents.get(manifest.digest)!.toString('utf8')), names));
    }
    return out;
  }

  private dockerName(manifest: Descriptor, name: string): void {
    const entry = this.docker.get(manifest.digest) ?? { manifest, names: [] };
    entry.names.push(name);
    this.docker.set(manifest.digest, entry);
  }

  /** Plans an image's index and the manifests the platform options select; the one Docker gets. */
  private async index(desc: Descriptor, name: string): Promise<Descriptor | undefined> {
    const children = await this.walk(desc, name, 'index', false);
    if (!children) return undefined;
    const selected = selectManifests(children, this.matcher, 0, { requireMatch: false });
    if (selected.length === 0 && !this.opts.allPlatforms) {
      throw notFound(
        `export: image ${JSON.stringify(name)}: index ${desc.digest} has no manifest for platform ${this.opts.platform ?? 'of this host (give platform or allPlatforms)'}`,
      );
    }
    for (const child of this.opts.allPlatforms ? children : selected) await this.walk(child, name, kindOf(child));
    // Docker gets one manifest per image: the best match for the platform.
    return selected.find((c) => isManifest(c.mediaType) && this.blobs.has(c.digest) && !this.partial.has(c.digest));
  }

  /**
   * Plans `desc` and (when `follow`) everything under it. Returns its children (an index's or a
   * manifest's), or undefined when it is missing and skipped.
   */
  private async walk(desc: Descriptor, name: string, kind: string, follow = true, depth = 0): Promise<Descriptor[] | undefined> {
    if (depth > 8) throw failedPrecondition(`export: image ${JSON.stringify(name)}: indexes nested deeper than 8 levels`);
    const info = await this.info(desc, name, kind);
    if (!info) return undefined;
    this.blobs.set(desc.digest, { mediaType: desc.mediaType, digest: desc.digest, size: desc.size });
    if (!isIndex(desc.mediaType) && !isManifest(desc.mediaType)) return [];
    const body = await this.document(desc, name, kind);
    const children = childrenOf(desc, body);
    if (!follow) return children;
    if (isManifest(desc.mediaType) && this.opts.skipMissing) {
      // containerd: a manifest any of whose blobs is missing goes alone, without its children.
      for (const c of children) {
        if (!(await this.info(c, name, kindOf(c), true))) {
          this.partial.add(desc.digest);
          return children;
        }
      }
    }
    for (const c of children) await this.walk(c, name, kindOf(c), true, depth + 1);
    return children;
  }

  /** The stored blob's info; undefined when missing and skipMissing (or `quiet`), else 412 naming it. */
  private async info(desc: Descriptor, name: string, kind: string, quiet = false): Promise<{ size: number; labels: Record<string, string> } | undefined> {
    let info;
    try {
      info = await this.source.info(desc.digest);
    } catch (err) {
      if (errorCode(err) !== 'not_found') throw err;
      if (this.opts.skipMissing || quiet) return undefined;
      const platform = desc.platform ? ` (${formatPlatform(desc.platform)})` : '';
      throw failedPrecondition(
        `export: image ${JSON.stringify(name)}: ${kind} ${desc.digest}${platform} is not in the content store (a platform not pulled?): pull it, choose another platform, or skipMissing`,
      );
    }
    if (info.size !== desc.size) {
      throw failedPrecondition(`export: image ${JSON.stringify(name)}: ${kind} ${desc.digest} has ${info.size} bytes in the store, its descriptor says ${desc.size}`);
    }
    return info;
  }

  private async document(desc: Descriptor, name: string, kind: string): Promise<Buffer> {
    const known = this.documents.get(desc.digest);
    if (known) return known;
    if (desc.size > documentLimit) throw failedPrecondition(`export: image ${JSON.stringify(name)}: ${kind} ${desc.digest} is larger than ${documentLimit} bytes`);
    const body = await readBlob(this.source, desc.digest);
    this.documents.set(desc.digest, body);
    return body;
  }
}
