// Digests as OCI writes them: `<algorithm>:<lower-case hex>` (go-digest's rules).
import { createHash, type Hash } from 'node:crypto';
import { invalidArgument } from './errors.js';

/** Hex lengths of the algorithms go-digest makes available; sha256 is canonical. */
const hexLength: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };

export const canonicalAlgorithm = 'sha256';
export const emptyDigest = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

export interface ParsedDigest {
  algorithm: string;
  encoded: string;
}

export function isAvailableAlgorithm(algorithm: string): boolean {
  return Object.hasOwn(hexLength, algorithm);
}

/** Splits and validates a digest; throws invalid_argument naming it. */
export function parseDigest(digest: string): ParsedDigest {
  const i = typeof digest === 'string' ? digest.indexOf(':') : -1;
  if (i <= 0 || i === digest.length - 1) {
    throw invalidArgument(`invalid digest ${JSON.stringify(digest)}: invalid checksum digest format`);
  }
  const algorithm = digest.slice(0, i);
  const encoded = digest.slice(i + 1);
  if (!/^[a-z0-9]+(?:[.+_-][a-z0-9]+)*$/.test(algorithm)) {
    throw invalidArgument(`invalid digest ${JSON.stringify(digest)}: invalid checksum digest format`);
  }
  const length = hexLength[algorithm];
  if (!isAvailableAlgorithm(algorithm)) {
    throw invalidArgument(`invalid digest ${JSON.stringify(digest)}: unsupported digest algorithm`);
  }
  if (encoded.length !== length) {
    throw invalidArgument(`invalid digest ${JSON.stringify(digest)}: invalid checksum digest length`);
  }
  if (!/^[a-f0-9]+$/.test(encoded)) {
    throw invalidArgument(`invalid digest ${JSON.stringify(digest)}: invalid checksum digest format`);
  }
  return { algorithm, encoded };
}

export function createDigester(algorithm: string): Hash {
  return createHash(algorithm);
}

export function digestOf(data: Uint8Array | string, algorithm = canonicalAlgorithm): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}
