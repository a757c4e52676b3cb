// Docker's archive format (`docker save`, skopeo's docker-archive): `manifest.json` lists each
// image's config and layer files by path with its tags. Export writes one beside the OCI layout
// (as containerd does, for `docker load`); import reads one and builds the Docker schema 2
// manifest the archive does not carry (containerd's ImportIndex).
import { invalidArgument } from '../../store/errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { layerMediaTypes, mediaTypes } from '../oci/mediatypes.js';
import { blobEntryName, dockerManifestFile } from './layout.js';
import { dockerRepoTag } from './names.js';

export interface DockerManifestEntry {
  Config: string;
  RepoTags: string[];
  Layers: string[];
}

/** The manifest.json entry of an exported manifest document and the names it goes by. */
export function dockerManifestJson(manifest: { config?: Descriptor; layers?: Descriptor[] }, names: string[]): DockerManifestEntry {
  return {
    Config: blobEntryName(manifest.config!.digest),
    RepoTags: names.map(dockerRepoTag).filter((t): t is string => t !== undefined),
    Layers: (manifest.layers ?? []).map((l) => blobEntryName(l.digest)),
  };
}

/** manifest.json as read from an archive, its shape checked (each path still to be resolved). */
export function parseDockerManifest(body: Buffer): DockerManifestEntry[] {
  const bad = (why: string) => invalidArgument(`archive entry ${JSON.stringify(dockerManifestFile)}: ${why}`);
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw bad(`not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(doc)) throw bad('not a list of images');
  return doc.map((e: Partial<DockerManifestEntry> | null, i) => {
    const strings = (v: unknown) => Array.isArray(v) && v.every((s) => typeof s === 'string');
    if (!e || typeof e.Config !== 'string' || !strings(e.Layers) || (e.RepoTags != null && !strings(e.RepoTags))) {
      throw bad(`image ${i} needs Config (a path), Layers (paths) and RepoTags (names, optional)`);
    }
    return { Config: e.Config, Layers: e.Layers!, RepoTags: e.RepoTags ?? [] };
  });
}

/** What a layer's first bytes say it is: Docker's layer types (containerd sniffs the same way). */
export function dockerLayerType(head: Buffer): string {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return layerMediaTypes.dockerLayerGzip;
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return layerMediaTypes.dockerLayerZstd;
  return layerMediaTypes.dockerLayer;
}

/** The Docker schema 2 manifest for a config and its layers, as containerd's importer writes it. */
export function dockerManifestDocument(config: Descriptor, layers: Descriptor[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: mediaTypes.dockerManifest,
      config: { mediaType: mediaTypes.dockerConfig, digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    }),
  );
}
