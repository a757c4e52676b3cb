// Import (containerd core/images/archive/importer.go, with berth's checks): an OCI image layout
// or a Docker `save` archive read as it streams. A tar is sequential and index.json or
// manifest.json may come after the blobs, so every blob is written through the content store as
// it goes by — under the caller's lease, each `blobs/<alg>/<hex>` committed only if its bytes
// have that digest — and the documents are read last: the images they name, every blob they
// list checked against the store (present with its size) and labelled for the GC as a pull
// labels it. Refused with invalid_argument naming the entry: a path that is absolute or climbs
// out of the archive, a link or device entry (a symlink is accepted only where Docker's legacy
// format puts one, never in or as `blobs/`), a digest mismatch, a document over 4 MiB, a blob
// the index does not list, a truncated tar. What was written stays only in the lease.
import { posix } from 'node:path';
import { randomUUID } from 'node:crypto';
import { errorCode, invalidArgument } from '../../store/errors.js';
import { parseDigest } from '../../store/digest.js';
import { readBlob, writeStream } from '../../store/copy.js';
import type { ReaderAt, Writer } from '../../store/types.js';
import type { Descriptor } from '../oci/descriptor.js';
import { childrenOf } from '../oci/children.js';
import { isIndex, isManifest, mediaTypes } from '../oci/mediatypes.js';
import { childGcLabels } from '../pull/children.js';
import { dockerLayerType, dockerManifestDocument, parseDockerManifest, type DockerManifestEntry } from './docker-manifest.js';
import { kindOf } from './kind.js';
import { blobEntryDigest, dockerManifestFile, documentLimit, indexFile, layoutFile, layoutVersion, nameAnnotations } from './layout.js';
import { fullName } from './names.js';
import { tarEntries, type TarEntry } from './tar-entries.js';

/** What import does to the content store (in the caller's namespace and lease). */
export interface ImportSink {
  /** A writer for `ref`; already_exists when the namespace has `digest` (which then joins the lease). */
  writer(ref: string, digest: string | undefined, size: number): Promise<Writer>;
  abort(ref: string): Promise<void>;
  /** not_found when the namespace lacks it. */
  info(digest: string): Promise<{ size: number }>;
  readerAt(digest: string): Promise<ReaderAt>;
  /** Merges labels into a blob's. */
  label(digest: string, labels: Record<string, string>): Promise<void>;
}

export interface ImportOptions {
  /** Name for images the archive names by tag alone (`<baseName>:<tag>`); with it, a full name in the OCI ref name must start with it. */
  baseName?: string;
  /** Also name each image `<baseName or import-YYYY-MM-DD>@<digest>` (ctr's --digests). */
  digests?: boolean;
}

export interface ImportedImage {
  name: string;
  target: Descriptor;
}

export interface ImportResult {
  images: ImportedImage[];
  /** Blobs the archive held (written now or already stored). */
  blobs: number;
  /** Bytes of blobs written now. */
  bytes: number;
}

/** Files read whole (bounded), not stored. */
const documents = new Set([layoutFile, indexFile, dockerManifestFile]);
/** Docker's legacy `repositories` (the same names as manifest.json): read past. */
const ignored = new Set(['repositories']);

const refused = (entry: string, why: string) => invalidArgument(`archive entry ${JSON.stringify(entry)}: ${why}`);

/** A stored file of the archive: its digest, size and, for a Docker layer, its first bytes. */
interface Stored {
  digest: string;
  size: number;
  head: Buffer;
}

export async function importArchive(body: AsyncIterable<Uint8Array>, sink: ImportSink, opts: ImportOptions = {}): Promise<ImportResult> {
  const reader = new ArchiveReader(sink);
  for await (const entry of tarEntries(body)) await reader.entry(entry);
  const top = await reader.topDescriptors();
  const reached = new Set<string>();
  for (const desc of top) await reader.visit(desc, reached, 'top');
  for (const [digest, name] of reader.blobEntries) {
    if (!reached.has(digest)) throw refused(name, `blob ${digest} is not listed by the archive's index: refused (an archive carries what it names, nothing else)`);
  }
  const images = nameImages(top, opts);
  if (images.length === 0) {
    throw invalidArgument('archive names no image: give baseName (for images named by tag alone) or digests (to name them by digest)');
  }
  return { images, blobs: new Set([...reader.stored.values()].map((f) => f.digest)).size, bytes: reader.bytes };
}

class ArchiveReader {
  private readonly id = randomUUID();
  private n = 0;
  /** Every path seen, to refuse a second entry of the same name. */
  private readonly seen = new Set<string>();
  /** Files stored, by cleaned path. */
  readonly stored = new Map<string, Stored>();
  /** `blobs/...` entries: digest → path, for the unlisted-blob check. */
  readonly blobEntries = new Map<string, string>();
  /** Docker's legacy symlinks (`<id>/layer.tar -> ../<hex>.tar`): path → target path. */
  private readonly links = new Map<string, string>();
  private readonly docs = new Map<string, Buffer>();
  bytes = 0;

  constructor(private readonly sink: ImportSink) {}

  async entry({ header, data }: TarEntry): Promise<void> {
    const name = cleanName(header.name);
    if (this.seen.has(name) && header.type !== '5') throw refused(header.name, 'appears twice in the archive');
    this.seen.add(name);
    const underBlobs = name === 'blobs' || name.startsWith('blobs/');
    switch (header.type) {
      case '5':
        return;
      case '0':
      case '7':
        break;
      case '2': {
        if (underBlobs || documents.has(name)) throw refused(header.name, `a symlink (to ${JSON.stringify(header.linkname)}) where the layout wants a regular file or folder`);
        if (header.linkname.startsWith('/')) throw refused(header.name, `a symlink to the absolute path ${JSON.stringify(header.linkname)}`);
        const target = posix.normalize(posix.join(posix.dirname(name), header.linkname));
        if (target === '..' || target.startsWith('../')) throw refused(header.name, `a symlink to ${JSON.stringify(header.linkname)}, outside the archive`);
        this.links.set(name, target);
        return;
      }
      case '1':
        throw refused(header.name, `a hard link (to ${JSON.stringify(header.linkname)}): an image archive holds regular files`);
      default:
        throw refused(header.name, `an entry of tar type ${JSON.stringify(header.type)}: an image archive holds regular files`);
    }
    if (documents.has(name)) {
      this.docs.set(name, await readDocument(header.name, header.size, data));
      return;
    }
    if (ignored.has(name)) return;
    const digest = blobEntryDigest(name);
    if (underBlobs && !digest) throw refused(header.name, 'not a blob name (blobs/<algorithm>/<encoded digest>)');
    if (digest) this.blobEntries.set(digest, header.name);
    this.stored.set(name, await this.write(header.name, digest, header.size, data));
  }

  /** Writes one file through the store; with `expected`, committed only if the bytes have that digest. */
  private async write(entry: string, expected: string | undefined, size: number, data: AsyncIterable<Buffer>): Promise<Stored> {
    const ref = `import-${this.id}-${++this.n}`;
    let writer: Writer;
    try {
      writer = await this.sink.writer(ref, expected, size);
    } catch (err) {
      if (errorCode(err) !== 'already_exists' || !expected) throw err;
      return { digest: expected, size, head: Buffer.alloc(0) }; // the namespace has it (verified then)
    }
    let head = Buffer.alloc(0);
    try {
      // An adopted blob (another namespace's) needs no bytes.
      if (writer.status().offset === 0 && size > 0) {
        await writeStream(writer, (async function* () {
          for await (const chunk of data) {
            if (head.length < 16) head = Buffer.concat([head, chunk.subarray(0, 16 - head.length)]);
            yield chunk;
          }
        })());
        this.bytes += size;
      }
      const digest = expected ?? writer.digest();
      try {
        await writer.commit(size, expected);
      } catch (err) {
        if (errorCode(err) === 'already_exists') return { digest, size, head };
        if (errorCode(err) === 'failed_precondition' && expected) throw refused(entry, `${(err as Error).message}: the bytes do not have the digest the entry is named by`);
        throw err;
      }
      return { digest, size, head };
    } catch (err) {
      await writer.close();
      await this.sink.abort(ref).catch(() => {}); // nothing committed: the ingest goes
      throw err;
    }
  }

  /** The archive's images: index.json's descriptors, or those built from Docker's manifest.json. */
  async topDescriptors(): Promise<Descriptor[]> {
    const layout = this.docs.get(layoutFile);
    if (layout) {
      const version = parseJson(layoutFile, layout) as { imageLayoutVersion?: unknown };
      if (version?.imageLayoutVersion !== layoutVersion) {
        throw refused(layoutFile, `image layout version ${JSON.stringify(version?.imageLayoutVersion)}, not ${layoutVersion}`);
      }
    }
    const index = this.docs.get(indexFile);
    if (index) {
      parseJson(indexFile, index);
      try {
        return childrenOf({ mediaType: mediaTypes.ociIndex, digest: indexFile, size: index.length }, index);
      } catch (err) {
        throw refused(indexFile, (err as Error).message);
      }
    }
    if (layout) throw invalidArgument(`archive: an OCI image layout (${layoutFile}) without ${indexFile}`);
    const docker = this.docs.get(dockerManifestFile);
    if (!docker) throw invalidArgument(`archive: neither ${indexFile} (an OCI image layout) nor ${dockerManifestFile} (a Docker archive): not an image archive`);
    const out: Descriptor[] = [];
    for (const entry of parseDockerManifest(docker)) out.push(...(await this.dockerImage(entry)));
    return out;
  }

  /** A Docker archive's image: its manifest written to the store, one descriptor per tag. */
  private async dockerImage(entry: DockerManifestEntry): Promise<Descriptor[]> {
    const config = this.resolve(entry.Config);
    const layers = entry.Layers.map((path) => {
      const l = this.resolve(path);
      return { mediaType: dockerLayerType(l.head), digest: l.digest, size: l.size };
    });
    const configDesc = { mediaType: mediaTypes.dockerConfig, digest: config.digest, size: config.size };
    const body = dockerManifestDocument(configDesc, layers);
    const manifest: Descriptor = { mediaType: mediaTypes.dockerManifest, digest: '', size: body.length };
    const stored = await this.write(dockerManifestFile, undefined, body.length, (async function* () {
      yield body;
    })());
    manifest.digest = stored.digest;
    const platform = await this.platformOf(configDesc);
    if (platform) manifest.platform = platform;
    if (entry.RepoTags.length === 0) return [manifest];
    return entry.RepoTags.map((tag) => {
      let name: string;
      try {
        name = fullName(tag);
      } catch (err) {
        throw refused(dockerManifestFile, `RepoTags ${JSON.stringify(tag)}: ${(err as Error).message}`);
      }
      return { ...manifest, annotations: { [nameAnnotations.image]: name, [nameAnnotations.ref]: tag.slice(tag.lastIndexOf(':') + 1) } };
    });
  }

  private resolve(path: string): Stored {
    let name = cleanName(path);
    for (let hops = 0; this.links.has(name) && hops < 16; hops++) name = this.links.get(name)!;
    const stored = this.stored.get(name);
    if (!stored) throw refused(dockerManifestFile, `names ${JSON.stringify(path)}, which the archive does not hold as a file`);
    return stored;
  }

  private async platformOf(config: Descriptor): Promise<Descriptor['platform']> {
    const doc = (await this.document(config, 'config')) as { os?: unknown; architecture?: unknown; variant?: unknown };
    if (typeof doc.os !== 'string' || typeof doc.architecture !== 'string') return undefined;
    return { os: doc.os, architecture: doc.architecture, ...(typeof doc.variant === 'string' && doc.variant ? { variant: doc.variant } : {}) };
  }

  /**
   * Checks that `desc` is stored with its size and, for an index or a manifest, labels its
   * children for the GC and visits them. Only what index.json lists itself must be there: a
   * manifest of an index, or a manifest's blobs, may have been left out by the exporter (a
   * platform not exported, containerd's skip-missing).
   */
  async visit(desc: Descriptor, reached: Set<string>, where: 'top' | 'child', depth = 0): Promise<void> {
    if (reached.has(desc.digest)) return;
    try {
      parseDigest(desc.digest);
    } catch (err) {
      throw invalidArgument(`archive: a descriptor with ${(err as Error).message}`, err);
    }
    if (depth > 8) throw invalidArgument(`archive: indexes nested deeper than 8 levels at ${desc.digest}`);
    let info;
    try {
      info = await this.sink.info(desc.digest);
    } catch (err) {
      if (errorCode(err) !== 'not_found') throw err;
      if (where === 'child') return;
      throw invalidArgument(`archive: its index lists ${kindOf(desc)} ${desc.digest}, which the archive does not hold`);
    }
    if (info.size !== desc.size) {
      throw invalidArgument(`archive: ${kindOf(desc)} ${desc.digest} has ${info.size} bytes, its descriptor says ${desc.size}`);
    }
    reached.add(desc.digest);
    if (!isIndex(desc.mediaType) && !isManifest(desc.mediaType)) return;
    const body = await this.documentBytes(desc, kindOf(desc));
    let children: Descriptor[];
    try {
      children = childrenOf(desc, body);
    } catch (err) {
      throw invalidArgument(`archive: ${(err as Error).message}`, err);
    }
    if (children.length > 0) await this.sink.label(desc.digest, childGcLabels(children));
    for (const c of children) await this.visit(c, reached, 'child', depth + 1);
  }

  private async document(desc: Descriptor, kind: string): Promise<unknown> {
    return parseJson(`${kind} ${desc.digest}`, await this.documentBytes(desc, kind));
  }

  private async documentBytes(desc: Descriptor, kind: string): Promise<Buffer> {
    if (desc.size > documentLimit) throw invalidArgument(`archive: ${kind} ${desc.digest} is larger than ${documentLimit} bytes`);
    return readBlob(this.sink, desc.digest);
  }
}

/**
 * The entry's path as the layout means it (`./index.json` is `index.json`); refused when absolute
 * or when any part is `..` — nothing in an image archive needs one.
 */
function cleanName(raw: string): string {
  if (raw.startsWith('/')) throw refused(raw, 'an absolute path');
  if (raw.split('/').includes('..')) throw refused(raw, "a path that leaves the archive's root");
  const name = posix.normalize(raw).replace(/\/+$/, '');
  return name === '.' ? '' : name;
}

async function readDocument(entry: string, size: number, data: AsyncIterable<Buffer>): Promise<Buffer> {
  if (size > documentLimit) throw refused(entry, `${size} bytes: larger than the ${documentLimit} bytes a document may have`);
  const parts: Buffer[] = [];
  for await (const chunk of data) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
}

function parseJson(what: string, body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw invalidArgument(`archive: ${what} is not JSON: ${(err as Error).message}`, err);
  }
}

/** The images `top` names, as ctr import names them (see ImportOptions). */
function nameImages(top: Descriptor[], opts: ImportOptions): ImportedImage[] {
  const out: ImportedImage[] = [];
  const base = opts.baseName;
  for (const desc of top) {
    const target: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size, ...(desc.annotations ? { annotations: desc.annotations } : {}) };
    const full = desc.annotations?.[nameAnnotations.image];
    const ref = desc.annotations?.[nameAnnotations.ref];
    // containerd's full name is taken as it is (as ctr); only the OCI ref name is translated.
    let name = full;
    if (!name && ref) {
      // A ref name with `/`, `:` or `@` is a full name; a bare one is a tag of baseName.
      if (/[/:@]/.test(ref)) name = !base || hasPrefix(ref, base) ? ref : undefined;
      else if (base) name = `${base}:${ref}`;
    }
    if (name) out.push({ name, target });
    if (opts.digests) out.push({ name: `${base ?? `import-${new Date().toISOString().slice(0, 10)}`}@${desc.digest}`, target });
  }
  return out;
}

const hasPrefix = (name: string, base: string): boolean => name === base || name.startsWith(`${base}:`) || name.startsWith(`${base}@`);
