// openapi.yaml is the HTTP contract. These tests prove that
//   (a) the routes the server serves and the operations the document describes are the same set;
//   (b) a real server's answers match the document: every status is one the document lists for the
//       operation, every JSON body validates against the schema the document gives for that
//       status, documented headers are present, and error codes match the error vocabulary.
// The cases of (b) are a table: adding a route means adding rows; a final test fails when some
// operation of the document was never exercised (with valid and with invalid input).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import Fastify from 'fastify';
import { request as undiciRequest, type Dispatcher } from 'undici';
import { parse as parseYaml } from 'yaml';
import { registerApi } from '../src/server.js';
import { startTestServer, type TestServer } from './fixtures/server.js';

// ajv-formats is CommonJS with `exports.default`: the same function either way it is loaded.
const addFormats = addFormatsModule.default;

// ---------------------------------------------------------------------------------------------
// The document
// ---------------------------------------------------------------------------------------------

type Json = Record<string, any>;

interface DocResponse {
  description?: string;
  headers?: Record<string, { schema?: Json }>;
  content?: Record<string, { schema?: Json }>;
}

interface DocOperation {
  operationId: string;
  method: string; // lower case
  path: string; // `/v1/content/{digest}`
  route: string; // `/v1/content/:digest`
  responses: Record<string, DocResponse>;
}

const doc = parseYaml(readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8')) as Json;
const methods = ['get', 'head', 'put', 'post', 'patch', 'delete'];

/** `#/components/responses/Error` → the object it names. */
function resolve<T>(value: T & { $ref?: string }): T {
  if (!value.$ref) return value;
  const parts = value.$ref.replace(/^#\//, '').split('/');
  let out: any = doc;
  for (const p of parts) out = out?.[p];
  assert.ok(out, `openapi.yaml: unresolvable $ref ${value.$ref}`);
  return resolve(out);
}

const operations: DocOperation[] = Object.entries(doc.paths as Json).flatMap(([path, item]) =>
  methods
    .filter((m) => item[m])
    .map((m) => ({
      operationId: item[m].operationId as string,
      method: m,
      path,
      route: path.replace(/\{([^}]+)\}/g, ':$1'),
      responses: Object.fromEntries(
        Object.entries(item[m].responses as Json).map(([status, r]) => [status, resolve<DocResponse>(r)]),
      ),
    })),
);
const operationById = new Map(operations.map((o) => [o.operationId, o]));

// The error vocabulary (design.md, "Errors"; openapi.yaml's description): one status per code.
const statusOfCode: Record<string, number> = {
  not_found: 404,
  already_exists: 409,
  invalid_argument: 400,
  failed_precondition: 412,
  unavailable: 423,
  range_not_satisfiable: 416,
  not_implemented: 501,
  unauthenticated: 502,
  denied: 502,
  internal: 500,
};

// ---------------------------------------------------------------------------------------------
// Schemas: components/schemas registered with ajv, `#/components/schemas/X` rewritten to their ids
// ---------------------------------------------------------------------------------------------

const schemaBase = 'https://berth.invalid/openapi/components/schemas/';

function rewriteRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rewriteRefs);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [
        k,
        k === '$ref' && typeof v === 'string' && v.startsWith('#/components/schemas/')
          ? schemaBase + v.slice('#/components/schemas/'.length)
          : rewriteRefs(v),
      ]),
    );
  }
  return value;
}

const ajv = new Ajv({ allErrors: true, strict: false });
addFormats(ajv);
ajv.addFormat('binary', true); // OpenAPI's marker for byte bodies; never a JSON value here
for (const [name, schema] of Object.entries(doc.components.schemas as Json)) {
  ajv.addSchema({ ...(rewriteRefs(schema) as Json), $id: schemaBase + name });
}
const validators = new Map<string, ValidateFunction>();

function validatorFor(op: DocOperation, status: string, schema: Json): ValidateFunction {
  const key = `${op.operationId} ${status}`;
  let v = validators.get(key);
  if (!v) {
    v = ajv.compile(rewriteRefs(schema) as Json);
    validators.set(key, v);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// (a) served routes ⇔ documented operations
// ---------------------------------------------------------------------------------------------

describe('routes and openapi.yaml', () => {
  test('the routes registerApi serves are exactly the operations in openapi.yaml', async () => {
    const server = await startTestServer();
    // A second fastify, configured as the server's (HEAD routes exposed or not), that only records.
    const app = Fastify({
      logger: false,
      // (present at run time, missing from fastify's type of initialConfig)
      exposeHeadRoutes: (server.app.initialConfig as { exposeHeadRoutes?: boolean }).exposeHeadRoutes ?? true,
    });
    try {
      const registered: string[] = [];
      app.addHook('onRoute', (route) => {
        for (const m of [route.method].flat()) registered.push(`${m.toUpperCase()} ${route.url}`);
      });
      await registerApi(app, server.plugins);
      await app.ready();

      const served = new Set(registered.filter((r) => !r.startsWith('OPTIONS ')));
      assert.ok(served.size > 0, 'registerApi registered no routes');
      // What the running server answers on those URLs, whichever way the routes were added
      // (e.g. HEAD routes fastify derives from GETs).
      for (const url of new Set([...served].map((r) => r.split(' ')[1]))) {
        for (const m of methods.map((x) => x.toUpperCase())) {
          if (server.app.hasRoute({ method: m as 'GET', url })) served.add(`${m} ${url}`);
        }
      }
      const documented = new Set(operations.map((o) => `${o.method.toUpperCase()} ${o.route}`));

      const undocumented = [...served].filter((r) => !documented.has(r)).sort();
      const unserved = [...documented].filter((r) => !served.has(r)).sort();
      assert.deepEqual(undocumented, [], `served but not in openapi.yaml: ${undocumented.join(', ')}`);
      assert.deepEqual(unserved, [], `in openapi.yaml but not served: ${unserved.join(', ')}`);

      // The replica is faithful: the running server has each of these routes too.
      for (const r of served) {
        const [method, url] = r.split(' ');
        assert.ok(
          server.app.hasRoute({ method: method as 'GET', url }),
          `the running server has no route ${r} though registerApi registers it`,
        );
      }
    } finally {
      await app.close();
      await server.destroy();
    }
  });

  test('every operation has a unique operationId and documents its responses', () => {
    const ids = operations.map((o) => o.operationId);
    assert.equal(new Set(ids).size, ids.length, `duplicate operationIds: ${ids.join(', ')}`);
    for (const op of operations) {
      assert.ok(op.operationId, `${op.method.toUpperCase()} ${op.path} has no operationId`);
      assert.ok(Object.keys(op.responses).length > 0, `${op.operationId} documents no responses`);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// (b) answers ⇔ document
// ---------------------------------------------------------------------------------------------

interface Res {
  status: number;
  headers: Headers;
  body: Buffer;
  json?: any;
}

interface Row {
  name: string;
  /** operationId in openapi.yaml: gives the method and the path template. */
  op: string;
  /** The status this request must get (one of, when several are right). */
  status: number | number[];
  params?: Record<string, string>;
  query?: Array<[string, string]>;
  headers?: Record<string, string>;
  /** A string or Buffer is sent as is; anything else as JSON (with its content type). */
  body?: string | Buffer | Json;
  before?: () => Promise<void>;
  check?: (res: Res) => void | Promise<void>;
  after?: () => Promise<void>;
}

const blob = (text: string) => {
  const bytes = Buffer.from(text);
  return { bytes, size: bytes.length, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` };
};

const A = blob('hello berth'); // put whole, read, labelled, deleted at the end
const B = blob('a second blob, kept'); // put whole; its digest makes Upload-Digest conflict
const C = blob('uploaded in two pieces'); // ingested and committed
const D = blob('sent without a content type');
const E = blob('plain text, not ASCII: é ü ✓');
const F = blob('{"a json": "body"}');
const missing = `sha256:${'c'.repeat(64)}`;
const octet = { 'content-type': 'application/octet-stream' };
const offsetStream = { 'content-type': 'application/offset+octet-stream' };
const refC = 'layers/c:ingest'; // travels URL-encoded: contains `/` and `:`
const refDup = 'dup/of-b';
const refTypo = 'typo';
const refBusy = 'busy/one';
const badRef = 'bad\u0001ref';

let server: TestServer;

/** Where the content plugin keeps a blob (containerd's layout under the plugin's root). */
function blobFile(digest: string): string {
  const content = server.plugins.list().find((p) => p.type === 'io.berth.content.v1');
  assert.ok(content?.exports.root, 'the content plugin exports its root');
  const [alg, hex] = digest.split(':');
  return join(content.exports.root, 'blobs', alg, hex);
}

/** A PATCH that streams for as long as the test wants: holds the ingest's writer. */
let held: { end(): Promise<Dispatcher.ResponseData> } | undefined;

async function holdIngest(ref: string): Promise<void> {
  const body = new PassThrough();
  const pending = undiciRequest(`${server.url}/v1/ingests/${encodeURIComponent(ref)}`, {
    method: 'PATCH',
    headers: { ...offsetStream, 'upload-offset': '0' },
    body,
  });
  pending.catch(() => {}); // awaited in end(); a failure shows there
  body.write('streaming...');
  // The writer exists (and is locked) once the ingest is visible.
  for (let i = 0; ; i++) {
    const res = await fetch(`${server.url}/v1/ingests/${encodeURIComponent(ref)}`);
    await res.arrayBuffer();
    if (res.status === 200) break;
    assert.ok(i < 200, `ingest ${ref} never appeared while its PATCH streams`);
    await sleep(10);
  }
  held = {
    end: async () => {
      body.end(' done');
      return pending;
    },
  };
}

async function releaseIngest(): Promise<void> {
  const h = held;
  held = undefined;
  if (!h) return;
  const res = await h.end();
  const text = await res.body.text();
  assert.equal(res.statusCode, 200, `the held PATCH should complete: ${text}`);
}

const errorCode = (res: Res): string | undefined => res.json?.error?.code;
const mentions = (res: Res, what: string) =>
  assert.ok(String(res.json?.error?.message).includes(what), `error message should name ${what}: ${res.body}`);

async function call(op: DocOperation, row: Row): Promise<Res> {
  const path = op.path.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const value = row.params?.[name];
    assert.ok(value !== undefined, `row ${row.name}: no value for path parameter ${name}`);
    return encodeURIComponent(value);
  });
  const url = new URL(path, server.url);
  for (const [k, v] of row.query ?? []) url.searchParams.append(k, v);
  const headers: Record<string, string> = { ...row.headers };
  let body: string | Uint8Array<ArrayBuffer> | undefined;
  if (typeof row.body === 'string') body = row.body;
  else if (Buffer.isBuffer(row.body)) body = new Uint8Array(row.body);
  else if (row.body !== undefined) {
    headers['content-type'] ??= 'application/json';
    body = JSON.stringify(row.body);
  }
  const res = await fetch(url, { method: op.method.toUpperCase(), headers, body });
  const bytes = Buffer.from(await res.arrayBuffer());
  const out: Res = { status: res.status, headers: res.headers, body: bytes };
  if (/^application\/json\b/.test(res.headers.get('content-type') ?? '') && bytes.length > 0) {
    out.json = JSON.parse(bytes.toString('utf8'));
  }
  return out;
}

/** The checks every answer gets, whatever the row. */
function conforms(op: DocOperation, res: Res): void {
  const what = `${op.operationId} (${op.method.toUpperCase()} ${op.path}) answered ${res.status}`;
  const documented = Object.keys(op.responses);
  const key = documented.find((s) => s === String(res.status)) ??
    documented.find((s) => s.toUpperCase() === `${String(res.status)[0]}XX`) ??
    documented.find((s) => s === 'default');
  assert.ok(key, `${what}, which openapi.yaml does not list (it lists ${documented.join(', ')}): ${res.body}`);
  const spec = op.responses[key];

  for (const [name, h] of Object.entries(spec.headers ?? {})) {
    const value = res.headers.get(name);
    assert.ok(value !== null, `${what} without the documented ${name} header`);
    if (h.schema?.type === 'integer') assert.match(value, /^\d+$/, `${what}: ${name} is not an integer`);
  }

  const contentType = res.headers.get('content-type') ?? '';
  const json = spec.content?.['application/json'];
  if (op.method === 'head') {
    assert.equal(res.body.length, 0, `${what} with a body to a HEAD`);
  } else if (json) {
    assert.match(contentType, /^application\/json\b/, `${what} with content-type ${contentType}, not JSON`);
    assert.ok(res.json !== undefined, `${what} with an empty body`);
    const validate = validatorFor(op, key, json.schema ?? {});
    assert.ok(
      validate(res.json),
      `${what} with a body that does not match openapi.yaml: ${ajv.errorsText(validate.errors)}\n${res.body}`,
    );
  } else if (spec.content) {
    const types = Object.keys(spec.content);
    assert.ok(
      types.some((t) => contentType.startsWith(t)),
      `${what} with content-type ${contentType}; openapi.yaml says ${types.join(' or ')}`,
    );
  } else {
    assert.equal(res.body.length, 0, `${what} with a body openapi.yaml does not describe: ${res.body}`);
  }

  if (res.status >= 400 && res.json?.error) {
    const code = res.json.error.code as string;
    assert.equal(
      statusOfCode[code],
      res.status,
      `${what} with error code ${code}, which the error vocabulary maps to ${statusOfCode[code]}`,
    );
  }
}

const rows: Row[] = [
  // ---- service ----
  { name: 'health: up', op: 'health', status: 200, check: (r) => assert.equal(r.json.status, 'ok') },
  {
    name: 'plugins: the content plugin is ok',
    op: 'listPlugins',
    status: 200,
    check: (r) =>
      assert.ok(r.json.items.some((p: Json) => p.type === 'io.berth.content.v1' && p.status === 'ok')),
  },

  // ---- committed content ----
  { name: 'list content: empty store', op: 'listContent', status: 200, check: (r) => assert.deepEqual(r.json.items, []) },
  {
    name: 'put content: a new blob with labels',
    op: 'putContent',
    status: 201,
    params: { digest: A.digest },
    headers: { ...octet, 'berth-labels': JSON.stringify({ 'test.kind': 'a' }) },
    body: A.bytes,
    check: (r) => {
      assert.equal(r.json.digest, A.digest);
      assert.equal(r.json.size, A.size);
      assert.deepEqual(r.json.labels, { 'test.kind': 'a' });
    },
  },
  {
    name: 'put content: a second blob',
    op: 'putContent',
    status: 201,
    params: { digest: B.digest },
    headers: { ...octet, 'berth-labels': JSON.stringify({ 'test.kind': 'b' }) },
    body: B.bytes,
  },
  {
    name: 'put content: existing blob is 409',
    op: 'putContent',
    status: 409,
    params: { digest: A.digest },
    headers: octet,
    body: A.bytes,
    check: (r) => {
      assert.equal(errorCode(r), 'already_exists');
      mentions(r, A.digest);
    },
  },
  {
    name: 'put content: bytes that do not match the digest are 412, nothing left behind',
    op: 'putContent',
    status: 412,
    params: { digest: missing },
    headers: octet,
    body: A.bytes,
    check: async (r) => {
      assert.equal(errorCode(r), 'failed_precondition');
      const info = await fetch(`${server.url}/v1/content/${missing}/info`);
      await info.arrayBuffer();
      assert.equal(info.status, 404, 'a failed put must not publish the blob');
      const ingests = (await (await fetch(`${server.url}/v1/ingests`)).json()) as Json;
      assert.deepEqual(ingests.items, [], 'a failed put must not leave an ingest');
    },
  },
  {
    name: 'put content: invalid digest is 400',
    op: 'putContent',
    status: 400,
    params: { digest: 'sha256:zz' },
    headers: octet,
    body: A.bytes,
    check: (r) => mentions(r, 'sha256:zz'),
  },
  {
    name: 'put content: Berth-Labels that is not a JSON object is 400',
    op: 'putContent',
    status: 400,
    params: { digest: C.digest },
    headers: { ...octet, 'berth-labels': '["not", "an object"]' },
    body: C.bytes,
  },
  {
    // Upload bodies are bytes whatever their Content-Type says (routes/raw-body.ts).
    name: 'put content: a body without Content-Type is stored byte for byte',
    op: 'putContent',
    status: 201,
    params: { digest: D.digest },
    body: D.bytes,
    check: (r) => assert.equal(r.json.size, D.size),
  },
  {
    name: 'put content: a text/plain body is stored byte for byte, not parsed',
    op: 'putContent',
    status: 201,
    params: { digest: E.digest },
    headers: { 'content-type': 'text/plain; charset=utf-8' },
    body: E.bytes.toString('utf8'),
    check: async (r) => {
      assert.equal(r.json.size, E.size);
      const got = await fetch(`${server.url}/v1/content/${E.digest}`);
      assert.deepEqual(Buffer.from(await got.arrayBuffer()), E.bytes);
    },
  },
  {
    name: 'read content: whole blob with ETag and Docker-Content-Digest',
    op: 'readContent',
    status: 200,
    params: { digest: A.digest },
    check: (r) => {
      assert.deepEqual(r.body, A.bytes);
      assert.equal(r.headers.get('etag'), `"${A.digest}"`);
      assert.equal(r.headers.get('docker-content-digest'), A.digest);
    },
  },
  {
    name: 'read content: Range bytes=1-3 is 206',
    op: 'readContent',
    status: 206,
    params: { digest: A.digest },
    headers: { range: 'bytes=1-3' },
    check: (r) => {
      assert.deepEqual(r.body, A.bytes.subarray(1, 4));
      assert.equal(r.headers.get('content-range'), `bytes 1-3/${A.size}`);
    },
  },
  {
    name: 'read content: suffix Range bytes=-5 is 206',
    op: 'readContent',
    status: 206,
    params: { digest: A.digest },
    headers: { range: 'bytes=-5' },
    check: (r) => {
      assert.deepEqual(r.body, A.bytes.subarray(A.size - 5));
      assert.equal(r.headers.get('content-range'), `bytes ${A.size - 5}-${A.size - 1}/${A.size}`);
    },
  },
  {
    name: 'read content: Range past the end is 416',
    op: 'readContent',
    status: 416,
    params: { digest: A.digest },
    headers: { range: 'bytes=100-200' },
    check: (r) => {
      assert.equal(errorCode(r), 'range_not_satisfiable');
      assert.equal(r.headers.get('content-range'), `bytes */${A.size}`);
    },
  },
  {
    // RFC 9110 §14.1.1: a first-pos at or past the length is unsatisfiable, open-ended or not.
    name: 'read content: open-ended Range starting at the end (bytes=<size>-) is 416',
    op: 'readContent',
    status: 416,
    params: { digest: A.digest },
    headers: { range: `bytes=${A.size}-` },
    check: (r) => assert.equal(r.headers.get('content-range'), `bytes */${A.size}`),
  },
  {
    name: 'read content: If-None-Match with the ETag is 304',
    op: 'readContent',
    status: 304,
    params: { digest: A.digest },
    headers: { 'if-none-match': `"${A.digest}"` },
  },
  {
    name: 'read content: missing blob is 404',
    op: 'readContent',
    status: 404,
    params: { digest: missing },
    check: (r) => {
      assert.equal(errorCode(r), 'not_found');
      mentions(r, missing);
    },
  },
  { name: 'read content: invalid digest is 400', op: 'readContent', status: 400, params: { digest: 'nope' } },
  {
    name: 'head content: size and ETag',
    op: 'headContent',
    status: 200,
    params: { digest: A.digest },
    check: (r) => {
      assert.equal(r.headers.get('content-length'), String(A.size));
      assert.equal(r.headers.get('etag'), `"${A.digest}"`);
    },
  },
  { name: 'head content: missing blob is 404', op: 'headContent', status: 404, params: { digest: missing } },
  { name: 'head content: invalid digest is 400', op: 'headContent', status: 400, params: { digest: 'sha256:' } },
  {
    name: 'content info: size, times and labels',
    op: 'contentInfo',
    status: 200,
    params: { digest: A.digest },
    check: (r) => {
      assert.equal(r.json.size, A.size);
      assert.deepEqual(r.json.labels, { 'test.kind': 'a' });
    },
  },
  { name: 'content info: missing blob is 404', op: 'contentInfo', status: 404, params: { digest: missing } },
  { name: 'content info: invalid digest is 400', op: 'contentInfo', status: 400, params: { digest: 'md5:00' } },
  {
    name: 'update content: labels replaced',
    op: 'updateContent',
    status: 200,
    params: { digest: A.digest },
    body: { labels: { x: 'y', keep: 'me' } },
    check: (r) => assert.deepEqual(r.json.labels, { x: 'y', keep: 'me' }),
  },
  {
    name: 'update content: labels.<key> field paths change only those keys',
    op: 'updateContent',
    status: 200,
    params: { digest: A.digest },
    body: { labels: { x: 'z' }, fieldpaths: ['labels.x', 'labels.gone'] },
    check: (r) => assert.deepEqual(r.json.labels, { x: 'z', keep: 'me' }),
  },
  {
    name: 'update content: body without labels is 400',
    op: 'updateContent',
    status: 400,
    params: { digest: A.digest },
    body: { fieldpaths: ['labels.x'] },
  },
  {
    name: 'update content: a field path other than labels is 400',
    op: 'updateContent',
    status: 400,
    params: { digest: A.digest },
    body: { labels: {}, fieldpaths: ['size'] },
  },
  {
    // LabelsUpdate has additionalProperties: false. `fieldPaths` (camelCase, as the design's JSON
    // fields are) must not be dropped silently: that would replace every label.
    name: 'update content: an unknown property (fieldPaths) is 400, labels untouched',
    op: 'updateContent',
    status: 400,
    params: { digest: A.digest },
    body: { labels: { x: 'w' }, fieldPaths: ['labels.x'] },
    check: async () => {
      const info = (await (await fetch(`${server.url}/v1/content/${A.digest}/info`)).json()) as Json;
      assert.deepEqual(info.labels, { x: 'z', keep: 'me' });
    },
  },
  {
    // Labels are `additionalProperties: { type: string }`.
    name: 'update content: a label value that is not a string is 400',
    op: 'updateContent',
    status: 400,
    params: { digest: A.digest },
    body: { labels: { x: 1 } },
  },
  {
    name: 'update content: missing blob is 404',
    op: 'updateContent',
    status: 404,
    params: { digest: missing },
    body: { labels: {} },
  },
  {
    name: 'list content: filter by label',
    op: 'listContent',
    status: 200,
    query: [['filter', 'labels."test.kind"==b']],
    check: (r) => assert.deepEqual(r.json.items.map((i: Json) => i.digest), [B.digest]),
  },
  {
    name: 'list content: filters OR across parameters',
    op: 'listContent',
    status: 200,
    query: [
      ['filter', `digest==${A.digest}`],
      ['filter', `digest==${B.digest}`],
    ],
    check: (r) => assert.deepEqual(r.json.items.map((i: Json) => i.digest).sort(), [A.digest, B.digest].sort()),
  },
  {
    name: 'list content: unparsable filter is 400',
    op: 'listContent',
    status: 400,
    query: [['filter', 'labels."unterminated']],
  },

  // ---- ingests ----
  { name: 'list ingests: none', op: 'listIngests', status: 200, check: (r) => assert.deepEqual(r.json.items, []) },
  {
    name: 'ingest status: unknown ref is 404',
    op: 'ingestStatus',
    status: 404,
    params: { ref: refC },
    check: (r) => mentions(r, refC),
  },
  {
    // PATCH, commit and abort answer 400 for such a ref; a status read answers 400 or 404.
    name: 'ingest status: ref with a control character is 400 or 404',
    op: 'ingestStatus',
    status: [400, 404],
    params: { ref: badRef },
  },
  {
    name: 'append: new ingest at offset 0 (URL-encoded ref)',
    op: 'appendIngest',
    status: 200,
    params: { ref: refC },
    headers: { ...offsetStream, 'upload-offset': '0', 'upload-length': String(C.size) },
    body: C.bytes.subarray(0, 8),
    check: (r) => {
      assert.equal(r.headers.get('upload-offset'), '8');
      assert.equal(r.json.ref, refC);
      assert.equal(r.json.offset, 8);
      assert.equal(r.json.total, C.size);
    },
  },
  {
    name: 'append: wrong Upload-Offset is 416 with the current offset',
    op: 'appendIngest',
    status: 416,
    params: { ref: refC },
    headers: { ...offsetStream, 'upload-offset': '0' },
    body: 'x',
    check: (r) => {
      assert.equal(r.headers.get('upload-offset'), '8');
      assert.equal(errorCode(r), 'range_not_satisfiable');
    },
  },
  {
    name: 'append: missing Upload-Offset is 400',
    op: 'appendIngest',
    status: 400,
    params: { ref: refC },
    headers: offsetStream,
    body: 'x',
  },
  {
    name: 'append: Upload-Length that differs from the ingest total is 412',
    op: 'appendIngest',
    status: 412,
    params: { ref: refC },
    headers: { ...offsetStream, 'upload-offset': '8', 'upload-length': String(C.size + 1) },
    body: 'x',
  },
  {
    name: 'append: Upload-Digest of existing content is 409',
    op: 'appendIngest',
    status: 409,
    params: { ref: 'other' },
    headers: { ...offsetStream, 'upload-offset': '0', 'upload-digest': B.digest },
    body: B.bytes,
    check: (r) => mentions(r, B.digest),
  },
  {
    name: 'append: a text/plain body is appended byte for byte (offset counts bytes)',
    op: 'appendIngest',
    status: 200,
    params: { ref: 'text-body' },
    headers: { 'content-type': 'text/plain; charset=utf-8', 'upload-offset': '0' },
    body: E.bytes.toString('utf8'),
    check: (r) => {
      assert.equal(r.headers.get('upload-offset'), String(E.size));
      assert.equal(r.json.offset, E.size);
    },
  },
  {
    name: 'append: an application/json body is appended as bytes, not parsed',
    op: 'appendIngest',
    status: 200,
    params: { ref: 'json-body' },
    headers: { 'content-type': 'application/json', 'upload-offset': '0' },
    body: F.bytes.toString('utf8'),
    check: async (r) => {
      assert.equal(r.json.offset, F.size);
      const c = await fetch(`${server.url}/v1/ingests/json-body/commit`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ digest: F.digest, size: F.size }),
      });
      assert.equal(c.status, 201, `the bytes appended are the body's: ${await c.text()}`);
    },
  },
  {
    name: 'append: the rest of the ingest (application/octet-stream)',
    op: 'appendIngest',
    status: 200,
    params: { ref: refC },
    headers: { ...octet, 'upload-offset': '8' },
    body: C.bytes.subarray(8),
    check: (r) => {
      assert.equal(r.headers.get('upload-offset'), String(C.size));
      assert.equal(r.json.offset, C.size);
    },
  },
  {
    name: 'ingest status: progress',
    op: 'ingestStatus',
    status: 200,
    params: { ref: refC },
    check: (r) => {
      assert.equal(r.json.offset, C.size);
      assert.equal(r.json.total, C.size);
    },
  },
  {
    name: 'list ingests: filter by ref',
    op: 'listIngests',
    status: 200,
    query: [['filter', `ref==${refC}`]],
    check: (r) => assert.deepEqual(r.json.items.map((i: Json) => i.ref), [refC]),
  },
  { name: 'list ingests: unparsable filter is 400', op: 'listIngests', status: 400, query: [['filter', 'ref==']] },
  {
    name: 'commit: wrong digest is 412 and the ingest is kept',
    op: 'commitIngest',
    status: 412,
    params: { ref: refC },
    body: { digest: missing },
    check: async (r) => {
      assert.equal(errorCode(r), 'failed_precondition');
      const st = await fetch(`${server.url}/v1/ingests/${encodeURIComponent(refC)}`);
      assert.equal(st.status, 200, 'after a 412 the ingest stays for another try');
      assert.equal(((await st.json()) as Json).offset, C.size);
    },
  },
  {
    name: 'commit: wrong size is 412',
    op: 'commitIngest',
    status: 412,
    params: { ref: refC },
    body: { size: C.size - 1 },
  },
  { name: 'commit: invalid digest is 400', op: 'commitIngest', status: 400, params: { ref: refC }, body: { digest: 'nope' } },
  { name: 'commit: negative size is 400', op: 'commitIngest', status: 400, params: { ref: refC }, body: { size: -1 } },
  {
    name: 'append: an ingest for the next row',
    op: 'appendIngest',
    status: 200,
    params: { ref: refTypo },
    headers: { ...offsetStream, 'upload-offset': '0' },
    body: 'not what the digest says',
  },
  {
    // CommitRequest has additionalProperties: false: a misspelt `digest` must not become "commit
    // without checking".
    name: 'commit: an unknown property (digset) is 400, the ingest is not committed',
    op: 'commitIngest',
    status: 400,
    params: { ref: refTypo },
    body: { digset: missing },
    check: async () => {
      const st = await fetch(`${server.url}/v1/ingests/${encodeURIComponent(refTypo)}`);
      await st.arrayBuffer();
      assert.equal(st.status, 200, 'the ingest must still be there');
    },
  },
  {
    name: 'commit: publishes the blob with its labels',
    op: 'commitIngest',
    status: 201,
    params: { ref: refC },
    body: { size: C.size, digest: C.digest, labels: { from: 'ingest' } },
    check: async (r) => {
      assert.equal(r.json.digest, C.digest);
      assert.equal(r.json.size, C.size);
      assert.deepEqual(r.json.labels, { from: 'ingest' });
      const got = await fetch(`${server.url}/v1/content/${C.digest}`);
      assert.deepEqual(Buffer.from(await got.arrayBuffer()), C.bytes);
    },
  },
  { name: 'commit: the ref is gone afterwards (404)', op: 'commitIngest', status: 404, params: { ref: refC }, body: {} },
  {
    name: 'append: a copy of B for the next row',
    op: 'appendIngest',
    status: 200,
    params: { ref: refDup },
    headers: { ...offsetStream, 'upload-offset': '0' },
    body: B.bytes,
  },
  {
    name: 'commit: content that exists is 409 and the ingest is removed',
    op: 'commitIngest',
    status: 409,
    params: { ref: refDup },
    body: { digest: B.digest },
    check: async (r) => {
      assert.equal(errorCode(r), 'already_exists');
      const st = await fetch(`${server.url}/v1/ingests/${encodeURIComponent(refDup)}`);
      await st.arrayBuffer();
      assert.equal(st.status, 404, 'after a 409 the ingest is removed');
    },
  },
  {
    name: 'append: a second PATCH while one streams is 423',
    op: 'appendIngest',
    status: 423,
    params: { ref: refBusy },
    headers: { ...offsetStream, 'upload-offset': '0' },
    body: 'x',
    before: () => holdIngest(refBusy),
    check: (r) => assert.equal(errorCode(r), 'unavailable'),
  },
  { name: 'commit: while a PATCH streams is 423', op: 'commitIngest', status: 423, params: { ref: refBusy }, body: {} },
  {
    name: 'abort: while a PATCH streams is 423',
    op: 'abortIngest',
    status: 423,
    params: { ref: refBusy },
    after: releaseIngest,
  },
  {
    name: 'abort: removes the ingest',
    op: 'abortIngest',
    status: 204,
    params: { ref: refBusy },
    check: async () => {
      const st = await fetch(`${server.url}/v1/ingests/${encodeURIComponent(refBusy)}`);
      await st.arrayBuffer();
      assert.equal(st.status, 404);
    },
  },
  { name: 'abort: unknown ref is 404', op: 'abortIngest', status: 404, params: { ref: refBusy } },
  { name: 'abort: ref with a control character is 400', op: 'abortIngest', status: 400, params: { ref: badRef } },

  // ---- deletion last: it removes what the rows above read ----
  {
    name: 'delete content: removes the blob',
    op: 'deleteContent',
    status: 204,
    params: { digest: A.digest },
    check: async () => {
      const info = await fetch(`${server.url}/v1/content/${A.digest}/info`);
      await info.arrayBuffer();
      assert.equal(info.status, 404);
    },
  },
  { name: 'delete content: missing blob is 404', op: 'deleteContent', status: 404, params: { digest: A.digest } },
  { name: 'delete content: invalid digest is 400', op: 'deleteContent', status: 400, params: { digest: 'sha256:XYZ' } },

  // ---- verification: D's bytes on disk are changed by hand between the rows ----
  {
    name: 'verify: every blob matches its digest',
    op: 'verifyContent',
    status: 200,
    check: (r) => {
      assert.deepEqual(r.json.corrupt, []);
      assert.deepEqual(r.json.removed, []);
      assert.ok(r.json.checked >= 4, `checked ${r.json.checked} blobs`);
    },
  },
  {
    name: 'verify: a blob changed on disk is reported, not removed',
    op: 'verifyContent',
    status: 200,
    before: async () => {
      const path = blobFile(D.digest);
      await chmod(path, 0o644);
      await writeFile(path, Buffer.alloc(D.size, 0x78)); // same size, other bytes
    },
    check: async (r) => {
      assert.deepEqual(r.json.corrupt.map((c: Json) => c.digest), [D.digest]);
      assert.deepEqual(r.json.removed, []);
      const info = await fetch(`${server.url}/v1/content/${D.digest}/info`);
      await info.arrayBuffer();
      assert.equal(info.status, 200, 'without repair the blob stays');
    },
  },
  { name: 'verify: repair that is not a boolean is 400', op: 'verifyContent', status: 400, query: [['repair', 'maybe']] },
  {
    name: 'verify: repair=true removes the corrupt blob',
    op: 'verifyContent',
    status: 200,
    query: [['repair', 'true']],
    check: async (r) => {
      assert.deepEqual(r.json.removed, [D.digest]);
      const info = await fetch(`${server.url}/v1/content/${D.digest}/info`);
      await info.arrayBuffer();
      assert.equal(info.status, 404, 'a repaired blob is gone');
    },
  },
];

describe('answers match openapi.yaml', () => {
  /** operationId → statuses seen. */
  const seen = new Map<string, Set<number>>();

  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await releaseIngest().catch(() => {});
    await server?.destroy();
  });

  for (const row of rows) {
    test(`${row.op}: ${row.name}`, async () => {
      const op = operationById.get(row.op);
      assert.ok(op, `row names operation ${row.op}, which openapi.yaml does not have`);
      try {
        await row.before?.();
        const res = await call(op, row);
        if (!seen.has(op.operationId)) seen.set(op.operationId, new Set());
        seen.get(op.operationId)!.add(res.status);
        const expected = [row.status].flat();
        assert.ok(
          expected.includes(res.status),
          `expected ${expected.join(' or ')}, got ${res.status}: ${res.body.toString('utf8').slice(0, 500)}`,
        );
        conforms(op, res);
        await row.check?.(res);
      } finally {
        await row.after?.();
      }
    });
  }

  test('every operation in openapi.yaml was exercised, with valid and with invalid input', (t) => {
    const never = operations.filter((o) => !seen.has(o.operationId)).map((o) => o.operationId);
    assert.deepEqual(never, [], `operations no row exercised: ${never.join(', ')}`);
    for (const op of operations) {
      const got = [...seen.get(op.operationId)!];
      assert.ok(got.some((s) => s < 400), `${op.operationId} was never exercised successfully`);
      if (Object.keys(op.responses).some((s) => s.startsWith('4'))) {
        assert.ok(got.some((s) => s >= 400 && s < 500), `${op.operationId} was never exercised with invalid input`);
      }
      const untried = Object.keys(op.responses).filter((s) => /^\d+$/.test(s) && !got.includes(Number(s)));
      if (untried.length > 0) t.diagnostic(`${op.operationId}: documented but not produced: ${untried.join(', ')}`);
    }
  });
});
