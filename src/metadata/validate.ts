// containerd's validation rules (pkg/identifiers, pkg/labels): the same limits, the same words.
import { invalidArgument } from '../../store/errors.js';
import type { Labels } from '../oci/labels.js';

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
  if (Buffer.byteLength(name) > 4096) throw invalidArgument(`image name ${JSON.stringify(name.slice(0, 64))}... is longer than 4096 bytes`);
}
