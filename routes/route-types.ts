// Fastify's route generics (Params, Querystring, Headers, Body, Reply) of one operation of
// openapi.yaml, taken from the types generated from it (src/client/openapi.d.ts): a route typed
// `Route<path, method>` stops compiling when the document changes what the operation takes or
// answers and the route does not follow.
import type { paths } from '../src/client/openapi.js';

type Method = 'get' | 'head' | 'put' | 'post' | 'patch' | 'delete';

/** The methods openapi.yaml describes for a path. */
type MethodOf<P extends keyof paths> = { [M in Method]: paths[P][M] extends undefined ? never : M }[Method];

/** The operation at a path and method, narrowed so that its parts can be indexed. */
type Operation<P extends keyof paths, M extends Method> = Extract<
  paths[P][M],
  { parameters: { path?: unknown; query?: unknown; header?: unknown }; requestBody?: unknown; responses: unknown }
>;

type Defined<T> = Exclude<T, undefined>;

/** The parameters in one place (path, query, header); unknown, fastify's default, where there are none. */
type ParametersIn<T> = [Defined<T>] extends [never] ? unknown : Defined<T>;

/** A request's or response's JSON body; unknown for other content (bytes, a stream) or none. */
type JsonBody<T> = Defined<T> extends { content: { 'application/json': infer B } } ? B : unknown;

/** The bodies of the 2xx and 3xx answers, by status: undefined for an answer without one (204, 304). */
type Replies<R> = {
  [S in keyof R as `${S & number}` extends `${2 | 3}${number}` ? S : never]: R[S] extends { content: object } ? JsonBody<R[S]> : undefined;
};

/**
 * An operation that answers JSON has its answers typed by status (its route answers with
 * `reply.code(status)` or returns the body); one whose answers carry no JSON (bytes, a stream,
 * nothing) is left to its route, unknown, as fastify would then want a status for every send.
 */
type ReplyOf<R> = [Exclude<Replies<R>[keyof Replies<R>], undefined>] extends [infer B]
  ? [B] extends [never] ? unknown : unknown extends B ? unknown : Replies<R>
  : never;

export interface Route<P extends keyof paths, M extends MethodOf<P>> {
  Params: ParametersIn<Operation<P, M>['parameters']['path']>;
  Querystring: ParametersIn<Operation<P, M>['parameters']['query']>;
  Headers: ParametersIn<Operation<P, M>['parameters']['header']>;
  Body: JsonBody<Operation<P, M>['requestBody']>;
  Reply: ReplyOf<Operation<P, M>['responses']>;
}
