// The registry listener's errors: the OCI distribution spec's codes and body
// (`{"errors":[{"code","message","detail"}]}`), not the management API's. Every error berth raises
// on the way (its kinds, from the store up) is mapped here, so the listener never answers with
// berth's own vocabulary and never with a 5xx for what a client sent.
import { errorCode, type ErrorCode } from '../../store/errors.js';

export type OciErrorCode =
  | 'BLOB_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'RANGE_INVALID'
  | 'UNAUTHORIZED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'
  | 'UNAVAILABLE'
  | 'UNKNOWN';

export class RegistryError extends Error {
  constructor(
    readonly status: number,
    readonly code: OciErrorCode,
    message: string,
    readonly detail?: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'RegistryError';
  }

  body(): string {
    return JSON.stringify({ errors: [{ code: this.code, message: this.message, detail: this.detail ?? null }] });
  }
}

/** What the object of a request is, so that not_found says which kind is unknown. */
export type RegistryObject = 'manifest' | 'blob' | 'name';

const unknownCode: Record<RegistryObject, OciErrorCode> = {
  manifest: 'MANIFEST_UNKNOWN',
  blob: 'BLOB_UNKNOWN',
  name: 'NAME_UNKNOWN',
};

/** berth's error kinds as the spec's statuses and codes. */
const byKind: Partial<Record<ErrorCode, [number, OciErrorCode]>> = {
  invalid_argument: [400, 'NAME_INVALID'],
  range_not_satisfiable: [416, 'RANGE_INVALID'],
  not_implemented: [405, 'UNSUPPORTED'],
  unauthenticated: [502, 'UNAVAILABLE'],
  denied: [502, 'UNAVAILABLE'],
  unavailable: [503, 'UNAVAILABLE'],
  failed_precondition: [502, 'UNAVAILABLE'],
};

/** Any error as a RegistryError; `object` names what a not_found was looking for. */
export function toRegistryError(err: unknown, object: RegistryObject): RegistryError {
  if (err instanceof RegistryError) return err;
  const kind = errorCode(err);
  const message = (err as Error)?.message ?? String(err);
  if (kind === 'not_found') return new RegistryError(404, unknownCode[object], message);
  const [status, code] = byKind[kind] ?? [500, 'UNKNOWN'];
  return new RegistryError(status, code, message);
}
