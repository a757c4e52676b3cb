// Request validation against openapi.yaml: its component schemas are known to fastify (routes
// refer to them) and to the ajv instances that compile every route's request schemas.
import type { FastifyInstance } from 'fastify';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { componentSchemas } from '../openapi.js';

/** Adds the component schemas and validates requests with them. */
export function registerValidation(app: FastifyInstance): void {
  for (const schema of componentSchemas()) app.addSchema(schema);
  app.setValidatorCompiler(requestValidators());
}

/**
 * JSON bodies are validated strictly — an unknown property or a number where a string belongs is
 * a 400, never silently dropped or coerced (a typo in `digest` must not commit unchecked) —
 * while headers, query strings and path parameters are coerced from their text.
 */
function requestValidators(): (req: { schema: object; httpPart?: string }) => ReturnType<Ajv['compile']> {
  const addFormats = addFormatsModule.default;
  const make = (coerceTypes: boolean | 'array') => {
    // verbose: errors carry the refused value, which the error reply names (cut short).
    const ajv = new Ajv({ coerceTypes, useDefaults: true, removeAdditional: false, allErrors: false, strict: false, verbose: true });
    addFormats(ajv);
    ajv.addFormat('binary', true);
    for (const schema of componentSchemas()) ajv.addSchema(schema);
    return ajv;
  };
  const bodies = make(false);
  const texts = make('array');
  return ({ schema, httpPart }) => (httpPart === 'body' ? bodies : texts).compile(schema);
}
