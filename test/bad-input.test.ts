// Bad input is refused, with a message that names it (issue 13, item 4): every case a 4xx in
// the one error shape `{"error": {"code", "message"}}`, never a 500, nothing lost. A real
// server, real HTTP requests (and a raw socket where a client misbehaves below HTTP).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { appendFile, readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { request } from 'undici';
import { parse as parseYaml } from 'yaml';
import { refMaxLength } from '../store/index.js';
import { sha256 } from './fixtures/helpers.js';
import { ingestDir } from './fixtures/ingest.js';
import { startTestServer, type TestServer } from './fixtures/server.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const doc = parseYaml(readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8')) as Json;
/** The one limit of names and keys, as openapi.yaml writes it. */
const limit: number = doc.components.schemas.Name.maxLength;
const seg = encodeURIComponent;
const manifestType = 'application/vnd.oci.image.manifest.v1+json';

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: Json;
  text: string;
}

/** Log lines the server writes, and a way to wait for one (no sleeping). */
class LogSink extends Writable {
  readonly lines: Json[] = [];
  private waiters: Array<{ match: (l: Json) => boolean; resolve: (l: Json) => void }> = [];
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    for (const text of chunk.toString().split('\n').filter(Boolean)) {
      const line = JSON.parse(text);
      this.lines.push(line);
      this.waiters = this.waiters.filter((w) => !(w.match(line) && (w.resolve(line), true)));
    }
    done();
  }
  next(match: (l: Json) => boolean): Promise<Json> {
    const seen = this.lines.find(match);
    return seen ? Promise.resolve(seen) : new Promise((resolve) => this.waiters.push({ match, resolve }));
  }
}

let server: TestServer;
const logs = new LogSink();

async function call(method: string, path: string, opts: { json?: unknown; body?: string | Buffer | Readable; headers?: Record<string, string> } = {}): Promise<Res> {
  const headers: Record<string, string> = { ...opts.headers };
  let body = opts.body;
  if (opts.json !== undefined) {
    headers['content-type'] ??= 'application/json';
    body = JSON.stringify(opts.json);
  }
  const res = await request(server.url + path, { method: method as 'GET', headers, body, signal: AbortSignal.timeout(20_000) });
  const text = await res.body.text();
  // Every answer here is JSON or empty: anything else fails the assertions on `json`.
  const json: Json = /^[[{]/.test(text) ? JSON.parse(text) : undefined;
  return { status: res.statusCode, headers: res.headers, json, text };
}

/** The error shape, the status and code, and a message that names each of `names`. */
function assertError(res: Res, status: number, code: string, names: string[], what: string): string {
  assert.equal(res.status, status, `${what}: expected ${status}, got ${res.status} ${res.text.slice(0, 300)}`);
  assert.match(String(res.headers['content-type']), /^application\/json/, `${what}: content-type`);
  assert.deepEqual(Object.keys(res.json ?? {}), ['error'], `${what}: body ${res.text.slice(0, 300)}`);
  assert.deepEqual(Object.keys(res.json.error).sort(), ['code', 'message'], `${what}: error ${res.text.slice(0, 300)}`);
  assert.equal(res.json.error.code, code, `${what}: code (message ${res.json.error.message})`);
  const message: string = res.json.error.message;
  for (const name of names) assert.ok(message.includes(name), `${what}: message ${JSON.stringify(message)} must name ${JSON.stringify(name)}`);
  return message;
}

before(async () => {
  server = await startTestServer({ logger: { level: 'info', stream: logs } });
});
after(async () => {
  await server.destroy();
});

describe('an invalid regular expression in a filter', () => {
  // Every list endpoint: the operations of openapi.yaml that take the Filter parameter.
  const lists = Object.entries(doc.paths as Json)
    .filter(([, item]: [string, Json]) => (item.get?.parameters ?? []).some((p: Json) => p.$ref === '#/components/parameters/Filter'))
    .map(([path]) => path.replace('{sn}', 'native'));

  test('the document has the list endpoints this test expects', () => {
    for (const p of ['/v1/content', '/v1/ingests', '/v1/namespaces', '/v1/images', '/v1/leases', '/v1/pulls', '/v1/snapshotters/native/snapshots', '/v1/containers']) {
      assert.ok(lists.includes(p), `${p} among ${lists.join(', ')}`);
    }
  });

  test('is a 400 naming the filter on every list endpoint', async () => {
    for (const path of lists) {
      const res = await call('GET', `${path}?filter=${seg('name==x')}&filter=${seg('name~=(')}`);
      assertError(res, 400, 'invalid_argument', ['name~=(', 'invalid regular expression', 'Unterminated group'], `GET ${path}`);
    }
  });

  test('a valid one still selects', async () => {
    const res = await call('POST', '/v1/namespaces', { json: { name: 'regex-ok' } });
    assert.equal(res.status, 201, res.text);
    const list = await call('GET', `/v1/namespaces?filter=${seg('name~=^regex-(ok|no)$')}`);
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(list.json.items.map((n: Json) => n.name), ['regex-ok']);
  });

  test('/v1/events answers 400 naming the filter, and the answer ends (no stream is opened)', async () => {
    const res = await call('GET', `/v1/events?filter=${seg('topic~=[a')}`);
    assertError(res, 400, 'invalid_argument', ['topic~=[a', 'invalid regular expression'], 'GET /v1/events');
  });
});

describe('PATCH /v1/ingests/{ref} beyond Upload-Length', () => {
  test('a body with a Content-Length past the declared length is refused whole; nothing of the ingest is lost', async () => {
    const ref = 'overrun-1';
    const first = await call('PATCH', `/v1/ingests/${ref}`, { body: 'a', headers: { 'upload-offset': '0', 'upload-length': '2' } });
    assert.equal(first.status, 200, first.text);
    assert.equal(first.json.offset, 1);

    const refused = await call('PATCH', `/v1/ingests/${ref}`, { body: '12345678', headers: { 'upload-offset': '1' } });
    assertError(refused, 400, 'invalid_argument', [`"${ref}"`, '8 bytes', 'offset 1', 'Upload-Length', '2 bytes'], 'overrun');
    assert.equal(refused.headers['upload-offset'], '1', 'the response says where the ingest is');
    // The same with the length declared again on the request.
    const again = await call('PATCH', `/v1/ingests/${ref}`, { body: '12345678', headers: { 'upload-offset': '1', 'upload-length': '2' } });
    assertError(again, 400, 'invalid_argument', [`"${ref}"`, '8 bytes'], 'overrun, length repeated');

    const status = await call('GET', `/v1/ingests/${ref}`);
    assert.equal(status.status, 200, status.text);
    assert.equal(status.json.offset, 1, 'the ingest keeps the byte it had');
    assert.equal(status.json.total, 2);
    assert.deepEqual(await readFile(join(await ingestDir(server, ref), 'data')), Buffer.from('a'));

    // The upload goes on from where it was and commits at the declared length.
    const last = await call('PATCH', `/v1/ingests/${ref}`, { body: 'b', headers: { 'upload-offset': '1' } });
    assert.equal(last.status, 200, last.text);
    const commit = await call('POST', `/v1/ingests/${ref}/commit`, { json: {} });
    assert.equal(commit.status, 201, commit.text);
    assert.equal(commit.json.size, 2);
    assert.equal(commit.json.digest, sha256('ab'));
  });

  test('a fresh ingest: refused before anything is written', async () => {
    const ref = 'overrun-fresh';
    const refused = await call('PATCH', `/v1/ingests/${ref}`, { body: '12345678', headers: { 'upload-offset': '0', 'upload-length': '2' } });
    assertError(refused, 400, 'invalid_argument', [`"${ref}"`, '8 bytes', '2 bytes'], 'overrun of a fresh ingest');
    assert.equal(refused.headers['upload-offset'], '0');
    assert.equal((await call('GET', `/v1/ingests/${ref}`)).status, 404, 'no ingest was made');
  });

  test('a chunked body (no Content-Length): the chunk that overruns is refused, what came before is kept', async () => {
    const ref = 'overrun-chunked';
    // A stream of unknown length goes chunked.
    const refused = await call('PATCH', `/v1/ingests/${ref}`, { body: Readable.from([Buffer.from('12345678')]), headers: { 'upload-offset': '0', 'upload-length': '2' } });
    assertError(refused, 400, 'invalid_argument', [`"${ref}"`, 'at least 8 bytes', '2 bytes'], 'chunked overrun');
    assert.equal(refused.headers['upload-offset'], '0');
    const status = await call('GET', `/v1/ingests/${ref}`);
    assert.equal(status.status, 200, status.text);
    assert.equal(status.json.offset, 0);
    const commit = await call('POST', `/v1/ingests/${ref}/commit`, { json: { size: 8, digest: sha256('12345678') } });
    assert.equal(commit.status, 412, `the commit cannot succeed with the refused bytes: ${commit.text}`);
  });

  test('an ingest holding more than its declared length (written before this check) does not commit', async () => {
    const ref = 'overrun-on-disk';
    const first = await call('PATCH', `/v1/ingests/${ref}`, { body: 'a', headers: { 'upload-offset': '0', 'upload-length': '2' } });
    assert.equal(first.status, 200, first.text);
    await appendFile(join(await ingestDir(server, ref), 'data'), '1234567');
    const commit = await call('POST', `/v1/ingests/${ref}/commit`, { json: {} });
    assertError(commit, 412, 'failed_precondition', [`"${ref}"`, '8 bytes', 'declared length 2'], 'commit of an over-long ingest');
    const status = await call('GET', `/v1/ingests/${ref}`);
    assert.equal(status.status, 200, `the ingest is kept: ${status.text}`);
    assert.equal(status.json.offset, 8);
  });
});

describe('containerd.io/gc.expire must be an RFC 3339 time', () => {
  const bad = { 'containerd.io/gc.expire': 'yesterday' };

  test('on a lease: 400 naming the label; no lease is made', async () => {
    const res = await call('POST', '/v1/leases', { json: { id: 'expire-bad', labels: bad } });
    assertError(res, 400, 'invalid_argument', ['lease "expire-bad"', '"containerd.io/gc.expire"', 'RFC 3339', '"yesterday"'], 'lease');
    assert.equal((await call('GET', '/v1/leases/expire-bad')).status, 404);
    const good = await call('POST', '/v1/leases', { json: { id: 'expire-good', labels: { 'containerd.io/gc.expire': '2099-01-02T03:04:05+01:00' } } });
    assert.equal(good.status, 201, good.text);
  });

  test('on an image, created or patched: 400 naming the label; the image is unchanged', async () => {
    const target = { mediaType: manifestType, digest: sha256('m'), size: 1 };
    const created = await call('POST', '/v1/images', { json: { name: 'expire:bad', target, labels: bad } });
    assertError(created, 400, 'invalid_argument', ['image "expire:bad"', '"containerd.io/gc.expire"', 'RFC 3339', '"yesterday"'], 'image create');
    assert.equal((await call('GET', `/v1/images/${seg('expire:bad')}`)).status, 404);

    assert.equal((await call('POST', '/v1/images', { json: { name: 'expire:1', target, labels: { a: 'b' } } })).status, 201);
    const patched = await call('PATCH', `/v1/images/${seg('expire:1')}`, { json: { labels: bad, fieldpaths: ['labels.containerd.io/gc.expire'] } });
    assertError(patched, 400, 'invalid_argument', ['image "expire:1"', '"containerd.io/gc.expire"', '"yesterday"'], 'image patch');
    assert.deepEqual((await call('GET', `/v1/images/${seg('expire:1')}`)).json.labels, { a: 'b' });
  });
});

describe('lease resource types', () => {
  before(async () => {
    assert.equal((await call('POST', '/v1/leases', { json: { id: 'types' } })).status, 201);
  });

  test('a malformed type is a 400 naming it, when adding and when removing', async () => {
    for (const type of ['../evil', 'content/../x', 'snapshots/..', 'snapshots/a/b', 'Sandboxes', '']) {
      const add = await call('POST', '/v1/leases/types/resources', { json: { id: 'x', type } });
      assertError(add, 400, 'invalid_argument', type ? ['lease "types"', JSON.stringify(type)] : ['type'], `add ${JSON.stringify(type)}`);
      if (!type) continue;
      const del = await call('DELETE', `/v1/leases/types/resources/${seg(type)}/x`);
      assertError(del, 400, 'invalid_argument', ['lease "types"', JSON.stringify(type)], `remove ${JSON.stringify(type)}`);
    }
  });

  test('a well-formed type berth does not know is still 501; a snapshotter called constructor is a name', async () => {
    const unknown = await call('POST', '/v1/leases/types/resources', { json: { id: 'x', type: 'sandboxes' } });
    assertError(unknown, 501, 'not_implemented', ['sandboxes'], 'unknown type');
    const odd = await call('POST', '/v1/leases/types/resources', { json: { id: 'k', type: 'snapshots/constructor' } });
    assert.equal(odd.status, 204, odd.text);
    const list = await call('GET', '/v1/leases/types/resources');
    assert.deepEqual(list.json.items, [{ id: 'k', type: 'snapshots/constructor' }]);
  });
});

describe('errors of the HTTP parser, the body parsers and the router have the one shape', () => {
  test('malformed JSON', async () => {
    const res = await call('POST', '/v1/namespaces', { body: '{"name": ', headers: { 'content-type': 'application/json' } });
    assertError(res, 400, 'invalid_argument', ['request body', 'not valid JSON'], 'malformed JSON');
  });

  test('an empty JSON body', async () => {
    const res = await call('POST', '/v1/namespaces', { body: '', headers: { 'content-type': 'application/json' } });
    assertError(res, 400, 'invalid_argument', ['request body', 'empty'], 'empty JSON');
  });

  test('text where JSON belongs, and a content type no parser takes', async () => {
    const text = await call('POST', '/v1/namespaces', { body: 'name=x', headers: { 'content-type': 'text/plain' } });
    assertError(text, 400, 'invalid_argument', ['request body', 'application/json', '"text/plain"'], 'text/plain');
    const xml = await call('POST', '/v1/namespaces', { body: '<name/>', headers: { 'content-type': 'application/xml' } });
    assertError(xml, 415, 'invalid_argument', ['"application/xml"', 'application/json'], 'application/xml');
  });

  test('a JSON body over the limit', async () => {
    const res = await call('POST', '/v1/namespaces', { json: { name: 'big', labels: { k: 'v'.repeat(2 << 20) } } });
    assertError(res, 413, 'invalid_argument', ['request body', 'larger'], 'too large');
  });

  test('a wrong type and an unknown property name the field', async () => {
    const wrong = await call('POST', '/v1/leases', { json: { id: 7 } });
    assertError(wrong, 400, 'invalid_argument', ['body/id', 'string'], 'wrong type');
    const typo = await call('POST', '/v1/leases', { json: { idd: 'x' } });
    assertError(typo, 400, 'invalid_argument', ['"idd"'], 'unknown property');
  });

  test('a malformed percent-encoding in the URL', async () => {
    const res = await call('GET', '/v1/images/%E0%A4%A');
    assert.ok(res.status >= 400 && res.status < 500, `4xx, got ${res.status}`);
    assertError(res, res.status, res.status === 404 ? 'not_found' : 'invalid_argument', [], 'bad URL');
  });

  test("a request Node's HTTP parser refuses", async () => {
    const socket = connect(Number(new URL(server.url).port), '127.0.0.1');
    await once(socket, 'connect');
    socket.end('GET /v1/images HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    await once(socket, 'close');
    const raw = Buffer.concat(chunks).toString();
    const [head, body] = raw.split('\r\n\r\n');
    assert.match(head, /^HTTP\/1\.1 400 /, raw);
    assert.match(head, /content-type: application\/json/i, raw);
    const json = JSON.parse(body);
    assert.deepEqual(Object.keys(json), ['error']);
    assert.equal(json.error.code, 'invalid_argument');
    assert.match(json.error.message, /malformed HTTP request: .*header/i);
  });
});

describe('messages that echo input cut it short', () => {
  test('a long name in a not_found', async () => {
    const name = `echo/${'n'.repeat(3000)}`;
    const res = await call('GET', `/v1/images/${seg(name)}`);
    const message = assertError(res, 404, 'not_found', [`image "echo/nnnn`, '…', 'not found'], 'long image name');
    assert.ok(message.length < 300, `message of ${message.length} characters`);
  });

  test('a long filter in a parse error', async () => {
    const filter = `name==${'x'.repeat(10_000)} y`;
    const res = await call('GET', `/v1/images?filter=${seg(filter)}`);
    const message = assertError(res, 400, 'invalid_argument', ['filters: parse error', '…', 'unexpected input'], 'long filter');
    assert.ok(message.length < 400, `message of ${message.length} characters`);
  });

  test('a long value refused by the schema', async () => {
    const res = await call('POST', '/v1/leases', { json: { id: 'i'.repeat(10_000) } });
    const message = assertError(res, 400, 'invalid_argument', ['body/id', '"iiii', '…', `${limit} characters`], 'long lease id');
    assert.ok(message.length < 300, `message of ${message.length} characters`);
  });
});

describe('snapshot errors use the caller\'s keys', () => {
  const sn = '/v1/snapshotters/native/snapshots';
  const backendKey = /default\/\d+\//;

  before(async () => {
    for (const [op, body] of [
      ['prepare', { key: 'snap-a' }],
      ['commit', { key: 'snap-a', name: 'snap-c' }],
      ['view', { key: 'snap-v', parent: 'snap-c' }],
    ] as const) {
      const res = await call('POST', `${sn}/${op}`, { json: body });
      assert.equal(res.status, 201, `${op}: ${res.text}`);
    }
  });

  test('mounts of a committed snapshot', async () => {
    const message = assertError(await call('GET', `${sn}/snap-c/mounts`), 412, 'failed_precondition', ['snap-c'], 'mounts');
    assert.doesNotMatch(message, backendKey);
  });

  test('committing a view', async () => {
    const message = assertError(await call('POST', `${sn}/commit`, { json: { key: 'snap-v', name: 'snap-v2' } }), 412, 'failed_precondition', ['"snap-v"'], 'commit a view');
    assert.doesNotMatch(message, backendKey);
  });
});

describe(`names and keys share one length limit (${limit}, openapi.yaml's Name)`, () => {
  const at = (prefix: string, n = limit) => prefix + 'x'.repeat(n - [...prefix].length);

  test('the limit is 4096; the content store takes refs a namespace prefix longer', () => {
    assert.equal(limit, 4096);
    // `<namespace>/<seq>/<ref>`: a namespace of up to 76 characters, a sequence number.
    assert.ok(refMaxLength >= limit + 76 + 2 + 16, `store ref limit ${refMaxLength}`);
  });

  test('image names: at the limit (URL-encoded, with slashes) works; one more is a 400 naming the field', async () => {
    const target = { mediaType: manifestType, digest: sha256('x'), size: 1 };
    // Every `/` is `%2F` in the path: three times the limit, past the router's old 8192.
    const name = 'reg.example' + '/'.repeat(limit - 'reg.example'.length);
    const ok = await call('POST', '/v1/images', { json: { name, target } });
    assert.equal(ok.status, 201, ok.text.slice(0, 300));
    const got = await call('GET', `/v1/images/${seg(name)}`);
    assert.equal(got.status, 200, got.text.slice(0, 300));
    assert.equal(got.json.name, name);
    const over = await call('POST', '/v1/images', { json: { name: name + 'x', target } });
    assertError(over, 400, 'invalid_argument', ['body/name', `${limit} characters`], 'image name');
    assertError(await call('GET', `/v1/images/${seg(name + 'x')}`), 400, 'invalid_argument', ['params/name', `${limit} characters`], 'image name in the path');
  });

  test('snapshot keys', async () => {
    const key = at('snapkey-');
    const ok = await call('POST', '/v1/snapshotters/native/snapshots/prepare', { json: { key } });
    assert.equal(ok.status, 201, ok.text.slice(0, 300));
    const over = await call('POST', '/v1/snapshotters/native/snapshots/prepare', { json: { key: key + 'x' } });
    assertError(over, 400, 'invalid_argument', ['body/key', `${limit} characters`], 'snapshot key');
    assertError(await call('GET', `/v1/snapshotters/native/snapshots/${seg(key + 'x')}`), 400, 'invalid_argument', ['params/key'], 'snapshot key in the path');
  });

  test('ingest refs, counted in characters', async () => {
    const ref = at('ref-é-', limit);
    const ok = await call('PATCH', `/v1/ingests/${seg(ref)}`, { body: 'x', headers: { 'upload-offset': '0' } });
    assert.equal(ok.status, 200, ok.text.slice(0, 300));
    const over = await call('PATCH', `/v1/ingests/${seg(ref + 'x')}`, { body: 'x', headers: { 'upload-offset': '0' } });
    assertError(over, 400, 'invalid_argument', ['params/ref', `${limit} characters`], 'ingest ref');
  });

  test('lease and container ids, namespaces, label keys', async () => {
    const long = 'i'.repeat(limit + 1);
    assertError(await call('POST', '/v1/leases', { json: { id: long } }), 400, 'invalid_argument', ['body/id', `${limit} characters`], 'lease id');
    assertError(await call('GET', `/v1/leases/${long}`), 400, 'invalid_argument', ['params/id', `${limit} characters`], 'lease id in the path');
    assertError(await call('POST', '/v1/containers', { json: { id: long, image: 'x' } }), 400, 'invalid_argument', ['body/id', `${limit} characters`], 'container id');
    assertError(await call('GET', '/v1/images', { headers: { 'berth-namespace': long } }), 400, 'invalid_argument', ['berth-namespace', `${limit} characters`], 'namespace header');
    const labels = { [long]: 'v' };
    assertError(await call('POST', '/v1/leases', { json: { id: 'labelled', labels } }), 400, 'invalid_argument', ['body/labels', 'key "iiii', `${limit} characters`], 'lease label key');
    // Identifiers keep containerd's own, shorter limit.
    assertError(await call('POST', '/v1/leases', { json: { id: 'i'.repeat(77) } }), 400, 'invalid_argument', ['76 characters'], 'lease id over 76');
  });
});

describe('a client hanging up mid-request', () => {
  test('is logged at info level without a stack', async () => {
    const ref = 'hang-up';
    const socket = connect(Number(new URL(server.url).port), '127.0.0.1');
    await once(socket, 'connect');
    socket.write(`PATCH /v1/ingests/${ref} HTTP/1.1\r\nHost: x\r\nUpload-Offset: 0\r\nContent-Length: 100\r\n\r\nabc`);
    const started = await logs.next((l) => l.msg === 'incoming request' && l.req?.url === `/v1/ingests/${ref}`);
    socket.destroy();
    const line = await logs.next((l) => l.reqId === started.reqId && l.msg !== 'incoming request' && l.level >= 30 && l.msg !== 'request completed');
    assert.equal(line.level, 30, `info level: ${JSON.stringify(line)}`);
    assert.match(line.msg, /client went away/);
    assert.equal(JSON.stringify(line).includes('stack'), false, `no stack: ${JSON.stringify(line)}`);
    assert.deepEqual(logs.lines.filter((l) => l.level >= 50), [], 'nothing at error level');
    // The ingest stays resumable: whatever arrived of the body is there (here at most "abc").
    const status = await call('GET', `/v1/ingests/${ref}`);
    assert.equal(status.status, 200, status.text);
    assert.ok(status.json.offset <= 3, status.text);
  });
});
