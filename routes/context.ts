// The namespace and lease a request acts in: `Berth-Namespace` (default `default`) and
// `Berth-Lease` headers, as containerd's gRPC metadata.
import type { FastifyRequest } from 'fastify';
import { defaultNamespace, type OpContext } from '../src/metadata/context.js';

export function opContext(req: FastifyRequest): OpContext {
  const ns = req.headers['berth-namespace'];
  const lease = req.headers['berth-lease'];
  return {
    namespace: typeof ns === 'string' && ns !== '' ? ns : defaultNamespace,
    ...(typeof lease === 'string' && lease !== '' ? { lease } : {}),
  };
}
