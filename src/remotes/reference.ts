// Image references the Docker way (github.com/distribution/reference, reference §7.1): the
// grammar of `reference.Parse`, the normalisation of `ParseNormalizedNamed` (`alpine` →
// `docker.io/library/alpine`), `ParseDockerRef` (add `latest`, drop a tag beside a digest) and the
// familiar forms docker prints. Errors are invalid_argument, with docker's texts after the
// reference in quotes.
//
// Grammar (reference.go):
//   reference        := name [ ":" tag ] [ "@" digest ]
//   name             := [domain '/'] remote-name
//   domain           := host [':' port-number]
//   host             := domain-name | IPv4address | \[ IPv6address \]
//   domain-name      := domain-component ['.' domain-component]*
//   domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
//   port-number      := /[0-9]+/
//   path-component   := alpha-numeric [separator alpha-numeric]*
//   remote-name      := path-component ['/' path-component]*
//   alpha-numeric    := /[a-z0-9]+/
//   separator        := /[_.]|__|[-]+/
//   tag              := /[\w][\w.-]{0,127}/
//   digest           := /[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}/
//
// The pieces are split by hand (at `@`, at the tag's `:`, at the first `/`) and each piece is
// checked by an anchored expression: the same answers as the one big expression upstream, but
// in linear time whatever the input (Go's regexp is linear; a backtracking one on the whole
// grammar is not).
import { invalidArgument } from '../../store/errors.js';
import { parseDigest } from '../../store/digest.js';

export interface ImageReference {
  /** The registry host (with port), e.g. `docker.io`, `localhost:5000`, `[::1]:5000`. */
  domain: string;
  /** The repository path inside the registry, e.g. `library/alpine`. */
  path: string;
  tag?: string;
  digest?: string;
  /** domain/path */
  name: string;
  /** canonical string: name[:tag][@digest] */
  toString(): string;
}

/** What `parseDockerRef` returns: the tag it dropped beside a digest is kept as `originalTag`. */
export interface DockerReference extends ImageReference {
  originalTag?: string;
}

const defaultDomain = 'docker.io';
const legacyDefaultDomain = 'index.docker.io';
const officialRepoPrefix = 'library/';
const defaultTag = 'latest';

/** reference.RepositoryNameTotalLengthMax: the longest name (domain/path) accepted. */
export const repositoryNameTotalLengthMax = 255;

// Docker's error texts (reference.go, normalize.go and go-digest).
export const referenceErrors = {
  invalidFormat: 'invalid reference format',
  tagInvalidFormat: 'invalid tag format',
  digestInvalidFormat: 'invalid digest format',
  nameContainsUppercase: 'repository name must be lowercase',
  nameEmpty: 'repository name must have at least one component',
  nameTooLong: `repository name must not be more than ${repositoryNameTotalLengthMax} characters`,
  nameNotCanonical: 'repository name must be canonical',
  checksumFormat: 'invalid checksum digest format',
  checksumLength: 'invalid checksum digest length',
  checksumUnsupported: 'unsupported digest algorithm',
} as const;

const alphanumeric = '[a-z0-9]+';
const separator = '(?:[._]|__|[-]+)';
const pathComponent = `${alphanumeric}(?:${separator}${alphanumeric})*`;
const domainNameComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const domainName = `${domainNameComponent}(?:\\.${domainNameComponent})*`;
const ipv6address = '\\[(?:[a-fA-F0-9:]+)\\]';
const domainAndPort = `(?:${domainName}|${ipv6address})(?::[0-9]+)?`;
const tagPattern = '[\\w][\\w.-]{0,127}';
const digestPattern = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}';

const anchoredPathComponent = new RegExp(`^${pathComponent}$`);
const anchoredDomain = new RegExp(`^${domainAndPort}$`);
const anchoredTag = new RegExp(`^${tagPattern}$`);
const anchoredDigest = new RegExp(`^${digestPattern}$`);
const anchoredIdentifier = /^[a-f0-9]{64}$/;

class Reference implements DockerReference {
  readonly domain: string;
  readonly path: string;
  readonly name: string;
  readonly tag?: string;
  readonly digest?: string;
  readonly originalTag?: string;

  constructor(domain: string, path: string, tag?: string, digest?: string, originalTag?: string) {
    this.domain = domain;
    this.path = path;
    this.name = domain === '' ? path : `${domain}/${path}`;
    if (tag !== undefined) this.tag = tag;
    if (digest !== undefined) this.digest = digest;
    if (originalTag !== undefined) this.originalTag = originalTag;
  }

  toString(): string {
    return format(this.name, this.tag, this.digest);
  }
}

function format(name: string, tag?: string, digest?: string): string {
  return name + (tag !== undefined ? `:${tag}` : '') + (digest !== undefined ? `@${digest}` : '');
}

function fail(input: string, text: string): never {
  throw invalidArgument(`${JSON.stringify(input)}: ${text}`);
}

interface Parts {
  name: string;
  tag?: string;
  digest?: string;
}

/** Splits `name[:tag][@digest]` and checks each piece against its grammar; undefined when `s` is not a reference. */
function match(s: string): Parts | undefined {
  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!anchoredDigest.test(digest)) return undefined;
  }
  // A name's colons (a port, an IPv6 address) are always followed by a `/`; a tag has none.
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon >= 0 && !rest.includes('/', colon)) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!anchoredTag.test(tag)) return undefined;
  }
  if (!splitName(rest)) return undefined;
  return { name: rest, tag, digest };
}

/**
 * The anchored name expression `^(?:(domain)/)?(remote-name)$` with its leftmost-first choice:
 * the first segment is the domain whenever it can be (`a/b/c` has domain `a`).
 */
function splitName(name: string): { domain: string; path: string } | undefined {
  const slash = name.indexOf('/');
  if (slash >= 0) {
    const domain = name.slice(0, slash);
    const path = name.slice(slash + 1);
    if (anchoredDomain.test(domain) && isRemoteName(path)) return { domain, path };
  }
  return isRemoteName(name) ? { domain: '', path: name } : undefined;
}

function isRemoteName(s: string): boolean {
  return s.split('/').every((c) => anchoredPathComponent.test(c));
}

/**
 * go-digest's Digest.Validate, as the store applies it (sha256, sha384, sha512): the text of
 * the error (`invalid checksum digest length`, `unsupported digest algorithm`, …), if any.
 */
function digestError(digest: string): string | undefined {
  try {
    parseDigest(digest);
    return undefined;
  } catch (err) {
    const message = (err as Error).message;
    const prefix = `invalid digest ${JSON.stringify(digest)}: `;
    return message.startsWith(prefix) ? message.slice(prefix.length) : message;
  }
}

/**
 * distribution's `reference.Parse`: the grammar only, nothing added or renamed. The domain is
 * whatever the grammar takes as one (so `a/b` has domain `a`, and `alpine` has none).
 */
export function parseReference(s: string): ImageReference {
  return parseAs(s, s);
}

function parseAs(s: string, input: string): Reference {
  if (s === '') fail(input, referenceErrors.nameEmpty);
  const parts = match(s);
  if (!parts) {
    const lower = s.toLowerCase();
    if (lower !== s && match(lower)) fail(input, referenceErrors.nameContainsUppercase);
    fail(input, referenceErrors.invalidFormat);
  }
  // The limit covers domain and path, as in distribution/reference v0.6.0 (what containerd
  // vendors); later versions count the path alone.
  if (parts.name.length > repositoryNameTotalLengthMax) fail(input, referenceErrors.nameTooLong);
  const { domain, path } = splitName(parts.name)!;
  if (parts.digest !== undefined) {
    const err = digestError(parts.digest);
    if (err) fail(input, err);
  }
  return new Reference(domain, path, parts.tag, parts.digest);
}

/**
 * splitDockerDomain: the domain docker assumes for a name, and the path under it.
 * `alpine` → docker.io, library/alpine; `foo/bar` → docker.io, foo/bar; `localhost/x`,
 * `example.com/x`, `host:5000/x` and `Foo/x` keep their first segment as the domain;
 * `index.docker.io` becomes `docker.io`.
 */
function splitDockerDomain(name: string): { domain: string; remainder: string } {
  const slash = name.indexOf('/');
  if (slash < 0) return { domain: defaultDomain, remainder: officialRepoPrefix + name };
  const maybeDomain = name.slice(0, slash);
  const maybeRemainder = name.slice(slash + 1);
  let domain: string;
  let remainder: string;
  if (maybeDomain === 'localhost') {
    [domain, remainder] = [maybeDomain, maybeRemainder];
  } else if (maybeDomain === legacyDefaultDomain) {
    [domain, remainder] = [defaultDomain, maybeRemainder];
  } else if (/[.:]/.test(maybeDomain)) {
    [domain, remainder] = [maybeDomain, maybeRemainder];
  } else if (maybeDomain.toLowerCase() !== maybeDomain) {
    [domain, remainder] = [maybeDomain, maybeRemainder];
  } else {
    [domain, remainder] = [defaultDomain, name];
  }
  if (domain === defaultDomain && !remainder.includes('/')) remainder = officialRepoPrefix + remainder;
  return { domain, remainder };
}

/**
 * ParseNormalizedNamed: a familiar name made fully qualified (`alpine:3` →
 * `docker.io/library/alpine:3`). No tag is added; a tag beside a digest is kept.
 */
export function parseNormalizedNamed(s: string): ImageReference {
  if (anchoredIdentifier.test(s)) {
    fail(s, `invalid repository name (${s}), cannot specify 64-byte hexadecimal strings`);
  }
  const { domain, remainder } = splitDockerDomain(s);
  const colon = remainder.indexOf(':');
  const remote = colon >= 0 ? remainder.slice(0, colon) : remainder;
  if (remote.toLowerCase() !== remote) {
    fail(s, `${referenceErrors.invalidFormat}: repository name (${remote}) must be lowercase`);
  }
  return parseAs(`${domain}/${remainder}`, s);
}

/**
 * ParseDockerRef: normalised; a tag and a digest together keep only the digest (the dropped tag
 * is `originalTag`); neither gets the tag `latest`.
 */
export function parseDockerRef(s: string): DockerReference {
  const ref = parseNormalizedNamed(s);
  if (ref.digest !== undefined) return new Reference(ref.domain, ref.path, undefined, ref.digest, ref.tag);
  if (ref.tag === undefined) return new Reference(ref.domain, ref.path, defaultTag);
  return ref;
}

/** A copy of `ref` with `tag` (reference.WithTag); the tag must match the tag grammar. */
export function withTag(ref: ImageReference, tag: string): ImageReference {
  if (!anchoredTag.test(tag)) fail(tag, referenceErrors.tagInvalidFormat);
  return new Reference(ref.domain, ref.path, tag, ref.digest);
}

/** A copy of `ref` with `digest` (reference.WithDigest); the digest must match the digest grammar. */
export function withDigest(ref: ImageReference, digest: string): ImageReference {
  if (!anchoredDigest.test(digest)) fail(digest, referenceErrors.digestInvalidFormat);
  return new Reference(ref.domain, ref.path, ref.tag, digest);
}

/** The name alone (reference.TrimNamed). */
export function trimNamed(ref: ImageReference): ImageReference {
  return new Reference(ref.domain, ref.path);
}

/** True when `ref` has neither tag nor digest (reference.IsNameOnly). */
export function isNameOnly(ref: ImageReference): boolean {
  return ref.tag === undefined && ref.digest === undefined;
}

/** familiarizeName: `docker.io` and a single-level `library/` dropped. */
function familiarize(ref: ImageReference): string {
  if (ref.domain !== defaultDomain) return ref.name;
  if (ref.path.startsWith(officialRepoPrefix)) {
    const rest = ref.path.slice(officialRepoPrefix.length);
    if (!rest.includes('/')) return rest;
  }
  return ref.path;
}

/**
 * docker's FamiliarString: `alpine:latest` for `docker.io/library/alpine:latest`,
 * `foo/bar@sha256:…` for `docker.io/foo/bar@sha256:…`; other registries are kept.
 */
export function familiarName(ref: ImageReference): string {
  return format(familiarize(ref), ref.tag, ref.digest);
}

/** docker's FamiliarName: the familiar name without tag or digest (`alpine`). */
export function familiarRepository(ref: ImageReference): string {
  return familiarize(ref);
}

/** The repository in registry API paths, `/v2/<repository>/manifests/…` (e.g. `library/alpine`). */
export function repository(ref: ImageReference): string {
  return ref.path;
}
