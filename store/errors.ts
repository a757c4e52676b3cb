// One vocabulary of error kinds, from the store up to HTTP (as containerd's errdefs).
// Code throws a BerthError with a kind and a message that names the object; the HTTP layer
// maps the kind to a status and the CLI prints the message. Anything else is `internal`.

export type ErrorCode =
  | 'not_found'
  | 'already_exists'
  | 'invalid_argument'
  | 'failed_precondition'
  | 'unavailable'
  | 'range_not_satisfiable'
  | 'not_implemented'
  | 'unauthenticated'
  | 'denied'
  | 'internal';

const httpStatusOf: Record<ErrorCode, number> = {
  not_found: 404,
  already_exists: 409,
  invalid_argument: 400,
  failed_precondition: 412,
  unavailable: 423,
  range_not_satisfiable: 416,
  not_implemented: 501,
  // A registry's 401/403 is the registry's answer, not the caller's fault: passed on as 502.
  unauthenticated: 502,
  denied: 502,
  internal: 500,
};

export class BerthError extends Error {
  readonly code: ErrorCode;
  /** Facts a caller may act on, e.g. the current offset of an ingest for a 416. */
  readonly details: Record<string, string | number>;

  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, string | number> },
  ) {
    super(message, options);
    this.name = 'BerthError';
    this.code = code;
    this.details = options?.details ?? {};
  }

  get httpStatus(): number {
    return httpStatusOf[this.code];
  }
}

/** The kind of an error, walking the cause chain; untyped errors are `internal`. */
export function errorCode(err: unknown): ErrorCode {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (e instanceof BerthError) return e.code;
  }
  return 'internal';
}

export function isCode(err: unknown, code: ErrorCode): boolean {
  return errorCode(err) === code;
}

export const isNotFound = (err: unknown): boolean => isCode(err, 'not_found');
export const isAlreadyExists = (err: unknown): boolean => isCode(err, 'already_exists');
export const isUnavailable = (err: unknown): boolean => isCode(err, 'unavailable');

export function httpStatus(code: ErrorCode): number {
  return httpStatusOf[code];
}

export const notFound = (msg: string, cause?: unknown) => new BerthError('not_found', msg, { cause });
export const alreadyExists = (msg: string, cause?: unknown) => new BerthError('already_exists', msg, { cause });
export const invalidArgument = (msg: string, cause?: unknown) => new BerthError('invalid_argument', msg, { cause });
export const failedPrecondition = (msg: string, cause?: unknown) =>
  new BerthError('failed_precondition', msg, { cause });
export const unavailable = (msg: string, cause?: unknown) => new BerthError('unavailable', msg, { cause });

/** True for a Node fs error meaning "no such file". */
export function isMissingFile(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}
