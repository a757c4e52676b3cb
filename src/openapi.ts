// openapi.yaml is the single description of the API: routes take their request and response
// schemas from it here, and a test checks that the served routes and the document agree.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { packageRoot } from './version.js';

type Json = Record<string, unknown>;

interface Parameter {
  in: 'path' | 'query' | 'header';
  name: string;
  required?: boolean;
  schema: Json;
  $ref?: string;
}

interface Operation {
  operationId: string;
  parameters?: Parameter[];
  requestBody?: { content: Record<string, { schema: Json }> };
  responses: Record<string, { $ref?: string; content?: Record<string, { schema: Json }> }>;
}

export interface OpenApiDoc {
  paths: Record<string, Record<string, Operation | Parameter[]>>;
  components: { schemas: Record<string, Json>; parameters: Record<string, Parameter>; responses: Json };
}

export const httpMethods = ['get', 'head', 'put', 'post', 'patch', 'delete'] as const;

/** The project's openapi.yaml, found from this file whether it runs from src/ or dist/src/. */
export function openApiPath(): string {
  return join(packageRoot(), 'openapi.yaml');
}

let cached: OpenApiDoc | undefined;

export function loadOpenApi(): OpenApiDoc {
  cached ??= parse(readFileSync(openApiPath(), 'utf8')) as OpenApiDoc;
  return cached;
}

/**
 * The one length limit of every name and key the API takes (image names, snapshot keys, ingest
 * refs, lease and container ids, label keys...): `components.schemas.Name.maxLength`.
 */
export function nameMaxLength(doc: OpenApiDoc = loadOpenApi()): number {
  const max = doc.components.schemas.Name?.maxLength;
  if (typeof max !== 'number') throw new Error('openapi.yaml: components.schemas.Name has no maxLength');
  return max;
}

/** `/v1/content/{digest}` → `/v1/content/:digest` */
export function toFastifyPath(path: string): string {
  return path.replace(/\{([^}]+)\}/g, ':$1');
}

/** Component schemas as JSON Schemas with `$id`s, for `app.addSchema`. */
export function componentSchemas(doc: OpenApiDoc = loadOpenApi()): Json[] {
  return Object.entries(doc.components.schemas).map(([name, schema]) => ({
    $id: name,
    ...(rewriteRefs(schema) as Json),
  }));
}

/** The fastify route schema (params, querystring, headers, body, response) of one operation. */
export function routeSchema(method: string, path: string, doc: OpenApiDoc = loadOpenApi()): Json {
  const item = doc.paths[path];
  const op = item?.[method.toLowerCase()] as Operation | undefined;
  if (!op) throw new Error(`openapi.yaml has no ${method.toUpperCase()} ${path}`);
  const params = [...((item.parameters as Parameter[] | undefined) ?? []), ...(op.parameters ?? [])].map((p) =>
    p.$ref ? doc.components.parameters[p.$ref.split('/').pop()!] : p,
  );
  const schema: Json = {};
  for (const where of ['path', 'query', 'header'] as const) {
    const list = params.filter((p) => p.in === where);
    if (list.length === 0) continue;
    const key = where === 'path' ? 'params' : where === 'query' ? 'querystring' : 'headers';
    schema[key] = {
      type: 'object',
      properties: Object.fromEntries(list.map((p) => [p.name, rewriteRefs(p.schema)])),
      required: list.filter((p) => p.required).map((p) => p.name),
    };
  }
  const json = op.requestBody?.content['application/json'];
  if (json) schema.body = rewriteRefs(json.schema);
  const response: Json = {};
  for (const [status, r] of Object.entries(op.responses)) {
    const resolved = r.$ref ? (doc.components.responses[r.$ref.split('/').pop()!] as typeof r) : r;
    const body = resolved.content?.['application/json'];
    if (body) response[status] = rewriteRefs(body.schema);
  }
  if (Object.keys(response).length > 0) schema.response = response;
  return schema;
}

/** `#/components/schemas/Info` → `Info#`, the id fastify's schema store knows it by. */
function rewriteRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rewriteRefs);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [
        k,
        k === '$ref' && typeof v === 'string' ? `${v.split('/').pop()}#` : rewriteRefs(v),
      ]),
    );
  }
  return value;
}

/** The document as served: openapi.yaml with `servers` naming the URL the server was reached at. */
export function servedDocument(serverUrl: string, doc: OpenApiDoc = loadOpenApi()): Record<string, unknown> {
  return { ...doc, servers: [{ url: serverUrl, description: 'this berth server' }] };
}

/** `http://host:port` as the request reached the server (its Host header; the listener's own URL otherwise). */
export function requestOrigin(req: { protocol: string; host?: string }, fallback: string): string {
  return req.host ? `${req.protocol}://${req.host}` : fallback;
}
