// How an archive names images: containerd's full name in `io.containerd.image.name`, the OCI
// reference name (a tag) beside it, Docker's familiar `RepoTags` in manifest.json — and back.
import { familiarName, parseNormalizedNamed, parseReference, withTag } from '../remotes/reference.js';

/**
 * The OCI `org.opencontainers.image.ref.name` of an image name (containerd's ociReferenceName):
 * what follows the repository — the tag, `tag@digest` or `@digest` — or the whole name when it
 * is not a reference.
 */
export function ociReferenceName(name: string): string {
  try {
    const ref = parseReference(name);
    if (ref.tag === undefined && ref.digest === undefined) return name;
    return `${ref.tag ?? ''}${ref.digest ? `@${ref.digest}` : ''}`;
  } catch {
    return name;
  }
}

/**
 * The `RepoTags` entry Docker wants for an image name (containerd's familiarizeReference:
 * `busybox:latest` for `docker.io/library/busybox:latest`, a name without tag gets `latest`);
 * undefined for a name Docker cannot take (a digest only, or not a reference at all).
 */
export function dockerRepoTag(name: string): string | undefined {
  try {
    let ref = parseNormalizedNamed(name);
    if (ref.digest !== undefined && ref.tag === undefined) return undefined;
    if (ref.tag === undefined) ref = withTag(ref, 'latest');
    return familiarName(ref.digest === undefined ? ref : withTag(parseNormalizedNamed(ref.name), ref.tag!));
  } catch {
    return undefined;
  }
}

/** A `RepoTags` entry of a Docker archive as a full name (`busybox:1` → `docker.io/library/busybox:1`). */
export function fullName(repoTag: string): string {
  return parseNormalizedNamed(repoTag).toString();
}
