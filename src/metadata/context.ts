// What every metadata operation is done on behalf of: a namespace and, optionally, a lease that
// everything the operation writes becomes a resource of (containerd's context values).
import { validateIdentifier } from './validate.js';

export interface OpContext {
  namespace: string;
  lease?: string;
}

export const defaultNamespace = 'default';

/** Validates the namespace (invalid_argument naming it). */
export function checkNamespace(ctx: OpContext): string {
  validateIdentifier(ctx.namespace, `namespace ${JSON.stringify(ctx.namespace)}`);
  return ctx.namespace;
}
