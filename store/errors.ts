// One vocabulary of error kinds for every layer (as containerd's errdefs). Code throws a
// BerthError with a kind and a message that names the object; whoever answers a caller maps the
// kind to its own terms (the API to a status) and the CLI prints the message. Anything else is
// `internal`.

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

export class BerthError extends Error {
  readonly code: ErrorCode;
  /** Facts a caller may act on, e.g. the current offset of an ingest a write did not start at. */
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
