// containerd's validation rules (pkg/identifiers, pkg/labels): the same limits, the same words;
// plus berth's own: one length limit for every name and key (openapi.yaml's `Name` schema) and
// RFC 3339 times in `containerd.io/gc.expire`.
import { invalidArgument } from '../../store/errors.js';
import type { Labels } from '../oci/labels.js';
import { parseTimestamp } from '../oci/time.js';
import { nameMaxLength } from '../openapi.js';

const identifierPattern = /^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$/;
const identifierMaxLength = 76;
const labelMaxBytes = 4096;

/** Namespaces, lease ids, container ids. `what` names the object in the message. */
export function validateIdentifier(id: string, what: string): void {
  if (!id) throw invalidArgument(`${what}: identifier must not be empty`);
  if (id.length > identifierMaxLength) {
    throw invalidArgument(`${what}: identifier ${JSON.stringify(id)} greater than maximum length (${identifierMaxLength} characters)`);
  }
  if (!identifierPattern.test(id)) {
    throw invalidArgument(`${what}: identifier ${JSON.stringify(id)} must match ${identifierPattern.source}`);
  }
}

/** Each label's key and value together stay within 4096 bytes. */
export function validateLabels(labels: Labels | undefined, owner: string): void {
  for (const [k, v] of Object.entries(labels ?? {})) {
    if (typeof v !== 'string') throw invalidArgument(`${owner}: label ${JSON.stringify(k)} must be a string`);
    const n = Buffer.byteLength(k) + Buffer.byteLength(v);
    if (n > labelMaxBytes) {
      throw invalidArgument(
        `${owner}: label key and value length (${n} bytes) greater than maximum size (${labelMaxBytes} bytes), key: ${k.slice(0, 64)}`,
      );
    }
  }
}

/** Image names: containerd accepts any non-empty string; berth also refuses control characters. */
export function validateImageName(name: string): void {
  if (!name) throw invalidArgument('image name must not be empty');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) {
    throw invalidArgument(`image name ${JSON.stringify(name)} must not contain control characters`);
  }
  validateNameLength(name, 'image name');
}

/**
 * Names and keys (image names, snapshot keys, ingest refs, ...) are at most openapi.yaml's
 * `Name.maxLength` characters, the limit the API's schemas enforce; this holds it for callers
 * that do not come through the API. `what` names the kind of name.
 */
export function validateNameLength(name: string, what: string): void {
  const max = nameMaxLength();
  // Code points, as JSON Schema's maxLength counts them.
  let n = 0;
  for (const _ of name) if (++n > max) break;
  if (n > max) throw invalidArgument(`${what} ${JSON.stringify(name.slice(0, 64))}… is longer than ${max} characters`);
}

/** The GC label that ends a lease's or an image's life. */
const expireLabel = 'containerd.io/gc.expire';

/**
 * `containerd.io/gc.expire` must be an RFC 3339 time: containerd ignores a value it cannot parse
 * (the lease then never expires); berth refuses it, naming the label.
 */
export function validateExpiry(labels: Labels | undefined, owner: string): void {
  const value = labels?.[expireLabel];
  if (value === undefined || value === '' || parseTimestamp(value) !== undefined) return;
  throw invalidArgument(
    `${owner}: label ${JSON.stringify(expireLabel)} must be an RFC 3339 time (e.g. "2030-01-02T15:04:05Z"), not ${JSON.stringify(value.slice(0, 200))}${value.length > 200 ? '…' : ''}`,
  );
}
